"""Plugins seen through a real client: built-ins (disco, ping, version, Lua time), the SDK's
example plugins, run-time reload and unload, and broken plugins refused while the server serves."""
import os
import re
import signal
import socket
import time
import unittest

from harness import Raw, Server, SharedServer, scram_login

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
USERS = [("romeo", "r0meo-secret"), ("juliet", "jul1et-secret")]
PASSWORDS = dict(USERS)
BUILTINS = """
  <plugin name="disco"/>
  <plugin name="ping"/>
  <plugin name="version" version_hide_os="true"/>
  <plugin name="time"/>
"""


def control(server, command):
    """Talks to the control socket as stanzactl does; returns the answer's lines."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(os.path.join(server.dir, "data", "control.sock"))
    s.sendall(command.encode() + b"\n")
    data = b""
    while not data.endswith(b"\n") or not (b"ok\n" in data or b"error:" in data):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return data.decode()


def wait_for_log(server, pattern, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = server.read_log()
        if re.search(pattern, log):
            return log
        time.sleep(0.05)
    raise AssertionError(f"log never matched {pattern!r}:\n{server.read_log()[-4000:]}")


class PluginTestCase(unittest.TestCase):
    def tmp(self):
        import shutil
        import tempfile
        d = tempfile.mkdtemp(prefix="stanzad-plugin-")
        self.addCleanup(shutil.rmtree, d, ignore_errors=True)
        return d

    def login(self, server, user, resource):
        raw = Raw(server)
        scram_login(raw, user, PASSWORDS[user], resource)
        self.addCleanup(raw.close)
        return raw

    def iq(self, raw, payload, to="localhost", iq_id="q1", type_="get"):
        raw.buf = b""
        raw.send(f"<iq type='{type_}' id='{iq_id}' to='{to}'>{payload}</iq>")
        return raw.read_iq(iq_id)


class BuiltIns(SharedServer, PluginTestCase):
    SERVER = dict(users=USERS, extra_config=BUILTINS)

    def test_disco_lists_what_every_plugin_declares(self):
        raw = self.login(self.server, "romeo", "disco")
        text = self.iq(raw, "<query xmlns='http://jabber.org/protocol/disco#info'/>")
        self.assertIn("type='result'", text)
        self.assertIn("<identity category='server' type='im' name='stanzad'/>", text)
        for feature in ("http://jabber.org/protocol/disco#info", "urn:xmpp:ping",
                        "jabber:iq:version", "urn:xmpp:time"):
            self.assertIn(f"<feature var='{feature}'/>", text)

    def test_disco_of_own_account(self):
        raw = self.login(self.server, "romeo", "account")
        text = self.iq(raw, "<query xmlns='http://jabber.org/protocol/disco#info'/>",
                       to="romeo@localhost")
        self.assertIn("<identity category='account' type='registered'/>", text)

    def test_ping(self):
        raw = self.login(self.server, "romeo", "ping")
        text = self.iq(raw, "<ping xmlns='urn:xmpp:ping'/>", iq_id="p1")
        self.assertRegex(text, r"<iq[^>]*type='result'")
        self.assertIn("id='p1'", text)
        self.assertIn("from='localhost'", text)

    def test_version_honours_its_option(self):
        raw = self.login(self.server, "romeo", "version")
        text = self.iq(raw, "<query xmlns='jabber:iq:version'/>")
        self.assertIn("<name>stanzad</name>", text)
        self.assertNotIn("<os>", text)  # version_hide_os="true"

    def test_lua_time(self):
        raw = self.login(self.server, "romeo", "time")
        text = self.iq(raw, "<time xmlns='urn:xmpp:time'/>")
        self.assertRegex(text, r"<utc>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ</utc>")
        self.assertIn("<tzo>", text)

    def test_unhandled_namespace_still_service_unavailable(self):
        raw = self.login(self.server, "romeo", "other")
        text = self.iq(raw, "<query xmlns='urn:example:none'/>")
        self.assertIn("<service-unavailable", text)


class Examples(PluginTestCase):
    def test_cxx_greeter_greets_and_reload_changes_its_text(self):
        config = BUILTINS + "<plugin name='greeter' greeter_text='Hello from the example'/>"
        with Server(users=USERS, extra_config=config) as server:
            romeo = self.login(server, "romeo", "first")
            self.assertIn("<body>Hello from the example</body>", romeo.read_until("</message>"))

            # Change the option and reload (SIGHUP) while Romeo stays connected.
            with open(server.config) as f:
                text = f.read()
            with open(server.config, "w") as f:
                f.write(text.replace("Hello from the example", "Hello after reload"))
            server.proc.send_signal(signal.SIGHUP)
            wait_for_log(server, r"config reloaded")
            juliet = self.login(server, "juliet", "second")
            self.assertIn("<body>Hello after reload</body>", juliet.read_until("</message>"))
            # Romeo's session survived the reload.
            self.assertRegex(self.iq(romeo, "<ping xmlns='urn:xmpp:ping'/>"), r"type='result'")
            romeo.buf = b""
            romeo.send("<message to='localhost'><body>stats</body></message>")
            self.assertRegex(romeo.read_until("</message>"), r"greeted \d+ on shard \d")

            # ABI 1.2: the sessions of the sender, listed on the shard owning the account, each
            # with the property the greeting set; only the second resource sent presence.
            second = self.login(server, "romeo", "second")
            self.assertIn("Hello after reload", second.read_until("</message>"))
            second.send("<presence/>")
            second.read_match(r"<presence[^>]*>")
            romeo.buf = b""
            romeo.send("<message to='localhost'><body>sessions</body></message>")
            text = romeo.read_until("</message>")
            self.assertIn("romeo@localhost/first unavailable greeted", text)
            self.assertIn("romeo@localhost/second available greeted", text)

    def test_lua_example_answers_and_counts(self):
        path = os.path.join(ROOT, "sdk", "examples", "lua", "mod_hello.lua")
        config = BUILTINS + f"<plugin name='hello' file='{path}'/>"
        with Server(users=USERS, extra_config=config) as server:
            romeo = self.login(server, "romeo", "hello")
            for n in (1, 2):
                romeo.buf = b""
                romeo.send("<message to='localhost'><body>hello</body></message>")
                text = romeo.read_until("</message>")
                # Counted in the key-value store (storage), per user.
                self.assertIn(f"hello, romeo@localhost ({n} times)", text)
            # module:post to the owner shard, module:sessions there.
            other = self.login(server, "romeo", "other")
            other.send("<presence/>")
            other.read_match(r"<presence[^>]*>")
            romeo.buf = b""
            romeo.send("<message to='localhost'><body>where</body></message>")
            text = romeo.read_until("</message>")
            self.assertIn("romeo@localhost/hello unavailable", text)
            self.assertIn("romeo@localhost/other available", text)


class Management(PluginTestCase):
    def test_unload_and_load_at_run_time_keep_connections(self):
        with Server(users=USERS, extra_config=BUILTINS) as server:
            romeo = self.login(server, "romeo", "stays")
            listed = server.ctl("plugin", "list").stdout
            self.assertRegex(listed, r"(?m)^ping \* shared 1\.0\.0 ")
            self.assertRegex(listed, r"(?m)^time \* lua ")
            server.ctl("plugin", "unload", "ping")
            self.assertIn("<service-unavailable", self.iq(romeo, "<ping xmlns='urn:xmpp:ping'/>"))
            server.ctl("plugin", "load", "ping")
            self.assertRegex(self.iq(romeo, "<ping xmlns='urn:xmpp:ping'/>"), r"type='result'")
            r = server.ctl("plugin", "unload", "nonexistent", check=False)
            self.assertEqual(1, r.returncode)
            self.assertEqual("stanzactl: plugin 'nonexistent' is not loaded\n", r.stderr)

    def test_lua_plugin_reload_picks_up_an_edited_file(self):
        path = os.path.join(self.tmp(), "mod_motd.lua")
        with open(path, "w") as f:
            f.write('module:hook("message/host", function(event)\n'
                    '  event:reply(require("stanzad.stanza").message({type="chat"}, "first"))\n'
                    '  return true\nend)\n')
        with Server(users=USERS, extra_config=BUILTINS + f"<plugin name='motd' file='{path}'/>") as server:
            romeo = self.login(server, "romeo", "motd")
            romeo.send("<message to='localhost'><body>?</body></message>")
            self.assertIn("<body>first</body>", romeo.read_until("</message>"))
            with open(path) as f:
                text = f.read()
            with open(path, "w") as f:
                f.write(text.replace('"first"', '"second"'))
            server.ctl("plugin", "reload", "motd")
            romeo.buf = b""
            romeo.send("<message to='localhost'><body>?</body></message>")
            self.assertIn("<body>second</body>", romeo.read_until("</message>"))

    def test_stream_features_and_their_elements_reach_the_plugin(self):
        path = os.path.join(self.tmp(), "mod_knock.lua")
        with open(path, "w") as f:
            f.write('module:add_stream_feature("<knock xmlns=\'urn:example:knock\'/>")\n'
                    'module:hook("stream/element", function(event)\n'
                    '  if event.stanza.attr.xmlns ~= "urn:example:knock" then return end\n'
                    '  module:log("info", "knocked by %s", event.session_jid)\n'
                    '  return true\nend)\n')
        with Server(users=USERS, extra_config=BUILTINS + f"<plugin name='knock' file='{path}'/>") as server:
            romeo = self.login(server, "romeo", "knocker")
            self.assertIn("<knock xmlns='urn:example:knock'/>", romeo.features)
            romeo.send("<knock xmlns='urn:example:knock'/>")
            wait_for_log(server, r"plugin=knock knocked by romeo@localhost/knocker")
            # The stream is still fine; an element nobody takes still closes it.
            self.assertRegex(self.iq(romeo, "<ping xmlns='urn:xmpp:ping'/>"), r"type='result'")
            romeo.send("<other xmlns='urn:example:other'/>")
            self.assertIn("<unsupported-stanza-type", romeo.read_to_close())

    def test_deleting_a_user_tells_plugins_and_ends_their_sessions(self):
        path = os.path.join(self.tmp(), "mod_goodbye.lua")
        with open(path, "w") as f:
            f.write('module:hook("user/deleted", function(event)\n'
                    '  module:log("info", "goodbye %s", event.from)\nend)\n')
        with Server(users=USERS, extra_config=BUILTINS + f"<plugin name='goodbye' file='{path}'/>") as server:
            juliet = self.login(server, "juliet", "leaving")
            server.ctl("deluser", "juliet@localhost")
            self.assertIn("<not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>",
                          juliet.read_to_close())
            wait_for_log(server, r"plugin=goodbye goodbye juliet@localhost")

    def test_broken_plugins_are_refused_with_their_reason_and_the_server_serves(self):
        config = BUILTINS + """
  <plugin name="nonexistent"/>
  <plugin name="wrong_abi"/>
  <plugin name="version_bad" file="%s"/>
  <plugin name="greeter" greeter_delay_ms="soon"/>
  <plugin name="faulty"/>
