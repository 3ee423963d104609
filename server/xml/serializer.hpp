// server/xml/serializer.hpp: stanza trees to XML text (RFC 6120 §4.8 namespaces, §11 XML use).
#pragma once

#include <string>
#include <string_view>

#include "xml/element.hpp"

namespace stanzad::xml {

// Appends el's XML to out. Emits xmlns='...' on an element whose namespace differs from its
// parent's (parent_ns for the root; an empty namespace under a non-empty one gets xmlns='').
// Attribute values are single-quoted; childless elements are written as <x/>; an attribute named
// "{uri}local" gets a prefix declared on its element (xmlns:ns1='uri' ns1:local='...').
// Attributes named "xmlns" or "xmlns:*" are not written: namespaces come from xmlns().
// Iterative, so an arbitrarily deep tree does not grow the C stack.
void serialize(const Element& el, std::string& out, std::string_view parent_ns = "jabber:client");
std::string to_string(const Element& el, std::string_view parent_ns = "jabber:client");

// Escapes & < > and \r (as &#13;, which a parser would otherwise normalise away). Control
// characters that XML 1.0 cannot carry at all are replaced by U+FFFD.
void escape_text(std::string_view in, std::string& out);
// As escape_text, plus ' " and \t \n (as &#9; &#10;, which attribute normalisation would turn
// into spaces), so that parse(serialize(x)) == x.
void escape_attr(std::string_view in, std::string& out);

}  // namespace stanzad::xml
