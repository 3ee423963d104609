// Tests for the built-in Lua plugins (lua/mod_*.lua) and the SDK's Lua example.
#include <gtest/gtest.h>

#include <regex>

#include "lua_test_util.hpp"

namespace stanzad::testing {
namespace {

TEST_F(LuaTest, TimeAnswersEntityTime) {
  FakeHost host;
  std::string error;
  ASSERT_TRUE(host.load_lua("time", source_path("lua/mod_time.lua"), &error)) << error;
  EXPECT_EQ(host.features(), std::vector<std::string>{"urn:xmpp:time"});
  FireResult r = host.fire("iq-get/host/urn:xmpp:time:time",
                           "<iq type='get' id='t1' from='romeo@example.org/orchard' "
                           "to='example.org'><time xmlns='urn:xmpp:time'/></iq>");
  EXPECT_TRUE(r.handled());
  ASSERT_EQ(host.replies().size(), 1u);
  static const std::regex expected(
      "<iq from='example.org' id='t1' to='romeo@example.org/orchard' type='result'>"
      "<time xmlns='urn:xmpp:time'><tzo>[+-]\\d\\d:\\d\\d</tzo>"
      "<utc>\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ</utc></time></iq>");
  EXPECT_TRUE(std::regex_match(host.replies()[0], expected)) << host.replies()[0];
}

TEST_F(LuaTest, BodyLimitRefusesLongBodies) {
  FakeHost host({{"body_limit_max_chars", "5"}});
  std::string error;
  ASSERT_TRUE(host.load_lua("body_limit", source_path("lua/mod_body_limit.lua"), &error)) << error;
  EXPECT_TRUE(host.requested_options().count("body_limit_max_chars"));
  // Five characters of two bytes each: counted as characters, not bytes.
  EXPECT_TRUE(host.fire("message/bare",
                        "<message to='juliet@example.org' from='romeo@example.org/o'>"
                        "<body>\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9</body></message>")
                  .passed());
  EXPECT_TRUE(host.fire("message/full", "<message to='juliet@example.org/b'/>").passed());
  FireResult r = host.fire("message/full",
                           "<message to='juliet@example.org/b' from='romeo@example.org/o'>"
                           "<body>toolong</body></message>");
  ASSERT_TRUE(r.error());
  EXPECT_EQ(r.error_condition, "policy-violation");
  EXPECT_EQ(r.error_type, "modify");
  EXPECT_EQ(r.error_text, "message body too long");
  EXPECT_TRUE(host.logged("body refused chars=7 from=romeo@example.org/o"));

  FakeHost defaults;
  ASSERT_TRUE(defaults.load_lua("body_limit", source_path("lua/mod_body_limit.lua"), &error));
  EXPECT_TRUE(defaults
                  .fire("message/bare", "<message to='juliet@example.org'><body>" +
                                            std::string(10000, 'a') + "</body></message>")
                  .passed());
  EXPECT_TRUE(defaults
                  .fire("message/bare", "<message to='juliet@example.org'><body>" +
                                            std::string(10001, 'a') + "</body></message>")
                  .error());

  FakeHost zero({{"body_limit_max_chars", "0"}});
  EXPECT_FALSE(zero.load_lua("body_limit", source_path("lua/mod_body_limit.lua"), &error));
  EXPECT_NE(error.find("mod_body_limit.lua:4:"), std::string::npos) << error;
}

TEST_F(LuaTest, HelloExampleRepliesAndCounts) {
  FakeHost host({{"hello_greeting", "hi"}});
  std::string error;
  ASSERT_TRUE(host.load_lua("hello", source_path("sdk/examples/lua/mod_hello.lua"), &error))
      << error;
  const std::string hello =
      "<message to='example.org' from='romeo@example.org/orchard'><body>hello</body></message>";
  EXPECT_TRUE(host.fire("message/host", hello).handled());
  EXPECT_TRUE(host.fire("message/host", hello).handled());
  EXPECT_TRUE(host.fire("message/host",
                        "<message to='example.org' from='romeo@example.org/o'><body>bye</body>"
                        "</message>")
                  .passed());
  ASSERT_EQ(host.replies().size(), 2u);
  EXPECT_EQ(host.replies()[1],
            "<message type='chat' to='romeo@example.org/orchard' from='example.org'><body>hi, "
            "romeo@example.org (2 times)</body></message>");
  EXPECT_EQ(host.kv("romeo@example.org", "hello", "count"), "2");
}

}  // namespace
}  // namespace stanzad::testing
