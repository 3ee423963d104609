// plugins/vcard/vcard.cpp: XEP-0054 vcard-temp (stored per account) and XEP-0153 vCard-based
// avatar hashes stamped on the account's outgoing available presence (§3.1, §4.1).
#include <array>
#include <cstdint>
#include <optional>
#include <stanzad/plugin.hpp>
#include <stdexcept>
#include <string>
#include <string_view>

namespace sz = stanzad::sdk;

namespace {

constexpr std::string_view vcard_ns = "vcard-temp";
constexpr std::string_view update_ns = "vcard-temp:x:update";
constexpr std::string_view store = "vcard";
constexpr std::string_view key_vcard = "vcard";      // the vCard element, serialized
constexpr std::string_view key_hash = "photo-hash";  // XEP-0153 hash, "" when no PHOTO

const sz_option options[] = {
    {"vcard_max_bytes", SZ_OPT_INTEGER, "65536", 256, 16 * 1024 * 1024,
     "largest vCard (serialized XML) an account may store; larger sets get not-acceptable"},
};

using sz::jid::bare_of;

// RFC 4648 base64, skipping whitespace (BINVAL is often line-wrapped). nullopt when malformed.
std::optional<std::string> base64_decode(std::string_view in) {
  std::string out;
  out.reserve(in.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0, pad = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '+') {
      v = 62;
    } else if (c == '/') {
      v = 63;
    } else if (c == '=') {
      ++pad;
      continue;
    } else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      continue;
    } else {
      return std::nullopt;
    }
    if (pad) return std::nullopt;  // data after padding
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if (pad > 2) return std::nullopt;
  return out;
}

// FIPS 180-4 SHA-1 (OpenSSL is not linked into plugins; this is all XEP-0153 needs).
std::string sha1_hex(std::string_view data) {
  std::uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  auto rol = [](std::uint32_t x, int n) { return (x << n) | (x >> (32 - n)); };
  auto block = [&](const unsigned char* p) {
    std::uint32_t w[80];
    for (int i = 0; i < 16; ++i)
      w[i] = std::uint32_t(p[4 * i]) << 24 | std::uint32_t(p[4 * i + 1]) << 16 |
             std::uint32_t(p[4 * i + 2]) << 8 | std::uint32_t(p[4 * i + 3]);
    for (int i = 16; i < 80; ++i) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; ++i) {
      std::uint32_t f, k;
      if (i < 20) {
        f = (b & c) | (~b & d);
        k = 0x5A827999;
      } else if (i < 40) {
        f = b ^ c ^ d;
        k = 0x6ED9EBA1;
      } else if (i < 60) {
        f = (b & c) | (b & d) | (c & d);
        k = 0x8F1BBCDC;
      } else {
        f = b ^ c ^ d;
        k = 0xCA62C1D6;
      }
      std::uint32_t t = rol(a, 5) + f + e + k + w[i];
      e = d;
      d = c;
      c = rol(b, 30);
      b = a;
      a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
  };
  std::size_t full = data.size() / 64 * 64;
  for (std::size_t i = 0; i < full; i += 64)
    block(reinterpret_cast<const unsigned char*>(data.data()) + i);
  // Padding: 0x80, zeros, then the length in bits, big-endian, over one or two blocks.
  std::array<unsigned char, 128> tail{};
  std::size_t rest = data.size() - full;
  for (std::size_t i = 0; i < rest; ++i) tail[i] = static_cast<unsigned char>(data[full + i]);
  tail[rest] = 0x80;
  std::size_t tail_len = rest + 1 + 8 <= 64 ? 64 : 128;
  std::uint64_t bit_len = static_cast<std::uint64_t>(data.size()) * 8;
  for (int i = 0; i < 8; ++i)
    tail[tail_len - 1 - i] = static_cast<unsigned char>(bit_len >> (8 * i));
  block(tail.data());
  if (tail_len == 128) block(tail.data() + 64);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (std::uint32_t v : h)
    for (int s = 28; s >= 0; s -= 4) out.push_back(hex[(v >> s) & 0xf]);
  return out;
}

}  // namespace

