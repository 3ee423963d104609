"""IM storage plugins through the real server: vcard (XEP-0054 + XEP-0153 hashes), private XML
(XEP-0049) and blocking (XEP-0191), with slixmpp's own plugins for the publish, fetch, block and
blocklist calls (interoperability) and raw XML where the exact stanza matters."""
import asyncio
import hashlib
import os
import re
import unittest

from harness import HOST, Raw, SharedServer, run, scram_login, slix_client

USERS = [("romeo", "r0meo-secret"), ("juliet", "jul1et-secret"), ("nurse", "nur5e-secret")]
PASSWORDS = dict(USERS)
PLUGINS = """
  <plugin name="disco"/>
  <plugin name="vcard"/>
  <plugin name="private"/>
  <plugin name="blocking"/>
"""
PHOTO = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 12  # bytes enough for wrapped BINVAL lines


async def slix_login(server, jid, plugins):
    client = slix_client(server, jid, PASSWORDS[jid.split("@")[0]])
    for p in plugins:
        client.register_plugin(p)
    started = asyncio.get_running_loop().create_future()
    client.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
    client.add_event_handler("failed_auth", lambda _: started.done() or started.set_exception(
        AssertionError(f"{jid}: authentication failed")))
    client.connect(("127.0.0.1", server.port))
    await asyncio.wait_for(started, 20)
    return client


async def slix_logout(*clients):
    for c in clients:
        await asyncio.wait_for(c.disconnect(), 10)


