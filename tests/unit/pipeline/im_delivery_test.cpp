// The delivery plugins through the fake host: offline (C++, XEP-0160/0203/0334), carbons
// (C++, XEP-0280) and csi (Lua, XEP-0352).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include "fake_host.hpp"
#include "plugin/lua_host.hpp"
#include "plugin_loader.hpp"

namespace stanzad::testing {
namespace {

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

bool has_feature(const FakeHost& host, const std::string& var) {
  auto f = host.features();
  return std::find(f.begin(), f.end(), var) != f.end();
}

const std::string romeo_bare = "romeo@example.org";
const std::string juliet_bare = "juliet@example.org";
const std::string juliet = "juliet@example.org/balcony";

std::string chat(const std::string& to, const std::string& body, const std::string& extra = {},
                 const std::string& type = "chat") {
  std::string out = "<message type='" + type + "' from='" + juliet + "' to='" + to + "'>";
  if (!body.empty()) out += "<body>" + body + "</body>";
  return out + extra + "</message>";
}

// ---- offline --------------------------------------------------------------------------------

TEST(OfflinePlugin, StoresAChatMessageWithADelayStamp) {
  FakeHost host;
  ASSERT_TRUE(host.load_cxx(open_plugin("offline")));
  EXPECT_TRUE(has_feature(host, "msgoffline"));
  auto r = host.fire("message/offline", chat(romeo_bare, "wherefore art thou"));
  EXPECT_TRUE(r.handled());
  ASSERT_EQ(1u, host.offline(romeo_bare).size());
  const std::string& stored = host.offline(romeo_bare)[0];
  EXPECT_TRUE(contains(stored, "<body>wherefore art thou</body>"));
  EXPECT_TRUE(contains(stored, "<delay xmlns='urn:xmpp:delay' from='example.org' stamp='20"))
      << stored;
  EXPECT_TRUE(host.sent().empty());
  // Through SDK 1.5's offline_push_async: the shard does not wait for the commit.
  EXPECT_EQ(1u, host.offline_async_pushes());
}

TEST(OfflinePlugin, KeepsWhatMattersAndDropsWhatIsTransient) {
  FakeHost host;
  ASSERT_TRUE(host.load_cxx(open_plugin("offline")));
  const std::string composing = "<composing xmlns='http://jabber.org/protocol/chatstates'/>";
  // Stored: a body, a normal message, a receipt, a body-less message with the store hint.
  EXPECT_TRUE(host.fire("message/offline", chat(romeo_bare, "1")).handled());
  EXPECT_TRUE(host.fire("message/offline", chat(romeo_bare, "2", {}, "normal")).handled());
  EXPECT_TRUE(host.fire("message/offline",
                        chat(romeo_bare, {}, "<received xmlns='urn:xmpp:receipts' id='x'/>"))
                  .handled());
  EXPECT_TRUE(host.fire("message/offline",
                        chat(romeo_bare, {}, composing + "<store xmlns='urn:xmpp:hints'/>"))
                  .handled());
  EXPECT_EQ(4u, host.offline(romeo_bare).size());
  // Dropped silently: a chat state alone, a no-store hint, a carbon copy.
  EXPECT_TRUE(host.fire("message/offline", chat(romeo_bare, {}, composing)).handled());
  EXPECT_TRUE(
      host.fire("message/offline", chat(romeo_bare, "x", "<no-store xmlns='urn:xmpp:hints'/>"))
          .handled());
  EXPECT_TRUE(
      host.fire("message/offline", chat(romeo_bare, {}, "<received xmlns='urn:xmpp:carbons:2'/>"))
          .handled());
  EXPECT_EQ(4u, host.offline(romeo_bare).size());
  // Groupchat is the core's to refuse (service-unavailable).
  EXPECT_TRUE(host.fire("message/offline", chat(romeo_bare, "g", {}, "groupchat")).passed());
  EXPECT_EQ(4u, host.offline(romeo_bare).size());
  EXPECT_TRUE(host.sent().empty());
}

TEST(OfflinePlugin, AFullQueueIsRefusedWithResourceConstraint) {
  FakeHost host({{"offline_max_messages", "2"}});
  ASSERT_TRUE(host.load_cxx(open_plugin("offline")));
  EXPECT_TRUE(host.fire("message/offline", chat(romeo_bare, "1")).handled());
  EXPECT_TRUE(host.fire("message/offline", chat(romeo_bare, "2")).handled());
  auto r = host.fire("message/offline", chat(romeo_bare, "3"));
  EXPECT_TRUE(r.error());
  EXPECT_EQ("resource-constraint", r.error_condition);
  EXPECT_EQ("wait", r.error_type);
  EXPECT_TRUE(contains(r.error_text, "full"));
  EXPECT_EQ(2u, host.offline(romeo_bare).size());
  // Another account has its own quota.
  EXPECT_TRUE(host.fire("message/offline", chat("nurse@example.org", "1")).handled());
  // The plugin counts what it stores instead of reading the queue's length each time; a queue
  // emptied behind its back (stanzactl) is read again before anything is refused.
  host.offline(romeo_bare).clear();
  EXPECT_TRUE(host.fire("message/offline", chat(romeo_bare, "4")).handled());
  EXPECT_TRUE(host.fire("message/offline", chat(romeo_bare, "5")).handled());
  EXPECT_TRUE(host.fire("message/offline", chat(romeo_bare, "6")).error());
  // Delivered, the queue starts again from nothing.
  const std::string phone = romeo_bare + "/phone";
  host.add_session(phone, "<presence/>", 0);
  host.fire("account/available", "<presence from='" + phone + "'/>", phone, {}, phone);
  EXPECT_TRUE(host.offline(romeo_bare).empty());
  EXPECT_TRUE(host.fire("message/offline", chat(romeo_bare, "7")).handled());
  EXPECT_TRUE(host.fire("message/offline", chat(romeo_bare, "8")).handled());
  EXPECT_TRUE(host.fire("message/offline", chat(romeo_bare, "9")).error());
  EXPECT_EQ(2u, host.offline(romeo_bare).size());
}

TEST(OfflinePlugin, DeliversInOrderOnceToTheResourceThatCameOnline) {
  FakeHost host;
  ASSERT_TRUE(host.load_cxx(open_plugin("offline")));
  for (const char* body : {"one", "two", "three"})
    ASSERT_TRUE(host.fire("message/offline", chat(romeo_bare, body)).handled());
  const std::string phone = romeo_bare + "/phone";
  host.add_session(romeo_bare + "/laptop", "<presence/>", 0);
  host.add_session(phone, "<presence/>", 0);
  host.clear_sent();
  auto r = host.fire("account/available", "<presence from='" + phone + "'/>", phone, {}, phone);
  EXPECT_TRUE(r.passed());
  ASSERT_EQ(3u, host.sent().size());
  const char* bodies[] = {"one", "two", "three"};
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(contains(host.sent()[i], std::string("<body>") + bodies[i] + "</body>"));
    EXPECT_TRUE(contains(host.sent()[i], "to='" + phone + "'")) << host.sent()[i];
    EXPECT_TRUE(contains(host.sent()[i], "from='" + juliet + "'"));
    EXPECT_TRUE(contains(host.sent()[i], "urn:xmpp:delay"));
  }
  EXPECT_TRUE(host.offline(romeo_bare).empty());
  // Once: the next resource to come online gets nothing more.
  host.clear_sent();
  host.fire("account/available", "<presence/>", romeo_bare + "/laptop", {}, romeo_bare + "/laptop");
  EXPECT_TRUE(host.sent().empty());
}

TEST(OfflinePlugin, ANegativePriorityResourceGetsNothing) {
  FakeHost host;
  ASSERT_TRUE(host.load_cxx(open_plugin("offline")));
  ASSERT_TRUE(host.fire("message/offline", chat(romeo_bare, "later")).handled());
  const std::string bot = romeo_bare + "/bot";
  host.add_session(bot, "<presence><priority>-1</priority></presence>", -1);
  host.clear_sent();
  host.fire("account/available", "<presence><priority>-1</priority></presence>", bot, {}, bot);
  EXPECT_TRUE(host.sent().empty());
  EXPECT_EQ(1u, host.offline(romeo_bare).size());
}

TEST(OfflinePlugin, AMessageComingBackKeepsItsFirstStamp) {
  FakeHost host;
  ASSERT_TRUE(host.load_cxx(open_plugin("offline")));
  ASSERT_TRUE(host.fire("message/offline", chat(romeo_bare, "again",
                                                "<delay xmlns='urn:xmpp:delay' from='example.org' "
                                                "stamp='2020-01-01T00:00:00Z'/>"))
                  .handled());
  ASSERT_EQ(1u, host.offline(romeo_bare).size());
  const std::string& stored = host.offline(romeo_bare)[0];
  EXPECT_EQ(stored.find("urn:xmpp:delay"), stored.rfind("urn:xmpp:delay")) << stored;
}

// ---- carbons --------------------------------------------------------------------------------

const std::string romeo_a = "romeo@example.org/a";
const std::string romeo_b = "romeo@example.org/b";
const std::string romeo_c = "romeo@example.org/c";

std::string iq_set(const std::string& from, const std::string& payload) {
  return "<iq type='set' id='c1' from='" + from + "' to='" + romeo_bare + "'>" + payload + "</iq>";
}

// Romeo online with a (priority 1) and b (priority 0) carbons-enabled, c (priority 0) not.
void romeo_online(FakeHost& host) {
  ASSERT_TRUE(host.load_cxx(open_plugin("carbons")));
  host.add_session(romeo_a, "<presence><priority>1</priority></presence>", 1);
  host.add_session(romeo_b, "<presence/>", 0);
  host.add_session(romeo_c, "<presence/>", 0);
  for (const auto& r : {romeo_a, romeo_b}) {
    auto v = host.fire("iq-set/bare/urn:xmpp:carbons:2:enable",
                       iq_set(r, "<enable xmlns='urn:xmpp:carbons:2'/>"));
    ASSERT_TRUE(v.handled());
  }
  host.run_posted();  // every shard learns which resources have carbons on
  host.clear_sent();
}

TEST(CarbonsPlugin, EnableAndDisableAreRememberedPerResource) {
  FakeHost host;
  ASSERT_TRUE(host.load_cxx(open_plugin("carbons")));
  EXPECT_TRUE(has_feature(host, "urn:xmpp:carbons:2"));
  host.add_session(romeo_a, "<presence/>");
  auto r = host.fire("iq-set/bare/urn:xmpp:carbons:2:enable",
                     iq_set(romeo_a, "<enable xmlns='urn:xmpp:carbons:2'/>"));
  EXPECT_TRUE(r.handled());
  ASSERT_EQ(1u, host.replies().size());
  EXPECT_TRUE(contains(host.replies()[0], "type='result'"));
  EXPECT_EQ("1", host.session_property(romeo_a, "carbons:enabled").value_or(""));
  r = host.fire("iq-set/bare/urn:xmpp:carbons:2:disable",
                iq_set(romeo_a, "<disable xmlns='urn:xmpp:carbons:2'/>"));
  EXPECT_TRUE(r.handled());
  EXPECT_FALSE(host.session_property(romeo_a, "carbons:enabled"));
  // Nobody enables carbons for someone else's account.
  r = host.fire("iq-set/bare/urn:xmpp:carbons:2:enable",
                iq_set(juliet, "<enable xmlns='urn:xmpp:carbons:2'/>"));
  EXPECT_TRUE(r.error());
  EXPECT_EQ("not-allowed", r.error_condition);
}

TEST(CarbonsPlugin, SentCopiesGoToTheOtherEnabledResources) {
  FakeHost host;
  romeo_online(host);
  auto r = host.fire("stanza/in",
                     "<message type='chat' from='" + romeo_a + "' to='" + juliet +
                         "'><body>neither, fair saint</body></message>",
                     {}, {}, romeo_a);
  EXPECT_TRUE(r.passed());
  EXPECT_TRUE(host.sent().empty());  // made on the owner shard
  host.run_posted();
  ASSERT_EQ(1u, host.sent().size());
  const std::string& carbon = host.sent()[0];
  EXPECT_TRUE(contains(carbon, "from='romeo@example.org' to='" + romeo_b + "'")) << carbon;
  EXPECT_TRUE(contains(carbon,
                       "<sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>"
                       "<message"))
      << carbon;
  EXPECT_TRUE(contains(carbon, "<body>neither, fair saint</body>"));
  EXPECT_TRUE(contains(carbon, "type='chat'"));
}

// Accounts with no carbons-enabled resource cost nothing: no copy, no trip to the owner shard.
TEST(CarbonsPlugin, NoWorkWhenNoOtherResourceHasCarbonsOn) {
  FakeHost host;
  romeo_online(host);
  auto send_from_a = [&] {
    host.fire(
        "stanza/in",
        "<message type='chat' from='" + romeo_a + "' to='" + juliet + "'><body>b</body></message>",
        {}, {}, romeo_a);
    return host.run_posted();
  };
  EXPECT_EQ(1u, send_from_a());  // b has carbons on: the copy is made on the owner shard
  host.fire("session/closed", {}, romeo_b, {}, romeo_b);
  host.remove_session(romeo_b);
  EXPECT_EQ(1u, host.run_posted());  // every shard learns b is gone
  host.clear_sent();
  EXPECT_EQ(0u, send_from_a());
  EXPECT_TRUE(host.sent().empty());
  // Juliet has no resource with carbons on: a message to her is not even looked at.
  host.fire("message/bare", "<message type='chat' from='" + romeo_a + "' to='" + juliet +
                                "'><body>b</body></message>");
  EXPECT_TRUE(host.sent().empty());
}

TEST(CarbonsPlugin, PrivateNoCopyGroupchatAndHeadlineAreNotCopied) {
  FakeHost host;
  romeo_online(host);
  auto out = [&](const std::string& extra, const std::string& type) {
    host.fire("stanza/in",
              "<message type='" + type + "' from='" + romeo_a + "' to='" + juliet +
                  "'><body>b</body>" + extra + "</message>",
              {}, {}, romeo_a);
    host.run_posted();
  };
  out("<private xmlns='urn:xmpp:carbons:2'/>", "chat");
  out("<no-copy xmlns='urn:xmpp:hints'/>", "chat");
  out({}, "groupchat");
  out({}, "headline");
  EXPECT_TRUE(host.sent().empty()) << host.sent()[0];
  // Incoming as well.
  host.fire("message/bare", chat(romeo_bare, "b", "<private xmlns='urn:xmpp:carbons:2'/>"));
  host.fire("message/bare", chat(romeo_bare, "b", {}, "headline"));
  host.fire("message/bare", chat(romeo_bare, "b", {}, "groupchat"));
  host.fire("message/full", chat(romeo_a, {}, "<x xmlns='http://jabber.org/protocol/muc#user'/>"));
  host.fire("message/bare", chat(romeo_bare, {}, {}, "normal"));  // normal without a body
  EXPECT_TRUE(host.sent().empty()) << host.sent()[0];
}

TEST(CarbonsPlugin, ReceivedCopiesGoWhereTheCoreDoesNotDeliver) {
  FakeHost host;
  romeo_online(host);
  // To the bare JID: a (priority 1) gets it from the core; b is enabled and gets a copy.
  auto r = host.fire("message/bare", chat(romeo_bare, "to the bare JID"));
  EXPECT_TRUE(r.passed());
  ASSERT_EQ(1u, host.sent().size());
  EXPECT_TRUE(contains(host.sent()[0], "to='" + romeo_b + "'"));
  EXPECT_TRUE(contains(host.sent()[0], "from='romeo@example.org'"));
  EXPECT_TRUE(contains(host.sent()[0], "<received xmlns='urn:xmpp:carbons:2'><forwarded"));
  EXPECT_TRUE(contains(host.sent()[0], "<body>to the bare JID</body>"));
  // To b's full JID: a gets the copy.
  host.clear_sent();
  host.fire("message/full", chat(romeo_b, "to b"));
  ASSERT_EQ(1u, host.sent().size());
  EXPECT_TRUE(contains(host.sent()[0], "to='" + romeo_a + "'"));
  // To a resource that is gone: the bare JID's rules, so b gets a copy.
  host.clear_sent();
  host.fire("message/full", chat(romeo_bare + "/gone", "to nobody"));
  ASSERT_EQ(1u, host.sent().size());
  EXPECT_TRUE(contains(host.sent()[0], "to='" + romeo_b + "'"));
  // A chat state is copied (type chat), a normal message with a body too.
  host.clear_sent();
  host.fire("message/bare",
            chat(romeo_bare, {}, "<active xmlns='http://jabber.org/protocol/chatstates'/>"));
  host.fire("message/bare", chat(romeo_bare, "n", {}, "normal"));
  EXPECT_EQ(2u, host.sent().size());
}

TEST(CarbonsPlugin, OfflineDeliveriesAndOwnCopiesAreNotCopiedAgain) {
  FakeHost host;
  romeo_online(host);
  host.fire(
      "message/full",
      chat(romeo_a, "stored",
           "<delay xmlns='urn:xmpp:delay' from='example.org' stamp='2026-01-01T00:00:00Z'/>"));
  host.fire("message/full", "<message type='chat' from='romeo@example.org' to='" + romeo_a +
                                "'><received xmlns='urn:xmpp:carbons:2'/></message>");
  EXPECT_TRUE(host.sent().empty()) << host.sent()[0];
}

TEST(CarbonsPlugin, PrivateIsRemovedBeforeDelivery) {
  FakeHost host;
  romeo_online(host);
  // A spy after every handler sees what the core would deliver.
  load_spy(host, "message/bare");
  auto r = host.fire("message/bare",
                     chat(romeo_bare, "secret", "<private xmlns='urn:xmpp:carbons:2'/>"));
  EXPECT_TRUE(r.passed());
  EXPECT_TRUE(host.sent().empty());
  EXPECT_TRUE(host.logged("spy: <message"));
  EXPECT_TRUE(host.logged("<body>secret</body>"));
  EXPECT_FALSE(host.logged("private"));
}

// ---- csi ------------------------------------------------------------------------------------

const std::string phone = "romeo@example.org/phone";

void load_csi(FakeHost& host) {
  plugin::lua::set_runtime_path(std::string(STANZAD_SOURCE_DIR) + "/lua");
  std::string error;
  ASSERT_TRUE(host.load_lua("csi", std::string(STANZAD_SOURCE_DIR) + "/lua/mod_csi.lua", &error))
      << error;
}

FireResult csi(FakeHost& host, const std::string& state) {
  return host.fire("stream/element", "<" + state + " xmlns='urn:xmpp:csi:0'/>", phone, {}, phone);
}

FireResult out(FakeHost& host, const std::string& stanza) {
  return host.fire("stanza/out", stanza, {}, {}, phone);
}

std::string presence_from(const std::string& who) {
  return "<presence from='" + who + "' to='" + phone + "'/>";
}
const std::string composing =
    "<message type='chat' from='" + juliet + "' to='" + phone +
    "'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>";
const std::string with_body =
    "<message type='chat' from='" + juliet + "' to='" + phone + "'><body>hi</body></message>";

TEST(CsiPlugin, OffersTheStreamFeatureAndTakesItsElements) {
  FakeHost host;
  load_csi(host);
  auto f = host.stream_features();
  ASSERT_EQ(1u, f.size());
  EXPECT_EQ("post:<csi xmlns='urn:xmpp:csi:0'/>", f[0]);
  EXPECT_TRUE(csi(host, "inactive").handled());
  EXPECT_TRUE(csi(host, "active").handled());
  EXPECT_TRUE(csi(host, "dormant").passed());  // not ours: the stream ends
  EXPECT_TRUE(
      host.fire("stream/element", "<enable xmlns='urn:xmpp:sm:3'/>", phone, {}, phone).passed());
}

TEST(CsiPlugin, ActiveClientsGetEverythingAtOnce) {
  FakeHost host;
  load_csi(host);
  EXPECT_TRUE(out(host, presence_from(juliet)).passed());
  EXPECT_TRUE(out(host, composing).passed());
  EXPECT_TRUE(host.written().empty());
}

TEST(CsiPlugin, HoldsPresenceAndChatStatesUntilAMessageWithABody) {
  FakeHost host;
  load_csi(host);
  ASSERT_TRUE(csi(host, "inactive").handled());
  EXPECT_TRUE(out(host, presence_from(juliet)).handled());
  EXPECT_TRUE(out(host, composing).handled());
  EXPECT_TRUE(out(host, presence_from("nurse@example.org/n")).handled());
  EXPECT_TRUE(host.written().empty());
  // Important: written after what was held, in order.
  EXPECT_TRUE(out(host, with_body).passed());
  ASSERT_EQ(3u, host.written().size());
  EXPECT_TRUE(contains(host.written()[0], "from='" + juliet + "'"));
  EXPECT_TRUE(contains(host.written()[0], "<presence"));
  EXPECT_TRUE(contains(host.written()[1], "<composing"));
  EXPECT_TRUE(contains(host.written()[2], "nurse@example.org/n"));
  // Still inactive: the next presence is held again.
  EXPECT_TRUE(out(host, presence_from(juliet)).handled());
  EXPECT_EQ(3u, host.written().size());
  // Becoming active flushes.
  EXPECT_TRUE(csi(host, "active").handled());
  EXPECT_EQ(4u, host.written().size());
  EXPECT_TRUE(out(host, presence_from(juliet)).passed());
  EXPECT_EQ(4u, host.written().size());
}

TEST(CsiPlugin, IqsSubscriptionsErrorsAndCarbonsWithBodiesAreImportant) {
  FakeHost host;
  load_csi(host);
  ASSERT_TRUE(csi(host, "inactive").handled());
  EXPECT_TRUE(out(host, "<iq type='get' id='p' from='example.org' to='" + phone +
                            "'><ping xmlns='urn:xmpp:ping'/></iq>")
                  .passed());
  EXPECT_TRUE(
      out(host, "<presence type='subscribe' from='" + juliet + "' to='" + phone + "'/>").passed());
  EXPECT_TRUE(
      out(host, "<message type='error' from='" + juliet + "' to='" + phone + "'/>").passed());
  EXPECT_TRUE(
      out(host, "<message type='chat' from='romeo@example.org' to='" + phone +
                    "'><received xmlns='urn:xmpp:carbons:2'><forwarded "
                    "xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' "
                    "type='chat'><body>copy</body></message></forwarded></received></message>")
          .passed());
  // A carbon of a chat state and a headline are not.
  EXPECT_TRUE(out(host, "<message type='chat' from='romeo@example.org' to='" + phone +
                            "'><sent xmlns='urn:xmpp:carbons:2'><forwarded "
                            "xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' "
                            "type='chat'><paused xmlns='http://jabber.org/protocol/chatstates'/>"
                            "</message></forwarded></sent></message>")
                  .handled());
  EXPECT_TRUE(out(host, "<message type='headline' from='example.org' to='" + phone +
                            "'><body>news</body></message>")
                  .handled());
}

TEST(CsiPlugin, AFullBufferIsFlushed) {
  FakeHost host({{"csi_max_held", "2"}});
  load_csi(host);
  ASSERT_TRUE(csi(host, "inactive").handled());
  EXPECT_TRUE(out(host, presence_from("a@example.org/1")).handled());
  EXPECT_TRUE(out(host, presence_from("b@example.org/1")).handled());
  EXPECT_TRUE(out(host, presence_from("c@example.org/1")).passed());
  ASSERT_EQ(2u, host.written().size());
  EXPECT_TRUE(contains(host.written()[0], "a@example.org/1"));
  EXPECT_TRUE(contains(host.written()[1], "b@example.org/1"));
  EXPECT_TRUE(out(host, presence_from("d@example.org/1")).handled());
}

TEST(CsiPlugin, AtSessionEndPresenceIsDroppedAndMessagesRoutedAgain) {
  FakeHost host;
  load_csi(host);
  ASSERT_TRUE(csi(host, "inactive").handled());
  EXPECT_TRUE(out(host, presence_from(juliet)).handled());
  EXPECT_TRUE(out(host, composing).handled());
  host.fire("session/closed", {}, phone, {}, phone);
  EXPECT_TRUE(host.written().empty());
  ASSERT_EQ(1u, host.sent().size());
  EXPECT_TRUE(contains(host.sent()[0], "<composing"));
  EXPECT_TRUE(contains(host.sent()[0], "to='" + phone + "'"));
  // The state went with the session: a new one with that JID starts active.
  EXPECT_TRUE(out(host, presence_from(juliet)).passed());
}

}  // namespace
}  // namespace stanzad::testing
