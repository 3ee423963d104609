// The roster plugin through the fake host: RFC 6121 rosters (§2), subscriptions (§3),
// broadcast and probes (§4), XEP-0012 last activity. The fake host routes nothing: a test plays
// the contact's side by firing the events the server would fire there.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "fake_host.hpp"
#include "plugin_loader.hpp"

namespace stanzad::testing {
namespace {

const std::string romeo = "romeo@example.org/orchard";
const std::string romeo_bare = "romeo@example.org";
const std::string juliet = "juliet@example.org/balcony";
const std::string juliet_bare = "juliet@example.org";
const std::string nurse_bare = "nurse@example.org";

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// The sent stanzas that contain every one of `needles`.
std::vector<std::string> sent_with(const FakeHost& host, std::vector<std::string> needles) {
  std::vector<std::string> out;
  for (const auto& s : host.sent())
    if (std::all_of(needles.begin(), needles.end(), [&](const auto& n) { return contains(s, n); }))
      out.push_back(s);
  return out;
}

std::string iq(const std::string& type, const std::string& id, const std::string& from,
               const std::string& to, const std::string& payload) {
  return "<iq type='" + type + "' id='" + id + "' from='" + from + "' to='" + to + "'>" + payload +
         "</iq>";
}

class RosterPluginTest : public ::testing::Test {
 protected:
  void SetUp() override { load({}); }

  void load(FakeHost::Options options) {
    host_ = std::make_unique<FakeHost>(std::move(options), "example.org");
    host_->add_user(romeo_bare);
    host_->add_user(juliet_bare);
    host_->add_user(nurse_bare);
    ASSERT_TRUE(host_->load_cxx(open_plugin("roster")));
  }

  FireResult get(const std::string& from, const std::string& ver_attr = {}) {
    return host_->fire("iq-get/bare/jabber:iq:roster:query",
                       iq("get", "g", from, std::string(from.substr(0, from.find('/'))),
                          "<query xmlns='jabber:iq:roster'" + ver_attr + "/>"));
  }
  FireResult set(const std::string& from, const std::string& items) {
    return host_->fire("iq-set/bare/jabber:iq:roster:query",
                       iq("set", "s", from, std::string(from.substr(0, from.find('/'))),
                          "<query xmlns='jabber:iq:roster'>" + items + "</query>"));
  }
  // What the user's session sends: stanza/in, then the task posted to the owner shard.
  FireResult outbound(const std::string& from, const std::string& to, const std::string& type) {
    auto r = host_->fire("stanza/in",
                         "<presence to='" + to + "' type='" + type + "' from='" + from + "'/>",
                         from, to, from);
    host_->run_posted();
    return r;
  }
  // What arrives at the contact's owner shard.
  FireResult inbound(const std::string& from, const std::string& to, const std::string& type) {
    return host_->fire(to.find('/') == std::string::npos ? "presence/bare" : "presence/full",
                       "<presence from='" + from + "' to='" + to + "' type='" + type + "'/>");
  }
  // Romeo subscribes to Juliet, who then goes offline with a status.
  void juliet_leaves_watched_by_romeo() {
    inbound(romeo_bare, juliet_bare, "subscribe");
    outbound(juliet, romeo_bare, "subscribed");
    host_->fire(
        "account/presence",
        "<presence type='unavailable' from='" + juliet + "'><status>gone</status></presence>",
        juliet, {}, juliet);
  }
  // Romeo's roster item for `jid`, as the roster get shows it ("" when absent).
  std::string item(const std::string& user_full, const std::string& jid) {
    host_->clear_sent();
    get(user_full);
    const std::string& reply = host_->replies().at(0);
    auto at = reply.find("<item jid='" + jid + "'");
    if (at == std::string::npos) return {};
    auto end = std::min(reply.find("</item>", at), reply.find("/>", at));
    return reply.substr(at, end - at);
  }

