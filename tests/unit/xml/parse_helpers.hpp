// tests/unit/xml/parse_helpers.hpp: a recording StreamParser handler shared by the XML tests.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "xml/element.hpp"
#include "xml/serializer.hpp"
#include "xml/stream_parser.hpp"

namespace stanzad::xml::test {

inline constexpr std::string_view kClientHeader =
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
    "to='capulet.lit' version='1.0'>";

// Records every callback as a line of text (stanzas serialized with explicit namespaces).
struct Recorder : StreamParser::Handler {
  std::vector<std::string> events;
  std::vector<StreamHeader> headers;
  std::vector<Element> stanzas;
  std::function<void(const Element&)> after_stanza;  // e.g. to call restart()

  void on_stream_open(const StreamHeader& h) override {
    headers.push_back(h);
    events.push_back("open ns=" + h.ns + " name=" + h.local_name + " default=" + h.default_ns +
                     " to=" + h.to + " from=" + h.from + " id=" + h.id + " version=" + h.version +
                     " lang=" + h.lang);
  }
  void on_stanza(Element&& stanza) override {
    events.push_back("stanza " + to_string(stanza, ""));
    stanzas.push_back(std::move(stanza));
    if (after_stanza) after_stanza(stanzas.back());
  }
  void on_stream_close() override { events.push_back("close"); }
};

// Feeds data in chunks of chunk bytes, feeding again whatever a restart() left unconsumed.
// Returns the first error, if any.
inline std::optional<StreamError> feed_all(StreamParser& parser, std::string_view data,
                                           std::size_t chunk = std::string_view::npos) {
  while (!data.empty()) {
    std::string_view piece = data.substr(0, chunk);
    auto r = parser.feed(piece);
    if (r.error) return r.error;
    data.remove_prefix(r.consumed);
  }
  return std::nullopt;
}

// The first stanza of a jabber:client stream whose body is xml, or a default Element on error.
inline Element parse_stanza(std::string_view xml) {
  Recorder rec;
  StreamParser parser(rec);
  std::string doc(kClientHeader);
  doc.append(xml);
  if (feed_all(parser, doc) || rec.stanzas.empty()) return Element();
  return rec.stanzas.front();
}

}  // namespace stanzad::xml::test
