"""Message Carbons (XEP-0280) across two of Romeo's resources, one of them slixmpp, and Client
State Indication (XEP-0352): presence and chat states held for an inactive client, flushed
before a message with a body or when it becomes active, in their order."""
import asyncio
import unittest

from harness import HOST, SharedServer, raw_login, run, slix_client

USERS = [("romeo", "r0meo-secret"), ("juliet", "jul1et-secret"), ("nurse", "nur5e-secret")]
PASSWORDS = dict(USERS)
PLUGINS = """
  <plugin name="disco"/>
  <plugin name="offline"/>
  <plugin name="carbons"/>
  <plugin name="csi" csi_max_held="50"/>
"""
CARBONS = "urn:xmpp:carbons:2"


def login(server, user, resource, online=True):
    return raw_login(server, user, PASSWORDS[user], resource, online)


def enable_carbons(raw):
    raw.send(f"<iq type='set' id='carbons-on'><enable xmlns='{CARBONS}'/></iq>")
    result = raw.read_iq("carbons-on")
    assert "type='result'" in result, result
    raw.buf = b""


def barrier(raw, token):
    """An iq to the server and its answer: what was routed to this session before the answer
    left the server's owner shard has been written by then (see test_offline.py's barrier for
    messages); for a negative check after a bounded wait."""
    raw.send(f"<iq type='get' id='{token}'><ping xmlns='urn:xmpp:ping'/></iq>")
    return raw.read_iq(token)