  std::unique_ptr<FakeHost> host_;
};

// ---- the roster (§2) ----------------------------------------------------------------------

TEST_F(RosterPluginTest, AnEmptyRosterWithAVersionThenAnEmptyResultWhenUnchanged) {
  auto r = get(romeo, " ver=''");
  ASSERT_TRUE(r.handled()) << r.error_condition;
  ASSERT_EQ(1u, host_->replies().size());
  EXPECT_TRUE(contains(host_->replies()[0], "<query xmlns='jabber:iq:roster' ver='0'/>"))
      << host_->replies()[0];
  host_->clear_sent();
  get(romeo, " ver='0'");
  ASSERT_EQ(1u, host_->replies().size());
  EXPECT_FALSE(contains(host_->replies()[0], "query")) << host_->replies()[0];  // §2.6.3
  auto features = host_->features();
  EXPECT_NE(features.end(), std::find(features.begin(), features.end(), "jabber:iq:roster"));
  EXPECT_NE(features.end(), std::find(features.begin(), features.end(), "jabber:iq:last"));
  auto stream = host_->stream_features();
  EXPECT_NE(stream.end(), std::find(stream.begin(), stream.end(),
                                    "post:<sub xmlns='urn:xmpp:features:pre-approval'/>"));
  EXPECT_NE(stream.end(), std::find(stream.begin(), stream.end(),
                                    "post:<ver xmlns='urn:xmpp:features:rosterver'/>"));
}

TEST_F(RosterPluginTest, SetIsPushedToInterestedResourcesOnlyWithTheNewVersion) {
  host_->add_session(romeo);
  host_->add_session("romeo@example.org/library");  // never asked for the roster
  get(romeo);
  EXPECT_EQ("1", host_->session_property(romeo, "roster:interested").value_or(""));
  host_->clear_sent();
  auto r =
      set(romeo, "<item jid='Juliet@Example.org' name='Juliet'><group>Capulets</group></item>");
  ASSERT_TRUE(r.handled()) << r.error_condition;
  auto pushes = sent_with(*host_, {"type='set'", "ver='1'", "jid='juliet@example.org'"});
  ASSERT_EQ(1u, pushes.size()) << ::testing::PrintToString(host_->sent());
  EXPECT_TRUE(contains(pushes[0], "to='" + romeo + "'"));
  EXPECT_TRUE(contains(pushes[0], "subscription='none'"));
  EXPECT_TRUE(contains(pushes[0], "<group>Capulets</group>"));
  ASSERT_EQ(1u, host_->replies().size());
  EXPECT_TRUE(contains(host_->replies()[0], "type='result'"));

  // A stale version gets the whole roster; the current one nothing.
  host_->clear_sent();
  get(romeo, " ver='0'");
  EXPECT_TRUE(contains(host_->replies()[0], "ver='1'"));
  EXPECT_TRUE(contains(host_->replies()[0], "name='Juliet'"));

  // Removal: pushed as subscription='remove'; removing again is item-not-found.
  host_->clear_sent();
  r = set(romeo, "<item jid='juliet@example.org' subscription='remove'/>");
  ASSERT_TRUE(r.handled());
  EXPECT_EQ(1u, sent_with(*host_, {"subscription='remove'", "ver='2'"}).size());
  r = set(romeo, "<item jid='juliet@example.org' subscription='remove'/>");
  EXPECT_EQ("item-not-found", r.error_condition);
}

TEST_F(RosterPluginTest, InvalidSetsAreRefusedAsTheRfcSays) {
  auto r = set(romeo, "<item jid='a@example.org'/><item jid='b@example.org'/>");
  EXPECT_EQ("bad-request", r.error_condition);
  r = set(romeo, "");
  EXPECT_EQ("bad-request", r.error_condition);
  r = set(romeo, "<item jid='a@example.org' name='" + std::string(1024, 'n') + "'/>");
  EXPECT_EQ("not-acceptable", r.error_condition);
  r = set(romeo, "<item jid='a@example.org'><group/></item>");
  EXPECT_EQ("not-acceptable", r.error_condition);
  r = set(romeo, "<item jid='a@example.org'><group>x</group><group>x</group></item>");
  EXPECT_EQ("bad-request", r.error_condition);
  r = set(romeo, "<item jid='@example.org'/>");
  EXPECT_EQ("jid-malformed", r.error_condition);
  r = host_->fire("iq-set/bare/jabber:iq:roster:query",
                  iq("set", "x", juliet, romeo_bare,
                     "<query xmlns='jabber:iq:roster'><item jid='a@example.org'/></query>"));
  EXPECT_EQ("forbidden", r.error_condition);
  // §2.1.2.5: a subscription other than "remove" is ignored, as are ask and approved.
  r = set(romeo, "<item jid='a@example.org' subscription='both' ask='subscribe' approved='true'/>");
  ASSERT_TRUE(r.handled()) << r.error_condition;
  std::string a = item(romeo, "a@example.org");
  EXPECT_TRUE(contains(a, "subscription='none'")) << a;
  EXPECT_FALSE(contains(a, "ask=")) << a;
  EXPECT_FALSE(contains(a, "approved=")) << a;
}

// An item's JID is prepared as the core prepares addresses (SDK 1.4 stringprep): "Ärger"
// (U+00C4) is "ärger" in the push and in the stored roster, so the subscription the core routes
// to "ärger@example.org" updates that same item instead of adding a second one.
TEST_F(RosterPluginTest, NonAsciiItemJidsArePreparedAsTheCorePreparesAddresses) {
  const std::string aerger = "\xC3\xA4rger@example.org";
  host_->add_user(aerger);
  host_->add_session(romeo);
  get(romeo);
  host_->clear_sent();
  ASSERT_TRUE(set(romeo, "<item jid='\xC3\x84rger@Example.ORG/Phone' name='A'/>").handled());
  EXPECT_EQ(1u, sent_with(*host_, {"type='set'", "jid='" + aerger + "'"}).size())
      << ::testing::PrintToString(host_->sent());
  ASSERT_TRUE(set(romeo,
                  "<item jid='stra\xC3\x9F"
                  "e@\xEF\xBD\x85xample.org'/>")
                  .handled());
  EXPECT_FALSE(item(romeo, "strasse@example.org").empty());

  outbound(romeo, aerger, "subscribe");  // the core already prepared `to`
  std::string a = item(romeo, aerger);
  EXPECT_TRUE(contains(a, "name='A'")) << a;
  EXPECT_TRUE(contains(a, "ask='subscribe'")) << a;
  const std::string& roster = host_->replies().at(0);  // item() fetched the whole roster
  EXPECT_EQ(roster.find("rger@"), roster.rfind("rger@")) << roster;  // one item, not two

  EXPECT_EQ("jid-malformed", set(romeo, "<item jid='a@exa mple.org'/>").error_condition);
  EXPECT_EQ("jid-malformed",
            set(romeo, "<item jid='\xC3\x84&amp;b@example.org'/>").error_condition);
  EXPECT_EQ("not-allowed",
            set(romeo, "<item jid='ROMEO@\xEF\xBD\x85xample.org'/>").error_condition);
}

// A roster saved before SDK 1.4 may key a non-ASCII contact as the client wrote it: the item is
// read under the prepared JID, so it matches the contact's presence again.
TEST_F(RosterPluginTest, ItemsSavedUnpreparedAreReadUnderThePreparedJid) {
  host_->set_kv(romeo_bare, "roster", "items",
                "<roster xmlns='urn:stanzad:roster' ver='3'><item jid='\xC3\x84rger@example.org' "
                "name='A' subscription='to'/><item jid='juliet@example.org' "
                "subscription='none'/></roster>");
  std::string a = item(romeo, "\xC3\xA4rger@example.org");
  EXPECT_TRUE(contains(a, "name='A'")) << a;
  EXPECT_TRUE(contains(a, "subscription='to'")) << a;
  EXPECT_FALSE(contains(host_->replies().at(0), "\xC3\x84")) << host_->replies().at(0);
  EXPECT_FALSE(item(romeo, "juliet@example.org").empty());
}

TEST_F(RosterPluginTest, TheRosterSizeIsLimited) {
  load({{"roster_max_items", "2"}});
  ASSERT_TRUE(set(romeo, "<item jid='a@example.org'/>").handled());
  ASSERT_TRUE(set(romeo, "<item jid='b@example.org'/>").handled());
  ASSERT_TRUE(set(romeo, "<item jid='b@example.org' name='B'/>").handled());  // an update
  auto r = set(romeo, "<item jid='c@example.org'/>");
  EXPECT_EQ("policy-violation", r.error_condition);
  EXPECT_TRUE(contains(r.error_text, "at most 2")) << r.error_text;
}

// ---- subscriptions (§3) -------------------------------------------------------------------

TEST_F(RosterPluginTest, RomeoSubscribesJulietApprovesAndBothRostersFollow) {
  host_->add_session(romeo, "<presence/>");
  host_->add_session(juliet, "<presence><show>away</show></presence>");
  get(romeo);
  get(juliet);
  host_->clear_sent();

  // Romeo's subscribe: roster item none + ask, pushed; routed from his bare JID.
  auto r = outbound(romeo, juliet_bare, "subscribe");
  EXPECT_TRUE(r.handled());
  EXPECT_EQ(1u, sent_with(*host_, {"to='" + romeo + "'", "ask='subscribe'"}).size());
  ASSERT_EQ(1u, sent_with(*host_, {"<presence", "from='romeo@example.org'",
                                   "to='juliet@example.org'", "type='subscribe'"})
                    .size())
      << ::testing::PrintToString(host_->sent());

  // At Juliet's: stored as pending, delivered (pass), no roster item yet.
  host_->clear_sent();
  r = inbound(romeo_bare, juliet_bare, "subscribe");
  EXPECT_TRUE(r.passed());
  EXPECT_EQ("", item(juliet, "romeo@example.org"));

  // Juliet approves: item "from", pushed; subscribed routed; her presence sent to Romeo.
  host_->clear_sent();
  outbound(juliet, romeo_bare, "subscribed");
  EXPECT_EQ(1u, sent_with(*host_,
                          {"to='" + juliet + "'", "jid='romeo@example.org'", "subscription='from'"})
                    .size());
  EXPECT_EQ(1u, sent_with(*host_, {"type='subscribed'", "to='romeo@example.org'"}).size());
  EXPECT_EQ(1u, sent_with(*host_,
                          {"from='" + juliet + "'", "to='romeo@example.org'", "<show>away</show>"})
                    .size())
      << ::testing::PrintToString(host_->sent());

  // At Romeo's: "to", ask gone, delivered.
  host_->clear_sent();
  r = inbound(juliet_bare, romeo_bare, "subscribed");
  EXPECT_TRUE(r.passed());
  std::string it = item(romeo, "juliet@example.org");
  EXPECT_TRUE(contains(it, "subscription='to'")) << it;
  EXPECT_FALSE(contains(it, "ask=")) << it;

  // An unrequested subscribed is ignored (dropped, nothing changes).
  r = inbound(nurse_bare, romeo_bare, "subscribed");
  EXPECT_TRUE(r.handled());
  EXPECT_EQ("", item(romeo, "nurse@example.org"));

  // A second subscribe from Romeo is answered for Juliet, not delivered.
  host_->clear_sent();
  r = inbound(romeo_bare, juliet_bare, "subscribe");
  EXPECT_TRUE(r.handled());
  EXPECT_EQ(1u, sent_with(*host_, {"from='juliet@example.org'", "type='subscribed'"}).size());

  // Romeo unsubscribes: his item back to none; at Juliet's "from" goes and Romeo gets her
  // unavailable.
  host_->clear_sent();
  outbound(romeo, juliet_bare, "unsubscribe");
  EXPECT_TRUE(contains(item(romeo, "juliet@example.org"), "subscription='none'"));
  host_->clear_sent();
  r = inbound(romeo_bare, juliet_bare, "unsubscribe");
  EXPECT_TRUE(r.passed());
  EXPECT_EQ(1u, sent_with(*host_, {"from='" + juliet + "'", "type='unavailable'"}).size());
  EXPECT_TRUE(contains(item(juliet, "romeo@example.org"), "subscription='none'"));
}

TEST_F(RosterPluginTest, PendingRequestsAreRedeliveredAtInitialPresenceUntilAnswered) {
  auto r = inbound(romeo_bare, juliet_bare, "subscribe");
  EXPECT_TRUE(r.passed());
  host_->add_session(juliet, "<presence/>");
  host_->clear_sent();
  host_->fire("account/available", "<presence from='" + juliet + "'/>", juliet, {}, juliet);
  EXPECT_EQ(
      1u, sent_with(*host_, {"type='subscribe'", "from='romeo@example.org'", "to='" + juliet + "'"})
              .size())
      << ::testing::PrintToString(host_->sent());
  // Denied: nothing more at the next login, and the denial reaches Romeo.
  host_->clear_sent();
  outbound(juliet, romeo_bare, "unsubscribed");
  EXPECT_EQ(1u, sent_with(*host_, {"type='unsubscribed'", "to='romeo@example.org'"}).size());
  host_->clear_sent();
  host_->fire("account/available", "<presence from='" + juliet + "'/>", juliet, {}, juliet);
  EXPECT_TRUE(sent_with(*host_, {"type='subscribe'"}).empty());
  EXPECT_FALSE(host_->kv(juliet_bare, "roster", "items").value_or("").find("romeo") !=
               std::string::npos);
}

TEST_F(RosterPluginTest, PreApprovalAnswersTheLaterRequestAtOnce) {
  host_->add_session(juliet, "<presence/>");
  get(juliet);
  host_->clear_sent();
  outbound(juliet, romeo_bare, "subscribed");  // §3.4: nothing routed yet
  EXPECT_TRUE(sent_with(*host_, {"<presence"}).empty());
  EXPECT_TRUE(contains(item(juliet, "romeo@example.org"), "approved='true'"));
  host_->clear_sent();
  auto r = inbound(romeo_bare, juliet_bare, "subscribe");
  EXPECT_TRUE(r.handled());  // not shown to Juliet
  EXPECT_EQ(1u, sent_with(*host_, {"type='subscribed'", "to='romeo@example.org'"}).size());
  EXPECT_EQ(1u, sent_with(*host_, {"<presence from='" + juliet + "'"}).size())
      << ::testing::PrintToString(host_->sent());
  std::string it = item(juliet, "romeo@example.org");
  EXPECT_TRUE(contains(it, "subscription='from'")) << it;
  EXPECT_FALSE(contains(it, "approved")) << it;
}

TEST_F(RosterPluginTest, SubscriptionsToAccountsThatDoNotExistAreAnsweredUnsubscribed) {
  auto r = inbound(romeo_bare, "ghost@example.org", "subscribe");
  EXPECT_TRUE(r.handled());
  EXPECT_EQ(1u, sent_with(*host_, {"from='ghost@example.org'", "to='romeo@example.org'",
                                   "type='unsubscribed'"})
                    .size());
  EXPECT_FALSE(host_->kv("ghost@example.org", "roster", "items"));
  // Romeo's pending request is cleared by that answer.
  outbound(romeo, "ghost@example.org", "subscribe");
  EXPECT_TRUE(contains(item(romeo, "ghost@example.org"), "ask='subscribe'"));
  inbound("ghost@example.org", romeo_bare, "unsubscribed");
  EXPECT_FALSE(contains(item(romeo, "ghost@example.org"), "ask="));
}

TEST_F(RosterPluginTest, RemovingAContactCancelsBothSubscriptions) {
  host_->add_session(romeo, "<presence/>");
  outbound(romeo, juliet_bare, "subscribe");
  inbound(juliet_bare, romeo_bare, "subscribed");
  inbound(juliet_bare, romeo_bare, "subscribe");
  outbound(romeo, juliet_bare, "subscribed");
  ASSERT_TRUE(contains(item(romeo, "juliet@example.org"), "subscription='both'"));
  host_->clear_sent();
  ASSERT_TRUE(set(romeo, "<item jid='juliet@example.org' subscription='remove'/>").handled());
  EXPECT_EQ(1u, sent_with(*host_, {"type='unsubscribe'", "to='juliet@example.org'"}).size());
  EXPECT_EQ(1u, sent_with(*host_, {"type='unsubscribed'", "to='juliet@example.org'"}).size());
  EXPECT_EQ(1u, sent_with(*host_, {"type='unavailable'", "to='juliet@example.org'"}).size());
}

// ---- broadcast and probes (§4) ------------------------------------------------------------

TEST_F(RosterPluginTest, BroadcastGoesToSubscribersOnlyAndIdleTimesPassUntouched) {
  inbound(juliet_bare, romeo_bare, "subscribe");
  outbound(romeo, juliet_bare, "subscribed");  // Juliet: from Romeo's point of view, "from"
  outbound(romeo, nurse_bare, "subscribe");    // the nurse: none + ask
  host_->add_session(romeo, "<presence/>");
  host_->clear_sent();
  const std::string presence =
      "<presence from='" + romeo +
      "'><show>away</show><idle xmlns='urn:xmpp:idle:1' since='1969-07-21T02:56:15Z'/></presence>";
  host_->fire("account/presence", presence, romeo, {}, romeo);
  auto to_juliet = sent_with(*host_, {"to='juliet@example.org'"});
  ASSERT_EQ(1u, to_juliet.size()) << ::testing::PrintToString(host_->sent());
  EXPECT_TRUE(
      contains(to_juliet[0], "<idle xmlns='urn:xmpp:idle:1' since='1969-07-21T02:56:15Z'/>"))
      << to_juliet[0];
  EXPECT_TRUE(sent_with(*host_, {"to='nurse@example.org'"}).empty());
}

TEST_F(RosterPluginTest, InitialPresenceProbesTheContactsTheUserIsSubscribedTo) {
  outbound(romeo, juliet_bare, "subscribe");
  inbound(juliet_bare, romeo_bare, "subscribed");
  outbound(romeo, nurse_bare, "subscribe");  // still pending: no probe
  host_->add_session(romeo, "<presence/>");
  host_->clear_sent();
  host_->fire("account/available", "<presence from='" + romeo + "'/>", romeo, {}, romeo);
  auto probes = sent_with(*host_, {"type='probe'"});
  ASSERT_EQ(1u, probes.size()) << ::testing::PrintToString(host_->sent());
  EXPECT_TRUE(contains(probes[0], "to='juliet@example.org'"));
  EXPECT_TRUE(contains(probes[0], "from='" + romeo + "'"));
}

TEST_F(RosterPluginTest, ProbesAreAnsweredOnlyForSubscribers) {
  inbound(romeo_bare, juliet_bare, "subscribe");
  outbound(juliet, romeo_bare, "subscribed");  // Romeo may see Juliet
  host_->add_session(juliet, "<presence><status>on the balcony</status></presence>");
  host_->add_session("juliet@example.org/tomb");  // bound, not available
  host_->clear_sent();
  auto r = host_->fire("presence/bare",
                       "<presence type='probe' from='" + romeo + "' to='" + juliet_bare + "'/>");
  EXPECT_TRUE(r.handled());
  ASSERT_EQ(1u, host_->sent().size()) << ::testing::PrintToString(host_->sent());
  EXPECT_TRUE(contains(host_->sent()[0], "on the balcony"));
  EXPECT_TRUE(contains(host_->sent()[0], "to='" + romeo + "'"));

  // The nurse is not subscribed: she learns nothing but "unsubscribed".
  host_->clear_sent();
  host_->fire("presence/bare",
              "<presence type='probe' from='nurse@example.org/n' to='" + juliet_bare + "'/>");
  ASSERT_EQ(1u, host_->sent().size());
  EXPECT_TRUE(contains(host_->sent()[0], "type='unsubscribed'"));
  EXPECT_FALSE(contains(host_->sent()[0], "balcony"));

  // Juliet goes offline with a status: the probe gets unavailable, the status and when.
  host_->remove_session(juliet);
  host_->fire(
      "account/presence",
      "<presence type='unavailable' from='" + juliet + "'><status>asleep</status></presence>",
      juliet, {}, juliet);
  host_->clear_sent();
  host_->fire("presence/bare",
              "<presence type='probe' from='" + romeo + "' to='" + juliet_bare + "'/>");
  ASSERT_EQ(1u, host_->sent().size());
  EXPECT_TRUE(contains(host_->sent()[0], "type='unavailable'"));
  EXPECT_TRUE(contains(host_->sent()[0], "<status>asleep</status>"));
  EXPECT_TRUE(contains(host_->sent()[0], "<delay xmlns='urn:xmpp:delay'"));
}

// ---- last activity (XEP-0012) -------------------------------------------------------------

TEST_F(RosterPluginTest, LastActivityForSubscribersAndTheUserOnly) {
  juliet_leaves_watched_by_romeo();
  auto ask = [&](const std::string& from) {
    host_->clear_sent();
    return host_->fire("iq-get/bare/jabber:iq:last:query",
                       iq("get", "l", from, juliet_bare, "<query xmlns='jabber:iq:last'/>"));
  };
  auto r = ask(romeo);
  ASSERT_TRUE(r.handled()) << r.error_condition;
  EXPECT_TRUE(contains(host_->replies().at(0), "seconds='0'>gone</query>") ||
              contains(host_->replies().at(0), "seconds='1'>gone</query>"))
      << host_->replies().at(0);
  r = ask(juliet);
  EXPECT_TRUE(r.handled());
  r = ask("nurse@example.org/n");
  EXPECT_EQ("forbidden", r.error_condition);
  EXPECT_EQ("auth", r.error_type);
  // Online: 0 seconds, no text.
  host_->add_session(juliet, "<presence/>");
  r = ask(romeo);
  EXPECT_TRUE(contains(host_->replies().at(0), "<query xmlns='jabber:iq:last' seconds='0'/>"))
      << host_->replies().at(0);
  // The server's uptime.
  host_->clear_sent();
  r = host_->fire("iq-get/host/jabber:iq:last:query",
                  iq("get", "u", romeo, "example.org", "<query xmlns='jabber:iq:last'/>"));
  EXPECT_TRUE(r.handled());
  EXPECT_TRUE(contains(host_->replies().at(0), "seconds='"));
}

TEST_F(RosterPluginTest, DeletedAccountsLeaveNothingAndAreNotWrittenBack) {
  set(romeo, "<item jid='juliet@example.org'/>");
  host_->fire("account/presence", "<presence type='unavailable' from='" + romeo + "'/>", romeo, {},
              romeo);
  host_->run_posted();  // the last-activity write commits
  ASSERT_TRUE(host_->kv(romeo_bare, "roster", "items"));
  ASSERT_TRUE(host_->kv(romeo_bare, "roster", "last"));
  host_->remove_user(romeo_bare);
  host_->fire("user/deleted", {}, romeo_bare, romeo_bare);
  EXPECT_FALSE(host_->kv(romeo_bare, "roster", "items"));
  EXPECT_FALSE(host_->kv(romeo_bare, "roster", "last"));
  // The deleted account's session ends afterwards: no last-seen is written back.
  host_->fire("account/presence", "<presence type='unavailable' from='" + romeo + "'/>", romeo, {},
              romeo);
  host_->run_posted();
  EXPECT_FALSE(host_->kv(romeo_bare, "roster", "last"));
}

// Each logout's last activity is queued for the next group commit (kv_set_async) instead of
// holding the shard until its own commit; until it commits the plugin answers from memory.
TEST_F(RosterPluginTest, LastActivityIsReadBackBeforeItsWriteCommits) {
  juliet_leaves_watched_by_romeo();
  EXPECT_FALSE(host_->kv(juliet_bare, "roster", "last"));  // queued, not committed yet
  auto ask = [&] {
    host_->clear_sent();
    auto r = host_->fire("iq-get/bare/jabber:iq:last:query",
                         iq("get", "l", romeo, juliet_bare, "<query xmlns='jabber:iq:last'/>"));
    EXPECT_TRUE(r.handled()) << r.error_condition;
    return host_->replies().empty() ? std::string() : host_->replies().at(0);
  };
  EXPECT_TRUE(contains(ask(), ">gone</query>"));
  // A probe reads it too (the unavailable presence with its status and delay).
  host_->clear_sent();
  host_->fire("presence/bare",
              "<presence type='probe' from='" + romeo + "' to='" + juliet_bare + "'/>");
  ASSERT_FALSE(host_->sent().empty());
  EXPECT_TRUE(contains(host_->sent().back(), "<status>gone</status>")) << host_->sent().back();
  host_->run_posted();  // committed: stored, and read from storage from now on
  ASSERT_TRUE(host_->kv(juliet_bare, "roster", "last"));
  EXPECT_NE(std::string::npos, host_->kv(juliet_bare, "roster", "last")->find("\ngone"));
  EXPECT_TRUE(contains(ask(), ">gone</query>"));
}

TEST_F(RosterPluginTest, DeletingAnOnlineAccountTellsItsContacts) {
  outbound(romeo, juliet_bare, "subscribe");
  inbound(juliet_bare, romeo_bare, "subscribed");
  inbound(juliet_bare, romeo_bare, "subscribe");
  outbound(romeo, juliet_bare, "subscribed");
  host_->add_session(romeo, "<presence/>");
  host_->fire("account/presence", "<presence from='" + romeo + "'/>", romeo, {}, romeo);
  host_->remove_user(romeo_bare);
  host_->clear_sent();
  host_->fire("user/deleted", {}, romeo_bare, romeo_bare);
  EXPECT_EQ(1u, sent_with(*host_,
                          {"type='unavailable'", "from='" + romeo + "'", "to='juliet@example.org'"})
                    .size())
      << ::testing::PrintToString(host_->sent());
  EXPECT_EQ(1u, sent_with(*host_, {"type='unsubscribed'", "to='juliet@example.org'"}).size());
  EXPECT_EQ(1u, sent_with(*host_, {"type='unsubscribe'", "to='juliet@example.org'"}).size());
  EXPECT_FALSE(host_->kv(romeo_bare, "roster", "items"));
}

}  // namespace
}  // namespace stanzad::testing
