// server/xml/serializer.cpp: stanza trees to XML text (RFC 6120 §4.8 namespaces, §11 XML use).
#include "xml/serializer.hpp"

#include <array>
#include <boost/container/small_vector.hpp>
#include <cstdint>
#include <vector>

namespace stanzad::xml {

namespace {

constexpr std::string_view kXmlNs = "http://www.w3.org/XML/1998/namespace";

// Per byte: nullptr = copy as is, else the replacement. One table per context so the hot loop
// is a single lookup per byte and a bulk append per run of plain bytes.
using EscapeTable = std::array<const char*, 256>;

constexpr EscapeTable make_table(bool attr) {
  EscapeTable t{};
  for (int c = 0; c < 0x20; ++c) t[c] = "\xEF\xBF\xBD";  // U+FFFD: not representable in XML 1.0
  t['\t'] = attr ? "&#9;" : nullptr;
  t['\n'] = attr ? "&#10;" : nullptr;
  t['\r'] = "&#13;";
  t['&'] = "&amp;";
  t['<'] = "&lt;";
  t['>'] = "&gt;";
  if (attr) {
    t['\''] = "&apos;";
    t['"'] = "&quot;";
  }
  return t;
}

constexpr EscapeTable kTextTable = make_table(false);
constexpr EscapeTable kAttrTable = make_table(true);

void escape(std::string_view in, std::string& out, const EscapeTable& table) {
  std::size_t run = 0;
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char* rep = table[static_cast<std::uint8_t>(in[i])];
    if (rep == nullptr) continue;
    out.append(in.data() + run, i - run);
    out.append(rep);
    run = i + 1;
  }
  out.append(in.data() + run, in.size() - run);
}

bool is_xmlns_attr(std::string_view name) { return name == "xmlns" || name.starts_with("xmlns:"); }

void write_attr(std::string_view qname, std::string_view value, std::string& out) {
  out += ' ';
  out.append(qname);
  out += "='";
  escape_attr(value, out);
  out += '\'';
}

// An element in the xml namespace (<xml:x/> from a peer) keeps the prefix: that namespace may
// not be made the default one (Namespaces in XML §3), so xmlns='...XML/1998/namespace' would
// be a stream error at whoever receives it. The default namespace in scope stays the parent's.
bool xml_prefixed(const Element& el) { return el.xmlns() == kXmlNs; }

void write_name(const Element& el, std::string& out) {
  if (xml_prefixed(el)) out.append("xml:");
  out.append(el.name());
}

// Writes "<name xmlns=... attrs" (without the closing '>' or "/>").
void write_start(const Element& el, std::string_view parent_ns, std::string& out) {
  out += '<';
  write_name(el, out);
  if (!xml_prefixed(el) && el.xmlns() != parent_ns) write_attr("xmlns", el.xmlns(), out);

  // Prefixes for "{uri}local" attributes, declared on this element only. Rare, so a small
  // linear list is fine.
  std::vector<std::string_view> prefixed_uris;
  for (const Attribute& a : el.attrs()) {
    std::string_view name = a.name;
    if (name.size() > 2 && name.front() == '{') {
      std::size_t close = name.rfind('}');
      if (close != std::string_view::npos && close + 1 < name.size()) {
        std::string_view uri = name.substr(1, close - 1);
        std::string_view local = name.substr(close + 1);
        std::string qname;
        if (uri.empty()) {
          // "{}local" is just a plain attribute.
        } else if (uri == kXmlNs) {
          qname = "xml:";
        } else {
          std::size_t index = 0;
          while (index < prefixed_uris.size() && prefixed_uris[index] != uri) ++index;
          std::string prefix = "ns" + std::to_string(index + 1);
          if (index == prefixed_uris.size()) {
            prefixed_uris.push_back(uri);
            write_attr("xmlns:" + prefix, uri, out);
          }
          qname = prefix + ':';
        }
        qname.append(local);
        write_attr(qname, a.value, out);
        continue;
      }
    }
    if (is_xmlns_attr(name)) continue;
    write_attr(name, a.value, out);
  }
}

}  // namespace

void escape_text(std::string_view in, std::string& out) { escape(in, out, kTextTable); }

void escape_attr(std::string_view in, std::string& out) { escape(in, out, kAttrTable); }

void serialize(const Element& root, std::string& out, std::string_view parent_ns) {
  struct Frame {
    const Element* el;
    std::size_t next;
    std::string_view ns;  // the default namespace in scope inside el
  };
  // Inline for the depths stanzas have: serializing a message allocates nothing of its own
  // (a std::vector here cost two allocations per chat message, at depths 1 and 2).
  boost::container::small_vector<Frame, 8> stack;

  auto open = [&](const Element& el, std::string_view pns) {
    write_start(el, pns, out);
    if (el.node_count() == 0) {
      out += "/>";
    } else {
      out += '>';
      stack.push_back(Frame{&el, 0, xml_prefixed(el) ? pns : std::string_view(el.xmlns())});
    }
  };

  open(root, parent_ns);
  while (!stack.empty()) {
    Frame& top = stack.back();
    const auto& nodes = top.el->nodes();
    if (top.next == nodes.size()) {
      out += "</";
      write_name(*top.el, out);
      out += '>';
      stack.pop_back();
      continue;
    }
    const Node& node = nodes[top.next++];
    if (node.is_text()) {
      escape_text(node.text(), out);
    } else {
      // open() may reallocate the stack: read what we need from top first.
      std::string_view ns = top.ns;
      open(node.element(), ns);
    }
  }
}

std::string to_string(const Element& el, std::string_view parent_ns) {
  std::string out;
  serialize(el, out, parent_ns);
  return out;
}

}  // namespace stanzad::xml
