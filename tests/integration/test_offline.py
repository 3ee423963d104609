"""Offline messages (XEP-0160) through the real server: Juliet writes to Romeo while he is
offline, the server restarts, Romeo comes online (slixmpp) and gets them in order, once, with
their XEP-0203 delay; messages a client had not acknowledged (XEP-0198) when the server stopped
are kept; the per-user quota answers resource-constraint; what is not worth storing is not
stored."""
import asyncio
import re
import time
import unittest

from harness import HOST, Raw, Server, raw_login, run, scram_login, slix_client

USERS = [("romeo", "r0meo-secret"), ("juliet", "jul1et-secret")]
PASSWORDS = dict(USERS)
PLUGINS = """
  <plugin name="disco"/>
  <plugin name="offline" offline_max_messages="5"/>
"""
BODY = re.compile(r"<body>([^<]*)</body>")


def login(server, user, resource, online=True):
    return raw_login(server, user, PASSWORDS[user], resource, online)


def barrier(raw, user, token):
    """Sends a message to the account itself and reads until it comes back. It passes the
    account's owner shard after everything the session sent before it, so what the server
    sent the session because of that (offline messages at initial presence) is read by then."""
    raw.send(f"<message to='{user}@{HOST}' type='chat'><body>{token}</body></message>")
    return raw.read_until(f"<body>{token}</body>")


