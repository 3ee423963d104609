"""XEP-0077 in-band registration (lua/mod_register.lua) through the real server: the form and
account creation before authentication, its errors and per-address rate limit, password change
and account removal after authentication (nothing of the account left in the database), and
nothing of it when the plugin is not loaded (the default)."""
import os
import sqlite3
import unittest

from harness import HOST, Raw, Server, scram_login

REGISTER = "<plugin name='register' register_max_per_ip='3' register_min_password_length='6'/>"
PRIVATE = "<plugin name='private'/>"


def preauth(server):
    raw = Raw(server)
    raw.open_stream()
    raw.features = raw.read_until("</stream:features>")
    raw.buf = b""
    return raw


def register(raw, iq_id, username, password):
    raw.buf = b""
    raw.send(f"<iq type='set' id='{iq_id}'><query xmlns='jabber:iq:register'>"
             f"<username>{username}</username><password>{password}</password></query></iq>")
    return raw.read_iq(iq_id)


class Registration(unittest.TestCase):
    def test_form_create_then_log_in(self):
        with Server(shards=1, extra_config=REGISTER) as server:
            raw = preauth(server)
            self.addCleanup(raw.close)
            self.assertIn("<register xmlns='http://jabber.org/features/iq-register'/>", raw.features)
            raw.send("<iq type='get' id='f1'><query xmlns='jabber:iq:register'/></iq>")
            form = raw.read_iq("f1")
            self.assertIn("type='result'", form)
            self.assertIn("<username/>", form)
            self.assertIn("<password/>", form)
            self.assertIn("type='result'", register(raw, "r1", "Romeo", "montague"))
            # Taken (the username is normalized: romeo == Romeo), too short, not a username.
            self.assertIn("<conflict", register(raw, "r2", "romeo", "montague"))
            self.assertIn("<not-acceptable", register(raw, "r3", "juliet", "short"))
            self.assertIn("<jid-malformed", register(raw, "r4", "bad user", "capulet1"))
            self.assertIn("<not-acceptable",
                          register(raw, "r5", "", "capulet1"))
            # The new account logs in, on another connection, with what it chose.
            client = Raw(server)
            self.addCleanup(client.close)
            scram_login(client, "romeo", "montague", "phone")
            self.assertIn("romeo@localhost/phone", client.bind_result)

    def test_rate_limit_per_address(self):
        with Server(shards=1, extra_config=REGISTER) as server:
            raw = preauth(server)
            self.addCleanup(raw.close)
            for i in range(3):
                self.assertIn("type='result'", register(raw, f"r{i}", f"user{i}", "password"))
            refused = register(raw, "r3", "user3", "password")
            self.assertIn("<resource-constraint", refused)
            self.assertIn("type='wait'", refused)
            # The refusal is no account.
            self.assertNotIn("user3", server.ctl("list").stdout)
            self.assertIn("user2", server.ctl("list").stdout)

    def test_not_offered_when_not_loaded(self):
        with Server(shards=1) as server:
            raw = preauth(server)
            self.addCleanup(raw.close)
            self.assertNotIn("iq-register", raw.features)
            raw.send("<iq type='get' id='f1'><query xmlns='jabber:iq:register'/></iq>")
            self.assertIn("<not-authorized", raw.read_to_close())

    def test_password_change_and_removal_leave_nothing(self):
        with Server(users=[("romeo", "montague")], shards=1,
                    extra_config=REGISTER + PRIVATE + "<plugin name='offline'/>") as server:
            raw = Raw(server)
            self.addCleanup(raw.close)
            scram_login(raw, "romeo", "montague", "phone")
            raw.send("<iq type='get' id='g1'><query xmlns='jabber:iq:register'/></iq>")
            self.assertIn("<registered/>", raw.read_iq("g1"))
            # Someone else's username: refused.
            raw.send("<iq type='set' id='p0'><query xmlns='jabber:iq:register'>"
                     "<username>juliet</username><password>newpass1</password></query></iq>")
            self.assertIn("<bad-request", raw.read_iq("p0"))
            raw.send("<iq type='set' id='p1'><query xmlns='jabber:iq:register'>"
                     "<username>romeo</username><password>newpass1</password></query></iq>")
            self.assertIn("type='result'", raw.read_iq("p1"))
            again = Raw(server)
            self.addCleanup(again.close)
            scram_login(again, "romeo", "newpass1", "laptop")
            # Data in two plugins' storage, then removal.
            raw.send("<iq type='set' id='s1'><query xmlns='jabber:iq:private'>"
                     "<notes xmlns='urn:example:notes'>secret</notes></query></iq>")
            self.assertIn("type='result'", raw.read_iq("s1"))
            raw.buf = b""
            raw.send("<iq type='set' id='x1'><query xmlns='jabber:iq:register'><remove/></query></iq>")
            self.assertIn("type='result'", raw.read_iq("x1"))
            # Every session of the account ends; the account is gone.
            self.assertIn("<not-authorized", raw.read_to_close())
            self.assertIn("<not-authorized", again.read_to_close())
            self.assertNotIn("romeo", server.ctl("list").stdout)
            db = sqlite3.connect(os.path.join(server.dir, "data", "stanzad.sqlite"))
            for table in ("accounts", "kv", "offline"):
                rows = db.execute(f"SELECT COUNT(*) FROM {table} WHERE username = 'romeo'")
                self.assertEqual(rows.fetchone()[0], 0, table)
            db.close()


if __name__ == "__main__":
    unittest.main()
