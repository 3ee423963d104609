// server/xmpp/jid.hpp: XMPP addresses, RFC 7622 §3 parsing with RFC 3920 stringprep profiles.
#pragma once

#include <compare>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace stanzad::xmpp {

// Upper bound of each JID part, in bytes after preparation (RFC 7622 §3.2-§3.4).
inline constexpr std::size_t max_jid_part_bytes = 1023;

// True if s is well-formed UTF-8 (no overlongs, surrogates or code points above U+10FFFF)
// and holds no NUL; libidn would otherwise read past or stop at such input.
bool is_valid_utf8(std::string_view s);

// A normalized address: node@domain/resource. Parts are stored prepared (nodeprep,
// nameprep, resourceprep), so equality of normalized parts is equality of addresses.
// Cheap to copy relative to preparation; prepare once at the edge, then pass Jid around.
class Jid {
 public:
  Jid() = default;  // the empty JID: no domain, matches nothing but another empty JID

  // Validates and normalizes "[node@]domain[/resource]"; nullopt if malformed.
  static std::optional<Jid> parse(std::string_view s);
  // Builds from separate raw parts; an empty node or resource means "absent".
  static std::optional<Jid> make(std::string_view node, std::string_view domain,
                                 std::string_view resource = {});

  // Each returns the prepared part, or nullopt if it is not allowed.
  static std::optional<std::string> prep_node(std::string_view node);
  static std::optional<std::string> prep_domain(std::string_view domain);
  static std::optional<std::string> prep_resource(std::string_view resource);

  const std::string& node() const { return node_; }
  const std::string& domain() const { return domain_; }
  const std::string& resource() const { return resource_; }

  bool empty() const { return domain_.empty(); }
  bool is_bare() const { return resource_.empty(); }
  bool is_host() const { return node_.empty() && resource_.empty(); }

  Jid bare() const;
  // This address with its resource replaced by the prepared `resource`; nullopt if the
  // resource is invalid (empty included) or this JID is empty.
  std::optional<Jid> with_resource(std::string_view resource) const;

  const std::string& str() const { return full_; }
  std::string bare_str() const;
  // The bare JID inside str(), without a copy: valid as long as this Jid is.
  std::string_view bare_view() const {
    return resource_.empty()
               ? std::string_view(full_)
               : std::string_view(full_).substr(0, full_.size() - resource_.size() - 1);
  }

  // full_ is derived from the parts and unambiguous (node and domain hold no '@' or '/'),
  // so comparing it alone orders and equates by normalized parts.
  friend bool operator==(const Jid& a, const Jid& b) { return a.full_ == b.full_; }
  friend std::strong_ordering operator<=>(const Jid& a, const Jid& b) {
    return a.full_.compare(b.full_) <=> 0;
  }

 private:
  // Takes already prepared parts.
  Jid(std::string node, std::string domain, std::string resource);

  std::string node_;
  std::string domain_;
  std::string resource_;
  std::string full_;
};

struct JidHash {
  std::size_t operator()(const Jid& j) const noexcept { return std::hash<std::string>{}(j.str()); }
};

}  // namespace stanzad::xmpp

template <>
struct std::hash<stanzad::xmpp::Jid> : stanzad::xmpp::JidHash {};
