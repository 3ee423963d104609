// The stanza pipeline's event: what a handler sees (sz_event in the C ABI).
#pragma once

#include <stanzad/plugin.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "xml/element.hpp"
#include "xmpp/jid.hpp"
#include "xmpp/stanza.hpp"

namespace stanzad::plugin {

// A session, for events fired on its shard (stanza/out, session events): event_session_write.
class SessionSink {
 public:
  // Writes a stanza to the session's stream now, without passing stanza/out.
  virtual void write_now(xml::Element stanza) = 0;

 protected:
  ~SessionSink() = default;
};

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
  std::vector<xml::Element> error_payload;  // appended to the <error/> after the condition
  SessionSink* sink = nullptr;              // the session, when the event has one here
  std::string_view remote_address;          // the session's client IP, when it has one
  // message/offline: the sender's acknowledgement (XEP-0198), for offline_push_async to hold
  // until its commit. Null when nobody waits.
  std::shared_ptr<xmpp::Receipt>* receipt = nullptr;
};

inline sz_event* to_c(Event* e) { return reinterpret_cast<sz_event*>(e); }
inline Event* from_c(sz_event* e) { return reinterpret_cast<Event*>(e); }

}  // namespace stanzad::plugin
