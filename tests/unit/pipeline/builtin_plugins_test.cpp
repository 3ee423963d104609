// The built-in C++ plugins (ping, version, disco) and the SDK's C++ example, through the fake
// host, loaded from their shared libraries as the server loads them.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <string>

#include "fake_host.hpp"
#include "plugin_loader.hpp"

namespace stanzad::testing {
namespace {

TEST(BuiltinPlugins, PingAnswersTheServersDomain) {
  FakeHost host({}, "example.org");
  ASSERT_TRUE(host.load_cxx(open_plugin("ping")));
  auto r = host.fire("iq-get/host/urn:xmpp:ping:ping",
                     "<iq type='get' id='p1' from='a@example.org/r' to='example.org'>"
                     "<ping xmlns='urn:xmpp:ping'/></iq>",
                     "a@example.org/r", "example.org");
  EXPECT_TRUE(r.handled());
  ASSERT_EQ(1u, host.replies().size());
  EXPECT_NE(std::string::npos, host.replies()[0].find("type='result'"));
  EXPECT_NE(std::string::npos, host.replies()[0].find("id='p1'"));
}

TEST(BuiltinPlugins, VersionHidesTheOsWhenAsked) {
  FakeHost shown({}, "example.org");
  ASSERT_TRUE(shown.load_cxx(open_plugin("version")));
  FakeHost hidden({{"version_hide_os", "true"}}, "example.org");
  ASSERT_TRUE(hidden.load_cxx(open_plugin("version")));
  const std::string iq =
      "<iq type='get' id='v1' from='a@example.org/r' to='example.org'>"
      "<query xmlns='jabber:iq:version'/></iq>";
  shown.fire("iq-get/host/jabber:iq:version:query", iq, "a@example.org/r", "example.org");
  hidden.fire("iq-get/host/jabber:iq:version:query", iq, "a@example.org/r", "example.org");
  ASSERT_EQ(1u, shown.replies().size());
  ASSERT_EQ(1u, hidden.replies().size());
  EXPECT_NE(std::string::npos, shown.replies()[0].find("<name>stanzad</name>"));
  EXPECT_NE(std::string::npos, shown.replies()[0].find("<os>"));
  EXPECT_EQ(std::string::npos, hidden.replies()[0].find("<os>"));
}

TEST(BuiltinPlugins, DiscoRefusesUnknownNodesAndOtherAccounts) {
  FakeHost host({{"disco_name", "stanzad"}}, "example.org");
  ASSERT_TRUE(host.load_cxx(open_plugin("disco")));
  auto r = host.fire("iq-get/host/http://jabber.org/protocol/disco#info:query",
                     "<iq type='get' id='d1' from='a@example.org/r' to='example.org'>"
                     "<query xmlns='http://jabber.org/protocol/disco#info' node='x'/></iq>",
                     "a@example.org/r", "example.org");
  EXPECT_TRUE(r.error());
  EXPECT_EQ("item-not-found", r.error_condition);
  r = host.fire("iq-get/bare/http://jabber.org/protocol/disco#info:query",
                "<iq type='get' id='d2' from='b@example.org/r' to='a@example.org'>"
                "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
                "b@example.org/r", "a@example.org");
  EXPECT_TRUE(r.error());
  EXPECT_EQ("service-unavailable", r.error_condition);
}

TEST(BuiltinPlugins, AThrowingHandlerBecomesInternalServerError) {
  FakeHost host({}, "example.org");
  ASSERT_TRUE(host.load_cxx(open_plugin("faulty")));
  auto r = host.fire("iq-get/host/urn:example:faulty:query",
                     "<iq type='get' id='f1' from='a@example.org/r' to='example.org'>"
                     "<query xmlns='urn:example:faulty' do='throw'/></iq>",
                     "a@example.org/r", "example.org");
  EXPECT_TRUE(r.error());
  EXPECT_EQ("internal-server-error", r.error_condition);
  EXPECT_TRUE(host.logged("faulty plugin threw on purpose", SZ_LOG_ERROR));
}

TEST(ExamplePlugins, GreeterGreetsAfterItsDelay) {
  FakeHost host({{"greeter_text", "hi there"}, {"greeter_delay_ms", "500"}}, "example.org");
  ASSERT_TRUE(host.load_cxx(open_plugin("disco")));  // its dependency
  ASSERT_TRUE(host.load_cxx(open_plugin("greeter")));
  auto r = host.fire("session/bound", "", "a@example.org/r", "", "a@example.org/r");
  EXPECT_TRUE(r.passed());
  EXPECT_TRUE(host.sent().empty());
  host.advance(500);
  ASSERT_EQ(1u, host.sent().size());
  EXPECT_NE(std::string::npos, host.sent()[0].find("<body>hi there</body>"));
  EXPECT_NE(std::string::npos, host.sent()[0].find("to='a@example.org/r'"));
}

}  // namespace
}  // namespace stanzad::testing
