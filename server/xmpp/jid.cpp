// server/xmpp/jid.cpp: RFC 7622 §3.1 JID splitting; RFC 3920 Appendix A/B Nodeprep and
// Resourceprep and RFC 3491 Nameprep (libidn), with ASCII fast paths that skip libidn.
#include "xmpp/jid.hpp"

#include <arpa/inet.h>
#include <idn-free.h>
#include <idna.h>
#include <stringprep.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>

namespace stanzad::xmpp {

namespace {

// Bounds libidn's work on hostile input: the prepared part may be at most 1023 bytes, and
// legitimate input mapped to nothing (soft hyphens, joiners) never needs more than this.
constexpr std::size_t max_prep_input_bytes = 4 * max_jid_part_bytes;
constexpr std::size_t max_label_bytes = 63;

bool is_ascii(std::string_view s) {
  for (unsigned char c : s) {
    if (c >= 0x80) return false;
  }
  return true;
}

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

// RFC 3920 Appendix A.5: Nodeprep prohibits these ASCII characters on top of stringprep's
// tables; space and controls are prohibited by C.1.1 and C.2.1.
bool is_node_forbidden_ascii(unsigned char c) {
  if (c <= 0x20 || c == 0x7f) return true;
  switch (c) {
    case '"':
    case '&':
    case '\'':
    case '/':
    case ':':
    case '<':
    case '>':
    case '@':
      return true;
    default:
      return false;
  }
}

// Letters, digits, hyphen, dot; underscore too, since DNS (SRV owner names, some
// components) uses it and Prosody and ejabberd accept it.
bool is_domain_ascii(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

// Runs a libidn stringprep profile. libidn works in place on a NUL-terminated buffer and
// fails with STRINGPREP_TOO_SMALL_BUFFER if the result does not fit, so grow and retry.
std::optional<std::string> run_stringprep(std::string_view in, const Stringprep_profile* profile,
                                          Stringprep_profile_flags flags) {
  if (in.size() > max_prep_input_bytes || !is_valid_utf8(in)) return std::nullopt;
  std::size_t size = in.size() * 4 + 16;
  std::string buf;
  for (int attempt = 0; attempt < 3; ++attempt, size *= 4) {
    buf.assign(in);
    buf.resize(size, '\0');
    int rc = stringprep(buf.data(), buf.size(), flags, profile);
    if (rc == STRINGPREP_OK) {
      buf.resize(std::strlen(buf.c_str()));
      return buf;
    }
    if (rc != STRINGPREP_TOO_SMALL_BUFFER) return std::nullopt;
  }
  return std::nullopt;
}

// Checks the label structure of a lowercase ASCII domain (or the ASCII parts of a prepared
// Unicode one): no empty labels, allowed characters only, ASCII labels at most 63 bytes.
bool check_domain_labels(std::string_view d) {
  std::size_t label = 0;
  bool label_ascii = true;
  for (unsigned char c : d) {
    if (c == '.') {
      if (label == 0 || (label_ascii && label > max_label_bytes)) return false;
      label = 0;
      label_ascii = true;
      continue;
    }
    if (c >= 0x80) {
      label_ascii = false;
    } else if (!is_domain_ascii(c)) {
      return false;
    }
    ++label;
  }
  return label != 0 && !(label_ascii && label > max_label_bytes);
}

std::optional<std::string> prep_ip6_literal(std::string_view s) {
  if (s.size() < 3 || s.size() > 64 || s.back() != ']') return std::nullopt;
  std::string inner(s.substr(1, s.size() - 2));
  in6_addr addr{};
  if (inet_pton(AF_INET6, inner.c_str(), &addr) != 1) return std::nullopt;
  char text[INET6_ADDRSTRLEN];
  if (inet_ntop(AF_INET6, &addr, text, sizeof text) == nullptr) return std::nullopt;
  // Canonical text form, so [::1] and [0:0::1] are the same address.
  return "[" + std::string(text) + "]";
}

// IDNA (RFC 3490 §3.1) treats these as label separators; nameprep alone would keep them.
std::string map_ideographic_dots(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto rest = s.substr(i);
    if (rest.starts_with("\xE3\x80\x82") || rest.starts_with("\xEF\xBC\x8E") ||
        rest.starts_with("\xEF\xBD\xA1")) {  // U+3002, U+FF0E, U+FF61
      out.push_back('.');
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

bool is_valid_utf8(std::string_view s) {
  std::size_t i = 0;
  const std::size_t n = s.size();
  while (i < n) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c == 0) return false;
      ++i;
      continue;
    }
    std::size_t len;
    std::uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (n - i < len) return false;
    for (std::size_t k = 1; k < len; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

// Unassigned code points (in libidn's Unicode 3.2 tables) are allowed in nodes and resources,
// as Prosody and ejabberd do: emoji are unassigned there and common in MUC nicknames.
std::optional<std::string> Jid::prep_node(std::string_view node) {
  if (node.empty()) return std::nullopt;
  std::string out;
  if (is_ascii(node)) {
    if (node.size() > max_jid_part_bytes) return std::nullopt;
    out.resize(node.size());
    for (std::size_t i = 0; i < node.size(); ++i) {
      if (is_node_forbidden_ascii(static_cast<unsigned char>(node[i]))) return std::nullopt;
      out[i] = ascii_lower(node[i]);  // the only Nodeprep mapping that touches ASCII
    }
    return out;
  }
  auto prepped = run_stringprep(node, stringprep_xmpp_nodeprep, Stringprep_profile_flags{});
  if (!prepped || prepped->empty() || prepped->size() > max_jid_part_bytes) return std::nullopt;
  for (unsigned char c : *prepped) {
    if (c < 0x80 && is_node_forbidden_ascii(c)) return std::nullopt;
  }
  return prepped;
}

std::optional<std::string> Jid::prep_resource(std::string_view resource) {
  if (resource.empty()) return std::nullopt;
  if (is_ascii(resource)) {
    if (resource.size() > max_jid_part_bytes) return std::nullopt;
    // Resourceprep keeps ASCII as is (space included) and prohibits controls (C.2.1).
    for (unsigned char c : resource) {
      if (c < 0x20 || c == 0x7f) return std::nullopt;
    }
    return std::string(resource);
  }
  auto prepped = run_stringprep(resource, stringprep_xmpp_resourceprep, Stringprep_profile_flags{});
  if (!prepped || prepped->empty() || prepped->size() > max_jid_part_bytes) return std::nullopt;
  return prepped;
}

std::optional<std::string> Jid::prep_domain(std::string_view domain) {
  if (domain.starts_with('[')) return prep_ip6_literal(domain);
  if (is_ascii(domain)) {
    if (domain.ends_with('.')) domain.remove_suffix(1);  // RFC 7622 §3.2: strip one final dot
    if (domain.empty() || domain.size() > max_jid_part_bytes) return std::nullopt;
    std::string out(domain.size(), '\0');
    for (std::size_t i = 0; i < domain.size(); ++i) out[i] = ascii_lower(domain[i]);
    if (!check_domain_labels(out)) return std::nullopt;
    return out;
  }
  if (domain.size() > max_prep_input_bytes || !is_valid_utf8(domain)) return std::nullopt;
  std::string mapped = map_ideographic_dots(domain);
  if (mapped.ends_with('.')) mapped.pop_back();
  if (mapped.empty()) return std::nullopt;
  auto prepped = run_stringprep(mapped, stringprep_nameprep, STRINGPREP_NO_UNASSIGNED);
  if (!prepped || prepped->empty() || prepped->size() > max_jid_part_bytes) return std::nullopt;
  if (!check_domain_labels(*prepped)) return std::nullopt;
  if (!is_ascii(*prepped)) {
    // ToASCII checks what nameprep does not: every label fits DNS's 63 octets as an A-label.
    char* ace = nullptr;
    int rc = idna_to_ascii_8z(prepped->c_str(), &ace, 0);
    std::unique_ptr<char, decltype(&idn_free)> owner(ace, &idn_free);
    if (rc != IDNA_SUCCESS || ace == nullptr || std::strlen(ace) > max_jid_part_bytes) {
      return std::nullopt;
    }
  }
  return prepped;
}

Jid::Jid(std::string node, std::string domain, std::string resource)
    : node_(std::move(node)), domain_(std::move(domain)), resource_(std::move(resource)) {
  full_.reserve(node_.size() + domain_.size() + resource_.size() + 2);
  if (!node_.empty()) {
    full_ += node_;
    full_ += '@';
  }
  full_ += domain_;
  if (!resource_.empty()) {
    full_ += '/';
    full_ += resource_;
  }
}

std::optional<Jid> Jid::parse(std::string_view s) {
  // RFC 7622 §3.1: the resource starts at the first '/', then the node ends at the first '@'.
  std::string_view rest = s;
  std::string_view resource;
  if (auto slash = s.find('/'); slash != std::string_view::npos) {
    rest = s.substr(0, slash);
    resource = s.substr(slash + 1);
    if (resource.empty()) return std::nullopt;
  }
  std::string_view node;
  std::string_view domain = rest;
  if (auto at = rest.find('@'); at != std::string_view::npos) {
    node = rest.substr(0, at);
    domain = rest.substr(at + 1);
    if (node.empty()) return std::nullopt;
  }
  return make(node, domain, resource);
}

std::optional<Jid> Jid::make(std::string_view node, std::string_view domain,
                             std::string_view resource) {
  std::string n;
  std::string r;
  if (!node.empty()) {
    auto p = prep_node(node);
    if (!p) return std::nullopt;
    n = std::move(*p);
  }
  auto d = prep_domain(domain);
  if (!d) return std::nullopt;
  if (!resource.empty()) {
    auto p = prep_resource(resource);
    if (!p) return std::nullopt;
    r = std::move(*p);
  }
  return Jid(std::move(n), std::move(*d), std::move(r));
}

Jid Jid::bare() const {
  if (resource_.empty()) return *this;
  return Jid(node_, domain_, {});
}

std::optional<Jid> Jid::with_resource(std::string_view resource) const {
  if (empty()) return std::nullopt;
  auto r = prep_resource(resource);
  if (!r) return std::nullopt;
  return Jid(node_, domain_, std::move(*r));
}

std::string Jid::bare_str() const {
  if (resource_.empty()) return full_;
  return full_.substr(0, full_.size() - resource_.size() - 1);
}

}  // namespace stanzad::xmpp
