// tests/unit/xml/element_test.cpp: the stanza tree API (server/xml/element.hpp).
#include "xml/element.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>

namespace stanzad::xml {
namespace {

TEST(Element, AttributesSetReplaceRemove) {
  Element el("message", "jabber:client");
  EXPECT_EQ(el.name(), "message");
  EXPECT_EQ(el.xmlns(), "jabber:client");
  EXPECT_FALSE(el.has_attr("to"));
  EXPECT_EQ(el.attr("to"), "");
  el.set_attr("to", "juliet@capulet.lit");
  el.set_attr("type", "chat");
  el.set_attr("to", "romeo@montague.lit");
  ASSERT_EQ(el.attrs().size(), 2u);
  EXPECT_EQ(el.attr("to"), "romeo@montague.lit");
  EXPECT_TRUE(el.has_attr("type"));
  el.remove_attr("to");
  EXPECT_FALSE(el.has_attr("to"));
  EXPECT_EQ(el.attrs().size(), 1u);
  el.remove_attr("absent");
  EXPECT_EQ(el.attrs().size(), 1u);
}

TEST(Element, ChildrenAndText) {
  Element msg("message", "jabber:client");
  Element& body = msg.add_child("body");
  EXPECT_EQ(body.xmlns(), "jabber:client");  // empty xmlns inherits the parent's
  body.add_text("Wherefore ");
  body.add_text("art thou?");
  EXPECT_EQ(body.node_count(), 1u);  // merged
  msg.add_child("active", "http://jabber.org/protocol/chatstates");
  msg.add_text("tail");

  EXPECT_EQ(msg.node_count(), 3u);
  EXPECT_EQ(msg.child_text("body"), "Wherefore art thou?");
  EXPECT_EQ(msg.child_text("body", "jabber:client"), "Wherefore art thou?");
  EXPECT_EQ(msg.child_text("body", "urn:other"), "");
  EXPECT_EQ(msg.child_text("nope"), "");
  ASSERT_NE(msg.child("active"), nullptr);
  EXPECT_EQ(msg.child("active")->xmlns(), "http://jabber.org/protocol/chatstates");
  EXPECT_EQ(msg.child("active", "jabber:client"), nullptr);
  EXPECT_EQ(msg.first_child()->name(), "body");
  EXPECT_EQ(msg.text(), "tail");
  auto kids = msg.children();
  ASSERT_EQ(kids.size(), 2u);
  EXPECT_EQ(kids[1]->name(), "active");

  std::string order;
  msg.for_each_node([&](const auto& node) {
    if constexpr (std::is_same_v<std::decay_t<decltype(node)>, Element>) {
      order += "<" + node.name() + ">";
    } else {
      order += std::string(node);
    }
  });
  EXPECT_EQ(order, "<body><active>tail");

  EXPECT_TRUE(msg.remove_child("body"));
  EXPECT_FALSE(msg.remove_child("body"));
  EXPECT_EQ(msg.first_child()->name(), "active");
  msg.clear_children();
  EXPECT_EQ(msg.node_count(), 0u);
  EXPECT_EQ(msg.first_child(), nullptr);
}

TEST(Element, RemoveChildMergesAdjacentText) {
  Element el("p");
  el.add_text("a");
  el.add_child("b");
  el.add_text("c");
  EXPECT_TRUE(el.remove_child("b"));
  EXPECT_EQ(el.node_count(), 1u);
  EXPECT_EQ(el.text(), "ac");
}

TEST(Element, CopyIsDeepMoveIsCheap) {
  Element a("iq", "jabber:client");
  a.set_attr("id", "1");
  a.add_child("query", "jabber:iq:roster").add_child("item").set_attr("jid", "x@y");
  Element b = a;
  EXPECT_EQ(a, b);
  b.child("query")->child("item")->set_attr("jid", "changed");
  EXPECT_EQ(a.child("query")->child("item")->attr("jid"), "x@y");
  EXPECT_NE(a, b);

  static_assert(std::is_nothrow_move_constructible_v<Element>);
  static_assert(std::is_nothrow_move_assignable_v<Element>);
  const Element* query = a.child("query");
  Element c = std::move(a);
  EXPECT_EQ(c.child("query"), query);  // nodes were moved, not copied
}

TEST(Element, DeepTreeCopyAndDestroy) {
  // The parser bounds depth; here a few thousand levels built by hand must still be fine.
  Element root("a");
  Element* cur = &root;
  for (int i = 0; i < 2000; ++i) cur = &cur->add_child("a");
  Element copy = root;
  EXPECT_EQ(copy, root);
}

}  // namespace
}  // namespace stanzad::xml