class Carbons(SharedServer):
    SERVER = dict(users=USERS, extra_config=PLUGINS)

    def test_sent_and_received_copies_reach_the_other_resource(self):
        server = self.server

        async def scenario():
            # Romeo's phone is slixmpp with its XEP-0280 plugin; his desk is raw XML.
            phone = slix_client(server, f"romeo@{HOST}/phone", PASSWORDS["romeo"])
            phone.register_plugin("xep_0280")
            sent, received = asyncio.Queue(), asyncio.Queue()
            phone.add_event_handler("carbon_sent", lambda m: sent.put_nowait(m))
            phone.add_event_handler("carbon_received", lambda m: received.put_nowait(m))
            started = asyncio.get_running_loop().create_future()
            phone.add_event_handler("session_start",
                                    lambda _: started.done() or started.set_result(True))
            phone.connect(("127.0.0.1", server.port))
            await asyncio.wait_for(started, 20)
            phone.send_presence()
            await phone["xep_0280"].enable()

            loop = asyncio.get_running_loop()
            desk = await loop.run_in_executor(None, login, server, "romeo", "desk")
            juliet = await loop.run_in_executor(None, login, server, "juliet", "balcony")
            try:
                # Sent: the desk writes to Juliet; the phone sees a <sent/> copy.
                desk.send(f"<message to='juliet@{HOST}/balcony' type='chat' id='s1'>"
                          "<body>It is my lady</body></message>")
                carbon = await asyncio.wait_for(sent.get(), 10)
                self.assertEqual(f"romeo@{HOST}", str(carbon["from"]))
                inner = carbon["carbon_sent"]
                self.assertEqual("It is my lady", inner["body"])
                self.assertEqual(f"romeo@{HOST}/desk", str(inner["from"]))
                self.assertEqual(f"juliet@{HOST}/balcony", str(inner["to"]))
                await loop.run_in_executor(None, juliet.read_until, "It is my lady")

                # Received: Juliet writes to the desk's full JID; the phone sees <received/>.
                juliet.send(f"<message to='romeo@{HOST}/desk' type='chat' id='r1'>"
                            "<body>Ay me</body></message>")
                carbon = await asyncio.wait_for(received.get(), 10)
                self.assertEqual(f"romeo@{HOST}", str(carbon["from"]))
                self.assertEqual(f"romeo@{HOST}/phone", str(carbon["to"]))
                self.assertEqual("Ay me", carbon["carbon_received"]["body"])
                text = await loop.run_in_executor(None, desk.read_until, "Ay me")
                self.assertNotIn("<received xmlns='urn:xmpp:carbons:2'", text)  # the original

                # Private and no-copy: delivered, never copied; then one that is copied, which
                # must be the next copy the phone sees.
                desk.send(f"<message to='juliet@{HOST}/balcony' type='chat'><body>p1</body>"
                          f"<private xmlns='{CARBONS}'/></message>")
                desk.send(f"<message to='juliet@{HOST}/balcony' type='chat'><body>p2</body>"
                          "<no-copy xmlns='urn:xmpp:hints'/></message>")
                juliet.send(f"<message to='romeo@{HOST}/desk' type='chat'><body>p3</body>"
                            f"<private xmlns='{CARBONS}'/></message>")
                desk.send(f"<message to='juliet@{HOST}/balcony' type='chat'><body>last</body>"
                          "</message>")
                carbon = await asyncio.wait_for(sent.get(), 10)
                self.assertEqual("last", carbon["carbon_sent"]["body"])
                self.assertTrue(received.empty())
                text = await loop.run_in_executor(None, desk.read_until, "p3")
                self.assertNotIn("private", text.split("p3")[0][-200:])  # removed (§9)
                text = await loop.run_in_executor(None, juliet.read_until, "last")
                self.assertIn("<body>p1</body>", text)
                self.assertIn("<body>p2</body>", text)

                # Disabled: nothing more.
                await phone["xep_0280"].disable()
                desk.send(f"<message to='juliet@{HOST}/balcony' type='chat'><body>quiet</body>"
                          "</message>")
                await loop.run_in_executor(None, juliet.read_until, "quiet")
                await phone["xep_0280"].enable()  # an iq round trip through the owner shard
                self.assertTrue(sent.empty())
            finally:
                desk.close()
                juliet.close()
                await asyncio.wait_for(phone.disconnect(), 10)

        run(scenario())

    def test_disco_lists_carbons(self):
        raw = login(self.server, "nurse", "disco", online=False)
        raw.send(f"<iq type='get' id='d1' to='{HOST}'>"
                 "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        self.assertIn(f"<feature var='{CARBONS}'/>", raw.read_iq("d1"))
        raw.close()

    # ---- CSI ------------------------------------------------------------------------------

    def test_inactive_client_gets_presence_and_chat_states_with_the_next_message(self):
        phone = login(self.server, "romeo", "csi-phone")
        self.assertIn("<csi xmlns='urn:xmpp:csi:0'/>", phone.features)
        juliet = login(self.server, "juliet", "csi")
        nurse = login(self.server, "nurse", "csi")
        phone.send("<inactive xmlns='urn:xmpp:csi:0'/>")
        barrier(phone, "inactive")  # the stream element was taken before the ping's answer
        phone.buf = b""

        juliet.send(f"<presence to='romeo@{HOST}/csi-phone'><show>away</show></presence>")
        juliet.send(f"<message to='romeo@{HOST}/csi-phone' type='chat'>"
                    "<composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
        nurse.send(f"<presence to='romeo@{HOST}/csi-phone'><show>dnd</show></presence>")
        # Held: a bounded wait sees none of them (an iq would flush them).
        with self.assertRaises(AssertionError):
            phone.read_until("<presence", timeout=1.5)
        self.assertNotIn(b"composing", phone.buf)

        juliet.send(f"<message to='romeo@{HOST}/csi-phone' type='chat'><body>wake up</body>"
                    "</message>")
        text = phone.read_until("wake up")
        away, composing = text.find("<show>away</show>"), text.find("composing")
        dnd, body = text.find("<show>dnd</show>"), text.find("wake up")
        # Juliet's two come in her order; the Nurse's is routed on its own path, so only
        # "before the body" is certain for it.
        self.assertTrue(0 <= away < composing < body, text)
        self.assertTrue(0 <= dnd < body, text)

        # Becoming active flushes what is held at once.
        phone.buf = b""
        juliet.send(f"<presence to='romeo@{HOST}/csi-phone'><show>xa</show></presence>")
        with self.assertRaises(AssertionError):
            phone.read_until("<show>xa</show>", timeout=1)
        phone.send("<active xmlns='urn:xmpp:csi:0'/>")
        phone.read_until("<show>xa</show>")
        # Active again: presence arrives as it comes.
        juliet.send(f"<presence to='romeo@{HOST}/csi-phone'><show>chat</show></presence>")
        phone.read_until("<show>chat</show>")
        for r in (phone, juliet, nurse):
            r.close()

    def test_an_iq_flushes_what_is_held_first(self):
        phone = login(self.server, "nurse", "csi-iq")
        romeo = login(self.server, "romeo", "csi-iq")
        phone.send("<inactive xmlns='urn:xmpp:csi:0'/>")
        barrier(phone, "inactive")
        phone.buf = b""
        romeo.send(f"<presence to='nurse@{HOST}/csi-iq'><status>one</status></presence>")
        romeo.send(f"<presence to='nurse@{HOST}/csi-iq'><status>two</status></presence>")
        with self.assertRaises(AssertionError):
            phone.read_until("<presence", timeout=1)
        text = barrier(phone, "flush")  # its result is important: the presence comes first
        text = phone.buf.decode()
        one, two, result = text.find("one"), text.find("two"), text.find("id='flush'")
        self.assertTrue(0 <= one < two < result, text)
        phone.close()
        romeo.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
