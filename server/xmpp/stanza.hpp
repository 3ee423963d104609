// Stanza helpers: RFC 6120 §8.3 stanza errors and §8.2 common attributes.
#pragma once

#include <memory>
#include <string_view>

#include "xml/element.hpp"
#include "xmpp/jid.hpp"

namespace stanzad::xmpp {

// A stanza on its way through the router, with its addresses already parsed.
// Held while a client's stanza is on its way; when the last holder lets go (the stanza was
// written to its recipient's stream, committed to storage, refused or dropped) the sending
// session may count it in its XEP-0198 acknowledgements (c2s_session.hpp, InboundAcks).
struct Receipt {
  virtual ~Receipt() = default;
  // Called (on the session's shard) before a session without stream management lets go of
  // the receipt of a stanza it could not write: its connection failed or closed first. The
  // receipt still ends (a sender's acknowledgement counts it); what it stands for may keep
  // the stanza instead (an offline delivery keeps its queue).
  virtual void undelivered() {}
};

struct Routed {
  xml::Element stanza;
  Jid from;
  Jid to;
  std::shared_ptr<Receipt> receipt = {};  // null unless the sender waits for it
};

// The RFC 6120 §8.3.2 error type that goes with a defined condition.
std::string_view error_type_for(std::string_view condition);

// The error reply to `stanza` (§8.3.1): addresses swapped, type='error', the original
// payload kept, an <error/> with `condition` added.
xml::Element make_error_reply(const xml::Element& stanza, std::string_view condition,
                              std::string_view text = {});

// Whether a stanza of this kind may be answered with an error (§8.3.1: never answer an
// error with an error, nor an iq result).
bool may_bounce(const xml::Element& stanza);

// An empty iq result for an iq get or set.
xml::Element make_iq_result(const xml::Element& iq);

}  // namespace stanzad::xmpp
