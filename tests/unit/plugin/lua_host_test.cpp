// Tests for server/plugin/lua_host.cpp: the Lua plugin API over the C ABI, via the fake host.
#include <gtest/gtest.h>

#include "lua_test_util.hpp"

namespace stanzad::testing {
namespace {

using Strings = std::vector<std::string>;

constexpr const char* kMsg =
    "<message from='romeo@example.org/orchard' to='juliet@example.org' type='chat' id='m1'>"
    "<body>hi</body><x xmlns='urn:example:x'><y n='1'/><y n='2'/><z/></x></message>";

TEST_F(LuaTest, HandlersRunByPriorityThenLoadOrder) {
  FakeHost host;
  load(host, "a", R"(
    local function h(tag) return function() module:log("info", "h:%s", tag) end end
    module:hook("test/ev", h("a0"), 0)
    module:hook("test/ev", h("a1000"), module.priority.guard)
    module:hook("test/ev", h("a0-second"))
  )");
  load(host, "b", R"(
    module:hook("test/ev", function() module:log("info", "h:b500") end, module.priority.enrich)
    module:hook("test/ev", function() module:log("info", "h:b0") end, 0)
    module:hook("test/ev", function() module:log("info", "h:b-1000") end, module.priority.deliver)
  )");
  EXPECT_TRUE(host.fire("test/ev").passed());
  EXPECT_EQ(logged_with(host, "h:"),
            (Strings{"h:a1000", "h:b500", "h:a0", "h:a0-second", "h:b0", "h:b-1000"}));
}

TEST_F(LuaTest, PassHandledAndErrorVerdicts) {
  FakeHost host;
  load(host, "v", R"(
    local errors = require "stanzad.errors"
    module:hook("test/pass", function() end)
    module:hook("test/pass", function() return false end)
    module:hook("test/handled", function() return true end, 10)
    module:hook("test/handled", function() module:log("info", "h:not reached") end)
    module:hook("test/error", function()
      return errors.new("modify", "not-acceptable", "no thanks")
    end)
    module:hook("test/raise", function() error(errors.new("auth", "forbidden")) end)
  )");
  EXPECT_TRUE(host.fire("test/pass").passed());
  EXPECT_TRUE(host.fire("test/handled").handled());
  EXPECT_TRUE(logged_with(host, "h:").empty());
  FireResult r = host.fire("test/error");
  ASSERT_TRUE(r.error());
  EXPECT_EQ(r.error_condition, "not-acceptable");
  EXPECT_EQ(r.error_type, "modify");
  EXPECT_EQ(r.error_text, "no thanks");
  r = host.fire("test/raise");
  ASSERT_TRUE(r.error());
  EXPECT_EQ(r.error_condition, "forbidden");
  EXPECT_EQ(r.error_type, "auth");
}

TEST_F(LuaTest, RuntimeErrorInHandlerIsInternalServerErrorWithFileAndLine) {
  FakeHost host;
  load(host, "boom",
       "module:hook('test/ev', function(event)\n"
       "  local t = nil\n"
       "  return t.field\n"
       "end)\n");
  FireResult r = host.fire("test/ev");
  ASSERT_TRUE(r.error());
  EXPECT_EQ(r.error_condition, "internal-server-error");
  EXPECT_TRUE(host.logged("mod_boom.lua:3:", SZ_LOG_ERROR));
  EXPECT_TRUE(host.logged("event=test/ev", SZ_LOG_ERROR));
  // The state keeps working.
  EXPECT_TRUE(host.fire("test/ev").error());
  EXPECT_TRUE(host.fire("test/other").passed());
}

TEST_F(LuaTest, SyntaxErrorAtLoadNamesFileAndLine) {
  FakeHost host;
  std::string error;
  EXPECT_FALSE(host.load_lua("bad", write("bad", "local x = 1\n\nlocal y = = 2\n"), &error));
  EXPECT_NE(error.find("mod_bad.lua:3:"), std::string::npos) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos);
  EXPECT_FALSE(host.loaded("bad"));
}

TEST_F(LuaTest, RuntimeErrorAtLoadNamesFileAndLine) {
  FakeHost host;
  std::string error;
  EXPECT_FALSE(host.load_lua(
      "bad", write("bad", "module:hook('test/ev', function() end)\nmodule:nonexistent()\n"),
      &error));
  EXPECT_NE(error.find("mod_bad.lua:2:"), std::string::npos) << error;
  EXPECT_EQ(host.hooks().count("test/ev"), 0u);
  EXPECT_FALSE(
      host.load_lua("bad2", write("bad2", "module:hook('Not An Event', print)\n"), &error));
  EXPECT_NE(error.find("mod_bad2.lua:1: invalid event name"), std::string::npos) << error;
  EXPECT_FALSE(host.load_lua("missing", (dir_ / "nope.lua").string(), &error));
  EXPECT_NE(error.find("nope.lua"), std::string::npos) << error;
}

TEST_F(LuaTest, StanzaBuilderRoundTrip) {
  FakeHost host;
  load(host, "b", R"(
    local st = require "stanzad.stanza"
    local m = st.message({ to = "juliet@example.org", type = "chat", id = "x1" }, "hello & <bye>")
      :tag("active", { xmlns = "http://jabber.org/protocol/chatstates" }):up()
      :tag("x", { xmlns = "urn:example:x" }):tag("y", { n = 1 }):text("t"):up():tag("z"):reset()
    module:log("info", "xml:%s", tostring(m))
    local back = assert(st.parse(tostring(m)))
    module:log("info", "rt:%s", tostring(tostring(back) == tostring(m)))
    module:log("info", "nav:%s %s %s %s", back.name, back.attr.to, back:get_child_text("body"),
      back:get_child("x", "urn:example:x"):get_child("y").attr.n)
    module:log("info", "ns:%s", tostring(back:get_child("x")))  -- another namespace: nil
    local iq = st.iq({ type = "get", id = "q", from = "a@example.org/r", to = "example.org" })
    module:log("info", "reply:%s", tostring(st.reply(iq)))
    module:log("info", "err:%s", tostring(st.error_reply(iq, "cancel", "item-not-found", "gone")))
    module:log("info", "pres:%s", tostring(st.presence({ type = "unavailable" })))
    local c = m:copy(); c.attr.id = "x2"; c.attr.type = nil
    module:log("info", "copy:%s %s %s", c.attr.id, tostring(c.attr.type), m.attr.id)
    module:log("info", "is:%s %s", tostring(st.is_stanza(m)), tostring(st.is_stanza({})))
    module:log("info", "bad:%s", tostring(st.parse("<a>")))
  )");
  EXPECT_EQ(logged_with(host, "xml:"),
            Strings{"xml:<message id='x1' to='juliet@example.org' type='chat'><body>hello &amp; "
                    "&lt;bye&gt;</body><active xmlns='http://jabber.org/protocol/chatstates'/>"
                    "<x xmlns='urn:example:x'><y n='1'>t</y><z/></x></message>"});
  EXPECT_EQ(logged_with(host, "rt:"), Strings{"rt:true"});
  EXPECT_EQ(logged_with(host, "nav:"), Strings{"nav:message juliet@example.org hello & <bye> 1"});
  EXPECT_EQ(logged_with(host, "ns:"), Strings{"ns:nil"});
  EXPECT_EQ(logged_with(host, "reply:"),
            Strings{"reply:<iq from='example.org' id='q' to='a@example.org/r' type='result'/>"});
  EXPECT_EQ(logged_with(host, "err:"),
            Strings{"err:<iq from='example.org' id='q' to='a@example.org/r' type='error'><error "
                    "type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                    "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>gone</text></error></iq>"});
  EXPECT_EQ(logged_with(host, "pres:"), Strings{"pres:<presence type='unavailable'/>"});
  EXPECT_EQ(logged_with(host, "copy:"), Strings{"copy:x2 nil x1"});
  EXPECT_EQ(logged_with(host, "is:"), Strings{"is:true false"});
  EXPECT_EQ(logged_with(host, "bad:"), Strings{"bad:nil"});
}

TEST_F(LuaTest, EventFieldsNavigationAndRewrite) {
  FakeHost host;
  load(host, "nav", R"(
    module:hook("message/bare", function(event)
      local s = event.stanza
      module:log("info", "ev:%s %s %s %s", event.name, event.from, event.to,
        tostring(event.session_jid))
      local names = {}
      for c in s:children() do names[#names + 1] = c.name end
      module:log("info", "children:%s", table.concat(names, ","))
      local x = s:get_child("x", "urn:example:x")
      local ns = {}
      for y in x:childtags("y") do ns[#ns + 1] = y.attr.n end
      module:log("info", "ys:%s text:%s", table.concat(ns, ","), s:get_child("body"):get_text())
      s.attr.id = "rewritten"
      s:tag("stamp", { xmlns = "urn:example:stamp" }):up()
      s:remove_children("body")
      return nil
    end, 10)
    module:hook("message/bare", function(event)
      module:log("info", "later:%s %s %s", event.stanza.attr.id,
        tostring(event.stanza:get_child("stamp", "urn:example:stamp") ~= nil),
        tostring(event.stanza:get_child_text("body")))
    end)
  )");
  EXPECT_TRUE(host.fire("message/bare", kMsg).passed()) << host.logs().back().message;
  EXPECT_EQ(logged_with(host, "ev:"),
            Strings{"ev:message/bare romeo@example.org/orchard juliet@example.org nil"});
  EXPECT_EQ(logged_with(host, "children:"), Strings{"children:body,x"});
  EXPECT_EQ(logged_with(host, "ys:"), Strings{"ys:1,2 text:hi"});
  EXPECT_EQ(logged_with(host, "later:"), Strings{"later:rewritten true nil"});
}

TEST_F(LuaTest, ReplyAndSendTakeTheStanza) {
  FakeHost host;
  load(host, "r", R"(
    local st = require "stanzad.stanza"
    module:hook("iq-get/host/urn:example:q:q", function(event)
      local r = st.reply(event.stanza):tag("q", { xmlns = "urn:example:q" })
      event:reply(r)
      local ok, err = pcall(function() return r.name end)
      module:log("info", "after-reply:%s %s", tostring(ok), err)
      local m = st.message({ to = "juliet@example.org", from = "example.org" }, "note")
      module:send(m:copy())
      module:send(m)
      module:send(event.stanza) -- borrowed: a copy is sent
      return true
    end)
  )");
  EXPECT_TRUE(host.fire("iq-get/host/urn:example:q:q",
                        "<iq type='get' id='1' from='romeo@example.org/o' "
                        "to='example.org'><q xmlns='urn:example:q'/></iq>")
                  .handled());
  ASSERT_EQ(host.replies().size(), 1u);
  EXPECT_EQ(host.replies()[0],
            "<iq from='example.org' id='1' to='romeo@example.org/o' type='result'><q "
            "xmlns='urn:example:q'/></iq>");
  ASSERT_EQ(host.sent().size(), 4u);
  EXPECT_EQ(host.sent()[1], host.sent()[2]);
  EXPECT_EQ(host.sent_elements()[3].name(), "iq");
  auto after = logged_with(host, "after-reply:");
  ASSERT_EQ(after.size(), 1u);
  EXPECT_NE(after[0].find("false"), std::string::npos);
  EXPECT_NE(after[0].find("stanza used after it was sent"), std::string::npos) << after[0];
}

TEST_F(LuaTest, EventStanzaUsedAfterHandlerRaisesLuaError) {
  FakeHost host;
  load(host, "keep", R"(
    local saved, saved_child, saved_event
    module:hook("message/bare", function(event)
      saved, saved_child, saved_event = event.stanza, event.stanza:get_child("body"), event
    end)
    module:add_timer(5, function()  -- runs outside any handler
      local results = {}
      for _, f in ipairs {
        function() return saved:get_child_text("body") end,
        function() return saved_child:get_text() end,
        function() return saved.attr.from end,
        function() return tostring(saved) end,
        function() return saved_event.from end,
      } do
        local ok, err = pcall(f)
        results[#results + 1] = tostring(ok) .. ":" .. tostring(err)
      end
      module:log("info", "use:%s", table.concat(results, "|"))
    end)
  )");
  host.fire("message/bare", kMsg);
  host.fire("message/bare", kMsg);  // the reused userdata is live again, the old refs are not
  host.advance(5000);
  auto use = logged_with(host, "use:");
  ASSERT_EQ(use.size(), 1u);
  EXPECT_EQ(use[0].find("true"), std::string::npos) << use[0];
  EXPECT_NE(use[0].find("stanza used after its handler returned"), std::string::npos) << use[0];
  EXPECT_NE(use[0].find("event used after its handler returned"), std::string::npos) << use[0];
}

TEST_F(LuaTest, StaleChildReferenceRaisesLuaError) {
  FakeHost host;
  load(host, "stale", R"(
    local st = require "stanzad.stanza"
    local m = st.message({}, "a")
    local body = m:get_child("body")
    for i = 1, 20 do m:tag("x" .. i):up() end  -- may move <body> in memory
    local ok, err = pcall(function() return body:get_text() end)
    module:log("info", "stale:%s %s", tostring(ok), err)
    module:log("info", "fresh:%s", m:get_child("body"):get_text())
    local outer = st.stanza("outer"):tag("inner")
    local extra = st.stanza("extra", { xmlns = "urn:example:e" })
    outer:add_child(extra):up():add_child(outer)  -- into itself: a copy
    module:log("info", "self:%s %s", tostring(outer), tostring(pcall(tostring, extra)))
  )");
  auto stale = logged_with(host, "stale:");
  ASSERT_EQ(stale.size(), 1u);
  EXPECT_NE(stale[0].find("stale:false"), std::string::npos);
  EXPECT_NE(stale[0].find("stale stanza reference"), std::string::npos);
  EXPECT_EQ(logged_with(host, "fresh:"), Strings{"fresh:a"});
  EXPECT_EQ(logged_with(host, "self:"),
            Strings{"self:<outer><inner><extra xmlns='urn:example:e'/></inner><outer><inner><extra "
                    "xmlns='urn:example:e'/></inner></outer></outer> false"});
}

TEST_F(LuaTest, OptionsWithDefaultsAndBounds) {
  FakeHost host({{"o_int", "42"}, {"o_bool", "yes"}, {"o_str", "hello"}, {"o_num", "2.5"}});
  load(host, "o", R"(
    module:log("info", "opt:%s %s %s %s %s %s %s",
      module:get_option_integer("o_int", 1, 0, 100),
      module:get_option_integer("o_unset_int", 7),
      tostring(module:get_option_boolean("o_bool", false)),
      tostring(module:get_option_boolean("o_unset_bool", true)),
      module:get_option_string("o_str", "x"),
      module:get_option_number("o_num", 1),
      tostring(module:get_option("o_unset")))
    module:log("info", "typed:%s %s", math.type(module:get_option("o_int", 0)),
      module:get_option("o_str"))
  )");
  EXPECT_EQ(logged_with(host, "opt:"), Strings{"opt:42 7 true true hello 2.5 nil"});
  EXPECT_EQ(logged_with(host, "typed:"), Strings{"typed:integer hello"});
  for (auto name : {"o_int", "o_unset_int", "o_bool", "o_unset_bool", "o_str", "o_num", "o_unset"})
    EXPECT_TRUE(host.requested_options().count(name)) << name;

  FakeHost bounds({{"lim", "0"}, {"notint", "1.5"}, {"notbool", "maybe"}});
  std::string error;
  EXPECT_FALSE(
      bounds.load_lua("lim", write("lim", "\nmodule:get_option_integer('lim', 5, 1)\n"), &error));
  EXPECT_NE(error.find("mod_lim.lua:2:"), std::string::npos) << error;
  EXPECT_NE(error.find("below the minimum 1"), std::string::npos) << error;
  EXPECT_FALSE(bounds.load_lua("lim2", write("lim2", "module:get_option_integer('lim', 5, -5, -1)"),
                               &error));
  EXPECT_NE(error.find("above the maximum -1"), std::string::npos) << error;
  EXPECT_FALSE(
      bounds.load_lua("ni", write("ni", "module:get_option_integer('notint', 5)"), &error));
  EXPECT_NE(error.find("not an integer"), std::string::npos) << error;
  EXPECT_FALSE(
      bounds.load_lua("nb", write("nb", "module:get_option_boolean('notbool', true)"), &error));
  EXPECT_NE(error.find("not a boolean"), std::string::npos) << error;
}

TEST_F(LuaTest, KeyValueStore) {
  FakeHost host;
  host.set_kv("juliet@example.org", "notes", "seed", "planted");
  load(host, "kv", R"(
    local store = module:open_store("notes")
    module:hook("test/kv", function()
      store:set("romeo@example.org", "k", "v1")
      local a = store:get("romeo@example.org", "k")
      store:set("romeo@example.org", "k", nil)
      module:log("info", "kv:%s %s %s", a, tostring(store:get("romeo@example.org", "k")),
        store:get("juliet@example.org", "seed"))
      store:set("romeo@example.org", "kept", "yes")
      return true
    end)
  )");
  EXPECT_TRUE(host.fire("test/kv").handled());
  EXPECT_EQ(logged_with(host, "kv:"), Strings{"kv:v1 nil planted"});
  EXPECT_EQ(host.kv("romeo@example.org", "notes", "kept"), "yes");
  host.fail_storage(true);
  FireResult r = host.fire("test/kv");
  EXPECT_TRUE(r.error());
  EXPECT_EQ(r.error_condition, "internal-server-error");
  EXPECT_TRUE(host.logged("storage error store=notes", SZ_LOG_ERROR));
}

// ABI 1.3 from Lua: store:set_async writes at the next commit (run_posted here) and then calls
// back on the shard; an unloaded module's callback never runs.
TEST_F(LuaTest, KeyValueStoreAsyncWrite) {
  FakeHost host;
  load(host, "kva", R"(
    local store = module:open_store("notes")
    module:hook("test/async", function(event)
      local user = event.stanza and "juliet@example.org" or "romeo@example.org"
      store:set_async(user, "k", "v2", function(ok)
        module:log("info", "kva:done %s %s", tostring(ok), store:get(user, "k"))
      end)
      store:set_async(user, "gone", nil)
      module:log("info", "kva:queued %s", tostring(store:get(user, "k")))
      return true
    end)
  )");
  host.set_kv("romeo@example.org", "notes", "gone", "x");
  EXPECT_TRUE(host.fire("test/async").handled());
  EXPECT_EQ(logged_with(host, "kva:"), Strings{"kva:queued nil"});
  host.run_posted();
  EXPECT_EQ(logged_with(host, "kva:"), (Strings{"kva:queued nil", "kva:done true v2"}));
  EXPECT_EQ(host.kv("romeo@example.org", "notes", "k"), "v2");
  EXPECT_FALSE(host.kv("romeo@example.org", "notes", "gone"));

  // Unloaded before the commit: the write lands, the callback does not run.
  EXPECT_TRUE(host.fire("test/async", "<message/>").handled());
  ASSERT_TRUE(host.unload("kva"));
  host.run_posted();
  EXPECT_EQ(host.kv("juliet@example.org", "notes", "k"), "v2");
  EXPECT_EQ(logged_with(host, "kva:done").size(), 1u);

  // Refused by the storage: a Lua error, as store:set.
  load(host, "kva", R"(
    local store = module:open_store("notes")
    module:hook("test/async", function() store:set_async("romeo@example.org", "k", "v3") end)
  )");
  host.fail_storage(true);
  EXPECT_TRUE(host.fire("test/async").error());
  EXPECT_TRUE(host.logged("storage error store=notes", SZ_LOG_ERROR));
}

// ABI 1.4 from Lua: require "stanzad.jid" prepares JIDs as the core does; nil for a malformed
// JID or a value that is no string (an absent attribute).
TEST_F(LuaTest, JidPrepAndPrepBare) {
  FakeHost host;
  load(host, "j", R"(
    local jid = require "stanzad.jid"
    module:hook("test/jid", function(event)
      for _, s in ipairs({ "Juliet@Example.COM/Balcony", "\195\132rger@Example.com/Home",
                           "stra\195\159e@example.com", "bad jid@example.com", "romeo@", "" }) do
        module:log("info", "j:%s|%s", tostring(jid.prep(s)), tostring(jid.prep_bare(s)))
      end
      module:log("info", "j:%s %s", tostring(jid.prep(nil)), tostring(jid.prep_bare(42)))
      return true
    end)
  )");
  EXPECT_TRUE(host.fire("test/jid").handled());
  EXPECT_EQ(logged_with(host, "j:"),
            (Strings{"j:juliet@example.com/Balcony|juliet@example.com",
                     "j:\xC3\xA4rger@example.com/Home|\xC3\xA4rger@example.com",
                     "j:strasse@example.com|strasse@example.com", "j:nil|nil", "j:nil|nil",
                     "j:nil|nil", "j:nil nil"}));
}

// ABI 1.2 from Lua: sessions and their properties, account lookups, key listing.
TEST_F(LuaTest, SessionsPropertiesAndAccounts) {
  FakeHost host;
  host.add_user("juliet@example.org");
  host.add_session("juliet@example.org/balcony", "<presence><show>away</show></presence>", 5);
  host.add_session("juliet@example.org/garden");
  host.set_kv("juliet@example.org", "notes", "b", "2");
  host.set_kv("juliet@example.org", "notes", "a", "1");
  load(host, "s", R"(
    local notes = module:open_store("notes")
    module:hook("test/sessions", function(event)
      module:set_session("juliet@example.org/garden", "s:flag", "on")
      for _, s in ipairs(module:sessions("juliet@example.org")) do
        module:log("info", "s:%s %s %d %s %s", s.jid, tostring(s.available), s.priority,
          s.presence and s.presence:get_child_text("show") or "-",
          tostring(s.properties["s:flag"]))
      end
      module:log("info", "s:exists %s %s", tostring(module:user_exists("juliet@example.org")),
        tostring(module:user_exists("nobody@example.org")))
      module:log("info", "s:keys %s", table.concat(notes:keys("juliet@example.org"), ","))
      module:log("info", "s:owner %d of %d", module:owner_shard("juliet@example.org"), module.shards)
      return true
    end)
  )");
  EXPECT_TRUE(host.fire("test/sessions").handled());
  EXPECT_EQ(logged_with(host, "s:"),
            (Strings{"s:juliet@example.org/balcony true 5 away nil",
                     "s:juliet@example.org/garden false 0 - on", "s:exists true false",
                     "s:keys a,b", "s:owner 0 of 1"}));
  EXPECT_EQ(host.session_property("juliet@example.org/garden", "s:flag"), "on");
}

TEST_F(LuaTest, OfflineQueuePostErrorPayloadAndSessionWrite) {
  FakeHost host;
  load(host, "q", R"(
    local st = require "stanzad.stanza"
    local errors = require "stanzad.errors"
    module:hook("test/push", function(event)
      module:log("info", "q:len %d", module:offline_push("juliet@example.org", event.stanza))
      module:log("info", "q:len %d", module:offline_push("juliet@example.org", "<message id='2'/>"))
      return true
    end)
    module:hook("test/push_async", function(event)
      event:offline_push_async("juliet@example.org", event.stanza)
      event:offline_push_async("juliet@example.org", "<message id='4'/>")
      return true
    end)
    module:hook("test/take", function()
      module:log("info", "q:count %d", module:offline_count("juliet@example.org"))
      for _, m in ipairs(module:offline_take("juliet@example.org")) do
        module:log("info", "q:took %s", m.attr.id)
      end
      module:log("info", "q:count %d", module:offline_count("juliet@example.org"))
      module:post(0, "q/posted", st.stanza("message", { id = "p" }))
      return true
    end)
    module:hook("test/deliver", function()
      module:log("info", "q:delivered %d", module:offline_deliver("juliet@example.org",
        "juliet@example.org/balcony"))
      return true
    end)
    module:hook("q/posted", function(event) module:log("info", "q:posted %s", event.stanza.attr.id) end)
    module:hook("test/refuse", function()
      return errors.new("cancel", "not-acceptable", nil,
        st.stanza("blocked", { xmlns = "urn:xmpp:blocking:errors" }))
    end)
    module:hook("stanza/out", function(event)
      module:log("info", "q:write %s", tostring(event:write(st.stanza("presence", { id = "held" }))))
    end)
  )");
  EXPECT_TRUE(host.fire("test/push", "<message id='1'/>").handled());
  EXPECT_TRUE(host.fire("test/push_async", "<message id='3'/>").handled());
  EXPECT_EQ(2u, host.offline_async_pushes());
  EXPECT_TRUE(host.fire("test/take").handled());
  EXPECT_EQ(logged_with(host, "q:"), (Strings{"q:len 1", "q:len 2", "q:count 4", "q:took 1",
                                              "q:took 2", "q:took 3", "q:took 4", "q:count 0"}));
  host.run_posted();
  EXPECT_TRUE(host.logged("q:posted p"));
  // offline_deliver routes the queue to the full JID and empties it.
  host.clear_sent();
  host.offline("juliet@example.org").push_back("<message from='romeo@example.org/o' id='d'/>");
  EXPECT_TRUE(host.fire("test/deliver").handled());
  EXPECT_TRUE(host.logged("q:delivered 1"));
  ASSERT_EQ(1u, host.sent().size());
  EXPECT_NE(host.sent()[0].find("to='juliet@example.org/balcony'"), std::string::npos)
      << host.sent()[0];
  EXPECT_TRUE(host.offline("juliet@example.org").empty());
  FireResult r = host.fire("test/refuse", "<message/>");
  ASSERT_TRUE(r.error());
  EXPECT_EQ(r.error_payload, Strings{"<blocked xmlns='urn:xmpp:blocking:errors'/>"});
  // With a session the stanza is written there; without one, event:write says so.
  host.fire("stanza/out", "<message id='m'/>", {}, {}, "juliet@example.org/balcony");
  host.fire("stanza/out", "<message id='m'/>");
  EXPECT_EQ(host.written(), Strings{"<presence id='held'/>"});
  EXPECT_TRUE(host.logged("q:write true"));
  EXPECT_TRUE(host.logged("q:write false"));
}

TEST_F(LuaTest, TimersRunOnceOrReArm) {
  FakeHost host;
  load(host, "t", R"(
    local n = 0
    module:add_timer(2, function() module:log("info", "t:once") end)
    module:add_timer(1, function()
      n = n + 1
      module:log("info", "t:every %d", n)
      if n < 3 then return 0.5 end
    end)
    local h = module:add_timer(10, function() module:log("info", "t:stopped") end)
    module:stop_timer(h)
    module:add_timer(3, function() error("timer boom") end)
  )");
  EXPECT_EQ(host.pending_timers(), 3u);
  host.advance(999);
  EXPECT_TRUE(logged_with(host, "t:").empty());
  host.advance(1);
  EXPECT_EQ(logged_with(host, "t:"), Strings{"t:every 1"});
  host.advance(1000);
  EXPECT_EQ(logged_with(host, "t:"), (Strings{"t:every 1", "t:every 2", "t:once", "t:every 3"}));
  host.advance(60000);
  EXPECT_EQ(logged_with(host, "t:").size(), 4u);
  EXPECT_TRUE(host.logged("mod_t.lua:11: timer boom", SZ_LOG_ERROR));
  EXPECT_EQ(host.pending_timers(), 0u);
}

TEST_F(LuaTest, UnloadDropsHandlersAndTimers) {
  FakeHost host;
  load(host, "u", R"(
    module:hook("test/ev", function() module:log("info", "h:u") return true end)
    module:add_timer(1, function() module:log("info", "h:timer") end)
  )");
  load(host, "other", "module:hook('test/ev', function() module:log('info', 'h:other') end)");
  EXPECT_TRUE(host.fire("test/ev").handled());
  EXPECT_TRUE(host.unload("u"));
  EXPECT_EQ(host.hooks().count("test/ev"), 1u);
  EXPECT_TRUE(host.fire("test/ev").passed());
  host.advance(5000);
  EXPECT_EQ(logged_with(host, "h:"), (Strings{"h:u", "h:other"}));
  // Loading it again gives a fresh instance.
  load(host, "u", "module:hook('test/ev', function() return true end)");
  EXPECT_TRUE(host.fire("test/ev").handled());
}

TEST_F(LuaTest, InstancesHaveTheirOwnEnvironment) {
  FakeHost host;
  load(host, "e1",
       "counter = 1; module:hook('test/ev', function() module:log('info', 'e1:%d', counter) end)");
  load(host, "e2",
       "counter = 2; module:hook('test/ev', function() module:log('info', 'e2:%d', counter) end)");
  host.fire("test/ev");
  EXPECT_EQ(logged_with(host, "e1:"), Strings{"e1:1"});
  EXPECT_EQ(logged_with(host, "e2:"), Strings{"e2:2"});
}

TEST_F(LuaTest, FireOwnEventsNestedAndDiscoLists) {
  FakeHost host;
  load(host, "f", R"(
    local st = require "stanzad.stanza"
    module:add_feature("urn:example:f")
    module:add_identity("server", "im", "stanzad")
    module:hook("f/custom", function(event)
      module:log("info", "inner:%s %s", event.name, event.stanza:get_child_text("body"))
      event.stanza.attr.seen = "yes"
      event.scratch = 1  -- a handler's own field does not leak into the next event
      return true
    end)
    module:hook("test/ev", function(event)
      local m = st.message({}, "inside")
      local v = module:fire("f/custom", m)
      local feats = module:features()
      local ids = module:identities()
      module:log("info", "outer:%s %s %s %s %s %s/%s/%s", v, m.attr.seen, event.name,
        tostring(event.scratch), feats[1], ids[1].category, ids[1].type, ids[1].name)
      module:log("info", "none:%s", module:fire("f/nobody"))
    end)
  )");
  EXPECT_TRUE(host.fire("test/ev").passed());
  EXPECT_EQ(logged_with(host, "inner:"), Strings{"inner:f/custom inside"});
  EXPECT_EQ(logged_with(host, "outer:"),
            Strings{"outer:handled yes test/ev nil urn:example:f server/im/stanzad"});
  EXPECT_EQ(logged_with(host, "none:"), Strings{"none:pass"});
  EXPECT_EQ(host.features(), Strings{"urn:example:f"});
  EXPECT_EQ(host.identities(), Strings{"server/im/stanzad"});
}

TEST_F(LuaTest, DispatchAllocatesNothingInLua) {
  FakeHost host;
  load(host, "mem", R"(
    local seen = 0
    module:hook("message/bare", function(event)
      local s = event.stanza
      seen = seen + #s.name + #event.name + #s.attr.type
    end)
    local marks, n = { 0, 0 }, 0
    module:hook("test/gc", function(event)
      if event.stanza then collectgarbage("stop") return true end
      n = n + 1
      marks[n] = collectgarbage("count")
      return true
    end)
    module:hook("test/report", function()
      module:log("info", "kb:%.3f %.3f", marks[1], marks[2])
      return true
    end)
  )");
  host.fire("test/gc", "<x/>");  // stop the collector: every allocation now shows in the count
  host.fire("message/bare", kMsg);
  host.fire("test/gc");
  for (int i = 0; i < 1000; ++i) host.fire("message/bare", kMsg);
  host.fire("test/gc");
  host.fire("test/report");
  auto kb = logged_with(host, "kb:");
  ASSERT_EQ(kb.size(), 1u);
  auto space = kb[0].find(' ');
  EXPECT_EQ(kb[0].substr(3, space - 3), kb[0].substr(space + 1)) << kb[0];
}

TEST_F(LuaTest, ModuleFields) {
  FakeHost host({}, "example.org", 0, 2);
  load(host, "m", R"(
    module:log("info", "m:%s %s %d %d %d %d %d %s", module.name, module.host, module.shard,
      module.priority.guard, module.priority.enrich, module.priority.normal,
      module.priority.deliver, tostring(module:is_local_host("example.org")))
  )");
  EXPECT_EQ(logged_with(host, "m:"), Strings{"m:m example.org 0 1000 500 0 -1000 true"});
  FakeHost global({}, "");
  load(global, "g", "module:log('info', 'g:%s', tostring(module.host))");
  EXPECT_EQ(logged_with(global, "g:"), Strings{"g:nil"});
}

}  // namespace
}  // namespace stanzad::testing
