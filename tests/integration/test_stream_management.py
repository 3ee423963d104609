"""XEP-0198 stream management: acknowledgements, resumption after a cut connection with
messages in flight, and what happens to unacknowledged messages when nobody resumes."""
import asyncio
import re
import time
import unittest

from harness import HOST, Raw, Server, scram_login, slix_client

USERS = [("romeo", "r0meo-secret"), ("juliet", "jul1et-secret")]
PASSWORDS = dict(USERS)
SM = "xmlns='urn:xmpp:sm:3'"


class StreamManagement(unittest.TestCase):
    # A server per test: a session one test leaves waiting for resumption has its messages
    # routed again when its resume-timeout ends, into the next test's sessions of the same
    # accounts if they shared a server (seen as a flake under load).
    def setUp(self):
        self.server = Server(users=USERS, limits="resume-timeout='2'")
        self.server.start()
        self.addCleanup(self.server.__exit__, None, None, None)

    def login(self, user, resource, priority=0, enable=None):
        raw = Raw(self.server)
        scram_login(raw, user, PASSWORDS[user], resource)
        self.assertIn(f"<sm {SM}/>", raw.features)
        self.addCleanup(raw.close)
        if enable is not None:
            raw.send(f"<enable {SM}{' resume=' + repr(enable) if enable else ''}/>")
            text = raw.read_match(r"<enabled [^>]*/>")
            raw.buf = b""
            raw.sm_id = re.search(r"id='([^']+)'", text).group(1) if "id=" in text else None
            raw.enabled = text
        raw.send(f"<presence><priority>{priority}</priority></presence>")
        raw.read_until("</presence>")
        time.sleep(0.2)  # the echo, and the presence of the account's other resources
        if enable is not None:
            # Acknowledge every stanza received since <enabled/> (XEP-0198 §4).
            raw.sock.settimeout(0.2)
            try:
                raw.buf += raw.sock.recv(65536)
            except OSError:
                pass
            raw.h = len(re.findall(r"<(?:message|presence|iq)[\s>/]", raw.buf.decode()))
            raw.send(f"<a {SM} h='{raw.h}'/>")
        raw.buf = b""
        return raw

    def messages(self, raw, count, timeout=10):
        bodies = []
        deadline = time.monotonic() + timeout
        while len(bodies) < count:
            text = raw.read_count("</message>", count,
                                  timeout=max(0.1, deadline - time.monotonic()))
            bodies = re.findall(r"<body>([^<]*)</body>", text)
        return bodies

    def test_enable_and_acknowledge_both_ways(self):
        romeo = self.login("romeo", "acks", enable="true")
        self.assertRegex(romeo.enabled, r"resume='true'")
        self.assertRegex(romeo.enabled, r"max='2'")
        # The presence the client sent counts as one handled stanza.
        romeo.send(f"<r {SM}/>")
        self.assertIn(f"<a {SM} h='1'/>", romeo.read_match(r"<a [^>]*/>"))

        juliet = self.login("juliet", "acker")
        juliet.send("<message to='romeo@localhost/acks' type='chat'><body>one</body></message>")
        text = romeo.read_match(r"<message.*</message><r [^>]*/>")
        self.assertIn("<body>one</body>", text)  # the stanza, then a request for an ack
        romeo.send(f"<a {SM} h='{romeo.h + 1}'/>")
        # Romeo's reply is his second stanza; nonzas (<a/>, <r/>) do not count.
        romeo.send("<message to='juliet@localhost/acker' type='chat'><body>two</body></message>")
        romeo.send(f"<r {SM}/>")
        romeo.buf = b""
        self.assertIn(f"<a {SM} h='2'/>", romeo.read_match(r"<a [^>]*/>"))

    def test_too_high_acknowledgement_is_an_error(self):
        romeo = self.login("romeo", "liar", enable="true")
        romeo.send(f"<a {SM} h='99'/>")
        text = romeo.read_to_close()
        self.assertIn("<undefined-condition", text)
        self.assertIn("<handled-count-too-high xmlns='urn:xmpp:sm:3' h='99'", text)

    def test_enable_before_binding_fails(self):
        raw = Raw(self.server)
        self.addCleanup(raw.close)
        scram_login(raw, "juliet", PASSWORDS["juliet"], "early")  # binds
        raw.send(f"<enable {SM}/>")
        raw.read_match(r"<enabled [^>]*/>")
        raw.send(f"<enable {SM}/>")
        self.assertIn("<unexpected-request", raw.read_match(r"<failed.*?</failed>"))

    def test_resume_after_a_cut_connection_redelivers_what_was_not_acknowledged(self):
        romeo = self.login("romeo", "balcony", enable="true")
        juliet = self.login("juliet", "garden")
        for body in ("first", "second", "third"):
            juliet.send(f"<message to='romeo@localhost/balcony' type='chat'><body>{body}</body></message>")
        self.assertEqual(["first", "second", "third"], self.messages(romeo, 3))
        # Romeo acknowledges his presence echo and the first message only, then his
        # connection is cut (no </stream:stream>): the session waits to be resumed.
        romeo.send(f"<a {SM} h='{romeo.h + 1}'/>")
        time.sleep(0.1)
        romeo.sock.close()
        time.sleep(0.2)
        juliet.send("<message to='romeo@localhost/balcony' type='chat'><body>fourth</body></message>")
        time.sleep(0.2)

        again = Raw(self.server)
        self.addCleanup(again.close)
        scram_login(again, "romeo", PASSWORDS["romeo"], bind=False)
        again.send(f"<resume {SM} previd='{romeo.sm_id}' h='{romeo.h + 1}'/>")
        text = again.read_match(r"<resumed [^>]*/>")
        self.assertIn(f"previd='{romeo.sm_id}'", text)
        self.assertEqual(["second", "third", "fourth"], self.messages(again, 3))
        # The resumed session is the bound one: messages keep flowing to it.
        juliet.send("<message to='romeo@localhost/balcony' type='chat'><body>fifth</body></message>")
        again.buf = b""
        self.assertEqual(["fifth"], self.messages(again, 1))
        # And the old stream id cannot be resumed twice by someone else.
        other = Raw(self.server)
        self.addCleanup(other.close)
        scram_login(other, "juliet", PASSWORDS["juliet"], bind=False)
        other.send(f"<resume {SM} previd='{romeo.sm_id}' h='0'/>")
        self.assertIn("<item-not-found", other.read_match(r"<failed.*?</failed>"))

    def test_unacknowledged_messages_are_routed_again_when_nobody_resumes(self):
        other = self.login("romeo", "desk", priority=0)
        romeo = self.login("romeo", "phone", priority=0, enable="true")
        juliet = self.login("juliet", "window")
        juliet.send("<message to='romeo@localhost/phone' type='chat'><body>lost?</body></message>")
        self.assertEqual(["lost?"], self.messages(romeo, 1))
        romeo.sock.close()  # never acknowledged
        # After the resume timeout (2 s) the message goes to Romeo's other resource.
        other.buf = b""
        self.assertEqual(["lost?"], self.messages(other, 1, timeout=10))

    def test_past_sm_max_unacked_the_session_ends_and_nothing_is_lost(self):
        # A server of its own: ten unacknowledged stanzas at most, and a resume timeout too long
        # to be what ends the waiting session below.
        self.server = Server(users=USERS, limits="resume-timeout='60' sm-max-unacked='10'")
        self.server.start()
        self.addCleanup(self.server.__exit__, None, None, None)
        other = self.login("romeo", "desk")
        romeo = self.login("romeo", "phone", enable="true")
        juliet = self.login("juliet", "window")
        for i in range(11):
            juliet.send(f"<message to='romeo@localhost/phone' type='chat'><body>m{i}</body>"
                        "</message>")
        # Romeo acknowledges nothing: the eleventh ends his session, with a stream error...
        text = romeo.read_to_close()
        self.assertIn("<resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>", text)
        self.assertEqual(11, text.count("</message>"))
        # ...and the eleven go to his other resource, in order.
        self.assertEqual([f"m{i}" for i in range(11)], self.messages(other, 11))

        # A session waiting for resumption ends the same way, and cannot be resumed after.
        waiting = self.login("romeo", "tablet", enable="true")
        waiting.sock.close()
        time.sleep(0.3)
        other.buf = b""
        for i in range(11):
            juliet.send(f"<message to='romeo@localhost/tablet' type='chat'><body>w{i}</body>"
                        "</message>")
        self.assertEqual([f"w{i}" for i in range(11)], self.messages(other, 11))
        again = Raw(self.server)
        self.addCleanup(again.close)
        scram_login(again, "romeo", PASSWORDS["romeo"], bind=False)
        again.send(f"<resume {SM} previd='{waiting.sm_id}' h='0'/>")
        self.assertIn("<item-not-found", again.read_match(r"<failed.*?</failed>"))

    def test_unacknowledged_message_with_no_other_resource_bounces(self):
        romeo = self.login("romeo", "only", enable="true")
        juliet = self.login("juliet", "sender")
        juliet.send("<message id='m9' to='romeo@localhost/only' type='chat'><body>hello?</body></message>")
        self.assertEqual(["hello?"], self.messages(romeo, 1))
        romeo.sock.close()
        text = juliet.read_match(r"<message[^>]*type='error'.*?</message>", timeout=10)
        self.assertIn("id='m9'", text)
        self.assertIn("<service-unavailable", text)

    def test_slixmpp_with_stream_management_chats(self):
        async def scenario():
            romeo = slix_client(self.server, f"romeo@{HOST}/slix", PASSWORDS["romeo"])
            romeo.register_plugin("xep_0198")
            got = asyncio.get_running_loop().create_future()
            enabled = asyncio.get_running_loop().create_future()
            romeo.add_event_handler("sm_enabled", lambda _: enabled.done() or enabled.set_result(True))
            romeo.add_event_handler("message", lambda m: got.done() or got.set_result(m["body"]))
            romeo.connect(("127.0.0.1", self.server.port))
            await asyncio.wait_for(enabled, 20)
            romeo.send_presence()
            await asyncio.sleep(0.3)
            juliet = Raw(self.server)
            scram_login(juliet, "juliet", PASSWORDS["juliet"], "raw")
            juliet.send(f"<message to='romeo@{HOST}/slix' type='chat'><body>via sm</body></message>")
            self.assertEqual("via sm", await asyncio.wait_for(got, 10))
            juliet.close()
            romeo.disconnect()
        asyncio.run(asyncio.wait_for(scenario(), 60))


if __name__ == "__main__":
    unittest.main(verbosity=2)
