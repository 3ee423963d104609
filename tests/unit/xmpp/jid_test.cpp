// tests/unit/xmpp/jid_test.cpp: JID parsing and preparation, RFC 7622 §3.5 examples.
#include "xmpp/jid.hpp"

#include <gtest/gtest.h>
#include <stringprep.h>

#include <string>
#include <unordered_set>

namespace stanzad::xmpp {
namespace {

struct Valid {
  const char* in;
  const char* node;
  const char* domain;
  const char* resource;
  const char* full;
};

class JidValid : public ::testing::TestWithParam<Valid> {};

TEST_P(JidValid, ParsesAndNormalizes) {
  const Valid& v = GetParam();
  auto j = Jid::parse(v.in);
  ASSERT_TRUE(j) << v.in;
  EXPECT_EQ(j->node(), v.node);
  EXPECT_EQ(j->domain(), v.domain);
  EXPECT_EQ(j->resource(), v.resource);
  EXPECT_EQ(j->str(), v.full);
  // Normalization is idempotent.
  auto again = Jid::parse(j->str());
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *j);
}

INSTANTIATE_TEST_SUITE_P(
    Rfc7622, JidValid,
    ::testing::Values(
        Valid{"juliet@example.com", "juliet", "example.com", "", "juliet@example.com"},
        Valid{"juliet@example.com/foo", "juliet", "example.com", "foo", "juliet@example.com/foo"},
        Valid{"juliet@example.com/foo bar", "juliet", "example.com", "foo bar",
              "juliet@example.com/foo bar"},
        Valid{"juliet@example.com/foo@bar", "juliet", "example.com", "foo@bar",
              "juliet@example.com/foo@bar"},
        Valid{"foo\\20bar@example.com", "foo\\20bar", "example.com", "", "foo\\20bar@example.com"},
        Valid{"fussball@example.com", "fussball", "example.com", "", "fussball@example.com"},
        Valid{"fu\xC3\x9F"
              "ball@example.com",
              "fussball", "example.com", "", "fussball@example.com"},  // ß -> ss
        Valid{"\xCF\x80@example.com", "\xCF\x80", "example.com", "", "\xCF\x80@example.com"},
        Valid{"\xCE\xA3@example.com", "\xCF\x83", "example.com", "", "\xCF\x83@example.com"},
        Valid{"king@example.com/\xE2\x99\x9A", "king", "example.com", "\xE2\x99\x9A",
              "king@example.com/\xE2\x99\x9A"},
        Valid{"example.com", "", "example.com", "", "example.com"},
        Valid{"example.com/foobar", "", "example.com", "foobar", "example.com/foobar"},
        Valid{"a.example.com/b@example.net", "", "a.example.com", "b@example.net",
              "a.example.com/b@example.net"},
        // Stringprep (unlike PRECIS) maps compatibility characters: U+2163 -> "iv".
        Valid{"henry\xE2\x85\xA3@example.com", "henryiv", "example.com", "", "henryiv@example.com"},
        Valid{"Juliet@EXAMPLE.Com/Balcony", "juliet", "example.com", "Balcony",
              "juliet@example.com/Balcony"},
        Valid{"juliet@example.com./x", "juliet", "example.com", "x", "juliet@example.com/x"},
        Valid{"juliet@127.0.0.1", "juliet", "127.0.0.1", "", "juliet@127.0.0.1"},
        Valid{"juliet@[0:0::1]/r", "juliet", "[::1]", "r", "juliet@[::1]/r"},
        Valid{"x@[2001:DB8::1]", "x", "[2001:db8::1]", "", "x@[2001:db8::1]"},
        Valid{"room@muc.example.com/\xF0\x9F\x98\x80", "room", "muc.example.com",
              "\xF0\x9F\x98\x80", "room@muc.example.com/\xF0\x9F\x98\x80"},  // emoji nick
        Valid{"r\xC3\xA9sum\xC3\xA9@\xC3\x89XAMPLE.com", "r\xC3\xA9sum\xC3\xA9",
              "\xC3\xA9xample.com", "", "r\xC3\xA9sum\xC3\xA9@\xC3\xA9xample.com"},
        // U+3002 IDEOGRAPHIC FULL STOP separates labels.
        Valid{"\xC3\xA9xample\xE3\x80\x82"
              "com",
              "", "\xC3\xA9xample.com", "", "\xC3\xA9xample.com"},
        Valid{"a@b/c/d", "a", "b", "c/d", "a@b/c/d"},
        Valid{"_muc.example.com", "", "_muc.example.com", "", "_muc.example.com"}),
    [](const ::testing::TestParamInfo<Valid>& info) {
      return "case" + std::to_string(info.index);
    });

class JidInvalid : public ::testing::TestWithParam<std::string> {};

TEST_P(JidInvalid, IsRejected) { EXPECT_FALSE(Jid::parse(GetParam())) << GetParam(); }

INSTANTIATE_TEST_SUITE_P(
    Rfc7622, JidInvalid,
    ::testing::Values(std::string("\"juliet\"@example.com"), std::string("foo bar@example.com"),
                      std::string("juliet<@example.com"), std::string("ju:liet@example.com"),
                      std::string("@example.com/"), std::string("@example.com"),
                      std::string("juliet@/foo"), std::string("juliet@"),
                      std::string("juliet@example.com/"), std::string(""), std::string("/foo"),
                      std::string("a@b@c"), std::string("example..com"), std::string(".com"),
                      std::string("."), std::string("example.com.."), std::string("exa mple.com"),
                      std::string("example.com/\x01"), std::string("a\x7f@example.com"),
                      std::string("a@example.com/a\x7f"), std::string("a\0b@example.com", 15),
                      std::string("a@exa\0mple.com", 14), std::string("a@example.com/\0", 15),
                      std::string("\xC3\x28@example.com"),
                      std::string("\xED\xA0\x80@example.com"),  // surrogate
                      std::string("\xC0\xAF@example.com"),      // overlong '/'
                      std::string("a@example.com/\xFF"), std::string("a@[::1"),
                      std::string("a@[not:an:ip]"), std::string("a@[1.2.3.4]"), std::string("a@[]"),
                      // U+FF20 FULLWIDTH COMMERCIAL AT maps to '@' under NFKC.
                      std::string("a\xEF\xBC\xA0x@example.com"),
                      std::string("a@exa\xEF\xBC\x8Fmple.com"),  // fullwidth solidus
                      std::string("\xE2\x80\x8B@example.com")    // only a zero-width space
                      ),
    [](const ::testing::TestParamInfo<std::string>& info) {
      return "case" + std::to_string(info.index);
    });

TEST(Jid, PartLengthLimits) {
  std::string n1023(1023, 'a');
  std::string n1024(1024, 'a');
  EXPECT_TRUE(Jid::parse(n1023 + "@example.com"));
  EXPECT_FALSE(Jid::parse(n1024 + "@example.com"));
  EXPECT_TRUE(Jid::parse("a@example.com/" + n1023));
  EXPECT_FALSE(Jid::parse("a@example.com/" + n1024));
  // Non-ASCII path: 512 two-byte characters are 1024 bytes.
  std::string pi512;
  for (int i = 0; i < 512; ++i) pi512 += "\xCF\x80";
  EXPECT_FALSE(Jid::parse(pi512 + "@example.com"));
  EXPECT_TRUE(Jid::parse(pi512.substr(2) + "@example.com"));

  std::string label63(63, 'a');
  std::string label64(64, 'a');
  EXPECT_TRUE(Jid::parse("x@" + label63 + ".com"));
  EXPECT_FALSE(Jid::parse("x@" + label64 + ".com"));
  // 16 labels of 63 plus 15 dots is 1023 bytes; one more character is too long.
  std::string domain = label63;
  for (int i = 0; i < 15; ++i) domain += "." + label63;
  ASSERT_EQ(domain.size(), 1023u);
  EXPECT_TRUE(Jid::prep_domain(domain));
  EXPECT_FALSE(Jid::prep_domain(domain.substr(1) + ".ab"));
  // A Unicode label of 62 bytes whose A-label ("xn--" + punycode) exceeds 63 bytes.
  EXPECT_FALSE(Jid::prep_domain(std::string(60, 'a') + "\xC3\xA9.com"));
  EXPECT_TRUE(Jid::prep_domain(std::string(50, 'a') + "\xC3\xA9.com"));
}

TEST(Jid, PrepFunctions) {
  EXPECT_EQ(Jid::prep_node("JuLiEt"), "juliet");
  EXPECT_FALSE(Jid::prep_node(""));
  EXPECT_FALSE(Jid::prep_node("a@b"));
  EXPECT_FALSE(Jid::prep_node("a/b"));
  EXPECT_FALSE(Jid::prep_node("a&b"));
  EXPECT_FALSE(Jid::prep_node("a'b"));
  EXPECT_EQ(Jid::prep_domain("Example.COM."), "example.com");
  EXPECT_FALSE(Jid::prep_domain(""));
  EXPECT_FALSE(Jid::prep_domain("example.com.."));
  EXPECT_EQ(Jid::prep_resource("Foo Bar"), "Foo Bar");
  EXPECT_FALSE(Jid::prep_resource(""));
  // Soft hyphen is mapped to nothing by resourceprep (B.1).
  EXPECT_EQ(Jid::prep_resource("ab\xC2\xAD"
                               "c\xC3\xA9"),
            "abc\xC3\xA9");
  // Fullwidth letters fold to ASCII in nodes (NFKC) and domains.
  EXPECT_EQ(Jid::prep_node("\xEF\xBC\xA1"), "a");
  EXPECT_EQ(Jid::prep_domain("\xEF\xBC\xA1.com"), "a.com");
}

TEST(Jid, MakeAndAccessors) {
  auto j = Jid::make("Romeo", "Example.NET", "orchard");
  ASSERT_TRUE(j);
  EXPECT_EQ(j->str(), "romeo@example.net/orchard");
  EXPECT_EQ(j->bare_str(), "romeo@example.net");
  EXPECT_FALSE(j->is_bare());
  EXPECT_FALSE(j->is_host());
  EXPECT_FALSE(j->empty());
  Jid b = j->bare();
  EXPECT_EQ(b.str(), "romeo@example.net");
  EXPECT_TRUE(b.is_bare());
  EXPECT_FALSE(b.is_host());
  EXPECT_EQ(b.bare(), b);

  auto host = Jid::make("", "example.net");
  ASSERT_TRUE(host);
  EXPECT_TRUE(host->is_host());
  EXPECT_EQ(host->bare_str(), "example.net");
  auto host_res = host->with_resource("svc");
  ASSERT_TRUE(host_res);
  EXPECT_EQ(host_res->str(), "example.net/svc");
  EXPECT_FALSE(host_res->is_host());

  auto r2 = b.with_resource("garden");
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->str(), "romeo@example.net/garden");
  EXPECT_FALSE(b.with_resource(""));
  EXPECT_FALSE(b.with_resource("a\x01"));

