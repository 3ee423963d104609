// server/xml/element.hpp: the namespaced stanza tree (RFC 6120 §4.8 namespaces, §8 stanzas).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace stanzad::xml {

struct Attribute {
  std::string name;
  std::string value;

  friend bool operator==(const Attribute&, const Attribute&) = default;
};

class Node;

// A namespaced XML element. Attribute names: plain local names ("to", "type"); "xml:lang" for the
// xml namespace; any other namespaced attribute as "{uri}local" (the serializer declares a prefix
// for it). Children are element and text nodes kept in document order; adjacent text is merged.
// Copying is deep; moving is cheap (no allocation).
class Element {
 public:
  Element() = default;
  explicit Element(std::string name, std::string xmlns = {});

  const std::string& name() const { return name_; }
  const std::string& xmlns() const { return xmlns_; }
  void set_name(std::string name) { name_ = std::move(name); }
  void set_xmlns(std::string xmlns) { xmlns_ = std::move(xmlns); }

  // Attribute value, or an empty view when absent.
  std::string_view attr(std::string_view name) const;
  bool has_attr(std::string_view name) const;
  // Replaces an existing attribute of that name, else appends.
  void set_attr(std::string name, std::string value);
  void remove_attr(std::string_view name);
  // Appends without looking for an existing attribute of that name: for builders (the parser)
  // that already know the names are distinct. set_attr's scan would be quadratic there.
  void append_attr(std::string name, std::string value);
  void reserve_attrs(std::size_t n) { attrs_.reserve(n); }
  const std::vector<Attribute>& attrs() const { return attrs_; }

  // Appends child and returns a reference to the stored copy (valid until this element's
  // children change).
  Element& add_child(Element child);
  // Appends <name/> in namespace xmlns; an empty xmlns means this element's namespace.
  Element& add_child(std::string name, std::string xmlns = {});
  // Appends text, merging it with a preceding text node.
  void add_text(std::string_view text);

  // First element child named name, in namespace xmlns (empty: any namespace); nullptr if none.
  Element* child(std::string_view name, std::string_view xmlns = {});
  const Element* child(std::string_view name, std::string_view xmlns = {}) const;
  // First element child, or nullptr.
  Element* first_child();
  const Element* first_child() const;
  // Element children in document order.
  std::vector<const Element*> children() const;
  std::vector<Element*> mutable_children();
  // Concatenation of the direct text children.
  std::string text() const;
  // text() of child(name, xmlns), or "" when there is no such child.
  std::string child_text(std::string_view name, std::string_view xmlns = {}) const;
  void clear_children();
  // Removes the first child(name, xmlns); false if there was none.
  bool remove_child(std::string_view name, std::string_view xmlns = {});
  // Number of child nodes (elements and text).
  std::size_t node_count() const;
  // All child nodes in document order.
  const std::vector<Node>& nodes() const { return nodes_; }

  // Calls f(const Element&) for each element child and f(std::string_view) for each text child,
  // in document order.
  template <class F>
  void for_each_node(F&& f) const;

  // Deep structural equality: names, namespaces, attributes (in order) and child nodes.
  friend bool operator==(const Element& a, const Element& b);

 private:
  std::string name_;
  std::string xmlns_;
  std::vector<Attribute> attrs_;
  std::vector<Node> nodes_;
};

// One child node of an Element: an element or a run of text.
class Node {
 public:
  explicit Node(Element element) : value_(std::in_place_index<0>, std::move(element)) {}
  explicit Node(std::string text) : value_(std::in_place_index<1>, std::move(text)) {}

  bool is_element() const { return value_.index() == 0; }
  bool is_text() const { return value_.index() == 1; }
  // Precondition: is_element().
  const Element& element() const { return *std::get_if<0>(&value_); }
  Element& element() { return *std::get_if<0>(&value_); }
  // Precondition: is_text().
  const std::string& text() const { return *std::get_if<1>(&value_); }
  std::string& text() { return *std::get_if<1>(&value_); }

  friend bool operator==(const Node& a, const Node& b) { return a.value_ == b.value_; }

 private:
  std::variant<Element, std::string> value_;
};

template <class F>
void Element::for_each_node(F&& f) const {
  for (const Node& node : nodes_) {
    if (node.is_element()) {
      f(node.element());
    } else {
      f(std::string_view(node.text()));
    }
  }
}

}  // namespace stanzad::xml
