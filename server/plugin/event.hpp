// The stanza pipeline's event: what a handler sees (sz_event in the C ABI).
#pragma once

#include <stanzad/plugin.h>

#include <string>
#include <string_view>

#include "xml/element.hpp"
#include "xmpp/jid.hpp"

namespace stanzad::plugin {

struct Event {
  std::string_view name;
  xml::Element* stanza = nullptr;      // may be null (life-cycle events)
  const xmpp::Jid* from = nullptr;     // verified sender
  const xmpp::Jid* to = nullptr;       // target
  const xmpp::Jid* session = nullptr;  // the session's full JID, for session events
  std::string_view host;               // the virtual host concerned (per-host plugins)
  // Set by a handler that returns SZ_ERROR.
  std::string error_condition;
  std::string error_type;
  std::string error_text;
};

inline sz_event* to_c(Event* e) { return reinterpret_cast<sz_event*>(e); }
inline Event* from_c(sz_event* e) { return reinterpret_cast<Event*>(e); }

}  // namespace stanzad::plugin
