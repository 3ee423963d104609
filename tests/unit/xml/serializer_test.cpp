// tests/unit/xml/serializer_test.cpp: escaping and namespaces (server/xml/serializer.hpp).
#include "xml/serializer.hpp"

#include <gtest/gtest.h>

#include <string>

#include "parse_helpers.hpp"

namespace stanzad::xml {
namespace {

using test::parse_stanza;

TEST(Serializer, EscapeText) {
  std::string out;
  escape_text("a&b<c>d'e\"f\tg\nh\ri", out);
  EXPECT_EQ(out, "a&amp;b&lt;c&gt;d'e\"f\tg\nh&#13;i");
}

TEST(Serializer, EscapeAttr) {
  std::string out;
  escape_attr("a&b<c>d'e\"f\tg\nh\ri", out);
  EXPECT_EQ(out, "a&amp;b&lt;c&gt;d&apos;e&quot;f&#9;g&#10;h&#13;i");
}

TEST(Serializer, ControlCharactersBecomeReplacementCharacter) {
  std::string out;
  escape_text(std::string_view("a\0b\x1b"
                               "c",
                               4),
              out);
  EXPECT_EQ(out,
            "a\xEF\xBF\xBD"
            "b\xEF\xBF\xBD");
  out.clear();
  escape_text("\xC3\xA9\xF0\x9F\x98\x80", out);  // multi-byte UTF-8 passes through
  EXPECT_EQ(out, "\xC3\xA9\xF0\x9F\x98\x80");
}

TEST(Serializer, EmptyElementAndSingleQuotes) {
  Element msg("message", "jabber:client");
  msg.set_attr("to", "juliet@capulet.lit");
  msg.set_attr("type", "chat");
  msg.add_child("body").add_text("O Romeo, Romeo!");
  msg.add_child("active", "http://jabber.org/protocol/chatstates");
  EXPECT_EQ(to_string(msg),
            "<message to='juliet@capulet.lit' type='chat'><body>O Romeo, Romeo!</body>"
            "<active xmlns='http://jabber.org/protocol/chatstates'/></message>");
  EXPECT_EQ(to_string(Element("starttls", "urn:ietf:params:xml:ns:xmpp-tls"), "jabber:client"),
            "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
}

TEST(Serializer, AppendsToOutput) {
  std::string out = "prefix";
  serialize(Element("presence", "jabber:client"), out);
  EXPECT_EQ(out, "prefix<presence/>");
}

TEST(Serializer, NamespaceOnlyWhereItChanges) {
  Element iq("iq", "jabber:client");
  Element& query = iq.add_child("query", "jabber:iq:roster");
  query.add_child("item").add_child("group").add_text("Friends");
  EXPECT_EQ(to_string(iq),
            "<iq><query xmlns='jabber:iq:roster'><item><group>Friends</group></item></query></iq>");
  EXPECT_EQ(to_string(iq, "jabber:server"),
            "<iq xmlns='jabber:client'><query xmlns='jabber:iq:roster'><item><group>Friends</group>"
            "</item></query></iq>");
}

TEST(Serializer, EmptyNamespaceUnderDefaultIsUndeclared) {
  Element msg("message", "jabber:client");
  msg.add_child(Element("x", ""));
  EXPECT_EQ(to_string(msg), "<message><x xmlns=''/></message>");
}

TEST(Serializer, XmlLangAndNamespacedAttributes) {
  Element msg("message", "jabber:client");
  msg.set_attr("xml:lang", "fr");
  msg.set_attr("{urn:a}one", "1");
  msg.set_attr("{urn:b}two", "2");
  msg.set_attr("{urn:a}three", "3");
  msg.set_attr("xmlns", "ignored");
  EXPECT_EQ(to_string(msg),
            "<message xml:lang='fr' xmlns:ns1='urn:a' ns1:one='1' xmlns:ns2='urn:b' ns2:two='2' "
            "ns1:three='3'/>");
  Element back = parse_stanza(to_string(msg));
  EXPECT_EQ(back.attr("xml:lang"), "fr");
  EXPECT_EQ(back.attr("{urn:a}one"), "1");
  EXPECT_EQ(back.attr("{urn:b}two"), "2");
  EXPECT_EQ(back.attr("{urn:a}three"), "3");
}

// A namespace name may contain '}' (it is any URI reference); the local name, an NCName, may not,
// so "{uri}local" splits at the last '}'. Found by the stream_parser fuzz target.
TEST(Serializer, NamespacedAttributeWhoseUriHoldsABrace) {
  Element x("x", "urn:example:bar");
  x.set_attr("{urn:}}example:foo}attr", "v");
  EXPECT_EQ(to_string(x),
            "<x xmlns='urn:example:bar' xmlns:ns1='urn:}}example:foo' ns1:attr='v'/>");
  Element back = parse_stanza(to_string(x));
  EXPECT_EQ(back.attr("{urn:}}example:foo}attr"), "v");
  EXPECT_TRUE(back == x);
}

TEST(Serializer, RoundTripIsLossless) {
  Element msg("message", "jabber:client");
  msg.set_attr("id", "a'b\"c<d>&e\tf\ng\rh  i");
  msg.set_attr("xml:lang", "en");
  Element& body = msg.add_child("body");
  body.add_text("x\r\ny\rz <&> ]]> 'q' \"d\" \t\xC3\xA9\xF0\x9F\x98\x80");
  msg.add_child("x", "jabber:x:oob").add_child("url").add_text("https://a/b?c=1&d=2");
  msg.add_text("  tail\n");
  msg.add_child(Element("unqualified", ""));

  std::string xml = to_string(msg);
  Element parsed = parse_stanza(xml);
  EXPECT_EQ(parsed, msg) << xml;
  EXPECT_EQ(to_string(parsed), xml);
}

TEST(Serializer, RoundTripOfParsedStanza) {
  const std::string in =
      "<message to='juliet@capulet.lit/balcony' type='chat' xml:lang='en'>"
      "<body>Art thou not Romeo, &amp; a Montague?</body>"
      "<thread>e0ffe42b28561960c6b12b944a092794b9683a38</thread>"
      "<request xmlns='urn:xmpp:receipts'/></message>";
  Element first = parse_stanza(in);
  ASSERT_EQ(first.name(), "message");
  Element second = parse_stanza(to_string(first));
  EXPECT_EQ(first, second);
  EXPECT_EQ(to_string(first), in);
}

TEST(Serializer, ElementInTheXmlNamespaceKeepsItsPrefix) {
  // Found by the stream parser fuzzer: written as <x xmlns='...XML/1998/namespace'/> (a
  // namespace error) it would end the recipient's stream.
  const std::string in =
      "<message to='juliet@capulet.lit'><xml:x xml:lang='en'><y/>text</xml:x></message>";
  Element first = parse_stanza(in);
  EXPECT_EQ(to_string(first, "jabber:client"), in);
  EXPECT_EQ(parse_stanza(to_string(first, "jabber:client")), first);
}

TEST(Serializer, DeepTreeIsIterative) {
  Element root("a");
  Element* cur = &root;
  for (int i = 0; i < 1000; ++i) cur = &cur->add_child("a");
  std::string xml = to_string(root, "");
  EXPECT_EQ(xml.size(), 1000 * 7 + 4u);
}

}  // namespace
}  // namespace stanzad::xml
