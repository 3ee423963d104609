// The stanza, event and JID functions of the plugin C ABI, shared by the server and the fake host.
#pragma once

#include <stanzad/plugin.h>

#include <memory>
#include <optional>
#include <string_view>

#include "xml/element.hpp"

namespace stanzad::plugin {

inline sz_stanza* to_c(xml::Element* e) { return reinterpret_cast<sz_stanza*>(e); }
inline xml::Element* from_c(sz_stanza* s) { return reinterpret_cast<xml::Element*>(s); }
inline const xml::Element* from_c(const sz_stanza* s) {
  return reinterpret_cast<const xml::Element*>(s);
}
inline std::string_view view(sz_str s) {
  return s.data ? std::string_view(s.data, s.len) : std::string_view();
}
inline sz_str str(std::string_view s) { return sz_str{s.data(), s.size()}; }

// Parses one XML element (any namespace; default jabber:client). nullopt if not well-formed.
std::optional<xml::Element> parse_element(std::string_view text);

// Fills the stanza_*, event_* and jid_* members of `api` (event_reply excepted: the host's own).
void fill_stanza_api(sz_host_api& api);

}  // namespace stanzad::plugin