  EXPECT_FALSE(Jid::make("a@b", "example.net"));
  EXPECT_FALSE(Jid::make("a", ""));
  EXPECT_FALSE(Jid::make("a", "example.net/x"));
  EXPECT_FALSE(Jid::make("a", "a@example.net"));

  Jid empty;
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(empty.str(), "");
  EXPECT_TRUE(empty.bare().empty());
  EXPECT_FALSE(empty.with_resource("x"));
}

TEST(Jid, EqualityAndHash) {
  auto a = Jid::parse("Juliet@Example.com/Balcony");
  auto b = Jid::parse("juliet@example.com./Balcony");
  auto c = Jid::parse("juliet@example.com/balcony");
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(*a, *b);
  EXPECT_NE(*a, *c);  // resources are case-sensitive
  EXPECT_EQ(JidHash{}(*a), JidHash{}(*b));
  EXPECT_LT(*a, *c);

  std::unordered_set<Jid, JidHash> set{*a, *b, *c};
  EXPECT_EQ(set.size(), 2u);
  std::unordered_set<Jid> std_set{*a, *b};
  EXPECT_EQ(std_set.size(), 1u);
}

std::optional<std::string> libidn_prep(const std::string& in, const Stringprep_profile* profile) {
  std::string buf = in;
  buf.resize(in.size() * 4 + 16, '\0');
  if (stringprep(buf.data(), buf.size(), Stringprep_profile_flags{}, profile) != STRINGPREP_OK) {
    return std::nullopt;
  }
  buf.resize(std::char_traits<char>::length(buf.c_str()));
  return buf;
}

