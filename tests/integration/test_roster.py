"""Rosters, presence subscriptions and broadcast (RFC 6121 §2-4) and last activity (XEP-0012)
through the real server: raw XML where the exact stanza matters, slixmpp for interoperability.

Each test makes its own accounts (stanzactl adduser on the running server), so rosters left by
one test never meet another's."""
import asyncio
import itertools
import os
import re
import socket
import sqlite3
import struct
import time
import unittest

from harness import HOST, Raw, SharedServer, run, scram_login, slix_client

PASSWORD = "s3cret-enough"
PLUGINS = """
  <plugin name="disco"/>
  <plugin name="roster"/>
"""
_names = itertools.count(1)


class Roster(SharedServer):
    SERVER = dict(extra_config=PLUGINS)

    # ---- helpers ------------------------------------------------------------------------------

    def users(self, *names):
        """Fresh accounts for this test: romeo -> romeo7@localhost."""
        n = next(_names)
        jids = []
        for name in names:
            jid = f"{name}{n}@{HOST}"
            self.server.ctl("adduser", jid, PASSWORD)
            jids.append(jid)
        return jids

    def login(self, jid, resource="r", roster=True, presence="<presence/>"):
        raw = Raw(self.server)
        scram_login(raw, jid.split("@")[0], PASSWORD, resource)
        self.addCleanup(raw.close)
        raw.jid = f"{jid}/{resource}"
        if roster:
            raw.send("<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>")
            raw.roster = raw.read_iq("roster1")
        if presence:
            raw.send(presence)
            raw.read_match(self.pres(raw.jid))
        raw.buf = b""
        return raw

    def expect(self, raw, pattern, timeout=10):
        """Waits for a stanza whose start matches `pattern` (a regex); takes the whole stanza out
        of the buffer (so the next wait cannot match it again) and returns it."""
        rx = re.compile(pattern.encode(), re.S)
        found = []

        def waiting(buf):
            m = rx.search(buf)
            if m:
                found.append(m)
            return not m
        raw.read_while(waiting, repr(pattern), timeout)
        m = found[-1]
        start = m.start()
        name = re.match(rb"<([a-z]+)", raw.buf[start:]).group(1)
        head_end = raw.buf.index(b">", start)
        if raw.buf[head_end - 1:head_end] == b"/":
            end = head_end + 1
        else:
            close = b"</" + name + b">"
            raw.read_while(lambda buf: close not in buf[head_end:], "end of stanza", timeout)
            end = raw.buf.index(close, head_end) + len(close)
        stanza = raw.buf[start:end]
        raw.buf = raw.buf[:start] + raw.buf[end:]
        return stanza.decode(errors="replace")

    @staticmethod
    def pres(from_, type_=None):
        """A regex for the opening tag of a presence from `from_` of `type_` (None: available),
        whatever the attributes' order."""
        t = f"(?=[^>]*type='{type_}')" if type_ else "(?![^>]*type=)"
        return f"<presence(?=[^>]*from='{re.escape(from_)}'){t}"

    def assert_silent(self, raw, pattern, wait=0.7):
        """Reads for `wait` seconds; fails if `pattern` (a regex) arrives (or already had)."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            raw.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = raw.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                break
            if not chunk:
                break
            raw.buf += chunk
        self.assertNotRegex(raw.buf.decode(errors="replace"), pattern)

    def iq(self, raw, payload, iq_id, to=None, type_="get"):
        to_attr = f" to='{to}'" if to else ""
        raw.send(f"<iq type='{type_}' id='{iq_id}'{to_attr}>{payload}</iq>")
        return raw.read_iq(iq_id)

    def roster(self, raw, iq_id="r"):
        return self.iq(raw, "<query xmlns='jabber:iq:roster'/>", iq_id)

    def item(self, roster_text, jid):
        m = re.search(rf"<item jid='{re.escape(jid)}'[^>]*", roster_text)
        return m.group(0) if m else ""

    def push(self, raw, jid, attrs):
        """Waits for a roster push of `jid` with `attrs` (a regex) in its item."""
        return self.expect(raw, rf"<iq[^>]*type='set'[^>]*>\s*<query xmlns='jabber:iq:roster' "
                                rf"ver='\d+'>\s*<item jid='{re.escape(jid)}'[^>]*{attrs}[^>]*/?>"
                                rf"(?:<group>[^<]*</group>)*(?:</item>)?</query></iq>")

    def make_mutual(self, a, b):
        """a and b (logged in, roster requested) end up subscribed both ways."""
        a_bare, b_bare = a.jid.split("/")[0], b.jid.split("/")[0]
        a.send(f"<presence to='{b_bare}' type='subscribe'/>")
        self.expect(b, self.pres(f"{a_bare}", "subscribe"))
        b.send(f"<presence to='{a_bare}' type='subscribed'/>")
        self.push(a, b_bare, "subscription='to'")
        b.send(f"<presence to='{a_bare}' type='subscribe'/>")
        self.expect(a, self.pres(f"{b_bare}", "subscribe"))
        a.send(f"<presence to='{b_bare}' type='subscribed'/>")
        self.push(a, b_bare, "subscription='both'")
        self.push(b, a_bare, "subscription='both'")
        a.buf = b""
        b.buf = b""

    # ---- the roster (§2) ----------------------------------------------------------------------

    def test_roster_pushes_reach_every_interested_resource_with_versions(self):
        romeo, juliet = self.users("romeo", "juliet")
        one = self.login(romeo, "one")
        two = self.login(romeo, "two")
        quiet = self.login(romeo, "quiet", roster=False)  # never asked: gets no push
        ver0 = re.search(r"ver='(\d+)'", one.roster).group(1)
        text = self.iq(one, f"<query xmlns='jabber:iq:roster'><item jid='{juliet}' name='Juliet'>"
                            "<group>Capulets</group></item></query>", "set1", type_="set")
        self.assertIn("type='result'", text)
        for raw in (one, two):
            push = self.push(raw, juliet, "subscription='none'")
            self.assertIn("name='Juliet'", push)
        self.assert_silent(quiet, "jabber:iq:roster")
        # §2.6: the version we hold now gets an empty result; the old one the whole roster.
        ver1 = re.search(r"ver='(\d+)'", push).group(1)
        self.assertNotEqual(ver0, ver1)
        one.buf = b""
        text = self.iq(one, f"<query xmlns='jabber:iq:roster' ver='{ver1}'/>", "v1")
        self.assertNotIn("<query", text)
        text = self.iq(one, f"<query xmlns='jabber:iq:roster' ver='{ver0}'/>", "v0")
        self.assertIn("<group>Capulets</group>", text)
        # Removal: pushed as remove; a second removal is item-not-found.
        text = self.iq(two, f"<query xmlns='jabber:iq:roster'><item jid='{juliet}' "
                            "subscription='remove'/></query>", "rm1", type_="set")
        self.assertIn("type='result'", text)
        self.push(one, juliet, "subscription='remove'")
        text = self.iq(two, f"<query xmlns='jabber:iq:roster'><item jid='{juliet}' "
                            "subscription='remove'/></query>", "rm2", type_="set")
        self.assertIn("<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>", text)

    def test_invalid_roster_sets_are_refused(self):
        romeo, = self.users("romeo")
        raw = self.login(romeo, presence=None)
        cases = [
            ("<item jid='a@localhost'/><item jid='b@localhost'/>", "bad-request"),
            (f"<item jid='a@localhost' name='{'n' * 1100}'/>", "not-acceptable"),
            ("<item jid='a@localhost'><group></group></item>", "not-acceptable"),
            ("<item jid='a@localhost'><group>x</group><group>x</group></item>", "bad-request"),
        ]
        for i, (items, condition) in enumerate(cases):
            text = self.iq(raw, f"<query xmlns='jabber:iq:roster'>{items}</query>", f"bad{i}",
                           type_="set")
            self.assertIn(f"<{condition} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>", text)
        # Someone else's roster is not ours to read.
        juliet, = self.users("juliet")
        text = self.iq(raw, "<query xmlns='jabber:iq:roster'/>", "other", to=juliet)
        self.assertIn("<forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>", text)

    # ---- subscriptions (§3) -------------------------------------------------------------------

    def test_romeo_subscribes_juliet_approves_and_the_nurse_sees_nothing(self):
        romeo, juliet, nurse = self.users("romeo", "juliet", "nurse")
        r = self.login(romeo)
        j = self.login(juliet)
        n = self.login(nurse)
        r.send(f"<presence to='{juliet}/whatever' type='subscribe'><status>hi</status></presence>")
        self.push(r, juliet, "subscription='none' ask='subscribe'")
        # Juliet sees the request from Romeo's bare JID, with its status.
        req = self.expect(j, self.pres(f"{romeo}", "subscribe"))
        self.assertIn("<status>hi</status>", req)
        j.send(f"<presence to='{romeo}' type='subscribed'/>")
        self.push(j, romeo, "subscription='from'")
        self.push(r, juliet, "subscription='to'")
        self.expect(r, self.pres(f"{juliet}", "subscribed"))
        # §3.1.5: Romeo gets Juliet's current presence at once.
        self.expect(r, self.pres(f"{juliet}/r"))
        # Juliet's later presence reaches Romeo, XEP-0319 idle untouched; never the nurse.
        r.buf = b""
        idle = "<idle xmlns='urn:xmpp:idle:1' since='2026-01-01T00:00:00Z'/>"
        j.send(f"<presence><show>away</show>{idle}</presence>")
        seen = self.expect(r, self.pres(f"{juliet}/r"))
        self.assertIn("<show>away</show>", seen)
        self.assertIn(idle, seen)
        # Romeo is not subscribed *from* Juliet: his presence does not leak to her.
        j.buf = b""
        r.send("<presence><show>chat</show></presence>")
        self.assert_silent(j, f"from='{romeo}/r'")
        self.assert_silent(n, "<presence", wait=0.3)
        # The nurse's probe of Juliet reveals nothing (§4.3.2: the `unsubscribed` answer is her
        # server's business, dropped as she has no such subscription); Romeo's gets Juliet's.
        n.send(f"<presence to='{juliet}' type='probe'/>")
        self.assert_silent(n, f"from='{juliet}")
        r.buf = b""
        r.send(f"<presence to='{juliet}' type='probe'/>")
        self.assertIn("<show>away</show>", self.expect(r, self.pres(f"{juliet}/r")))

    def test_pre_approval_answers_the_request_without_asking(self):
        romeo, juliet = self.users("romeo", "juliet")
        r = self.login(romeo)
        j = self.login(juliet)
        self.assertIn("urn:xmpp:features:pre-approval", j.features)
        self.assertIn("urn:xmpp:features:rosterver", j.features)
        j.send(f"<presence to='{romeo}' type='subscribed'/>")
        self.push(j, romeo, "subscription='none' approved='true'")
        self.assert_silent(r, "type='subscribed'", wait=0.3)  # nothing routed yet (§3.4)
        r.send(f"<presence to='{juliet}' type='subscribe'/>")
        self.push(r, juliet, "subscription='to'")
        self.push(j, romeo, "subscription='from'")
        self.expect(r, self.pres(f"{juliet}/r"))
        self.assert_silent(j, "type='subscribe'(?!d)")

    def test_simultaneous_requests_end_in_a_mutual_subscription(self):
        romeo, juliet = self.users("romeo", "juliet")
        r = self.login(romeo)
        j = self.login(juliet)
        r.send(f"<presence to='{juliet}' type='subscribe'/>")
        j.send(f"<presence to='{romeo}' type='subscribe'/>")
        self.expect(r, self.pres(f"{juliet}", "subscribe"))
        self.expect(j, self.pres(f"{romeo}", "subscribe"))
        r.send(f"<presence to='{juliet}' type='subscribed'/>")
        j.send(f"<presence to='{romeo}' type='subscribed'/>")
        self.push(r, juliet, "subscription='both'")
        self.push(j, romeo, "subscription='both'")
        self.assertIn("subscription='both'", self.item(self.roster(r, "final"), juliet))
        self.assertIn("subscription='both'", self.item(self.roster(j, "final"), romeo))

    def test_a_request_to_an_offline_user_waits_for_her_and_can_be_denied(self):
        romeo, juliet = self.users("romeo", "juliet")
        r = self.login(romeo)
        r.send(f"<presence to='{juliet}' type='subscribe'/>")
        self.push(r, juliet, "ask='subscribe'")
        time.sleep(0.3)
        # Juliet's request list is redelivered at her initial presence (§3.1.3), not before.
        j = self.login(juliet, presence=None)
        self.assertNotIn(romeo, j.roster)  # a pending request is no roster item
        self.assert_silent(j, "type='subscribe'(?!d)", wait=0.3)
        j.send("<presence/>")
        self.expect(j, self.pres(f"{romeo}", "subscribe"))
        j.send(f"<presence to='{romeo}' type='unsubscribed'/>")
        self.expect(r, self.pres(f"{juliet}", "unsubscribed"))
        push = self.push(r, juliet, "subscription='none'")
        self.assertNotIn("ask=", push)
        # Denied: not offered again at the next login.
        again = self.login(juliet, "again", presence=None)
        again.send("<presence/>")
        self.assert_silent(again, "type='subscribe'(?!d)")

    def test_cancel_then_unsubscribe(self):
        romeo, juliet = self.users("romeo", "juliet")
        r = self.login(romeo)
        j = self.login(juliet)
        self.make_mutual(r, j)
        # Romeo cancels Juliet's subscription to him: she sees him go.
        r.send(f"<presence to='{juliet}' type='unsubscribed'/>")
        self.push(r, juliet, "subscription='to'")
        self.push(j, romeo, "subscription='from'")
        self.expect(j, self.pres(f"{romeo}/r", "unavailable"))
        # Then unsubscribes from her: he sees her go, nothing is left.
        r.send(f"<presence to='{juliet}' type='unsubscribe'/>")
        self.push(r, juliet, "subscription='none'")
        self.push(j, romeo, "subscription='none'")
        self.expect(r, self.pres(f"{juliet}/r", "unavailable"))
        # Now neither sees the other's presence.
        j.buf = b""
        r.send("<presence><show>dnd</show></presence>")
        self.assert_silent(j, f"from='{romeo}/r'")

    def test_subscribing_to_an_account_that_does_not_exist(self):
        romeo, = self.users("romeo")
        r = self.login(romeo)
        ghost = f"ghost{next(_names)}@{HOST}"
        r.send(f"<presence to='{ghost}' type='subscribe'/>")
        self.push(r, ghost, "ask='subscribe'")
        self.expect(r, self.pres(f"{ghost}", "unsubscribed"))
        push = self.push(r, ghost, "subscription='none'")
        self.assertNotIn("ask=", push)

    # ---- broadcast, probes, last activity (§4, XEP-0012) --------------------------------------

    def test_probes_at_login_unavailable_on_a_dead_connection_and_last_activity(self):
        romeo, juliet, nurse = self.users("romeo", "juliet", "nurse")
        r = self.login(romeo)
        j = self.login(juliet, presence="<presence><status>on the balcony</status></presence>")
        self.make_mutual(r, j)
        r.close()
        time.sleep(0.3)
        # Romeo logs in again: the probe brings Juliet's presence, status included.
        r = self.login(romeo, "again", presence=None)
        r.send("<presence/>")
        seen = self.expect(r, self.pres(f"{juliet}/r"))
        self.assertIn("on the balcony", seen)
        # Last activity of someone online: 0 seconds.
        text = self.iq(r, "<query xmlns='jabber:iq:last'/>", "last0", to=juliet)
        self.assertIn("seconds='0'", text)
        # Juliet's connection dies (no stream close, no unavailable): Romeo sees her go.
        r.buf = b""
        j.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        j.sock.close()
        self.expect(r, self.pres(f"{juliet}/r", "unavailable"))
        time.sleep(1.2)
        text = self.iq(r, "<query xmlns='jabber:iq:last'/>", "last1", to=juliet)
        m = re.search(r"<query xmlns='jabber:iq:last' seconds='(\d+)'", text)
        self.assertTrue(m, text)
        self.assertGreaterEqual(int(m.group(1)), 1)
        # A later probe (Romeo's next login) gets unavailable with when she was last seen.
        r2 = self.login(romeo, "third", presence=None)
        r2.send("<presence/>")
        gone = self.expect(r2, self.pres(f"{juliet}", "unavailable"))
        self.assertIn("<delay xmlns='urn:xmpp:delay'", gone)
        # The nurse is not subscribed: forbidden.
        n = self.login(nurse, presence=None)
        text = self.iq(n, "<query xmlns='jabber:iq:last'/>", "last2", to=juliet)
        self.assertIn("<forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>", text)
        # The server itself: its uptime.
        text = self.iq(n, "<query xmlns='jabber:iq:last'/>", "up", to=HOST)
        self.assertRegex(text, r"type='result'.*<query xmlns='jabber:iq:last' seconds='\d+'")

    def test_a_replaced_session_is_seen_going_unavailable(self):
        romeo, juliet = self.users("romeo", "juliet")
        r = self.login(romeo)
        j = self.login(juliet)
        self.make_mutual(r, j)
        # A new connection binds Juliet's resource (RFC 6120 §7.7.2.2: the old one gets
        # `conflict`) and stays unavailable: Romeo must not keep seeing the old one online.
        newer = self.login(juliet, roster=False, presence=None)
        self.assertIn("<conflict", j.read_to_close())
        self.expect(r, self.pres(f"{juliet}/r", "unavailable"))
        newer.send("<presence/>")
        self.expect(r, self.pres(f"{juliet}/r"))

    def test_account_deletion_leaves_no_roster_data(self):
        romeo, juliet = self.users("romeo", "juliet")
        r = self.login(romeo)
        j = self.login(juliet)
        self.make_mutual(r, j)
        r.send("<presence type='unavailable'><status>bye</status></presence>")
        self.expect(j, self.pres(f"{romeo}/r", "unavailable"))
        node = romeo.split("@")[0]
        db = os.path.join(self.server.dir, "data", "stanzad.sqlite")

        def rows():
            with sqlite3.connect(db) as conn:
                return conn.execute("SELECT store, doc_key FROM kv WHERE username = ?",
                                    (node,)).fetchall()
        self.assertIn(("roster", "items"), rows())
        # Last activity is queued for the next group commit (not waited for): it lands shortly.
        deadline = time.monotonic() + 5
        while ("roster", "last") not in rows() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertIn(("roster", "last"), rows())
        r.send("<presence/>")  # online again, then deleted: its end must write nothing back
        self.expect(j, self.pres(f"{romeo}/r"))
        self.server.ctl("deluser", romeo)
        r.read_to_close()
        # Romeo was online: Juliet sees him go and her roster loses both subscriptions.
        self.expect(j, self.pres(f"{romeo}/r", "unavailable"))
        self.push(j, romeo, "subscription='none'")
        time.sleep(0.3)
        self.assertEqual([], rows())

    # ---- a real client library ----------------------------------------------------------------

    def test_slixmpp_subscribes_and_sees_presence(self):
        romeo, juliet = self.users("romeo", "juliet")

        async def scenario():
            clients = []
            for jid in (romeo, juliet):
                c = slix_client(self.server, jid + "/slix", PASSWORD)
                started = asyncio.get_running_loop().create_future()

                async def start(_, c=c, started=started):
                    await c.get_roster()
                    c.send_presence()
                    started.done() or started.set_result(True)
                c.add_event_handler("session_start", start)
                c.connect(("127.0.0.1", self.server.port))
                await asyncio.wait_for(started, 20)
                clients.append(c)
            rc, jc = clients
            available = asyncio.get_running_loop().create_future()
            rc.add_event_handler("got_online", lambda p: p["from"].bare == juliet
                                 and not available.done() and available.set_result(True))
            # slixmpp accepts and returns subscriptions by default (auto_authorize/subscribe).
            rc.send_presence_subscription(pto=juliet)
            await asyncio.wait_for(available, 15)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if (rc.client_roster[juliet]["subscription"] == "both"
                        and jc.client_roster[romeo]["subscription"] == "both"):
                    break
                await asyncio.sleep(0.1)
            result = (rc.client_roster[juliet]["subscription"],
                      jc.client_roster[romeo]["subscription"])
            for c in clients:
                await asyncio.wait_for(c.disconnect(), 10)
            return result

        self.assertEqual(("both", "both"), run(scenario()))


if __name__ == "__main__":
    unittest.main(verbosity=2)
