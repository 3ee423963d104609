"""Hostile input (issue 6): billion laughs, 10,000-deep nesting, a 100 MiB stanza, invalid
UTF-8, slowloris clients and 1,000 failed logins. Each is answered by its RFC 6120 error while
a bystander pair of authenticated clients keeps chatting: every round trip of theirs must stay
under a second, and the server must survive with its memory bounded.

The small, single-shot versions of these errors are in test_stream_errors.py and the limits
with their options in test_limits.py; this file is about scale and about everybody else.
One shard, so that the hostile client and the bystanders share one event loop: whatever
stalls it shows up in the bystanders' round trips.
"""
import base64
import contextlib
import re
import socket
import ssl
import threading
import time
import unittest

from harness import HOST, Raw, Server, scram_login

STREAMS = "xmlns='urn:ietf:params:xml:ns:xmpp-streams'"
USERS = [("romeo", "r0meo-secret"), ("juliet", "jul1et-secret"), ("mallory", "mall0ry-secret")]
PASSWORDS = dict(USERS)
NEGOTIATION_TIMEOUT = 3
MAX_ROUND_TRIP = 1.0  # seconds, for every bystander round trip
MARK = "HOSTILE"      # in every hostile payload: the bystanders must never see it


def status_kib(pid, field):
    """VmRSS (now) or VmHWM (peak) of a process, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


class Bystanders:
    """romeo/bystander and juliet/bystander ping-pong chat messages in a thread; each round
    trip (romeo → juliet → romeo) is timed."""

    def __init__(self, server):
        self.a = Raw(server, source="127.0.0.2")
        self.b = Raw(server, source="127.0.0.3")
        scram_login(self.a, "romeo", PASSWORDS["romeo"], "bystander")
        scram_login(self.b, "juliet", PASSWORDS["juliet"], "bystander")
        for raw in (self.a, self.b):
            raw.send("<presence/>")
        # Each sees its own presence (and maybe the other's): wait for ours, then start clean.
        for raw in (self.a, self.b):
            raw.read_until("<presence", timeout=5)
        time.sleep(0.1)
        self.a.buf = self.b.buf = b""
        self.rounds = []  # (start, seconds)
        self.seen = []    # everything the two received
        self.error = None
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.chat, daemon=True)
        self.thread.start()

    def exchange(self, sender, receiver, to, body):
        sender.send(f"<message to='{to}' type='chat'><body>{body}</body></message>")
        text = receiver.read_until(f"<body>{body}</body>", timeout=10)
        with self.lock:
            self.seen.append(text)
        receiver.buf = b""

    def chat(self):
        n = 0
        try:
            while not self.stopping.is_set():
                n += 1
                start = time.monotonic()
                self.exchange(self.a, self.b, "juliet@localhost/bystander", f"ping {n}")
                self.exchange(self.b, self.a, "romeo@localhost/bystander", f"pong {n}")
                with self.lock:
                    self.rounds.append((start, time.monotonic() - start))
                self.stopping.wait(0.02)
        except Exception as e:  # noqa: BLE001 -- reported by check()
            self.error = e

    def count(self):
        with self.lock:
            return len(self.rounds)

    def wait_rounds(self, count, timeout=10):
        deadline = time.monotonic() + timeout
        while self.count() < count and time.monotonic() < deadline and self.error is None:
            time.sleep(0.01)
        if self.error is not None:
            raise AssertionError(f"bystanders stopped chatting: {self.error}")
        if self.count() < count:
            raise AssertionError(f"bystanders managed {self.count()} round trips, wanted {count}")

    @contextlib.contextmanager
    def watching(self, test, case):
        """Runs a hostile case; afterwards the bystanders must have chatted through it (and two
        more round trips after it), each round trip under MAX_ROUND_TRIP."""
        self.wait_rounds(self.count() + 1)
        first = self.count()
        start = time.monotonic()
        yield
        elapsed = time.monotonic() - start
        self.wait_rounds(self.count() + 2)
        with self.lock:
            rounds = self.rounds[first:]
            seen = "".join(self.seen)
        worst = max(seconds for _, seconds in rounds)
        print(f"  {case}: {elapsed:.2f} s, bystanders {len(rounds)} round trips, "
              f"max {worst * 1000:.0f} ms", flush=True)
        test.assertLess(worst, MAX_ROUND_TRIP, f"{case}: a bystander round trip took {worst:.2f} s")
        test.assertNotIn(MARK, seen, f"{case}: hostile content reached a bystander")

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=15)
        self.a.close()
        self.b.close()


class Hostile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Default limits but a short negotiation timeout (the slowloris case).
        cls.server = Server(users=USERS, shards=1,
                            limits=f"negotiation-timeout='{NEGOTIATION_TIMEOUT}'")
        cls.server.start()
        cls.pid = cls.server.proc.pid
        cls.bystanders = Bystanders(cls.server)

    @classmethod
    def tearDownClass(cls):
        cls.bystanders.stop()
        cls.server.__exit__(None, None, None)

    def setUp(self):
        self.assertIsNone(self.server.proc.poll(), "stanzad died")

    def tearDown(self):
        self.assertIsNone(self.server.proc.poll(), "stanzad died")

    def watching(self, case):
        return self.bystanders.watching(self, case)

    def raw(self, source="127.0.0.9", tls=True, timeout=10):
        r = Raw(self.server, tls=tls, timeout=timeout, source=source)
        self.addCleanup(r.close)
        return r

    def opened(self, source="127.0.0.9"):
        r = self.raw(source)
        r.open_stream()
        r.read_until("</stream:features>")
        r.buf = b""
        return r

    def login(self, user, resource, source):
        r = self.raw(source)
        scram_login(r, user, PASSWORDS[user], resource)
        return r

    def expect_stream_error(self, raw, condition, timeout=10):
        text = raw.read_to_close(timeout)
        self.assertIn(f"<{condition} {STREAMS}/>", text)
        self.assertTrue(text.rstrip().endswith("</stream:stream>"), text[-300:])
        return text

    def flood(self, raw, head, filler, total=100 << 20, deadline=20):
        """Sends `head` then `filler` repeated up to `total` bytes, until the server stops
        taking them; returns (bytes sent, seconds, what the server said). A server that kept
        reading until the deadline fails the test."""
        raw.send(head)
        chunk = (filler * (65536 // len(filler) + 1))[:65536].encode()
        sent = len(head)
        start = time.monotonic()
        raw.sock.settimeout(2)
        refused = False
        try:
            while sent < total and time.monotonic() - start < deadline:
                raw.sock.sendall(chunk)
                sent += len(chunk)
        except (OSError, ssl.SSLError):  # broken pipe, reset, or the server stopped reading
            refused = True
        seconds = time.monotonic() - start
        self.assertTrue(refused, f"the server took {sent >> 20} MiB of one stanza in "
                                 f"{seconds:.1f} s without closing the stream")
        return sent, seconds, raw.read_to_close(timeout=10)

    # ---- billion laughs ----------------------------------------------------------------

    def test_billion_laughs_is_restricted_xml(self):
        lols = "".join(f"<!ENTITY lol{i} '{('&lol%d;' % (i - 1)) * 10}'>" for i in range(1, 10))
        dtd = f"<!DOCTYPE lolz [<!ENTITY lol0 '{MARK}'>{lols}]>"
        variants = {
            # The classic: DTD in the prolog, the stream header expands &lol9; (10^9 times MARK).
            "prolog": "<?xml version='1.0'?>" + dtd +
                      "<stream:stream to='localhost' version='1.0' xmlns='jabber:client' "
                      "xmlns:stream='http://etherx.jabber.org/streams' id='&lol9;'>",
            # A DTD after the stream is open is not even well-formed XML, but must not be
            # parsed as one either.
            "in stream": dtd,
        }
        hwm = status_kib(self.pid, "VmHWM")
        with self.watching("billion laughs"):
            for name, payload in variants.items():
                for _ in range(20):
                    if name == "prolog":
                        r = self.raw()
                        start = time.monotonic()
                        r.send(payload)
                    else:
                        r = self.opened()
                        start = time.monotonic()
                        r.send(payload)
                    text = r.read_to_close(timeout=5)
                    seconds = time.monotonic() - start
                    self.assertLess(seconds, 1.0, f"billion laughs ({name}) took {seconds:.2f} s")
                    condition = re.search(rf"<([a-z-]+) {STREAMS}/>", text)
                    self.assertIsNotNone(condition, text)
                    self.assertIn(condition.group(1), ("restricted-xml", "not-well-formed"), text)
                    if name == "prolog":
                        self.assertEqual("restricted-xml", condition.group(1), text)
                    self.assertNotIn(MARK, text)
                    r.close()
        grown = status_kib(self.pid, "VmHWM") - hwm
        print(f"  billion laughs: peak RSS grew {grown} KiB")
        self.assertLess(grown, 64 << 10)  # expanded, it would be gigabytes

    def test_entity_reference_in_a_stanza_is_refused(self):
        # No DTD, so &lol9; is undefined: the stream dies, nothing is routed.
        with self.watching("undefined entity"):
            r = self.login("mallory", "ent", "127.0.0.10")
            r.send(f"<message to='juliet@localhost/bystander'><body>{MARK} &lol9;</body></message>")
            text = r.read_to_close(timeout=5)
            self.assertRegex(text, rf"<(restricted-xml|not-well-formed) {STREAMS}/>")

    # ---- deep nesting --------------------------------------------------------------------

    def test_ten_thousand_deep_is_policy_violation(self):
        depth = 10000
        stanza = (f"<message to='juliet@localhost/bystander' type='chat'><body>{MARK}</body>"
                  + "<a>" * depth + "</a>" * depth + "</message>")
        with self.watching("10,000-deep nesting"):
            for i in range(10):
                r = self.login("mallory", f"deep{i}", "127.0.0.11")
                start = time.monotonic()
                try:
                    r.send(stanza)
                except (OSError, ssl.SSLError):
                    pass  # closed before we were done: the error is already on its way
                text = self.expect_stream_error(r, "policy-violation", timeout=5)
                self.assertIn("nesting", text)
                self.assertLess(time.monotonic() - start, 1.0)
                r.close()

    def test_deepest_stanza_the_configuration_allows_is_delivered(self):
        # An operator may raise max-depth to 1000: such a stanza must then go through the
        # whole pipeline (parse, route, plugins, serialize, free) without running out of stack,
        # in every build. (With a ceiling of 10000 this overflowed a shard's stack under ASan.)
        with Server(users=USERS, shards=1, limits="max-depth='1000'") as server:
            clients = [Raw(server) for _ in range(3)]
            try:
                romeo, *juliets = clients
                scram_login(romeo, "romeo", PASSWORDS["romeo"], "deep")
                for i, juliet in enumerate(juliets):
                    scram_login(juliet, "juliet", PASSWORDS["juliet"], f"deep{i}")
                    juliet.send("<presence/>")
                    juliet.read_until("<presence", timeout=5)
                time.sleep(0.1)
                inner = 999  # + the message itself = 1000 levels
                deep = "<a>" * inner + "x" + "</a>" * inner
                # To the bare JID: both resources get it, so the tree is copied as well.
                for juliet in juliets:
                    juliet.buf = b""
                romeo.send(f"<message to='juliet@localhost' type='chat'>{deep}</message>")
                for juliet in juliets:
                    text = juliet.read_until("</message>", timeout=10)
                    self.assertEqual(inner, text.count("<a>"))
                    self.assertIn(deep, text)
                romeo.send("<message to='juliet@localhost/deep0' type='chat'>"
                           + "<a>" * (inner + 1) + "</a>" * (inner + 1) + "</message>")
                self.expect_stream_error(romeo, "policy-violation")
                # juliet's streams and the server are fine.
                for juliet in juliets:
                    juliet.buf = b""
                    juliet.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
                    self.assertIn("id='p1'", juliet.read_until("</iq>"))
                self.assertIsNone(server.proc.poll())
            finally:
                for c in clients:
                    c.close()

    # ---- a 100 MiB stanza ----------------------------------------------------------------

    def test_hundred_mebibyte_stanza_is_cut_short(self):
        limit = 262144  # the default max-stanza-size
        shapes = [
            # Text is handed to us piece by piece...
            ("body text", "127.0.0.12", f"<message to='juliet@localhost/bystander'><body>{MARK}",
             "x"),
            # ...an attribute value is one token that expat would buffer whole...
            ("attribute", "127.0.0.13", f"<message to='juliet@localhost/bystander' x='{MARK}",
             "y"),
            # ...and so would a name.
            ("element name", "127.0.0.14", f"<message to='juliet@localhost/bystander'><{MARK}",
             "z"),
        ]
        for shape, source, head, filler in shapes:
            hwm = status_kib(self.pid, "VmHWM")
            with self.watching(f"100 MiB stanza ({shape})"):
                r = self.login("mallory", "big", source)
                sent, seconds, text = self.flood(r, head, filler)
                self.assertIn(f"<policy-violation {STREAMS}/>", text)
                self.assertIn(f"stanza exceeds {limit} bytes", text)
            grown = status_kib(self.pid, "VmHWM") - hwm
            print(f"  100 MiB stanza ({shape}): refused after {sent >> 10} KiB sent in "
                  f"{seconds:.2f} s; peak RSS grew {grown} KiB, RSS now "
                  f"{status_kib(self.pid, 'VmRSS')} KiB")
            # Socket buffers let a few MiB through before the close is felt; nothing like 100.
            self.assertLess(sent, 32 << 20)
            self.assertLess(grown, 16 << 10)

    def test_hundred_mebibyte_stream_header_is_cut_short(self):
        hwm = status_kib(self.pid, "VmHWM")
        with self.watching("100 MiB stream header"):
            r = self.raw("127.0.0.15")
            sent, seconds, text = self.flood(
                r, "<stream:stream to='localhost' version='1.0' xmlns='jabber:client' "
                   "xmlns:stream='http://etherx.jabber.org/streams' x='", "h")
            self.assertIn(f"<policy-violation {STREAMS}/>", text)
            self.assertIn("stream header exceeds", text)
        grown = status_kib(self.pid, "VmHWM") - hwm
        print(f"  100 MiB stream header: refused after {sent >> 10} KiB; peak RSS grew {grown} KiB")
        self.assertLess(sent, 32 << 20)
        self.assertLess(grown, 16 << 10)

    # ---- invalid UTF-8 -------------------------------------------------------------------

    def test_invalid_utf8_is_not_well_formed(self):
        bad = {
            "lone continuation": b"\x80",
            "overlong slash": b"\xc0\xaf",
            "overlong NUL": b"\xe0\x80\x80",
            "surrogate": b"\xed\xa0\x80",
            "above U+10FFFF": b"\xf4\x90\x80\x80",
            "truncated": b"\xe2\x82",
            "invalid byte": b"\xfe",
            "control character": b"\x01",
        }
        places = {
            "body": (b"<message to='juliet@localhost/bystander'><body>" + MARK.encode(),
                     b"</body></message>"),
            "attribute": (b"<message to='juliet@localhost/bystander' id='" + MARK.encode(),
                          b"'><body>x</body></message>"),
            "name": (b"<message to='juliet@localhost/bystander'><x" + MARK.encode(),
                     b"/></message>"),
        }
        with self.watching("invalid UTF-8"):
            for what, data in bad.items():
                for place, (head, tail) in places.items():
                    r = self.login("mallory", "utf8", "127.0.0.16")
                    # Split inside the bad sequence: the answer must not depend on TCP.
                    r.send(head + data[:1])
                    time.sleep(0.005)
                    r.send(data[1:] + tail)
                    try:
                        self.expect_stream_error(r, "not-well-formed", timeout=5)
                    except AssertionError as e:
                        raise AssertionError(f"{what} in {place}: {e}") from None
                    r.close()
            # In the stream header, before authentication.
            r = self.raw("127.0.0.16")
            r.send(b"<stream:stream to='local\xc0\xafhost' version='1.0' xmlns='jabber:client' "
                   b"xmlns:stream='http://etherx.jabber.org/streams'>")
            self.expect_stream_error(r, "not-well-formed")

    # ---- slowloris -----------------------------------------------------------------------

    def test_slowloris_before_authentication_times_out(self):
        # Connections that trickle bytes (or none at all) during negotiation: each is closed
        # once negotiation-timeout has passed since it connected, however busy it keeps.
        header = ("<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
                  "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
        with self.watching("slowloris"):
            start = time.monotonic()
            silent_tcp = [self.raw(f"127.0.1.{i}", tls=False) for i in range(20)]
            tls_no_handshake = []
            for i in range(20):
                s = socket.create_connection(("127.0.0.1", self.server.tls_port),
                                             source_address=(f"127.0.2.{i}", 0))
                self.addCleanup(s.close)
                tls_no_handshake.append(s)
            tricklers = [self.raw(f"127.0.3.{i}") for i in range(5)]
            auth_stallers = [self.opened(f"127.0.4.{i}") for i in range(5)]
            for r in auth_stallers:
                token = base64.b64encode(b"n,,n=romeo,r=abcdefghijkl").decode()
                r.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                       f"mechanism='SCRAM-SHA-256'>{token}</auth>")
            # One byte every 50 ms from each trickler: the stream header, then whitespace.
            data = header + " " * 1000
            closed_at = {}
            pos = 0
            while len(closed_at) < len(tricklers) and time.monotonic() - start < 10:
                for i, r in enumerate(tricklers):
                    if i in closed_at:
                        continue
                    try:
                        r.send(data[pos])
                    except (OSError, ssl.SSLError):
                        closed_at[i] = time.monotonic() - start
                        continue
                    r.sock.settimeout(0.001)
                    try:
                        chunk = r.sock.recv(65536)
                    except (socket.timeout, ssl.SSLWantReadError):
                        continue
                    except (OSError, ssl.SSLError):
                        chunk = b""
                    r.buf += chunk
                    if not chunk or b"</stream:stream>" in r.buf:
                        closed_at[i] = time.monotonic() - start
                pos += 1
                time.sleep(0.05)
            for i, r in enumerate(tricklers):
                self.assertIn(i, closed_at, "a trickling connection was never closed")
                self.assertIn(f"<connection-timeout {STREAMS}/>", r.buf.decode(errors="replace"))
            for r in auth_stallers:
                self.expect_stream_error(r, "connection-timeout", timeout=5)
            # The silent ones went too (no TLS or no XML: nothing to say, just closed).
            for s in tls_no_handshake:
                s.settimeout(5)
                try:
                    self.assertEqual(b"", s.recv(1))
                except ConnectionResetError:
                    pass
            for r in silent_tcp:
                self.assertIn(f"<connection-timeout {STREAMS}/>", r.read_to_close(timeout=5))
            elapsed = time.monotonic() - start
        print(f"  slowloris: tricklers closed after {min(closed_at.values()):.1f}-"
              f"{max(closed_at.values()):.1f} s, everything after {elapsed:.1f} s "
              f"(negotiation-timeout {NEGOTIATION_TIMEOUT} s)")
        self.assertGreaterEqual(min(closed_at.values()), NEGOTIATION_TIMEOUT - 0.5)
        self.assertLess(max(closed_at.values()), NEGOTIATION_TIMEOUT + 2)
        self.assertLess(elapsed, NEGOTIATION_TIMEOUT + 3)

    def test_slow_stanza_after_authentication_is_delivered(self):
        # After binding no timer runs: a slow client is a legitimate client, and what one
        # partial stanza can hold is bounded by max-stanza-size. Sent a byte at a time (one
        # TLS record each), the stanza arrives whole and nobody else waits for it.
        receiver = self.login("juliet", "slow-sink", "127.0.0.17")
        receiver.send("<presence/>")
        receiver.read_until("<presence", timeout=5)
        time.sleep(0.1)
        receiver.buf = b""
        r = self.login("mallory", "slow", "127.0.0.18")
        stanza = ("<message to='juliet@localhost/slow-sink' type='chat'><body>a slow one "
                  "\u00e9\u263a\U0001F600</body></message>").encode()
        with self.watching("slow stanza after auth"):
            for i in range(len(stanza)):
                r.send(stanza[i:i + 1])
                time.sleep(0.02)
            text = receiver.read_until("</message>", timeout=5)
        self.assertIn("a slow one \u00e9\u263a\U0001F600", receiver.buf.decode())
        self.assertIn("from='mallory@localhost/slow'", text)

    # ---- 1,000 failed logins -------------------------------------------------------------

    def plain_attempts(self, source, password, attempts=5):
        """One connection, `attempts` PLAIN logins as juliet; returns the failure conditions."""
        r = self.opened(source)
        token = base64.b64encode(f"\0juliet\0{password}".encode()).decode()
        conditions = []
        for _ in range(attempts):
            r.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>")
            text = r.read_match(r"<(success|failure)[^>]*(/>|>.*?</failure>)", timeout=10)
            m = re.search(r"<failure[^>]*><([a-z-]+)/>", text)
            conditions.append(m.group(1) if m else "success")
            r.buf = r.buf[r.buf.index(text.encode()) + len(text.encode()):]
            if not m:
                break
        return r, conditions

    def test_thousand_failed_logins(self):
        limit = 10  # the default auth-failures-per-ip
        conditions = []
        with self.watching("1,000 failed logins from one address"):
            start = time.monotonic()
            for _ in range(200):
                r, got = self.plain_attempts("127.0.0.20", "guess")
                conditions += got
                # Five failures on one connection end it.
                self.expect_stream_error(r, "policy-violation", timeout=5)
                r.close()
            one_address = time.monotonic() - start
        self.assertEqual(1000, len(conditions))
        # Only the first `limit` were even checked; the rest were turned away unchecked.
        self.assertEqual(["not-authorized"] * limit, conditions[:limit])
        self.assertEqual(["temporary-auth-failure"] * (1000 - limit), conditions[limit:])
        # Now even the right password is refused from there...
        r, got = self.plain_attempts("127.0.0.20", PASSWORDS["juliet"], attempts=1)
        self.assertEqual(["temporary-auth-failure"], got)

        # 1,000 more from 100 addresses, each staying under the per-address limit: every one
        # is checked (PBKDF2 on the worker pool), none may slow the bystanders.
        conditions = []
        with self.watching("1,000 failed logins from 100 addresses"):
            start = time.monotonic()
            for i in range(100):
                for _ in range(2):
                    r, got = self.plain_attempts(f"127.0.5.{i}", "guess")
                    conditions += got
                    self.expect_stream_error(r, "policy-violation", timeout=5)
                    r.close()
            spread = time.monotonic() - start
        self.assertEqual(["not-authorized"] * 1000, conditions)
        print(f"  1,000 failed logins: {one_address:.1f} s from one address, "
              f"{spread:.1f} s from 100 addresses")
        # ...while the account itself is fine: from elsewhere its owner logs in.
        r, got = self.plain_attempts("127.0.0.21", PASSWORDS["juliet"], attempts=1)
        self.assertEqual(["success"], got)


if __name__ == "__main__":
    unittest.main(verbosity=2)
