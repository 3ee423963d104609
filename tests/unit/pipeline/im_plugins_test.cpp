// The IM storage plugins through the fake host: vcard (C++, XEP-0054/0153), private (Lua,
// XEP-0049) and blocking (Lua, XEP-0191).
#include <dlfcn.h>
#include <gtest/gtest.h>

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

// Loads lua/mod_<name>.lua from the source tree.
void load_lua(FakeHost& host, const std::string& name) {
  plugin::lua::set_runtime_path(std::string(STANZAD_SOURCE_DIR) + "/lua");
  std::string error;
  ASSERT_TRUE(
      host.load_lua(name, std::string(STANZAD_SOURCE_DIR) + "/lua/mod_" + name + ".lua", &error))
      << error;
}

// A Lua plugin that logs "spy: <stanza>" for every stanza/in, after every other handler: how a
// test sees what earlier handlers made of the stanza.

const std::string romeo = "romeo@example.org/orchard";
const std::string juliet = "juliet@example.org/balcony";

std::string iq(const std::string& type, const std::string& id, const std::string& from,
               const std::string& to, const std::string& payload) {
  return "<iq type='" + type + "' id='" + id + "' from='" + from + "' to='" + to + "'>" + payload +
         "</iq>";
}

// ---- vcard ----------------------------------------------------------------------------------

std::string vcard_with_photo(const std::string& base64) {
  return "<vCard xmlns='vcard-temp'><FN>Romeo Montague</FN><PHOTO><TYPE>image/png</TYPE>"
         "<BINVAL>" +
         base64 + "</BINVAL></PHOTO></vCard>";
}