""" % os.path.join(os.path.dirname(os.environ.get("STANZAD", "")), "..", "plugins",
                   "libstanzad_missing.so")
        with Server(users=USERS, extra_config=config) as server:
            log = wait_for_log(server, r"stanzad started")
            self.assertRegex(log, r"stanzad\.xml:\d+: plugin 'nonexistent': no such file")
            self.assertRegex(log, r"plugin 'wrong_abi': built for plugin ABI 99, this server "
                                  r"provides ABI 1")
            self.assertRegex(log, r"stanzad\.xml:\d+: option 'plugin greeter/greeter_delay_ms': "
                                  r"'soon' is not an integer")
            romeo = self.login(server, "romeo", "bystander")
            self.assertRegex(self.iq(romeo, "<ping xmlns='urn:xmpp:ping'/>"), r"type='result'")

            # A handler that throws answers internal-server-error; the server keeps serving.
            text = self.iq(romeo, "<query xmlns='urn:example:faulty' do='throw'/>")
            self.assertIn("<internal-server-error", text)
            text = self.iq(romeo, "<query xmlns='urn:example:faulty' do='refuse'/>")
            self.assertIn("<not-allowed", text)
            self.assertIn("refused on purpose", text)
            self.assertRegex(self.iq(romeo, "<ping xmlns='urn:xmpp:ping'/>"), r"type='result'")
            self.assertIn("faulty plugin threw on purpose", server.read_log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
