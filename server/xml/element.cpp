// server/xml/element.cpp: the namespaced stanza tree (RFC 6120 §4.8 namespaces, §8 stanzas).
#include "xml/element.hpp"

#include <algorithm>

namespace stanzad::xml {

namespace {

bool matches(const Element& el, std::string_view name, std::string_view xmlns) {
  return el.name() == name && (xmlns.empty() || el.xmlns() == xmlns);
}

}  // namespace

Element::Element(std::string name, std::string xmlns)
    : name_(std::move(name)), xmlns_(std::move(xmlns)) {}

std::string_view Element::attr(std::string_view name) const {
  for (const Attribute& a : attrs_) {
    if (a.name == name) return a.value;
  }
  return {};
}

bool Element::has_attr(std::string_view name) const {
  return std::any_of(attrs_.begin(), attrs_.end(),
                     [name](const Attribute& a) { return a.name == name; });
}

void Element::set_attr(std::string name, std::string value) {
  for (Attribute& a : attrs_) {
    if (a.name == name) {
      a.value = std::move(value);
      return;
    }
  }
  attrs_.push_back(Attribute{std::move(name), std::move(value)});
}

void Element::remove_attr(std::string_view name) {
  auto it = std::find_if(attrs_.begin(), attrs_.end(),
                         [name](const Attribute& a) { return a.name == name; });
  if (it != attrs_.end()) attrs_.erase(it);
}

void Element::append_attr(std::string name, std::string value) {
  attrs_.push_back(Attribute{std::move(name), std::move(value)});
}

Element& Element::add_child(Element child) {
  return nodes_.emplace_back(std::move(child)).element();
}

Element& Element::add_child(std::string name, std::string xmlns) {
  if (xmlns.empty()) xmlns = xmlns_;
  return nodes_.emplace_back(Element(std::move(name), std::move(xmlns))).element();
}

void Element::add_text(std::string_view text) {
  if (text.empty()) return;
  if (!nodes_.empty() && nodes_.back().is_text()) {
    nodes_.back().text().append(text);
  } else {
    nodes_.emplace_back(std::string(text));
  }
}

Element* Element::child(std::string_view name, std::string_view xmlns) {
  for (Node& node : nodes_) {
    if (node.is_element() && matches(node.element(), name, xmlns)) return &node.element();
  }
  return nullptr;
}

const Element* Element::child(std::string_view name, std::string_view xmlns) const {
  return const_cast<Element*>(this)->child(name, xmlns);
}

Element* Element::first_child() {
  for (Node& node : nodes_) {
    if (node.is_element()) return &node.element();
  }
  return nullptr;
}

const Element* Element::first_child() const { return const_cast<Element*>(this)->first_child(); }

std::vector<const Element*> Element::children() const {
  std::vector<const Element*> out;
  for (const Node& node : nodes_) {
    if (node.is_element()) out.push_back(&node.element());
  }
  return out;
}

std::vector<Element*> Element::mutable_children() {
  std::vector<Element*> out;
  for (Node& node : nodes_) {
    if (node.is_element()) out.push_back(&node.element());
  }
  return out;
}

std::string Element::text() const {
  std::string out;
  for (const Node& node : nodes_) {
    if (node.is_text()) out.append(node.text());
  }
  return out;
}

std::string Element::child_text(std::string_view name, std::string_view xmlns) const {
  const Element* c = child(name, xmlns);
  return c ? c->text() : std::string();
}

void Element::clear_children() { nodes_.clear(); }

bool Element::remove_child(std::string_view name, std::string_view xmlns) {
  for (auto it = nodes_.begin(); it != nodes_.end(); ++it) {
    if (it->is_element() && matches(it->element(), name, xmlns)) {
      it = nodes_.erase(it);
      // Removing an element may leave two text nodes side by side; keep them merged.
      if (it != nodes_.begin() && it != nodes_.end() && it->is_text() && (it - 1)->is_text()) {
        (it - 1)->text().append(it->text());
        nodes_.erase(it);
      }
      return true;
    }
  }
  return false;
}

std::size_t Element::node_count() const { return nodes_.size(); }

bool operator==(const Element& a, const Element& b) {
  return a.name_ == b.name_ && a.xmlns_ == b.xmlns_ && a.attrs_ == b.attrs_ && a.nodes_ == b.nodes_;
}

}  // namespace stanzad::xml