class Vcard {
 public:
  explicit Vcard(sz::Module& m)
      : m_(m),
        log_(m.log()),
        max_bytes_(static_cast<std::size_t>(m.option_integer("vcard_max_bytes"))) {
    m.add_feature(vcard_ns);
    m.hook("iq-get/bare/vcard-temp:vCard", [this](sz::Event& ev) { return get(ev); });
    m.hook("iq-set/bare/vcard-temp:vCard", [this](sz::Event& ev) { return set(ev); });
    // enrich: stamps the hash before observers (archive, push) and before delivery see it.
    m.hook(
        "stanza/in/presence", [this](sz::Event& ev) { return stamp_presence(ev); }, sz::priority::enrich);
  }

  // XEP-0153 §2: the SHA-1 of the decoded BINVAL, hex; "" when the vCard has no photo.
  static std::string photo_hash(sz::StanzaRef vcard) {
    sz::StanzaRef photo = vcard.child("PHOTO", vcard_ns);
    if (!photo) return {};
    sz::StanzaRef binval = photo.child("BINVAL", vcard_ns);
    if (!binval) return {};
    auto bytes = base64_decode(binval.text());
    if (!bytes || bytes->empty()) return {};
    return sha1_hex(*bytes);
  }

 private:
  // XEP-0054 §3.1 / §3.3: anyone may read an account's vCard; none stored gives an empty one
  // (as Prosody answers).
  sz::Verdict get(sz::Event& ev) {
    std::string user(bare_of(ev.to()));
    sz::Stanza reply = sz::iq_result(ev.stanza());
    std::optional<std::string> stored = m_.kv_get(user, store, key_vcard);
    bool added = false;
    if (stored) {
      try {
        reply.append(sz::Stanza::parse(*stored));
        added = true;
      } catch (const std::invalid_argument&) {
        log_.warn("stored vcard is not well-formed", "jid", user);
      }
    }
    if (!added) reply.add_child("vCard", vcard_ns);
    ev.reply(std::move(reply));
    return sz::Verdict::handled;
  }

  // XEP-0054 §3.2: only the account itself publishes its vCard.
  sz::Verdict set(sz::Event& ev) {
    std::string user(bare_of(ev.to()));
    if (bare_of(ev.from()) != user) return ev.error("forbidden", {}, "auth");
    sz::StanzaRef vcard = ev.stanza().child("vCard", vcard_ns);
    std::string xml = vcard.to_string();
    if (xml.size() > max_bytes_)
      return ev.error("not-acceptable",
                      "vCard larger than " + std::to_string(max_bytes_) + " bytes", "modify");
    if (vcard.children().empty()) {
      m_.kv_delete(user, store, key_vcard);
      m_.kv_delete(user, store, key_hash);
    } else {
      m_.kv_set(user, store, key_vcard, xml);
      m_.kv_set(user, store, key_hash, photo_hash(vcard));
    }
    log_.debug("vcard stored", "jid", user, "bytes", xml.size());
    ev.reply(sz::iq_result(ev.stanza()));
    return sz::Verdict::handled;
  }

  // XEP-0153 §4.1 (as a server-side helper, like Prosody's mod_vcard_legacy): an available
  // presence the account sends, broadcast or directed, carries its vCard photo's hash unless
  // the client put its own <x xmlns='vcard-temp:x:update'/> in. Read from storage each time:
  // the set may have happened on another shard, and presence is rare next to messages.
  sz::Verdict stamp_presence(sz::Event& ev) {
    sz::StanzaRef presence = ev.stanza();
    if (!presence || presence.name() != "presence" || presence.has_attr("type"))
      return sz::Verdict::pass;
    if (presence.child("x", update_ns)) return sz::Verdict::pass;
    std::string user(bare_of(ev.from()));
    std::optional<std::string> hash;
    try {
      hash = m_.kv_get(user, store, key_hash);
    } catch (const std::runtime_error&) {
      return sz::Verdict::pass;  // a storage hiccup must not cost the user their presence
    }
    if (!hash) return sz::Verdict::pass;  // no vCard published: nothing to say
    sz::StanzaRef photo = presence.add_child("x", update_ns).add_child("photo");
    if (!hash->empty()) photo.add_text(*hash);
    return sz::Verdict::pass;
  }

  sz::Module& m_;
  sz::Logger log_;
  std::size_t max_bytes_;
};

STANZAD_PLUGIN_WITH(Vcard, "vcard", "1.0.0", options, 1, nullptr)
