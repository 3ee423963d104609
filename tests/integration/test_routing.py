"""RFC 6121 §8 routing between local sessions, over raw XML: Romeo, Juliet and the Nurse."""
import re
import time
import unittest

from harness import Raw, Server, scram_login

USERS = [("romeo", "r0meo-secret"), ("juliet", "jul1et-secret"), ("nurse", "nurse-secret")]
PASSWORDS = dict(USERS)


class Routing(unittest.TestCase):
    # A server per test: a session of the previous test that the server has not yet seen
    # close (its connection was just dropped) would still be an available resource of the
    # same account, and take messages meant for this test's (seen as a flake under load).
    def setUp(self):
        self.server = Server(users=USERS)
        self.server.start()
        self.addCleanup(self.server.__exit__, None, None, None)

    def login(self, user, resource, priority=None):
        raw = Raw(self.server)
        scram_login(raw, user, PASSWORDS[user], resource)
        if priority is not None:
            raw.send(f"<presence><priority>{priority}</priority></presence>")
            # RFC 6121 §4.2.2: the presence comes back to the sending resource itself.
            raw.read_until("</presence>")
            time.sleep(0.05)
            raw.buf = b""
        self.addCleanup(raw.close)
        return raw

    def assert_no_message(self, raw, wait=0.5):
        """Reads for `wait` seconds; presence may arrive, but no message may."""
        raw.sock.settimeout(wait)
        try:
            data = raw.sock.recv(65536)
        except Exception:
            data = b""
        self.assertNotIn(b"<message", data + raw.buf)

    def test_message_to_bare_jid_goes_to_highest_priority(self):
        high = self.login("juliet", "high", priority=5)
        low = self.login("juliet", "low", priority=1)
        neg = self.login("juliet", "negative", priority=-1)
        high.buf = low.buf = neg.buf = b""
        romeo = self.login("romeo", "r1")
        romeo.send("<message to='juliet@localhost' type='chat'><body>to the best</body></message>")
        text = high.read_until("</message>")
        self.assertIn("from='romeo@localhost/r1'", text)
        self.assertIn("to the best", text)
        self.assert_no_message(low)
        self.assert_no_message(neg)

    def test_message_to_gone_resource_falls_back_to_bare_rules(self):
        juliet = self.login("juliet", "fallback", priority=0)
        romeo = self.login("romeo", "r2")
        romeo.send("<message to='juliet@localhost/vanished' type='chat'><body>hello</body></message>")
        text = juliet.read_until("</message>")
        self.assertIn("to='juliet@localhost/vanished'", text)
        self.assertIn("<body>hello</body>", text)

    def test_iq_to_full_jid_and_back(self):
        juliet = self.login("juliet", "iq", priority=0)
        romeo = self.login("romeo", "r3")
        romeo.send("<iq type='get' id='v1' to='juliet@localhost/iq'>"
                   "<query xmlns='jabber:iq:version'/></iq>")
        text = juliet.read_until("</iq>")
        self.assertIn("from='romeo@localhost/r3'", text)
        juliet.send("<iq type='result' id='v1' to='romeo@localhost/r3'>"
                    "<query xmlns='jabber:iq:version'><name>balcony</name></query></iq>")
        self.assertIn("<name>balcony</name>", romeo.read_until("</iq>"))

    def test_iq_to_missing_resource_is_service_unavailable(self):
        romeo = self.login("romeo", "r4")
        romeo.send("<iq type='get' id='x1' to='juliet@localhost/nowhere'>"
                   "<query xmlns='jabber:iq:version'/></iq>")
        text = romeo.read_until("</iq>")
        self.assertIn("type='error'", text)
        self.assertIn("from='juliet@localhost/nowhere'", text)
        self.assertIn("<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>", text)

    def test_unhandled_iq_to_server_is_service_unavailable(self):
        romeo = self.login("romeo", "r5")
        romeo.send("<iq type='get' id='u1' to='localhost'><query xmlns='urn:example:nothing'/></iq>")
        text = romeo.read_until("</iq>")
        self.assertIn("type='error'", text)
        self.assertIn("<service-unavailable", text)

    def test_legacy_session_iq_is_answered(self):
        romeo = self.login("romeo", "r6")
        romeo.send("<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")
        text = romeo.read_until("id='s1'")
        self.assertRegex(text, r"<iq[^>]*type='result'[^>]*id='s1'|<iq[^>]*id='s1'[^>]*type='result'")

    def test_server_stamps_from_even_when_client_names_its_bare_jid(self):
        juliet = self.login("juliet", "stamp", priority=0)
        romeo = self.login("romeo", "r7")
        romeo.send("<message from='romeo@localhost' to='juliet@localhost/stamp'><body>x</body></message>")
        self.assertIn("from='romeo@localhost/r7'", juliet.read_until("</message>"))

    def test_new_session_with_same_resource_replaces_old_with_conflict(self):
        old = self.login("nurse", "kitchen")
        self.login("nurse", "kitchen")
        text = old.read_to_close()
        self.assertIn("<conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>", text)

    def test_directed_presence_and_unavailable_on_disconnect(self):
        juliet = self.login("juliet", "directed", priority=0)
        romeo = self.login("romeo", "r8")
        romeo.send("<presence to='juliet@localhost/directed'/>")
        text = juliet.read_until("/>")
        self.assertIn("from='romeo@localhost/r8'", text)
        juliet.buf = b""
        romeo.send("</stream:stream>")
        romeo.read_to_close()
        text = juliet.read_until("type='unavailable'")
        self.assertIn("from='romeo@localhost/r8'", text)

    def test_available_resources_see_each_other(self):
        first = self.login("nurse", "one", priority=0)
        second = self.login("nurse", "two", priority=0)
        # The new resource learns of the first; the first learns of the second.
        self.assertIn("from='nurse@localhost/two'", first.read_until("nurse@localhost/two"))
        second.send("<presence type='unavailable'/>")
        text = first.read_until("type='unavailable'")
        self.assertIn("from='nurse@localhost/two'", text)


if __name__ == "__main__":
    unittest.main(verbosity=2)