std::string base64(const std::string& in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v =
        (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8 | (unsigned char)in[i + 2];
    for (int s = 18; s >= 0; s -= 6) out.push_back(t[(v >> s) & 63]);
    if (out.size() % 77 == 76) out.push_back('\n');  // line-wrapped, as clients send it
  }
  if (i < in.size()) {
    unsigned v = (unsigned char)in[i] << 16;
    if (i + 1 < in.size()) v |= (unsigned char)in[i + 1] << 8;
    out.push_back(t[(v >> 18) & 63]);
    out.push_back(t[(v >> 12) & 63]);
    out.push_back(i + 1 < in.size() ? t[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

TEST(VcardPlugin, AnswersAnEmptyVcardWhenNoneIsStored) {
  FakeHost host({}, "example.org");
  ASSERT_TRUE(host.load_cxx(open_plugin("vcard")));
  auto r = host.fire("iq-get/bare/vcard-temp:vCard",
                     iq("get", "v1", juliet, "romeo@example.org", "<vCard xmlns='vcard-temp'/>"));
  EXPECT_TRUE(r.handled());
  ASSERT_EQ(1u, host.replies().size());
  EXPECT_TRUE(contains(host.replies()[0], "type='result'"));
  EXPECT_TRUE(contains(host.replies()[0], "<vCard xmlns='vcard-temp'/>"));
  auto features = host.features();
  EXPECT_NE(features.end(), std::find(features.begin(), features.end(), "vcard-temp"));
}

TEST(VcardPlugin, TheAccountSetsAndAnyoneReads) {
  FakeHost host({}, "example.org");
  ASSERT_TRUE(host.load_cxx(open_plugin("vcard")));
  auto r = host.fire("iq-set/bare/vcard-temp:vCard",
                     iq("set", "s1", romeo, "romeo@example.org",
                        "<vCard xmlns='vcard-temp'><FN>Romeo</FN><NICKNAME>R</NICKNAME></vCard>"));
  ASSERT_TRUE(r.handled()) << r.error_condition;
  ASSERT_TRUE(host.kv("romeo@example.org", "vcard", "vcard"));
  host.clear_sent();
  r = host.fire("iq-get/bare/vcard-temp:vCard",
                iq("get", "g1", juliet, "romeo@example.org", "<vCard xmlns='vcard-temp'/>"));
  ASSERT_EQ(1u, host.replies().size());
  EXPECT_TRUE(contains(host.replies()[0], "<FN>Romeo</FN><NICKNAME>R</NICKNAME>"));

  // Setting an empty vCard removes it.
  r = host.fire("iq-set/bare/vcard-temp:vCard",
                iq("set", "s2", romeo, "romeo@example.org", "<vCard xmlns='vcard-temp'/>"));
  EXPECT_TRUE(r.handled());
  EXPECT_FALSE(host.kv("romeo@example.org", "vcard", "vcard"));
}

TEST(VcardPlugin, OthersMayNotSetAndSizeIsLimited) {
  FakeHost host({{"vcard_max_bytes", "300"}}, "example.org");
  ASSERT_TRUE(host.load_cxx(open_plugin("vcard")));
  auto r = host.fire("iq-set/bare/vcard-temp:vCard",
                     iq("set", "s1", juliet, "romeo@example.org",
                        "<vCard xmlns='vcard-temp'><FN>Juliet was here</FN></vCard>"));
  EXPECT_TRUE(r.error());
  EXPECT_EQ("forbidden", r.error_condition);
  EXPECT_FALSE(host.kv("romeo@example.org", "vcard", "vcard"));

  r = host.fire("iq-set/bare/vcard-temp:vCard",
                iq("set", "s2", romeo, "romeo@example.org",
                   "<vCard xmlns='vcard-temp'><DESC>" + std::string(400, 'x') + "</DESC></vCard>"));
  EXPECT_TRUE(r.error());
  EXPECT_EQ("not-acceptable", r.error_condition);
  EXPECT_EQ("modify", r.error_type);
}

// XEP-0153: SHA-1 of the decoded photo, checked against FIPS 180 vectors (one block, two
// blocks of padding, many blocks).
TEST(VcardPlugin, StampsThePhotoHashOnOutgoingAvailablePresence) {
  struct Case {
    std::string data, sha1;
  } cases[] = {
      {"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
      {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
       "84983e441c3bd26ebaae4aa1f95129e5e54670f1"},
      {std::string(1000000, 'a'), "34aa973cd4c4daa4f61eeb2bdbad27316534016f"},
  };
  for (const auto& c : cases) {
    FakeHost host({{"vcard_max_bytes", "2000000"}}, "example.org");
    ASSERT_TRUE(host.load_cxx(open_plugin("vcard")));
    load_spy(host, "stanza/in");
    auto r = host.fire("iq-set/bare/vcard-temp:vCard", iq("set", "s1", romeo, "romeo@example.org",
                                                          vcard_with_photo(base64(c.data))));
    ASSERT_TRUE(r.handled()) << r.error_condition;
    r = host.fire("stanza/in", "<presence from='" + romeo + "'><show>chat</show></presence>", romeo,
                  "", romeo);
    EXPECT_TRUE(r.passed());
    EXPECT_TRUE(host.logged("<x xmlns='vcard-temp:x:update'><photo>" + c.sha1 + "</photo></x>"))
        << c.sha1;
  }
}

TEST(VcardPlugin, LeavesTheClientsOwnUpdateAndOtherPresenceAlone) {
  FakeHost host({}, "example.org");
  ASSERT_TRUE(host.load_cxx(open_plugin("vcard")));
  load_spy(host, "stanza/in");
  // No vCard yet: nothing added.
  host.fire("stanza/in", "<presence from='" + romeo + "'/>", romeo, "", romeo);
  EXPECT_FALSE(host.logged("vcard-temp:x:update"));
  host.fire("iq-set/bare/vcard-temp:vCard",
            iq("set", "s1", romeo, "romeo@example.org", vcard_with_photo(base64("abc"))));
  // The client's own element wins.
  host.fire("stanza/in",
            "<presence from='" + romeo +
                "'><x xmlns='vcard-temp:x:update'><photo>mine</photo></x>"
                "</presence>",
            romeo, "", romeo);
  EXPECT_FALSE(host.logged("a9993e36"));
  // Not on unavailable or subscription presence.
  host.fire("stanza/in", "<presence from='" + romeo + "' type='unavailable'/>", romeo, "", romeo);
  host.fire("stanza/in",
            "<presence from='" + romeo + "' to='juliet@example.org' type='subscribe'/>", romeo,
            "juliet@example.org", romeo);
  EXPECT_FALSE(host.logged("a9993e36"));
  // A vCard without PHOTO says "no avatar": an empty <photo/>.
  host.fire("iq-set/bare/vcard-temp:vCard", iq("set", "s2", romeo, "romeo@example.org",
                                               "<vCard xmlns='vcard-temp'><FN>R</FN></vCard>"));
  host.fire("stanza/in", "<presence from='" + romeo + "' to='juliet@example.org'/>", romeo,
            "juliet@example.org", romeo);
  EXPECT_TRUE(host.logged("<x xmlns='vcard-temp:x:update'><photo/></x>"));
}

// ---- private --------------------------------------------------------------------------------

const std::string bookmarks =
    "<storage xmlns='storage:bookmarks'><conference jid='balcony@rooms.example.org' "
    "autojoin='true'/></storage>";

TEST(PrivatePlugin, StoresAndReturnsByNamespaceAndName) {
  FakeHost host({}, "example.org");
  load_lua(host, "private");
  auto features = host.features();
  EXPECT_NE(features.end(), std::find(features.begin(), features.end(), "jabber:iq:private"));

  // Nothing stored: the empty requested element.
  auto r = host.fire("iq-get/bare/jabber:iq:private:query",
                     iq("get", "g0", romeo, "romeo@example.org",
                        "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/>"
                        "</query>"));
  ASSERT_TRUE(r.handled()) << r.error_condition;
  ASSERT_EQ(1u, host.replies().size());
  EXPECT_TRUE(contains(host.replies()[0],
                       "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/>"));

  r = host.fire("iq-set/bare/jabber:iq:private:query",
                iq("set", "s1", romeo, "romeo@example.org",
                   "<query xmlns='jabber:iq:private'>" + bookmarks +
                       "<prefs xmlns='exodus:prefs'><defaultnick>R</defaultnick></prefs></query>"));
  ASSERT_TRUE(r.handled()) << r.error_condition;
  host.clear_sent();
  r = host.fire(
      "iq-get/bare/jabber:iq:private:query",
      iq("get", "g1", romeo, "romeo@example.org",
         "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>"));
  ASSERT_EQ(1u, host.replies().size());
  EXPECT_TRUE(contains(host.replies()[0], "balcony@rooms.example.org"));
  EXPECT_FALSE(contains(host.replies()[0], "defaultnick"));
  host.clear_sent();
  host.fire("iq-get/bare/jabber:iq:private:query",
            iq("get", "g2", romeo, "romeo@example.org",
               "<query xmlns='jabber:iq:private'><prefs xmlns='exodus:prefs'/></query>"));
  ASSERT_EQ(1u, host.replies().size());
  EXPECT_TRUE(contains(host.replies()[0], "<defaultnick>R</defaultnick>"));
}

TEST(PrivatePlugin, RefusesOthersAndMalformedRequests) {
  FakeHost host({}, "example.org");
  load_lua(host, "private");
  auto r = host.fire("iq-set/bare/jabber:iq:private:query",
                     iq("set", "s1", juliet, "romeo@example.org",
                        "<query xmlns='jabber:iq:private'>" + bookmarks + "</query>"));
  EXPECT_EQ("forbidden", r.error_condition);
  r = host.fire(
      "iq-get/bare/jabber:iq:private:query",
      iq("get", "g1", juliet, "romeo@example.org",
         "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>"));
  EXPECT_EQ("forbidden", r.error_condition);
  r = host.fire("iq-set/bare/jabber:iq:private:query",
                iq("set", "s2", romeo, "romeo@example.org", "<query xmlns='jabber:iq:private'/>"));
  EXPECT_EQ("not-acceptable", r.error_condition);
  r = host.fire("iq-get/bare/jabber:iq:private:query",
                iq("get", "g2", romeo, "romeo@example.org", "<query xmlns='jabber:iq:private'/>"));
  EXPECT_EQ("bad-request", r.error_condition);
  r = host.fire("iq-set/bare/jabber:iq:private:query",
                iq("set", "s3", romeo, "romeo@example.org",
                   "<query xmlns='jabber:iq:private'><x>in the private namespace</x></query>"));
  EXPECT_EQ("not-acceptable", r.error_condition);
  r = host.fire("iq-set/bare/jabber:iq:private:query",
                iq("set", "s4", romeo, "romeo@example.org",
                   "<query xmlns='jabber:iq:private'><x xmlns='jabber:client'/></query>"));
  EXPECT_EQ("not-acceptable", r.error_condition);
  EXPECT_TRUE(host.replies().empty());
}

// ---- blocking -------------------------------------------------------------------------------

const std::string juliet_bare = "juliet@example.org";

FireResult block(FakeHost& host, const std::string& items, const std::string& from = juliet,
                 const std::string& action = "block") {
  return host.fire("iq-set/bare/urn:xmpp:blocking:" + action,
                   iq("set", action + "1", from, juliet_bare,
                      "<" + action + " xmlns='urn:xmpp:blocking'>" + items + "</" + action + ">"));
}

FireResult message(FakeHost& host, const std::string& from, const std::string& to,
                   const std::string& type = "chat") {
  std::string kind = to.find('/') == std::string::npos ? "bare" : "full";
  return host.fire("message/" + kind, "<message type='" + type + "' from='" + from + "' to='" + to +
                                          "'><body>hi</body></message>");
}

TEST(BlockingPlugin, BlocksAndListsAndPushes) {
  FakeHost host({}, "example.org");
  load_lua(host, "blocking");
  auto features = host.features();
  EXPECT_NE(features.end(), std::find(features.begin(), features.end(), "urn:xmpp:blocking"));

  // The balcony resource asks for the list: it will get pushes.
  auto r =
      host.fire("iq-get/bare/urn:xmpp:blocking:blocklist",
                iq("get", "l1", juliet, juliet_bare, "<blocklist xmlns='urn:xmpp:blocking'/>"));
  ASSERT_TRUE(r.handled()) << r.error_condition;
  ASSERT_EQ(1u, host.replies().size());
  EXPECT_TRUE(contains(host.replies()[0], "<blocklist xmlns='urn:xmpp:blocking'/>"));
  host.clear_sent();

  r = block(host, "<item jid='Romeo@Example.org'/><item jid='nurse@example.org/kitchen'/>",
            "juliet@example.org/chamber");
  ASSERT_TRUE(r.handled()) << r.error_condition;
  ASSERT_EQ(2u, host.sent().size());  // the result, then the push to the balcony
  EXPECT_TRUE(contains(host.sent()[0], "type='result'"));
  EXPECT_TRUE(contains(host.sent()[1], "to='juliet@example.org/balcony'"));
  EXPECT_TRUE(contains(host.sent()[1],
                       "<block xmlns='urn:xmpp:blocking'><item "
                       "jid='romeo@example.org'/><item "
                       "jid='nurse@example.org/kitchen'/></block>"));
  EXPECT_EQ("romeo@example.org\nnurse@example.org/kitchen",
            host.kv(juliet_bare, "blocking", "list").value_or(""));

  host.clear_sent();
  host.fire("iq-get/bare/urn:xmpp:blocking:blocklist",
            iq("get", "l2", juliet, juliet_bare, "<blocklist xmlns='urn:xmpp:blocking'/>"));
  ASSERT_EQ(1u, host.replies().size());
  EXPECT_TRUE(contains(host.replies()[0], "<item jid='romeo@example.org'/>"));

  // Unblock everyone: an <unblock/> push without items.
  host.clear_sent();
  r = block(host, "", juliet, "unblock");
  ASSERT_TRUE(r.handled());
  ASSERT_EQ(2u, host.sent().size());
  EXPECT_TRUE(contains(host.sent()[1], "<unblock xmlns='urn:xmpp:blocking'/>"));
  EXPECT_FALSE(host.kv(juliet_bare, "blocking", "list"));
}

TEST(BlockingPlugin, RefusesOthersAndBadItems) {
  FakeHost host({}, "example.org");
  load_lua(host, "blocking");
  EXPECT_EQ("forbidden", block(host, "<item jid='romeo@example.org'/>", romeo).error_condition);
  EXPECT_EQ("forbidden",
            host.fire("iq-get/bare/urn:xmpp:blocking:blocklist",
                      iq("get", "l1", romeo, juliet_bare, "<blocklist xmlns='urn:xmpp:blocking'/>"))
                .error_condition);
  EXPECT_EQ("bad-request", block(host, "").error_condition);
  EXPECT_EQ("jid-malformed", block(host, "<item jid='a@b@c'/>").error_condition);
  EXPECT_EQ("jid-malformed", block(host, "<item/>").error_condition);
  EXPECT_FALSE(host.kv(juliet_bare, "blocking", "list"));
}

TEST(BlockingPlugin, DropsOrRefusesWhatABlockedEntitySends) {
  FakeHost host({}, "example.org");
  load_lua(host, "blocking");
  ASSERT_TRUE(block(host, "<item jid='romeo@example.org'/>").handled());

  auto r = message(host, romeo, juliet_bare);
  EXPECT_EQ("service-unavailable", r.error_condition);
  r = message(host, romeo, juliet);
  EXPECT_EQ("service-unavailable", r.error_condition);
  EXPECT_TRUE(message(host, romeo, juliet, "headline").handled());  // dropped silently
  EXPECT_TRUE(
      host.fire("presence/bare", "<presence from='" + romeo + "' to='" + juliet_bare + "'/>")
          .handled());
  EXPECT_TRUE(
      host.fire("presence/full", "<presence from='" + romeo + "' to='" + juliet + "'/>").handled());
  r = host.fire("iq/full", iq("get", "i1", romeo, juliet, "<ping xmlns='urn:xmpp:ping'/>"));
  EXPECT_EQ("service-unavailable", r.error_condition);
  EXPECT_TRUE(
      host.fire("iq/full", "<iq type='result' id='i2' from='" + romeo + "' to='" + juliet + "'/>")
          .handled());
  EXPECT_TRUE(host.fire("message/full", "<message type='error' from='" + romeo + "' to='" + juliet +
                                            "'><error type='cancel'/></message>")
                  .handled());
  // Juliet, who blocks Romeo, appears offline to him: her presence never reaches him, though
  // Romeo himself blocks nobody (the inbound guard's quick path for such recipients must not
  // skip this). Her messages do reach him (the outbound guard refuses them on her shard).
  EXPECT_TRUE(
      host.fire("presence/full", "<presence from='" + juliet + "' to='" + romeo + "'/>").handled());
  EXPECT_TRUE(message(host, juliet, romeo).passed());
  // Others, and Juliet's own resources, pass.
  EXPECT_TRUE(message(host, "nurse@example.org/kitchen", juliet).passed());
  EXPECT_TRUE(message(host, "juliet@example.org/chamber", juliet).passed());
  EXPECT_TRUE(host.replies().size() <= 1u);  // only the block's result: the core bounces errors
}

TEST(BlockingPlugin, MatchesDomainBareAndFullItemsAsXep0016) {
  FakeHost host({}, "example.org");
  load_lua(host, "blocking");
  ASSERT_TRUE(block(host,
                    "<item jid='montague.example'/><item jid='nurse@example.org/kitchen'/>"
                    "<item jid='capulet.example/gate'/>")
                  .handled());
  EXPECT_FALSE(message(host, "tybalt@montague.example/x", juliet).passed());
  EXPECT_FALSE(message(host, "montague.example", juliet).passed());
  EXPECT_FALSE(message(host, "nurse@example.org/kitchen", juliet).passed());
  EXPECT_TRUE(message(host, "nurse@example.org/garden", juliet).passed());
  EXPECT_FALSE(message(host, "capulet.example/gate", juliet).passed());
  EXPECT_TRUE(message(host, "capulet.example/hall", juliet).passed());
  // XEP-0016 §2.1 tries domain/resource for any JID: a user at that domain with that resource.
  EXPECT_FALSE(message(host, "tybalt@capulet.example/gate", juliet).passed());
}

// Items are prepared as the core prepares the sender's address (stringprep, SDK 1.4): a block
// of "Ärger@Example.org" (U+00C4) or of fullwidth letters matches what the core stamps, and
// an unblock given in another form lifts it.
TEST(BlockingPlugin, PreparesNonAsciiItemsAsTheCore) {
  FakeHost host({}, "example.org");
  load_lua(host, "blocking");
  ASSERT_TRUE(block(host,
                    "<item jid='\xC3\x84rger@Example.org'/>"
                    "<item jid='Stra\xC3\x9F"
                    "e@example.org/Home'/>"
                    "<item jid='\xEF\xBD\x94ybalt@\xEF\xBD\x8Dontague.example'/>")
                  .handled());
  EXPECT_EQ("\xC3\xA4rger@example.org\nstrasse@example.org/Home\ntybalt@montague.example",
            host.kv(juliet_bare, "blocking", "list").value_or(""));
  EXPECT_EQ("service-unavailable",
            message(host, "\xC3\xA4rger@example.org/phone", juliet).error_condition);
  EXPECT_EQ("service-unavailable",
            message(host, "strasse@example.org/Home", juliet).error_condition);
  EXPECT_TRUE(message(host, "strasse@example.org/home", juliet).passed());  // resources keep case
  EXPECT_EQ("service-unavailable",
            message(host, "tybalt@montague.example/x", juliet).error_condition);
  // Stringprep refuses what the old ASCII check let through, and the reverse.
  EXPECT_EQ("jid-malformed",
            block(host, "<item jid='a@exa\xEF\xBC\x8Fmple.org'/>").error_condition);
  ASSERT_TRUE(block(host, "<item jid='\xC3\xA4RGER@EXAMPLE.ORG'/>", juliet, "unblock").handled());
  EXPECT_TRUE(message(host, "\xC3\xA4rger@example.org/phone", juliet).passed());
}

// A list stored before SDK 1.4 may hold an entry as the client wrote it: it is prepared as it
// is read, so the block takes effect and the list shows it once.
TEST(BlockingPlugin, EntriesStoredUnpreparedArePreparedWhenRead) {
  FakeHost host({}, "example.org");
  host.set_kv(juliet_bare, "blocking", "list",
              "\xC3\x84rger@example.org\nnurse@example.org\n\xC3\x84RGER@Example.org");
  load_lua(host, "blocking");
  EXPECT_EQ("service-unavailable",
            message(host, "\xC3\xA4rger@example.org/phone", juliet).error_condition);
  host.fire("iq-get/bare/urn:xmpp:blocking:blocklist",
            iq("get", "l1", juliet, juliet_bare, "<blocklist xmlns='urn:xmpp:blocking'/>"));
  ASSERT_EQ(1u, host.replies().size());
  EXPECT_TRUE(contains(host.replies()[0],
                       "<blocklist xmlns='urn:xmpp:blocking'><item jid='\xC3\xA4rger@example.org'/>"
                       "<item jid='nurse@example.org'/></blocklist>"))
      << host.replies()[0];
}

TEST(BlockingPlugin, RefusesWhatTheAccountSendsToABlockedEntity) {
  FakeHost host({}, "example.org");
  load_lua(host, "blocking");
  ASSERT_TRUE(block(host, "<item jid='romeo@example.org'/>").handled());
  host.clear_sent();
  auto r = host.fire("stanza/in",
                     "<message type='chat' id='m1' from='" + juliet +
                         "' to='romeo@example.org/orchard'><body>hi</body></message>",
                     juliet, "romeo@example.org/orchard", juliet);
  EXPECT_TRUE(r.handled());
  ASSERT_EQ(1u, host.replies().size());
  const std::string& bounce = host.replies()[0];
  EXPECT_TRUE(contains(bounce, "type='error'"));
  EXPECT_TRUE(contains(bounce, "<not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"));
  EXPECT_TRUE(contains(bounce, "<blocked xmlns='urn:xmpp:blocking:errors'/>"));

  // That bounce, routed back to Juliet from Romeo's address, passes her inbound guard.
  EXPECT_TRUE(host.fire("message/full", bounce, "romeo@example.org/orchard", juliet).passed());
  // A client cannot forge it: stanza/in strips the marker from what sessions send.
  host.clear_sent();
  r = host.fire("stanza/in",
                "<message type='error' from='romeo@example.org/orchard' to='" + juliet +
                    "'><error type='cancel'><blocked xmlns='urn:xmpp:blocking:errors'/></error>"
                    "</message>",
                "romeo@example.org/orchard", juliet, "romeo@example.org/orchard");
  EXPECT_TRUE(r.passed());

  // To her own account, the server, and unblocked contacts: untouched.
  EXPECT_TRUE(host.fire("stanza/in",
                        "<iq type='get' id='q' from='" + juliet +
                            "'><blocklist xmlns='urn:xmpp:blocking'/></iq>",
                        juliet, "", juliet)
                  .passed());
  EXPECT_TRUE(host.fire("stanza/in", "<message from='" + juliet + "' to='nurse@example.org'/>",
                        juliet, "nurse@example.org", juliet)
                  .passed());
  // Presence from a local account that blocked the recipient does not reach it.
  EXPECT_TRUE(
      host.fire("presence/full", "<presence from='" + juliet + "' to='" + romeo + "'/>").handled());
}

TEST(BlockingPlugin, UnblockRestoresDelivery) {
  FakeHost host({}, "example.org");
  load_lua(host, "blocking");
  ASSERT_TRUE(
      block(host, "<item jid='romeo@example.org'/><item jid='nurse@example.org'/>").handled());
  ASSERT_TRUE(block(host, "<item jid='romeo@example.org'/>", juliet, "unblock").handled());
  EXPECT_TRUE(message(host, romeo, juliet).passed());
  EXPECT_FALSE(message(host, "nurse@example.org/k", juliet).passed());
  EXPECT_EQ("nurse@example.org", host.kv(juliet_bare, "blocking", "list").value_or(""));
}

TEST(BlockingPlugin, ReadsAStoredListAfterRestart) {
  FakeHost host({}, "example.org");
  host.set_kv(juliet_bare, "blocking", "list", "romeo@example.org");
  load_lua(host, "blocking");
  EXPECT_EQ("service-unavailable", message(host, romeo, juliet).error_condition);
}

}  // namespace
}  // namespace stanzad::testing