class Offline(unittest.TestCase):
    def test_messages_survive_a_restart_and_arrive_in_order_once(self):
        with Server(users=USERS, extra_config=PLUGINS) as server:
            juliet = login(server, "juliet", "balcony")
            bodies = [f"message {i} while you sleep" for i in range(1, 5)]
            for body in bodies:
                juliet.send(f"<message to='romeo@{HOST}' type='chat' id='m{body[8]}'>"
                            f"<body>{body}</body></message>")
            # Stored, so no error comes back: Juliet's own barrier arrives with nothing before it.
            text = barrier(juliet, "juliet", "stored?")
            self.assertNotIn("type='error'", text)
            juliet.close()

            server.stop()
            server.start()

            async def romeo_logs_in():
                romeo = slix_client(server, f"romeo@{HOST}/orchard", PASSWORDS["romeo"])
                romeo.register_plugin("xep_0203")
                got = []
                all_in = asyncio.get_running_loop().create_future()

                def on_message(msg):
                    if msg["body"].startswith("message "):
                        got.append(msg)
                        if len(got) == len(bodies) and not all_in.done():
                            all_in.set_result(True)
                romeo.add_event_handler("message", on_message)
                started = asyncio.get_running_loop().create_future()
                romeo.add_event_handler("session_start",
                                        lambda _: started.done() or started.set_result(True))
                romeo.connect(("127.0.0.1", server.port))
                await asyncio.wait_for(started, 20)
                romeo.send_presence()
                await asyncio.wait_for(all_in, 15)
                await asyncio.wait_for(romeo.disconnect(), 10)
                return got

            got = run(romeo_logs_in())
            self.assertEqual(bodies, [m["body"] for m in got])
            for m in got:
                self.assertEqual(f"juliet@{HOST}/balcony", str(m["from"]))
                self.assertEqual(f"romeo@{HOST}/orchard", str(m["to"]))
                self.assertEqual("chat", m["type"])
                self.assertEqual(HOST, str(m["delay"]["from"]))
                self.assertIsNotNone(m["delay"]["stamp"])

            # Once: Romeo's next login finds nothing.
            romeo = login(server, "romeo", "again", online=False)
            romeo.send("<presence/>")
            text = barrier(romeo, "romeo", "anything more?")
            self.assertNotIn("while you sleep", text)
            romeo.close()

    def test_unacknowledged_messages_are_kept_when_the_server_stops(self):
        # XEP-0198: what a client never acknowledged was not delivered. When the server stops
        # (SIGTERM), each session's unacknowledged messages go back to their recipient's owner
        # shard and into the offline store, from a connected session and from one waiting for
        # resumption alike. With eight shards and three sessions most shards are idle: they
        # must keep running until the others' messages have reached them (before, an idle
        # shard stopped at once and most runs lost one reader's messages).
        readers = ["reader0", "reader1"]
        users = USERS + [(r, "pw") for r in readers]
        with Server(users=users, extra_config=PLUGINS, shards=8) as server:
            juliet = login(server, "juliet", "balcony")
            sessions = {}
            for r in readers:
                raw = Raw(server)
                scram_login(raw, r, "pw", "phone")
                raw.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
                raw.read_until("<enabled")
                raw.send("<presence/>")
                raw.read_until(f"from='{r}@{HOST}/phone'")
                sessions[r] = raw
            for r in readers:
                for k in range(3):
                    juliet.send(f"<message to='{r}@{HOST}' type='chat'><body>{r} {k}</body>"
                                "</message>")
            for r in readers:
                sessions[r].read_count(f"<body>{r} ", 3)  # received, never acknowledged
            # reader1's connection is cut: its session waits for resumption, and what comes
            # meanwhile is queued on it, unacknowledged too.
            sessions["reader1"].close()
            time.sleep(0.3)
            for k in range(3, 5):
                juliet.send(f"<message to='reader1@{HOST}' type='chat'><body>reader1 {k}</body>"
                            "</message>")
            barrier(juliet, "juliet", "sent")

            server.stop()
            self.assertIn("stanzad stopped", server.read_log())
            server.start()

            expected = {"reader0": 3, "reader1": 5}
            for r, count in expected.items():
                raw = raw_login(server, r, "pw", "laptop", online=False)
                raw.send("<presence/>")
                text = barrier(raw, r, "anything?")
                self.assertEqual([f"{r} {k}" for k in range(count)] + ["anything?"],
                                 BODY.findall(text), f"{r} after the restart")
                raw.close()

    def test_the_quota_is_answered_with_resource_constraint(self):
        with Server(users=USERS, extra_config=PLUGINS) as server:
            juliet = login(server, "juliet", "balcony")
            for i in range(1, 6):
                juliet.send(f"<message to='romeo@{HOST}' type='chat' id='q{i}'><body>{i}</body>"
                            "</message>")
            juliet.send(f"<message to='romeo@{HOST}' type='chat' id='q6'><body>6</body></message>")
            error = juliet.read_match(r"<message[^>]*id='q6'[^>]*>.*?</message>")
            self.assertIn("type='error'", error)
            self.assertIn("<resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>",
                          error)
            self.assertIn(f"from='romeo@{HOST}'", error)
            # Only the sixth was refused.
            self.assertNotRegex(juliet.buf.decode(), r"id='q[1-5]'")

            romeo = login(server, "romeo", "orchard", online=False)
            romeo.send("<presence/>")
            text = barrier(romeo, "romeo", "done")
            self.assertEqual(["1", "2", "3", "4", "5", "done"], BODY.findall(text))

    def test_groupchat_is_refused_and_chat_states_are_not_kept(self):
        with Server(users=USERS, extra_config=PLUGINS) as server:
            juliet = login(server, "juliet", "balcony")
            juliet.send(f"<message to='romeo@{HOST}' type='groupchat' id='g1'><body>all</body>"
                        "</message>")
            error = juliet.read_match(r"<message[^>]*id='g1'[^>]*>.*?</message>")
            self.assertIn("<service-unavailable", error)
            juliet.buf = b""
            juliet.send(f"<message to='romeo@{HOST}' type='chat' id='c1'>"
                        "<composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
            juliet.send(f"<message to='romeo@{HOST}' type='chat' id='c2'><body>kept</body>"
                        "<no-store xmlns='urn:xmpp:hints'/></message>")
            text = barrier(juliet, "juliet", "after")
            self.assertNotIn("type='error'", text)  # dropped silently (RFC 6121 §8.5.2.2.1)

            romeo = login(server, "romeo", "orchard", online=False)
            romeo.send("<presence/>")
            text = barrier(romeo, "romeo", "nothing")
            self.assertNotIn("composing", text)
            self.assertNotIn("kept", text)

    def test_disco_advertises_msgoffline(self):
        with Server(users=USERS, extra_config=PLUGINS) as server:
            romeo = login(server, "romeo", "disco", online=False)
            romeo.send(f"<iq type='get' id='d1' to='{HOST}'>"
                       "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
            self.assertIn("<feature var='msgoffline'/>", romeo.read_iq("d1"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
