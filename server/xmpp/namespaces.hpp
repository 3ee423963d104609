// XML namespaces of RFC 6120 / RFC 6121 used by the core.
#pragma once

#include <string_view>

namespace stanzad::xmpp::ns {

inline constexpr std::string_view client = "jabber:client";
inline constexpr std::string_view streams = "http://etherx.jabber.org/streams";
inline constexpr std::string_view stream_errors = "urn:ietf:params:xml:ns:xmpp-streams";
inline constexpr std::string_view stanza_errors = "urn:ietf:params:xml:ns:xmpp-stanzas";
inline constexpr std::string_view tls = "urn:ietf:params:xml:ns:xmpp-tls";
inline constexpr std::string_view sasl = "urn:ietf:params:xml:ns:xmpp-sasl";
inline constexpr std::string_view bind = "urn:ietf:params:xml:ns:xmpp-bind";
inline constexpr std::string_view session = "urn:ietf:params:xml:ns:xmpp-session";
inline constexpr std::string_view sm = "urn:xmpp:sm:3";

}  // namespace stanzad::xmpp::ns
