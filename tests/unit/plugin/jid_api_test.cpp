// Tests for the JID functions of the plugin C ABI (server/plugin/stanza_api.cpp, ABI 1.4
// jid_prep / jid_prep_bare) and their C++ wrappers (sdk::jid::prep, prep_bare).
#include <gtest/gtest.h>

#include <cstddef>
#include <stanzad/plugin.hpp>
#include <string>
#include <string_view>

#include "fake_host.hpp"
#include "plugin/stanza_api.hpp"
#include "xmpp/jid.hpp"

namespace stanzad::testing {
namespace {

// U+00C4 LATIN CAPITAL LETTER A WITH DIAERESIS, U+00E4 its small letter.
constexpr std::string_view kAergerUpper = "\xC3\x84rger";
constexpr std::string_view kAergerLower = "\xC3\xA4rger";

sz_host_api server_api() {
  sz_host_api a{};
  a.size = sizeof(sz_host_api);
  plugin::fill_stanza_api(a);
  return a;
}

struct Prepared {
  int rc = 99;
  std::string jid;
  std::size_t len = 0;
};

Prepared prep(std::string_view in, bool bare = false, std::size_t cap = 4096) {
  static const sz_host_api api = server_api();
  Prepared p;
  std::string buf(cap, '#');
  p.rc = (bare ? api.jid_prep_bare : api.jid_prep)(sz_str{in.data(), in.size()}, buf.data(), cap,
                                                   &p.len);
  if (p.rc == SZ_JID_OK) p.jid = buf.substr(0, p.len);
  return p;
}

std::string u(std::string_view a, std::string_view b = {}, std::string_view c = {}) {
  return std::string(a) + std::string(b) + std::string(c);
}

TEST(JidPrep, AsciiNodeAndDomainLowercasedResourceKept) {
  Prepared p = prep("Juliet@Example.COM./Balcony");
  ASSERT_EQ(p.rc, SZ_JID_OK);
  EXPECT_EQ(p.jid, "juliet@example.com/Balcony");
  EXPECT_EQ(p.len, p.jid.size());
  p = prep("Juliet@Example.COM/Balcony", true);
  ASSERT_EQ(p.rc, SZ_JID_OK);
  EXPECT_EQ(p.jid, "juliet@example.com");
  EXPECT_EQ(prep("Example.COM").jid, "example.com");
  EXPECT_EQ(prep("example.com/Res", true).jid, "example.com");
}

TEST(JidPrep, NonAsciiIsCaseFoldedAndMappedAsTheCoreDoes) {
  // Nodeprep folds case beyond ASCII: an ASCII-only lowercase would keep the capital Ä.
  EXPECT_EQ(prep(u(kAergerUpper, "@Example.com")).jid, u(kAergerLower, "@example.com"));
  // B.2 maps ß to "ss".
  EXPECT_EQ(prep("stra\xC3\x9F"
                 "e@example.com")
                .jid,
            "strasse@example.com");
  // NFKC: fullwidth letters and U+FF0E FULLWIDTH FULL STOP in the domain.
  EXPECT_EQ(prep("\xEF\xBD\x92\xEF\xBD\x8F\xEF\xBD\x8D\xEF\xBD\x85\xEF\xBD\x8F@"
                 "\xEF\xBC\xA5xample\xEF\xBC\x8E"
                 "com")
                .jid,
            "romeo@example.com");
  // Nameprep keeps a Unicode domain in Unicode (lowercased); its A-label form stays ASCII: they
  // are different JIDs to the core, and so to plugins.
  EXPECT_EQ(prep("B\xC3\x9C"
                 "cher.Example")
                .jid,
            "b\xC3\xBC"
            "cher.example");
  EXPECT_EQ(prep("XN--bcher-kva.example").jid, "xn--bcher-kva.example");
  // Resourceprep maps compatibility characters (U+2163 ROMAN NUMERAL FOUR -> "IV") but keeps
  // case, non-ASCII letters and spaces.
  Prepared p = prep(u("Romeo@Example.com/", kAergerUpper, " \xE2\x85\xA3"));
  EXPECT_EQ(p.jid, u("romeo@example.com/", kAergerUpper, " IV"));
  p = prep(u(kAergerUpper, "@Example.com/", kAergerUpper), true);
  EXPECT_EQ(p.jid, u(kAergerLower, "@example.com"));
}

TEST(JidPrep, SameResultAsTheCoresJidParse) {
  for (std::string in : {std::string("a@b"), u(kAergerUpper, "@Example.com/Home"),
                         std::string("henry\xE2\x85\xA3@example.com"), std::string("[0:0::1]/x"),
                         std::string("\xCE\xA3@EXAMPLE.com")}) {
    auto core = xmpp::Jid::parse(in);
    ASSERT_TRUE(core) << in;
    EXPECT_EQ(prep(in).jid, core->str()) << in;
    EXPECT_EQ(prep(in, true).jid, core->bare_str()) << in;
  }
}

TEST(JidPrep, MalformedInputIsRefusedAndNothingWritten) {
  for (std::string in :
       {std::string(), std::string("@example.com"), std::string("romeo@"),
        std::string("romeo@example.com/"), std::string("ro meo@example.com"),
        std::string("romeo@exa mple.com"), std::string("a@b@c"), std::string("<a>@example.com"),
        std::string("\xFF@example.com"), std::string("ro\0meo@example.com", 18),
        std::string(1024, 'n') + "@example.com", std::string("a@example.com/\x07"),
        std::string("a@example..com")}) {
    for (bool bare : {false, true}) {
      Prepared p = prep(in, bare);
      EXPECT_EQ(p.rc, SZ_JID_MALFORMED) << in;
      EXPECT_EQ(p.len, 0u) << in;
    }
  }
  // A resource must be valid even when only the bare JID is wanted.
  EXPECT_EQ(prep("romeo@example.com/\x07", true).rc, SZ_JID_MALFORMED);
  // NULL with a length of 0 is the empty string.
  static const sz_host_api api = server_api();
  char buf[8];
  EXPECT_EQ(api.jid_prep(sz_str{nullptr, 0}, buf, sizeof buf, nullptr), SZ_JID_MALFORMED);
}

TEST(JidPrep, BufferTooSmallGivesTheNeededSizeAndWritesNothing) {
  static const sz_host_api api = server_api();
  const std::string in = u(kAergerUpper, "@Example.com/Home");  // 22 bytes prepared
  const std::string want = u(kAergerLower, "@example.com/Home");
  std::string buf(want.size() - 1, '#');
  std::size_t len = 0;
  EXPECT_EQ(api.jid_prep(sz_str{in.data(), in.size()}, buf.data(), buf.size(), &len),
            SZ_JID_TOO_SMALL);
  EXPECT_EQ(len, want.size());
  EXPECT_EQ(buf, std::string(want.size() - 1, '#'));
  // Asking for the size only.
  len = 0;
  EXPECT_EQ(api.jid_prep(sz_str{in.data(), in.size()}, nullptr, 0, &len), SZ_JID_TOO_SMALL);
  EXPECT_EQ(len, want.size());
  len = 0;
  EXPECT_EQ(api.jid_prep_bare(sz_str{in.data(), in.size()}, nullptr, 0, &len), SZ_JID_TOO_SMALL);
  EXPECT_EQ(len, want.size() - 5);
  // Exactly the size fits; the byte after is untouched (no NUL is written).
  buf.assign(want.size() + 1, '#');
  EXPECT_EQ(api.jid_prep(sz_str{in.data(), in.size()}, buf.data(), want.size(), &len), SZ_JID_OK);
  EXPECT_EQ(buf, want + "#");
  // `len` may be NULL.
  EXPECT_EQ(api.jid_prep(sz_str{in.data(), in.size()}, buf.data(), 3, nullptr), SZ_JID_TOO_SMALL);
}

TEST(JidPrep, LongestJidFitsTheDocumentedMaximum) {
  std::string in = std::string(1023, 'N') + "@" + std::string(63, 'd') + "." +
                   std::string(63, 'd') + "/" + std::string(1023, 'r');
  Prepared p = prep(in, false, SZ_JID_MAX_BYTES);
  ASSERT_EQ(p.rc, SZ_JID_OK);
  EXPECT_LE(p.len, static_cast<std::size_t>(SZ_JID_MAX_BYTES));
  EXPECT_EQ(prep(std::string(1024, 'r').insert(0, "a@b/")).rc, SZ_JID_MALFORMED);
}

TEST(JidPrep, FakeHostPreparesAsTheServer) {
  FakeHost host;
  const sz_host_api& api = host.api();
  ASSERT_TRUE(SZ_HAS(&api, jid_prep_bare));
  const std::string in = u(kAergerUpper, "@Example.com/Home");
  char buf[64];
  std::size_t len = 0;
  ASSERT_EQ(api.jid_prep(sz_str{in.data(), in.size()}, buf, sizeof buf, &len), SZ_JID_OK);
  EXPECT_EQ(std::string(buf, len), xmpp::Jid::parse(in)->str());
}

// The C++ wrapper, over the same functions a loaded plugin sees.
class JidWrapper : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_ = sdk::detail::api;
    sdk::detail::api = &host_.api();
  }
  void TearDown() override { sdk::detail::api = saved_; }
  FakeHost host_;
  const sz_host_api* saved_ = nullptr;
};

