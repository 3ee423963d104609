// server/xmpp/base64.cpp: RFC 4648 §4 base64 with strict (canonical) decoding.
#include "xmpp/base64.hpp"

#include <array>
#include <cstdint>

namespace stanzad::xmpp {

namespace {

constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::uint8_t invalid = 0xFF;

constexpr std::array<std::uint8_t, 256> make_decode_table() {
  std::array<std::uint8_t, 256> t{};
  for (auto& v : t) v = invalid;
  for (std::uint8_t i = 0; i < 64; ++i) t[static_cast<unsigned char>(alphabet[i])] = i;
  return t;
}

constexpr auto decode_table = make_decode_table();

}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    std::uint32_t v = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16 |
                      static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8 |
                      static_cast<unsigned char>(bytes[i + 2]);
    out.push_back(alphabet[v >> 18 & 0x3F]);
    out.push_back(alphabet[v >> 12 & 0x3F]);
    out.push_back(alphabet[v >> 6 & 0x3F]);
    out.push_back(alphabet[v & 0x3F]);
  }
  std::size_t left = bytes.size() - i;
  if (left > 0) {
    std::uint32_t v = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16;
    if (left == 2) v |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8;
    out.push_back(alphabet[v >> 18 & 0x3F]);
    out.push_back(alphabet[v >> 12 & 0x3F]);
    out.push_back(left == 2 ? alphabet[v >> 6 & 0x3F] : '=');
    out.push_back('=');
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::size_t pad = 0;
  if (!text.empty() && text.back() == '=') pad = text[text.size() - 2] == '=' ? 2 : 1;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    bool last = i + 4 == text.size();
    std::size_t chars = last ? 4 - pad : 4;
    std::uint32_t v = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      std::uint8_t d = 0;
      if (k < chars) {
        d = decode_table[static_cast<unsigned char>(text[i + k])];
        if (d == invalid) return std::nullopt;  // includes '=' before the final padding
      }
      v = v << 6 | d;
    }
    out.push_back(static_cast<char>(v >> 16 & 0xFF));
    if (chars == 2) {
      if ((v & 0xFFFF) != 0) return std::nullopt;  // non-canonical: unused bits set
      break;
    }
    out.push_back(static_cast<char>(v >> 8 & 0xFF));
    if (chars == 3) {
      if ((v & 0xFF) != 0) return std::nullopt;
      break;
    }
    out.push_back(static_cast<char>(v & 0xFF));
  }
  return out;
}

}  // namespace stanzad::xmpp
