// tests/fuzz/jid_fuzz.cpp: xmpp::Jid (RFC 7622 §3): parsing is total, normalization idempotent.
//
// Input: the raw address, as a peer would send it in a to= or from= attribute.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>

#include "fuzz_check.hpp"
#include "xmpp/jid.hpp"

using stanzad::xmpp::Jid;

namespace {

void check_parts(const Jid& j) {
  STANZAD_FUZZ_CHECK(!j.empty());
  STANZAD_FUZZ_CHECK(j.node().size() <= stanzad::xmpp::max_jid_part_bytes);
  STANZAD_FUZZ_CHECK(j.domain().size() <= stanzad::xmpp::max_jid_part_bytes);
  STANZAD_FUZZ_CHECK(j.resource().size() <= stanzad::xmpp::max_jid_part_bytes);
  // str() is unambiguous only if node and domain hold no separators.
  STANZAD_FUZZ_CHECK(j.node().find_first_of("@/") == std::string::npos);
  STANZAD_FUZZ_CHECK(j.domain().find_first_of("@/") == std::string::npos);
  STANZAD_FUZZ_CHECK(stanzad::xmpp::is_valid_utf8(j.str()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view raw(reinterpret_cast<const char*>(data), size);

  // None of these may crash, whatever the bytes.
  (void)stanzad::xmpp::is_valid_utf8(raw);
  auto node = Jid::prep_node(raw);
  auto domain = Jid::prep_domain(raw);
  auto resource = Jid::prep_resource(raw);
  if (node) STANZAD_FUZZ_CHECK(stanzad::xmpp::is_valid_utf8(*node));
  if (domain) STANZAD_FUZZ_CHECK(stanzad::xmpp::is_valid_utf8(*domain));
  if (resource) STANZAD_FUZZ_CHECK(stanzad::xmpp::is_valid_utf8(*resource));

  auto jid = Jid::parse(raw);
  if (!jid) return 0;
  check_parts(*jid);

  // Normalization is idempotent: the normalized form parses to the same address.
  auto again = Jid::parse(jid->str());
  STANZAD_FUZZ_CHECK(again.has_value());
  STANZAD_FUZZ_CHECK(*again == *jid);
  STANZAD_FUZZ_CHECK(again->node() == jid->node());
  STANZAD_FUZZ_CHECK(again->domain() == jid->domain());
  STANZAD_FUZZ_CHECK(again->resource() == jid->resource());
  STANZAD_FUZZ_CHECK(std::hash<Jid>{}(*again) == std::hash<Jid>{}(*jid));

  // The same address built from its parts, and its bare form, agree with parsing.
  auto made = Jid::make(jid->node(), jid->domain(), jid->resource());
  STANZAD_FUZZ_CHECK(made.has_value() && *made == *jid);
  Jid bare = jid->bare();
  STANZAD_FUZZ_CHECK(bare.is_bare());
  STANZAD_FUZZ_CHECK(bare.str() == jid->bare_str());
  auto bare_again = Jid::parse(jid->bare_str());
  STANZAD_FUZZ_CHECK(bare_again.has_value() && *bare_again == bare);
  if (!jid->is_bare()) {
    auto full = bare.with_resource(jid->resource());
    STANZAD_FUZZ_CHECK(full.has_value() && *full == *jid);
  }
  return 0;
}