TEST_F(JidWrapper, PrepAndPrepBare) {
  namespace jid = sdk::jid;
  ASSERT_TRUE(jid::has_prep());
  EXPECT_EQ(jid::prep(u(kAergerUpper, "@Example.com/Home")), u(kAergerLower, "@example.com/Home"));
  EXPECT_EQ(jid::prep_bare(u(kAergerUpper, "@Example.com/Home")), u(kAergerLower, "@example.com"));
  EXPECT_EQ(jid::prep("stra\xC3\x9F"
                      "e@example.com"),
            "strasse@example.com");
  EXPECT_EQ(jid::prep("not a jid@example.com"), std::nullopt);
  EXPECT_EQ(jid::prep_bare("romeo@example.com/"), std::nullopt);
  EXPECT_EQ(jid::prep(""), std::nullopt);
}

TEST_F(JidWrapper, GrowsItsBufferWhenPreparationExpands) {
  // U+FDFA (3 bytes) is 18 characters after NFKC: the first guess of input + 16 bytes is short.
  std::string in = "a@b/\xEF\xB7\xBA\xEF\xB7\xBA";
  auto want = xmpp::Jid::parse(in);
  ASSERT_TRUE(want);
  ASSERT_GT(want->str().size(), in.size() + 16);
  EXPECT_EQ(sdk::jid::prep(in), want->str());
}

TEST_F(JidWrapper, AnOlderServerWithoutPrepThrows) {
  sz_host_api old = host_.api();
  old.size = offsetof(sz_host_api, jid_prep);  // a 1.3 server
  sdk::detail::api = &old;
  EXPECT_FALSE(sdk::jid::has_prep());
  EXPECT_THROW(sdk::jid::prep("a@b"), std::runtime_error);
  EXPECT_THROW(sdk::jid::prep_bare("a@b"), std::runtime_error);
}

}  // namespace
}  // namespace stanzad::testing
