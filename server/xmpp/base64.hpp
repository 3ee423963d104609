// server/xmpp/base64.hpp: RFC 4648 §4 base64, strict decoding as RFC 6120 §6.4.2 requires.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace stanzad::xmpp {

std::string base64_encode(std::string_view bytes);
// Canonical base64 only: length a multiple of 4, padding only at the end, no whitespace or
// other characters, and zero unused bits. An empty input decodes to an empty string.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace stanzad::xmpp
