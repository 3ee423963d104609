"""JIDs inside payloads, prepared by plugins as the core prepares addresses (SDK 1.4 jid_prep):
a roster item (RFC 6121 §2) and a block (XEP-0191) given in a non-normalized, non-ASCII form
take effect against the account as the core addresses it. slixmpp drives every client; the
items are written as raw XML because slixmpp's own JID class would normalize them first."""
import asyncio
import time
import unittest
import xml.etree.ElementTree as ET

from harness import HOST, SharedServer, run, slix_client

PASSWORD = "s3cret-enough"
AERGER = f"\u00e4rger@{HOST}"  # ärger: what nodeprep makes of "ÄRGER"
STRASSE = f"strasse@{HOST}"  # what nodeprep makes of "Straße" (B.2 maps ß to "ss")
USERS = [("romeo", PASSWORD), ("juliet", PASSWORD), ("\u00e4rger", PASSWORD),
         ("strasse", PASSWORD)]
PLUGINS = """
  <plugin name="disco"/>
  <plugin name="roster"/>
  <plugin name="blocking"/>
"""
ROSTER = "{jabber:iq:roster}"


async def login(server, jid):
    client = slix_client(server, jid + "/slix", PASSWORD)
    started = asyncio.get_running_loop().create_future()

    async def start(_):
        await client.get_roster()
        client.send_presence()
        started.done() or started.set_result(True)

    client.add_event_handler("session_start", start)
    client.add_event_handler("failed_auth", lambda _: started.done() or started.set_exception(
        AssertionError(f"{jid}: authentication failed")))
    client.connect(("127.0.0.1", server.port))
    await asyncio.wait_for(started, 20)
    return client


async def raw_iq(client, payload, type_="set"):
    """An iq whose payload is sent byte for byte as written."""
    iq = client.make_iq_set() if type_ == "set" else client.make_iq_get()
    iq.xml.append(ET.fromstring(payload))
    return await iq.send(timeout=10)


async def roster_items(client):
    """The roster as the server stores it: {jid attribute: (name, subscription)}."""
    iq = client.make_iq_get(queryxmlns="jabber:iq:roster")
    result = await iq.send(timeout=10)
    return {item.get("jid"): (item.get("name"), item.get("subscription"))
            for item in result.xml.iter(ROSTER + "item")}


class JidPrep(SharedServer):
    SERVER = dict(users=USERS, extra_config=PLUGINS)

    def test_romeo_adds_AERGER_to_his_roster_and_subscribes_to_that_account(self):
        async def scenario():
            romeo = await login(self.server, f"romeo@{HOST}")
            aerger = await login(self.server, AERGER)  # accepts and returns subscriptions
            pushed = []
            romeo.add_event_handler("roster_update", lambda iq: pushed.extend(
                item.get("jid") for item in iq.xml.iter(ROSTER + "item")))
            try:
                # Capital Ä and a capitalized domain: nodeprep folds the Ä as well, not only ASCII.
                await raw_iq(romeo, "<query xmlns='jabber:iq:roster'>"
                                     f"<item jid='\u00c4RGER@LocalHost' name='A'/></query>")
                deadline = time.monotonic() + 10
                while not pushed and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                romeo.send_presence_subscription(pto=AERGER)
                items = {}
                while time.monotonic() < deadline + 10:
                    items = await roster_items(romeo)
                    if items.get(AERGER, (None, None))[1] in ("to", "both"):
                        break
                    await asyncio.sleep(0.1)
                return pushed, items
            finally:
                for c in (romeo, aerger):
                    await asyncio.wait_for(c.disconnect(), 10)

        pushed, items = run(scenario())
        # The push names the contact as the core addresses it...
        self.assertEqual(AERGER, pushed[0] if pushed else None)
        # ...so the subscription the core routed to ärger@localhost updated that one item (its
        # name kept) instead of adding a second, and Ärger's answer reached it.
        self.assertEqual([AERGER], list(items))
        self.assertEqual("A", items[AERGER][0])
        self.assertIn(items[AERGER][1], ("to", "both"))

    def test_juliet_blocks_Strasse_in_fullwidth_and_his_messages_stop(self):
        async def scenario():
            juliet = await login(self.server, f"juliet@{HOST}")
            strasse = await login(self.server, STRASSE)
            romeo = await login(self.server, f"romeo@{HOST}")
            got, bounced = [], []
            juliet.add_event_handler("message", lambda m: got.append(str(m["body"])))
            strasse.add_event_handler("message_error", lambda m: bounced.append(
                m["error"]["condition"]))
            try:
                # "Straße" at "ＬocalＨost" (fullwidth L and H): Nameprep maps those to "localhost",
                # Nodeprep maps ß to "ss" and folds the S.
                await raw_iq(juliet, "<block xmlns='urn:xmpp:blocking'>"
                                      "<item jid='Stra\u00dfe@\uff2cocal\uff28ost'/></block>")
                listed = await raw_iq(juliet, "<blocklist xmlns='urn:xmpp:blocking'/>", "get")
                blocklist = [i.get("jid") for i in listed.xml.iter("{urn:xmpp:blocking}item")]
                strasse.send_message(mto=f"juliet@{HOST}", mbody="blocked?", mtype="chat")
                deadline = time.monotonic() + 10
                while not bounced and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                # Delivery is in order per sender only: a marker from Romeo after the bounce.
                romeo.send_message(mto=f"juliet@{HOST}", mbody="marker", mtype="chat")
                while "marker" not in got and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                return got, bounced, blocklist
            finally:
                for c in (juliet, strasse, romeo):
                    await asyncio.wait_for(c.disconnect(), 10)

        got, bounced, blocklist = run(scenario())
        self.assertEqual(["service-unavailable"], bounced)  # XEP-0191 §3.3: as if offline
        self.assertEqual(["marker"], got)
        self.assertEqual([STRASSE], blocklist)  # the list names the account as the core does


if __name__ == "__main__":
    unittest.main(verbosity=2)
