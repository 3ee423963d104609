"""stanzad's own TLS 1.3 record layer (<tls native-records>, on by default): after the handshake
the server drops OpenSSL's SSL object and runs the records itself (RFC 8446 §5). Driven by a
scripted OpenSSL client (tls_test_client, for KeyUpdate and tampered records, which Python's
ssl module cannot send) and Python's ssl, over direct TLS (XEP-0368) and STARTTLS, with
juliet on a separate Python ssl connection as the other end of every message.
"""
import base64
import os
import shutil
import subprocess
import time
import unittest

from harness import HOST, Server, raw_login

TLS_TEST_CLIENT = os.environ.get("TLS_TEST_CLIENT", "build/tests/integration/tls_test_client")
USERS = [("romeo", "r0meo-secret"), ("juliet", "jul1et-secret")]
PASSWORDS = dict(USERS)


class Client:
    """tls_test_client as a subprocess: one command, one answer line."""

    def __init__(self, port, *args):
        self.proc = subprocess.Popen([TLS_TEST_CLIENT, str(port), *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        self.connected = self.answer()

    def answer(self):
        line = self.proc.stdout.readline().strip()
        if not line:
            raise AssertionError("tls_test_client exited")
        return line

    def do(self, command, expect_ok=True):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        line = self.answer()
        if expect_ok and not line.startswith("ok"):
            raise AssertionError(f"{command[:80]!r}: {line}")
        return line

    def send(self, text):
        return self.do("send " + text)

    def expect(self, text, ms=10000):
        return self.do(f"expect {ms} {text}")

    def login(self, user, resource):
        """SASL PLAIN (offered over TLS) and resource binding, then initial presence."""
        header = ("<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
                  "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
        self.send(header)
        self.expect("</stream:features>")
        token = base64.b64encode(f"\0{user}\0{PASSWORDS[user]}".encode()).decode()
        self.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>")
        self.expect("<success")
        self.send(header)
        self.expect("</stream:features>")
        self.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                  f"<resource>{resource}</resource></bind></iq>")
        self.expect("</iq>")
        self.send("<presence/>")
        self.expect(f"from='{user}@{HOST}/{resource}'")

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait(timeout=10)
        self.proc.stdout.close()


def message(to, body):
    return f"<message to='{to}' type='chat'><body>{body}</body></message>"


class NativeRecords(unittest.TestCase):
    def setUp(self):
        self.server = Server(users=USERS).start()
        self.juliet = raw_login(self.server, "juliet", PASSWORDS["juliet"], "phone")

    def tearDown(self):
        self.juliet.close()
        self.server.__exit__(None, None, None)

    def juliet_gets(self, body):
        self.juliet.read_until(f"<body>{body}</body>")
        self.juliet.buf = b""

    def talk(self, romeo, body):
        romeo.send(message("juliet@localhost/phone", body))
        self.juliet_gets(body)
        # And back: what the server seals for romeo decrypts on his side.
        self.juliet.send(message("romeo@localhost/balcony", "re " + body))
        romeo.expect(f"<body>re {body}</body>")

    def key_updates(self, romeo):
        status = romeo.do("status")
        return int(status.split("key_updates_received=")[1])

    def run_dialogue(self, romeo):
        romeo.login("romeo", "balcony")
        self.talk(romeo, "before any update")
        # The client updates its key and asks for ours: the server must answer with a KeyUpdate
        # of its own before its next record, and both directions keep working.
        romeo.do("keyupdate requested")
        self.talk(romeo, "after a requested update")
        self.assertEqual(self.key_updates(romeo), 1)
        romeo.do("keyupdate not")
        self.talk(romeo, "after an unrequested update")
        self.assertEqual(self.key_updates(romeo), 1)
        # Idle for two sweeps: the cipher contexts are freed and rebuilt from the secrets.
        time.sleep(2.5)
        self.talk(romeo, "after the idle sweep")
        romeo.do("keyupdate requested")
        self.talk(romeo, "after a second requested update")
        self.assertEqual(self.key_updates(romeo), 2)
        # close_notify is answered with close_notify.
        self.assertEqual(romeo.do("shutdown"), "ok closenotify")
        romeo.close()

    def test_direct_tls_keyupdate_and_close_notify(self):
        romeo = Client(self.server.tls_port)
        self.assertEqual(romeo.connected, "ok connected TLSv1.3")
        self.run_dialogue(romeo)
        self.assertIn("c2s tls close_notify", self.server.read_log())
        self.assertNotIn("records stay with openssl", self.server.read_log())

    def test_starttls_keyupdate_and_close_notify(self):
        romeo = Client(self.server.port, "--starttls", HOST)
        self.assertEqual(romeo.connected, "ok connected TLSv1.3")
        self.run_dialogue(romeo)
        self.assertNotIn("records stay with openssl", self.server.read_log())

    def test_every_suite(self):
        for suite in ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                      "TLS_CHACHA20_POLY1305_SHA256"):
            with self.subTest(suite=suite):
                romeo = Client(self.server.tls_port, "--suite", suite)
                romeo.login("romeo", "balcony")
                self.assertIn(f"cipher={suite}", romeo.do("status"))
                big = "x" * 40000  # several records each way
                self.talk(romeo, big)
                romeo.do("keyupdate requested")
                self.talk(romeo, suite)
                self.assertEqual(romeo.do("shutdown"), "ok closenotify")
                romeo.close()

    def test_tampered_record_is_refused_with_bad_record_mac(self):
        romeo = Client(self.server.tls_port)
        romeo.login("romeo", "balcony")
        self.talk(romeo, "a genuine message")
        romeo.do("tamper " + message("juliet@localhost/phone", "TAMPERED"))
        answer = romeo.do("wait_alert 10000")
        self.assertIn("bad record mac", answer)
        romeo.close()
        self.assertIn("alert=bad_record_mac", self.server.read_log())
        # The server survives and everybody else is unaffected.
        other = Client(self.server.tls_port)
        other.login("romeo", "garden")
        other.send(message("juliet@localhost/phone", "from the garden"))
        self.juliet_gets("from the garden")
        self.assertNotIn(b"TAMPERED", self.juliet.buf)
        other.do("shutdown")
        other.close()

    def test_tls12_stays_with_openssl(self):
        romeo = Client(self.server.tls_port, "--tls12")
        self.assertEqual(romeo.connected, "ok connected TLSv1.2")
        romeo.login("romeo", "balcony")
        self.talk(romeo, "over TLS 1.2")
        self.assertEqual(romeo.do("shutdown"), "ok closenotify")
        romeo.close()
        self.assertIn("records stay with openssl id=", self.server.read_log())
        self.assertIn("reason=not tls 1.3", self.server.read_log())

    @unittest.skipUnless(shutil.which("go-sendxmpp"), "go-sendxmpp not installed")
    def test_go_sendxmpp_sends_a_message(self):
        # Go's crypto/tls, a TLS stack of its own, through STARTTLS and then direct TLS.
        for direct in (False, True):
            port = self.server.tls_port if direct else self.server.port
            args = ["go-sendxmpp", "-u", "romeo@localhost", "-p", PASSWORDS["romeo"],
                    "-j", f"127.0.0.1:{port}", "-n", "--tls-version", "13",
                    "juliet@localhost"]
            if direct:
                args.insert(1, "-t")
            body = f"from go direct={direct}"
            r = subprocess.run(args, input=body, capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.juliet_gets(body)


class OpenSslRecords(unittest.TestCase):
    """<tls native-records='false'>: OpenSSL keeps the records, KeyUpdate included."""

    def test_fallback_to_openssl(self):
        with Server(users=USERS, extra_config="<tls native-records='false'/>") as server:
            juliet = raw_login(server, "juliet", PASSWORDS["juliet"], "phone")
            romeo = Client(server.tls_port)
            romeo.login("romeo", "balcony")
            romeo.do("keyupdate requested")
            romeo.send(message("juliet@localhost/phone", "through openssl"))
            juliet.read_until("<body>through openssl</body>")
            juliet.send(message("romeo@localhost/balcony", "back"))
            romeo.expect("<body>back</body>")
            self.assertEqual(romeo.do("shutdown"), "ok closenotify")
            romeo.close()
            juliet.close()
            log = server.read_log()
            self.assertNotIn("c2s tls close_notify", log)


if __name__ == "__main__":
    unittest.main(verbosity=2)