// The ASCII fast paths must agree with libidn wherever libidn accepts (and be no laxer).
TEST(Jid, AsciiFastPathsMatchLibidn) {
  for (int c = 1; c < 0x80; ++c) {
    std::string s = std::string("aB") + static_cast<char>(c) + "z";
    auto node = Jid::prep_node(s);
    auto idn_node = libidn_prep(s, stringprep_xmpp_nodeprep);
    if (node) {
      EXPECT_EQ(node, idn_node) << c;
    }
    if (idn_node) {
      bool allowed = idn_node->find_first_of("\"&'/:<>@") == std::string::npos;
      EXPECT_EQ(node.has_value(), allowed) << c;
    }
    EXPECT_EQ(Jid::prep_resource(s), libidn_prep(s, stringprep_xmpp_resourceprep)) << c;
    auto domain = Jid::prep_domain(s);
    if (domain) {
      EXPECT_EQ(domain, libidn_prep(s, stringprep_nameprep)) << c;
    }
  }
}

TEST(Utf8, Validation) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("abc \xCF\x80 \xE2\x99\x9A \xF0\x9F\x98\x80"));
  EXPECT_FALSE(is_valid_utf8(std::string("a\0b", 3)));
  EXPECT_FALSE(is_valid_utf8("\x80"));
  EXPECT_FALSE(is_valid_utf8("\xC3"));
  EXPECT_FALSE(is_valid_utf8("\xE0\x80\xAF"));      // overlong
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // > U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xED\xBF\xBF"));      // surrogate
}

// Issue 7: the router hashes and looks accounts up by the bare JID inside str(), no copy.
TEST(Jid, BareViewIsThePrefixOfStr) {
  auto full = Jid::make("romeo", "example.net", "orchard/with/slashes");
  ASSERT_TRUE(full);
  EXPECT_EQ(full->bare_view(), "romeo@example.net");
  EXPECT_EQ(full->bare_view().data(), full->str().data());
  auto bare = Jid::parse("romeo@example.net");
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->bare_view(), "romeo@example.net");
  auto host_res = Jid::parse("example.net/svc");
  ASSERT_TRUE(host_res);
  EXPECT_EQ(host_res->bare_view(), "example.net");
  EXPECT_EQ(Jid().bare_view(), "");
}

}  // namespace
}  // namespace stanzad::xmpp
