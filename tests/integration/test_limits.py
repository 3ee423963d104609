"""Abuse limits (issue 6): connections per address, sessions per account, failed logins per
address, and traffic shaping; each answered by its RFC 6120 error while a bystander chats."""
import re
import time
import unittest

from harness import Raw, SharedServer, scram_login

USERS = [("romeo", "r0meo-secret"), ("juliet", "jul1et-secret"), ("nurse", "nurse-secret")]
PASSWORDS = dict(USERS)
LIMITS = ("connections-per-ip='3' sessions-per-account='2' auth-failures-per-ip='3' "
          "auth-failure-window='60' max-stanza-size='10000' bytes-per-second='50000' "
          "burst-bytes='20000'")


class Limits(SharedServer):
    SERVER = dict(users=USERS, limits=LIMITS)

    def raw(self, source):
        r = Raw(self.server, source=source)
        self.addCleanup(r.close)
        return r

    def login(self, user, resource, source):
        r = self.raw(source)
        scram_login(r, user, PASSWORDS[user], resource)
        return r

    def assert_bystander_chats(self):
        a = self.login("nurse", "bystander-a", "127.0.0.200")
        b = self.login("juliet", "bystander-b", "127.0.0.201")
        b.send("<presence/>")
        b.read_until("</presence>") if b"</presence>" in b.buf else b.read_until("/>")
        time.sleep(0.1)
        b.buf = b""
        start = time.monotonic()
        a.send("<message to='juliet@localhost/bystander-b' type='chat'><body>still here</body></message>")
        self.assertIn("still here", b.read_until("</message>", timeout=5))
        return time.monotonic() - start

    def test_connections_per_address(self):
        held = []
        for _ in range(3):
            r = self.raw("127.0.0.10")
            r.open_stream()
            r.read_until("</stream:features>")
            held.append(r)
        fourth = self.raw("127.0.0.10")
        fourth.open_stream()
        self.assertIn("<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>",
                      fourth.read_to_close())
        self.assert_bystander_chats()
        # One closes: the address may connect again.
        held[0].close()
        time.sleep(0.2)
        again = self.raw("127.0.0.10")
        again.open_stream()
        self.assertIn("</stream:features>", again.read_until("</stream:features>"))

    def test_sessions_per_account(self):
        self.login("romeo", "one", "127.0.0.20")
        self.login("romeo", "two", "127.0.0.21")
        third = self.login("romeo", "three", "127.0.0.22")
        self.assertIn("<resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>",
                      third.bind_result)
        self.assertIn("type='wait'", third.bind_result)
        # Replacing an existing resource is not one more session: allowed.
        again = self.login("romeo", "two", "127.0.0.23")
        self.assertIn("<jid>romeo@localhost/two</jid>", again.bind_result)

    def test_failed_logins_per_address(self):
        for _ in range(3):
            r = Raw(self.server, source="127.0.0.30")
            with self.assertRaises(AssertionError) as ctx:
                scram_login(r, "juliet", "wrong-password", "x")
            self.assertIn("<not-authorized/>", str(ctx.exception))
            r.close()
        time.sleep(0.3)  # closed connections leave the per-address count
        # Now even the right password is not checked from this address...
        r = self.raw("127.0.0.30")
        with self.assertRaises(AssertionError) as ctx:
            scram_login(r, "juliet", PASSWORDS["juliet"], "x")
        self.assertIn("<temporary-auth-failure/>", str(ctx.exception))
        # ...while another address logs in.
        self.login("juliet", "elsewhere", "127.0.0.31")
        self.assert_bystander_chats()

    def test_a_flooding_connection_is_slowed_and_loses_nothing(self):
        sender = self.login("romeo", "flood", "127.0.0.40")
        receiver = self.login("nurse", "sink", "127.0.0.41")
        receiver.send("<presence/>")
        time.sleep(0.2)
        receiver.buf = b""
        body = "x" * 900
        count = 120  # about 120 KB: 20 KB of burst, then 50 KB/s
        start = time.monotonic()
        for i in range(count):
            sender.send(f"<message to='nurse@localhost/sink' type='chat'><body>{i} {body}</body></message>")
        bystander_delay = self.assert_bystander_chats()
        text = receiver.read_count("</message>", count, timeout=30)
        elapsed = time.monotonic() - start
        self.assertEqual(count, text.count("</message>"))
        self.assertEqual([str(i) for i in range(count)],
                         [m.split(" ", 1)[0] for m in re.findall(r"<body>([^<]*)</body>", text)])
        self.assertGreater(elapsed, 1.2)   # shaped: ~ (120 KB - 20 KB) / 50 KB/s = 2 s
        self.assertLess(bystander_delay, 1.0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