class ImStorage(SharedServer):
    SERVER = dict(users=USERS, extra_config=PLUGINS)

    def login(self, user, resource, online=True):
        raw = Raw(self.server)
        scram_login(raw, user, PASSWORDS[user], resource)
        self.addCleanup(raw.close)
        if online:
            raw.send("<presence/>")
            raw.read_until("<presence")
            raw.read_until(f"from='{user}@{HOST}/{resource}'")
            raw.buf = b""
        return raw

    def iq(self, raw, payload, iq_id, to=None, type_="get"):
        raw.buf = b""
        to_attr = f" to='{to}'" if to else ""
        raw.send(f"<iq type='{type_}' id='{iq_id}'{to_attr}>{payload}</iq>")
        return raw.read_iq(iq_id)

    # ---- vCard ------------------------------------------------------------------------------

    def test_vcard_published_by_romeo_is_read_by_juliet_and_hashed_into_presence(self):
        async def publish_and_fetch():
            romeo = await slix_login(self.server, f"romeo@{HOST}/orchard", ["xep_0054"])
            juliet = await slix_login(self.server, f"juliet@{HOST}/balcony", ["xep_0054"])
            try:
                vcard = romeo["xep_0054"].stanza.VCardTemp()
                vcard["FN"] = "Romeo Montague"
                vcard["NICKNAME"] = "Romeo"
                vcard["PHOTO"]["TYPE"] = "image/png"
                vcard["PHOTO"]["BINVAL"] = PHOTO
                await romeo["xep_0054"].publish_vcard(vcard)
                result = await juliet["xep_0054"].get_vcard(f"romeo@{HOST}", local=False,
                                                           cached=False)
                got = result["vcard_temp"]
                return got["FN"], got["PHOTO"]["BINVAL"]
            finally:
                await slix_logout(romeo, juliet)

        fn, binval = run(publish_and_fetch())
        self.assertEqual("Romeo Montague", fn)
        self.assertEqual(PHOTO, binval)

        digest = hashlib.sha1(PHOTO).hexdigest()
        romeo = self.login("romeo", "hash", online=False)
        juliet = self.login("juliet", "hash")
        # The broadcast echo to Romeo himself, and directed presence to Juliet, carry the hash.
        romeo.send("<presence><show>chat</show></presence>")
        echo = romeo.read_match(r"<presence[^>]*>.*?</presence>")
        self.assertIn(f"<x xmlns='vcard-temp:x:update'><photo>{digest}</photo></x>", echo)
        romeo.send(f"<presence to='juliet@{HOST}/hash'/>")
        seen = juliet.read_match(r"<presence[^>]*from='romeo@localhost/hash'[^>]*>.*?</presence>")
        self.assertIn(f"<photo>{digest}</photo>", seen)

    def test_juliet_cannot_set_romeos_vcard_and_empty_is_answered(self):
        juliet = self.login("juliet", "vcard-set", online=False)
        text = self.iq(juliet, "<vCard xmlns='vcard-temp'><FN>Juliet's Romeo</FN></vCard>", "v1",
                       to=f"romeo@{HOST}", type_="set")
        self.assertIn("type='error'", text)
        self.assertIn("<forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>", text)
        nurse = self.login("nurse", "vcard-get", online=False)
        text = self.iq(nurse, "<vCard xmlns='vcard-temp'/>", "v2")  # her own, never set
        self.assertRegex(text, r"type='result'.*<vCard xmlns='vcard-temp'/>")

    def test_vcard_too_large_is_refused(self):
        nurse = self.login("nurse", "vcard-big", online=False)
        text = self.iq(nurse, f"<vCard xmlns='vcard-temp'><DESC>{'x' * 70000}</DESC></vCard>",
                       "big", type_="set")
        self.assertIn("<not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>", text)

    def test_disco_lists_the_features(self):
        romeo = self.login("romeo", "disco", online=False)
        text = self.iq(romeo, "<query xmlns='http://jabber.org/protocol/disco#info'/>", "d1",
                       to=HOST)
        for feature in ("vcard-temp", "jabber:iq:private", "urn:xmpp:blocking"):
            self.assertIn(f"<feature var='{feature}'/>", text)

    # ---- private XML -----------------------------------------------------------------------

    def test_private_xml_round_trip_and_refusal_for_others(self):
        async def store_and_retrieve():
            romeo = await slix_login(self.server, f"romeo@{HOST}/private", ["xep_0049"])
            try:
                from slixmpp.xmlstream import ET, ElementBase

                class Prefs(ElementBase):
                    name = "prefs"
                    namespace = "urn:example:prefs"
                    plugin_attrib = "example_prefs"
                    interfaces = {"nick"}
                    sub_interfaces = interfaces

                from slixmpp.xmlstream import register_stanza_plugin
                register_stanza_plugin(romeo["xep_0049"].stanza.PrivateXML, Prefs)
                prefs = Prefs()
                prefs["nick"] = "Romeo"
                await romeo["xep_0049"].store(prefs)
                result = await romeo["xep_0049"].retrieve("example_prefs")
                return result["private"]["example_prefs"]["nick"]
            finally:
                await slix_logout(romeo)

        self.assertEqual("Romeo", run(store_and_retrieve()))

        romeo = self.login("romeo", "private-raw", online=False)
        text = self.iq(romeo, "<query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'/>"
                       "</query>", "p1")
        self.assertIn("<nick>Romeo</nick>", text)
        text = self.iq(romeo, "<query xmlns='jabber:iq:private'><storage xmlns='storage:rosternotes'/>"
                       "</query>", "p2")
        self.assertIn("<storage xmlns='storage:rosternotes'/>", text)  # never stored: empty
        text = self.iq(romeo, "<query xmlns='jabber:iq:private'/>", "p3", type_="set")
        self.assertIn("<not-acceptable", text)

        juliet = self.login("juliet", "private-raw", online=False)
        text = self.iq(juliet, "<query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'/>"
                       "</query>", "p4", to=f"romeo@{HOST}")
        self.assertIn("<forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>", text)
        self.assertNotIn("<nick>", text)
        text = self.iq(juliet, "<query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'>"
                       "<nick>Juliet</nick></prefs></query>", "p5", to=f"romeo@{HOST}", type_="set")
        self.assertIn("<forbidden", text)

    # ---- blocking ---------------------------------------------------------------------------

    def assert_not_delivered(self, juliet, text):
        """Proves what Juliet got so far: a marker from the nurse arrives after, `text` not."""
        nurse = self.login("nurse", "marker" + str(os.getpid()), online=False)
        nurse.send(f"<message type='chat' to='juliet@{HOST}/balcony'><body>marker</body></message>")
        seen = juliet.read_until("<body>marker</body>")
        self.assertNotIn(text, seen)
        nurse.close()
        juliet.buf = b""

    def test_juliet_blocks_romeo(self):
        juliet = self.login("juliet", "balcony")
        romeo = self.login("romeo", "garden")
        # The balcony asks for the list (so it gets pushes); the phone, a slixmpp client, blocks.
        text = self.iq(juliet, "<blocklist xmlns='urn:xmpp:blocking'/>", "b0")
        self.assertIn("<blocklist xmlns='urn:xmpp:blocking'", text)
        juliet.buf = b""

        async def block():
            phone = await slix_login(self.server, f"juliet@{HOST}/phone", ["xep_0191"])
            try:
                await phone["xep_0191"].block(f"romeo@{HOST}")
                blocked = await phone["xep_0191"].get_blocked()
                return {str(j) for j in blocked["blocklist"]["items"]}
            finally:
                await slix_logout(phone)

        self.assertEqual({f"romeo@{HOST}"}, run(block()))
        push = juliet.read_match(r"<iq[^>]*type='set'[^>]*>.*?</iq>")
        self.assertIn(f"<block xmlns='urn:xmpp:blocking'><item jid='romeo@{HOST}'/></block>", push)
        juliet.buf = b""

        # Romeo's message: bounced service-unavailable (XEP-0191 §3.3), not delivered.
        romeo.send(f"<message type='chat' id='m1' to='juliet@{HOST}'><body>wherefore</body></message>")
        bounce = romeo.read_match(r"<message[^>]*type='error'[^>]*>.*?</message>")
        self.assertIn("<service-unavailable", bounce)
        # Presence: dropped silently. An iq get: service-unavailable.
        romeo.send(f"<presence to='juliet@{HOST}/balcony'><status>hello</status></presence>")
        romeo.buf = b""
        text = self.iq(romeo, "<ping xmlns='urn:xmpp:ping'/>", "r1", to=f"juliet@{HOST}/balcony")
        self.assertIn("type='error'", text)
        self.assertIn("<service-unavailable", text)
        self.assert_not_delivered(juliet, "wherefore")
        self.assertNotIn("<status>hello</status>", juliet.buf.decode())

        # Juliet writing to Romeo: not-acceptable with <blocked/>.
        juliet.send(f"<message type='chat' id='j1' to='romeo@{HOST}/garden'><body>hi</body></message>")
        bounce = juliet.read_match(r"<message[^>]*type='error'[^>]*>.*?</message>")
        self.assertIn("<not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>", bounce)
        self.assertIn("<blocked xmlns='urn:xmpp:blocking:errors'/>", bounce)
        self.assertIn(f"from='romeo@{HOST}/garden'", bounce)
        juliet.buf = b""

        # Unblock (raw this time): delivery is back.
        text = self.iq(juliet, f"<unblock xmlns='urn:xmpp:blocking'><item jid='romeo@{HOST}'/></unblock>",
                       "u1", type_="set")
        self.assertIn("type='result'", text)
        juliet.buf = b""
        romeo.buf = b""
        romeo.send(f"<message type='chat' to='juliet@{HOST}/balcony'><body>again</body></message>")
        juliet.read_until("<body>again</body>")
        juliet.send(f"<message type='chat' to='romeo@{HOST}/garden'><body>welcome</body></message>")
        romeo.read_until("<body>welcome</body>")
        text = self.iq(juliet, "<blocklist xmlns='urn:xmpp:blocking'/>", "b1")
        self.assertNotIn("<item", text)


if __name__ == "__main__":
    unittest.main(verbosity=2)
