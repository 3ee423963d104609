// Issue 7: serializing a stanza allocates nothing but the output's own growth.
#include <gtest/gtest.h>

#include <string>

#include "count_allocations.hpp"
#include "xml/element.hpp"
#include "xml/serializer.hpp"

namespace stanzad::xml {

using stanzad::testing::allocations;

TEST(SerializerAllocations, AChatMessageAllocatesNothingOfItsOwn) {
  Element message("message", "jabber:client");
  message.set_attr("type", "chat");
  message.set_attr("to", "juliet@example.net/balcony");
  message.set_attr("from", "romeo@example.net/orchard");
  Element& body = message.add_child("body", "jabber:client");
  body.add_text("But soft, what light through yonder window breaks");
  message.add_child("active", "http://jabber.org/protocol/chatstates")
      .add_child("deep", "urn:example:deep")
      .add_text("three levels down");
  std::string out;
  out.reserve(4096);
  std::uint64_t before = allocations.load();
  serialize(message, out, "jabber:client");
  EXPECT_EQ(allocations.load() - before, 0u);  // a std::vector stack: one per depth reached
  EXPECT_NE(out.find("<body>But soft"), std::string::npos);
  EXPECT_NE(out.find("<deep xmlns='urn:example:deep'>three levels down</deep>"), std::string::npos);
}

}  // namespace stanzad::xml
