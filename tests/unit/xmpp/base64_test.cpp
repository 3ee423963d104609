// tests/unit/xmpp/base64_test.cpp: RFC 4648 §10 vectors and strict decoding.
#include "xmpp/base64.hpp"

#include <gtest/gtest.h>

#include <string>

namespace stanzad::xmpp {
namespace {

TEST(Base64, Rfc4648Vectors) {
  const std::pair<const char*, const char*> vectors[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (auto [plain, encoded] : vectors) {
    EXPECT_EQ(base64_encode(plain), encoded);
    EXPECT_EQ(base64_decode(encoded), plain);
  }
}

TEST(Base64, RoundTripsAllBytes) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (std::size_t n = 0; n < all.size(); n += 7) {
    auto s = all.substr(n);
    EXPECT_EQ(base64_decode(base64_encode(s)), s);
  }
}

TEST(Base64, StrictDecode) {
  for (const char* bad : {"Zg", "Zg=", "Zg===", "Z===", "====", "Zm9v\n", " Zm9v", "Zm9", "Zm=v",
                          "Zg==Zg==", "Zh==", "Zm9=", "Zm-v", "Zm_v", "Zm9v!A==", "="}) {
    EXPECT_FALSE(base64_decode(bad)) << bad;
  }
}

}  // namespace
}  // namespace stanzad::xmpp
