#!/usr/bin/python3
"""How fast one account's offline queue fills, and what that costs everyone else on the shard.

Starts a stanzad (tests/integration/harness.py: 2 shards, the offline plugin, shapers off),
then Alice sends N messages to Carol, who is offline, in windows of 50 with XEP-0198 <r/>:
the rate is of *acknowledged* (so committed) messages. Meanwhile Bob and Dave chat, one message
at a time, and their round trips are the latency of the users sharing the shards.

  STANZAD=build/server/stanzad STANZACTL=build/tools/stanzactl/stanzactl \\
    /usr/bin/python3 tools/bench/offline_rate.py [N]
"""
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "integration"))
from harness import HOST, Raw, Server, raw_login, scram_login  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
WINDOW = 50
USERS = [("alice", "pw"), ("carol", "pw"), ("bob", "pw"), ("dave", "pw")]

with Server(users=USERS, log_level="warn", limits="bytes-per-second='0' burst-bytes='0'",
            extra_config="<plugin name='offline' offline_max_messages='1000000'/>") as server:
    alice = Raw(server)
    scram_login(alice, "alice", "pw", "a")
    alice.send("<enable xmlns='urn:xmpp:sm:3'/>")
    alice.read_until("<enabled")
    alice.buf = b""
    bob = raw_login(server, "bob", "pw", "b")
    dave = raw_login(server, "dave", "pw", "d")
    rtts, stop = [], threading.Event()

    def chat():
        k = 0
        while not stop.is_set():
            k += 1
            t = time.monotonic()
            bob.send(f"<message to='dave@{HOST}/d' type='chat'><body>p{k}</body></message>")
            dave.read_until(f"<body>p{k}</body>")
            dave.buf = b""
            rtts.append((time.monotonic() - t) * 1000)
            time.sleep(0.005)

    chatter = threading.Thread(target=chat)
    chatter.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    sent = 0
    while sent < N:
        batch = "".join(f"<message to='carol@{HOST}' type='chat'><body>m{sent + i}</body>"
                        "</message>" for i in range(WINDOW))
        sent += WINDOW
        alice.send(batch + "<r xmlns='urn:xmpp:sm:3'/>")
        alice.read_until(f"h='{sent}'", timeout=120)
        alice.buf = b""
    elapsed = time.monotonic() - t0
    stop.set()
    chatter.join()
    rtts.sort()
    print(f"RESULT offline_messages={sent} seconds={elapsed:.2f} msgs_per_s={sent / elapsed:.0f} "
          f"chat_rtt_p50_ms={statistics.median(rtts):.2f} "
          f"chat_rtt_p99_ms={rtts[int(len(rtts) * 0.99)]:.1f} chat_rtt_max_ms={rtts[-1]:.1f} "
          f"chat_samples={len(rtts)}")
