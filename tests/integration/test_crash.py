"""Acknowledged means durable (issue 6): stanzad is killed with SIGKILL at random moments while
Alice sends messages, with XEP-0198 acknowledgements, to Bob (online) and to Carol (offline the
whole time), and restarted on the same data directory, in a bounded loop. Afterwards every
message the server acknowledged has reached its recipient exactly once, in order per
conversation (Bob live or from his offline queue, Carol from hers).

Alice never resends: a message sent but not acknowledged may or may not arrive (it is counted
as "unacknowledged"), an acknowledged one must. Run on its own: STANZAD=... python3 test_crash.py
"""
import random
import re
import socket
import ssl
import threading
import time
import unittest

from harness import HOST, Raw, Server, scram_login

USERS = [("alice", "a-pw"), ("bob", "b-pw"), ("carol", "c-pw")]
PASSWORDS = dict(USERS)
ROUNDS = 6
SEED = int(time.time())
MESSAGE = re.compile(r"<message\b[^>]*>.*?</message>", re.S)
BODY = re.compile(r"<body>(\w+)-(\d+)</body>")


def login(server, user, resource, sm=False, presence=False):
    raw = Raw(server, timeout=5)
    scram_login(raw, user, PASSWORDS[user], resource)
    if sm:
        raw.send("<enable xmlns='urn:xmpp:sm:3'/>")
        raw.read_until("<enabled")
        raw.buf = b""
    if presence:
        raw.send("<presence/>")
    return raw


class Receiver(threading.Thread):
    """Reads a recipient's stream until it breaks, recording (conversation, n) of Alice's
    messages in arrival order."""

    def __init__(self, raw, got):
        super().__init__(daemon=True)
        self.raw, self.got = raw, got

    def run(self):
        buf = ""
        self.raw.sock.settimeout(0.2)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                chunk = self.raw.sock.recv(65536)
            except socket.timeout:
                continue
            except (OSError, ssl.SSLError):
                break
            if not chunk:
                break
            buf += chunk.decode(errors="replace")
            for m in MESSAGE.finditer(buf):
                b = BODY.search(m.group(0))
                if b and "alice@" in m.group(0):
                    self.got.append((b.group(1), int(b.group(2))))
            last = buf.rfind("</message>")
            if last >= 0:
                buf = buf[last + len("</message>"):]


class Sender:
    """Alice: sends in batches of ten, each followed by <r/>; a message counts as acknowledged
    when an <a h='N'/> covers it."""

    def __init__(self, raw, counter, acked):
        self.raw, self.counter, self.acked = raw, counter, acked
        self.sent_here = []  # (to, n) in the order of this stream: what h counts
        self.refused = set()

    def run(self, until):
        try:
            while time.monotonic() < until:
                batch = ""
                for _ in range(10):
                    self.counter[0] += 1
                    n = self.counter[0]
                    to = "bob" if n % 3 else "carol"
                    self.sent_here.append((to, n))
                    batch += (f"<message to='{to}@{HOST}' type='chat' id='m{n}'>"
                              f"<body>{to}-{n}</body></message>")
                self.raw.send(batch + "<r xmlns='urn:xmpp:sm:3'/>")
                text = self.raw.read_match(r"<a xmlns='urn:xmpp:sm:3' h='\d+'/>", timeout=5)
                h = int(re.search(r"h='(\d+)'", text).group(1))
                # A refused message (an error came back) is done, but it was not accepted.
                whole = self.raw.buf.decode(errors="replace")
                for tag in re.findall(r"<message\b[^>]*>", whole):
                    if "type='error'" in tag and re.search(r"id='m(\d+)'", tag):
                        self.refused.add(int(re.search(r"id='m(\d+)'", tag).group(1)))
                self.raw.buf = b""
                self.record(h)
        except (AssertionError, OSError, ssl.SSLError):
            pass  # the server was killed under us

    def record(self, h):
        # h counts this stream's stanzas from its start: the first h were durable.
        for item in self.sent_here[self._recorded:h]:
            if item[1] not in self.refused:
                self.acked.append(item)
        self._recorded = max(self._recorded, h)

    _recorded = 0


class CrashTest(unittest.TestCase):
    def test_kill_9_loses_no_acknowledged_message(self):
        rng = random.Random(SEED)
        counter = [0]
        acked = []
        got = {"bob": [], "carol": []}
        server = Server(users=USERS, shards=2, limits="bytes-per-second='0' burst-bytes='0'",
                        extra_config="<plugin name='offline' offline_max_messages='1000000'/>")
        try:
            for round_ in range(ROUNDS):
                server.start()
                # Bob comes online first (his offline queue flushes at his initial presence,
                # before Alice starts: the kill below never falls inside that flush).
                bob = login(server, "bob", f"r{round_}", presence=True)
                bob_reader = Receiver(bob, got["bob"])
                bob_reader.start()
                time.sleep(0.3)
                alice = login(server, "alice", f"r{round_}", sm=True)
                sender = Sender(alice, counter, acked)
                killer = threading.Timer(rng.uniform(0.3, 1.5), server.proc.kill)
                killer.start()
                sender.run(until=time.monotonic() + 10)
                killer.join()
                server.proc.wait(timeout=10)
                server.logf.close()
                alice.close()
                bob_reader.join(timeout=10)
                bob.close()
            # The last start: both recipients collect what waits for them.
            server.start()
            for user in ("bob", "carol"):
                raw = login(server, user, "final", presence=True)
                reader = Receiver(raw, got[user])
                reader.start()
                for _ in range(20):  # until a second passes with nothing new
                    before = len(got[user])
                    time.sleep(1.0)
                    if len(got[user]) == before:
                        break
                raw.close()
                reader.join(timeout=10)
        finally:
            server.stop()

        sent = counter[0]
        delivered = sum(len(v) for v in got.values())
        duplicated = lost = 0
        missing, disorder = {}, {}
        for user in ("bob", "carol"):
            numbers = [n for (to, n) in got[user] if to == user]
            duplicated += len(numbers) - len(set(numbers))
            disorder[user] = numbers != sorted(numbers)
            want = [n for (to, n) in acked if to == user]
            missing[user] = sorted(set(want) - set(numbers))
            lost += len(missing[user])
        print(f"crash test (seed {SEED}, {ROUNDS} kills): sent {sent}, acknowledged {len(acked)}, "
              f"delivered {delivered}, duplicated {duplicated}, lost {lost}", flush=True)
        for user in ("bob", "carol"):
            self.assertFalse(disorder[user], f"{user}: out of order")
            self.assertEqual(missing[user][:20], [], f"{user}: acknowledged messages lost")
        self.assertEqual(duplicated, 0)
        self.assertGreater(len(acked), 0)


if __name__ == "__main__":
    unittest.main()
