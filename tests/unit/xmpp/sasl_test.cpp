// tests/unit/xmpp/sasl_test.cpp: SCRAM (RFC 5802 §5, RFC 7677 §3 vectors), PLAIN (RFC 4616).
#include "xmpp/sasl.hpp"

#include <gtest/gtest.h>

#include <string>

namespace stanzad::xmpp::sasl {
namespace {

std::string b64d(std::string_view s) {
  auto d = base64_decode(s);
  EXPECT_TRUE(d) << s;
  return d.value_or("");
}

ScramCredentials rfc5802_creds() {
  return derive_credentials(Hash::sha1, "pencil", b64d("QSXCR+Q6sek8bf92"), 4096);
}

ScramCredentials rfc7677_creds() {
  return derive_credentials(Hash::sha256, "pencil", b64d("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096);
}

const char* const sha1_final =
    "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
const char* const sha256_final =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";

TEST(Scram, Rfc5802Sha1Vector) {
  ScramServer s(Hash::sha1, "3rfcNHYJY1ZVvWVs7j");
  EXPECT_EQ(s.client_first("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"), std::nullopt);
  EXPECT_EQ(s.username(), "user");
  EXPECT_EQ(s.authzid(), "");
  EXPECT_EQ(s.server_first(rfc5802_creds()),
            "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096");
  EXPECT_EQ(s.client_final(sha1_final), std::nullopt);
  EXPECT_TRUE(s.succeeded());
  EXPECT_EQ(s.server_final(), "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
}

TEST(Scram, Rfc7677Sha256Vector) {
  ScramServer s(Hash::sha256, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
  EXPECT_EQ(s.client_first("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"), std::nullopt);
  EXPECT_EQ(
      s.server_first(rfc7677_creds()),
      "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
  EXPECT_EQ(s.client_final(sha256_final), std::nullopt);
  EXPECT_EQ(s.server_final(), "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
}

TEST(Scram, WrongProofIsNotAuthorized) {
  ScramServer s(Hash::sha1, "3rfcNHYJY1ZVvWVs7j");
  ASSERT_EQ(s.client_first("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"), std::nullopt);
  s.server_first(derive_credentials(Hash::sha1, "pencil2", b64d("QSXCR+Q6sek8bf92"), 4096));
  EXPECT_EQ(s.client_final(sha1_final), Failure::not_authorized);
  EXPECT_FALSE(s.succeeded());
}

TEST(Scram, UnknownUserFailsAtTheLastStep) {
  ScramServer s(Hash::sha1, "3rfcNHYJY1ZVvWVs7j");
  ASSERT_EQ(s.client_first("n,,n=nobody,r=fyko+d2lbbFgONRv9qkxdawL"), std::nullopt);
  std::string first = s.server_first(std::nullopt);
  EXPECT_TRUE(first.starts_with("r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s="));
  EXPECT_TRUE(first.ends_with(",i=4096"));
  EXPECT_EQ(s.client_final(sha1_final), Failure::not_authorized);

  // The fake salt is stable for a name, so repeated probes look like a real account.
  ScramServer again(Hash::sha1, "3rfcNHYJY1ZVvWVs7j");
  ASSERT_EQ(again.client_first("n,,n=nobody,r=fyko+d2lbbFgONRv9qkxdawL"), std::nullopt);
  EXPECT_EQ(again.server_first(std::nullopt), first);
  ScramServer other(Hash::sha1, "3rfcNHYJY1ZVvWVs7j");
  ASSERT_EQ(other.client_first("n,,n=nobody2,r=fyko+d2lbbFgONRv9qkxdawL"), std::nullopt);
  EXPECT_NE(other.server_first(std::nullopt), first);

  ScramServer iters(Hash::sha256);
  iters.set_unknown_user_iterations(10000);
  ASSERT_EQ(iters.client_first("n,,n=nobody,r=abc"), std::nullopt);
  EXPECT_TRUE(iters.server_first(std::nullopt).ends_with(",i=10000"));
}

TEST(Scram, CredentialsOfAnotherHashAreTreatedAsUnknown) {
  ScramServer s(Hash::sha256, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
  ASSERT_EQ(s.client_first("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"), std::nullopt);
  s.server_first(rfc5802_creds());
  EXPECT_EQ(s.client_final(sha256_final), Failure::not_authorized);
}

TEST(Scram, RandomServerNonceRoundTrip) {
  auto creds = derive_credentials(Hash::sha256, "secret", random_bytes(16), 4096);
  ScramServer s(Hash::sha256);
  ASSERT_EQ(s.client_first("y,a=juliet@example.com,n=juliet,r=clientnonce"), std::nullopt);
  EXPECT_EQ(s.authzid(), "juliet@example.com");
  std::string first = s.server_first(creds);
  ASSERT_TRUE(first.starts_with("r=clientnonce"));
  std::string nonce = first.substr(2, first.find(',') - 2);
  EXPECT_GT(nonce.size(), std::string("clientnonce").size() + 16);
  // A client that does not know the password cannot forge a proof; the nonce must be echoed.
  std::string cb = base64_encode("y,a=juliet@example.com,");
  std::string zero_proof = base64_encode(std::string(32, '\0'));
  ScramServer t(Hash::sha256);
  ASSERT_EQ(t.client_first("y,a=juliet@example.com,n=juliet,r=clientnonce"), std::nullopt);
  std::string tfirst = t.server_first(creds);
  std::string tnonce = tfirst.substr(2, tfirst.find(',') - 2);
  EXPECT_EQ(t.client_final("c=" + cb + ",r=" + tnonce + ",p=" + zero_proof),
            Failure::not_authorized);
}

TEST(Scram, UsernameEscapes) {
  ScramServer s(Hash::sha1);
  ASSERT_EQ(s.client_first("n,a=a=3Db=2Cc,n=us=2Cer=3D,r=abc"), std::nullopt);
  EXPECT_EQ(s.username(), "us,er=");
  EXPECT_EQ(s.authzid(), "a=b,c");
}

TEST(Scram, MalformedClientFirst) {
  for (const char* bad : {
           "",
           "n",
           "n,",
           "n,,",
           "x,,n=user,r=abc",
           "p=tls-unique,,n=user,r=abc",  // channel binding we do not offer
           "n,,n=,r=abc",                 // empty username
           "n,,n=us=2er,r=abc",           // unknown escape
           "n,,n=us=,r=abc",
           "n,,n=us=2,r=abc",
           "n,,r=abc,n=user",
           "n,,n=user",
           "n,,n=user,r=",
           "n,,n=user,x=abc",
           "m=ext,n,,n=user,r=abc",
           "n,,m=ext,n=user,r=abc",  // unknown mandatory extension
           "n,b=x,n=user,r=abc",
           "n,a=,n=user,r=abc",
           "n,a=x=41,n=user,r=abc",
           "n,,n=user,r=a\x7f"
           "c",
           "n,,n=\xC3\x28,r=abc",  // invalid UTF-8
       }) {
    ScramServer s(Hash::sha256);
    EXPECT_EQ(s.client_first(bad), Failure::malformed_request) << bad;
  }
  std::string nul("n,,n=us\0er,r=abc", 16);
  ScramServer s(Hash::sha256);
  EXPECT_EQ(s.client_first(nul), Failure::malformed_request);
}

TEST(Scram, ExtensionsAfterNonceAreIgnored) {
  ScramServer s(Hash::sha1, "3rfcNHYJY1ZVvWVs7j");
  EXPECT_EQ(s.client_first("n,,n=user,r=abc,x=ext"), std::nullopt);
}

struct FinalCase {
  const char* msg;
  Failure expected;
};

TEST(Scram, MalformedOrMismatchedClientFinal) {
  const FinalCase cases[] = {
      {"", Failure::malformed_request},
      {"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j", Failure::malformed_request},
      {"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=", Failure::malformed_request},
      {"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=AAAA", Failure::malformed_request},
      {"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts",
       Failure::malformed_request},
      {"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,c=biws,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
       Failure::malformed_request},
      {"c=bi!s,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
       Failure::malformed_request},
      // "y,," is not what the client sent: binding data must repeat the gs2 header.
      {"c=eSws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
       Failure::not_authorized},
      {"c=biws,r=fyko+d2lbbFgONRv9qkxdawL,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", Failure::not_authorized},
      {"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7jX,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
       Failure::not_authorized},
  };
  for (const auto& c : cases) {
    ScramServer s(Hash::sha1, "3rfcNHYJY1ZVvWVs7j");
    ASSERT_EQ(s.client_first("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"), std::nullopt);
    s.server_first(rfc5802_creds());
    EXPECT_EQ(s.client_final(c.msg), c.expected) << c.msg;
    EXPECT_FALSE(s.succeeded());
    // A failed exchange stays failed.
    EXPECT_EQ(s.client_final(sha1_final), Failure::malformed_request);
  }
}

TEST(Scram, OutOfOrderSteps) {
  ScramServer s(Hash::sha1, "3rfcNHYJY1ZVvWVs7j");
  EXPECT_EQ(s.client_final(sha1_final), Failure::malformed_request);
  ScramServer t(Hash::sha1, "3rfcNHYJY1ZVvWVs7j");
  ASSERT_EQ(t.client_first("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"), std::nullopt);
  EXPECT_EQ(t.client_first("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"), Failure::malformed_request);
}

TEST(Scram, DeriveCredentials) {
  auto c = rfc7677_creds();
  EXPECT_EQ(c.hash, Hash::sha256);
  EXPECT_EQ(c.iterations, 4096u);
  EXPECT_EQ(c.salt, b64d("W22ZaJ0SNY7soEsUEjb6gQ=="));
  EXPECT_EQ(c.stored_key.size(), 32u);
  EXPECT_EQ(c.server_key.size(), 32u);
  EXPECT_EQ(rfc5802_creds().stored_key.size(), 20u);
  // SASLprep (RFC 4013 §3): U+00AD maps to nothing, U+00A0 to a space.
  auto a = derive_credentials(Hash::sha256,
                              "I\xC2\xAD"
                              "X",
                              "salt", 1);
  auto b = derive_credentials(Hash::sha256, "IX", "salt", 1);
  EXPECT_EQ(a.stored_key, b.stored_key);
  auto nbsp = derive_credentials(Hash::sha256,
                                 "a\xC2\xA0"
                                 "b",
                                 "salt", 1);
  auto space = derive_credentials(Hash::sha256, "a b", "salt", 1);
  EXPECT_EQ(nbsp.stored_key, space.stored_key);
}

TEST(Sasl, VerifyPassword) {
  auto c = rfc7677_creds();
  EXPECT_TRUE(verify_password(c, "pencil"));
  EXPECT_FALSE(verify_password(c, "Pencil"));
  EXPECT_FALSE(verify_password(c, ""));
  EXPECT_TRUE(verify_password(rfc5802_creds(), "pencil"));
  // Prohibited characters make SASLprep fail; the raw password is used consistently.
  auto ctl = derive_credentials(Hash::sha1, "pa\x07ss\xC3\xA9", "salt", 2);
  EXPECT_TRUE(verify_password(ctl, "pa\x07ss\xC3\xA9"));
  auto broken = c;
  broken.iterations = 0;
  EXPECT_FALSE(verify_password(broken, "pencil"));
}

TEST(Sasl, ParsePlain) {
  auto m = parse_plain(std::string("\0tim\0tanstaaftanstaaf", 21));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->authzid, "");
  EXPECT_EQ(m->authcid, "tim");
  EXPECT_EQ(m->password, "tanstaaftanstaaf");

  auto z = parse_plain(std::string("Ursel\0Kurt\0xipj3plmq", 20));
  ASSERT_TRUE(z);
  EXPECT_EQ(z->authzid, "Ursel");
  EXPECT_EQ(z->authcid, "Kurt");
  EXPECT_EQ(z->password, "xipj3plmq");

  EXPECT_FALSE(parse_plain(""));
  EXPECT_FALSE(parse_plain("tim"));
  EXPECT_FALSE(parse_plain(std::string("\0tim", 4)));
  EXPECT_FALSE(parse_plain(std::string("\0\0pw", 4)));
  EXPECT_FALSE(parse_plain(std::string("\0tim\0", 5)));
  EXPECT_FALSE(parse_plain(std::string("\0tim\0pw\0x", 9)));
  EXPECT_FALSE(parse_plain(std::string("\0t\xC3\x28m\0pw", 8)));
}

TEST(Sasl, Names) {
  EXPECT_EQ(mechanism_name(Hash::sha1), "SCRAM-SHA-1");
  EXPECT_EQ(mechanism_name(Hash::sha256), "SCRAM-SHA-256");
  EXPECT_EQ(scram_hash("SCRAM-SHA-256"), Hash::sha256);
  EXPECT_EQ(scram_hash("SCRAM-SHA-1"), Hash::sha1);
  EXPECT_EQ(scram_hash("PLAIN"), std::nullopt);
  EXPECT_EQ(to_string(Failure::not_authorized), "not-authorized");
  EXPECT_EQ(to_string(Failure::malformed_request), "malformed-request");
  EXPECT_EQ(to_string(Failure::temporary_auth_failure), "temporary-auth-failure");
  EXPECT_EQ(to_string(Failure::invalid_authzid), "invalid-authzid");
  EXPECT_EQ(random_bytes(24).size(), 24u);
  EXPECT_NE(random_bytes(16), random_bytes(16));
}

}  // namespace
}  // namespace stanzad::xmpp::sasl
