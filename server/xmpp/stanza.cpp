// Stanza helpers: RFC 6120 §8.3 stanza errors and §8.2 common attributes.
#include "xmpp/stanza.hpp"

#include <string>

#include "xmpp/namespaces.hpp"

namespace stanzad::xmpp {

std::string_view error_type_for(std::string_view condition) {
  if (condition == "bad-request" || condition == "jid-malformed" || condition == "not-acceptable" ||
      condition == "policy-violation" || condition == "redirect" || condition == "gone")
    return "modify";
  if (condition == "forbidden" || condition == "not-authorized" ||
      condition == "registration-required")
    return "auth";
  if (condition == "resource-constraint" || condition == "recipient-unavailable" ||
      condition == "remote-server-timeout")
    return "wait";
  return "cancel";
}

xml::Element make_error_reply(const xml::Element& stanza, std::string_view condition,
                              std::string_view text) {
  xml::Element reply = stanza;
  std::string from(stanza.attr("from"));
  std::string to(stanza.attr("to"));
  reply.remove_attr("from");
  reply.remove_attr("to");
  if (!to.empty()) reply.set_attr("from", std::move(to));
  if (!from.empty()) reply.set_attr("to", std::move(from));
  reply.set_attr("type", "error");
  xml::Element& error = reply.add_child("error", std::string(ns::client));
  error.set_attr("type", std::string(error_type_for(condition)));
  error.add_child(std::string(condition), std::string(ns::stanza_errors));
  if (!text.empty()) {
    xml::Element& t = error.add_child("text", std::string(ns::stanza_errors));
    t.set_attr("xml:lang", "en");
    t.add_text(text);
  }
  return reply;
}

bool may_bounce(const xml::Element& stanza) {
  std::string_view type = stanza.attr("type");
  if (type == "error") return false;
  if (stanza.name() == "iq" && type == "result") return false;
  return true;
}

xml::Element make_iq_result(const xml::Element& iq) {
  xml::Element reply("iq", std::string(ns::client));
  reply.set_attr("type", "result");
  if (iq.has_attr("id")) reply.set_attr("id", std::string(iq.attr("id")));
  if (iq.has_attr("to")) reply.set_attr("from", std::string(iq.attr("to")));
  if (iq.has_attr("from")) reply.set_attr("to", std::string(iq.attr("from")));
  return reply;
}

}  // namespace stanzad::xmpp
