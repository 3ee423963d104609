// tests/fuzz/stream_parser_fuzz.cpp: xml::StreamParser (RFC 6120 §4, §11) fed in chunks that the
// input itself chooses, checked against one whole feed and against a serialize/parse round trip.
//
// Input: byte 0 holds flags, bytes 0-1 seed the chunk sizes, the rest is the stream.
//   bit 0: prepend a valid jabber:client stream header
//   bit 1: tiny ParserLimits (stanza bytes, depth, header bytes)
//   bit 2: restart() after <starttls/>, <auth/> and <response/>, as c2s does
#include <expat.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "xml/element.hpp"
#include "xml/serializer.hpp"
#include "xml/stream_parser.hpp"

// Expat seeds its hash tables from getrandom() unless told otherwise; a fixed salt keeps coverage
// and behaviour the same from run to run. The fuzz targets link with
// -Wl,--wrap=XML_ParserCreateNS, so every parser StreamParser makes comes through here.
extern "C" XML_Parser __real_XML_ParserCreateNS(const XML_Char* encoding, XML_Char sep);
extern "C" XML_Parser __wrap_XML_ParserCreateNS(const XML_Char* encoding, XML_Char sep) {
  XML_Parser p = __real_XML_ParserCreateNS(encoding, sep);
  if (p != nullptr) XML_SetHashSalt(p, 0x5a17);
  return p;
}
// StreamParser salts its parsers itself (xml::next_hash_salt): the same fixed salt for those
// (-Wl,--wrap=XML_SetHashSalt).
extern "C" int __real_XML_SetHashSalt(XML_Parser p, unsigned long salt);
extern "C" int __wrap_XML_SetHashSalt(XML_Parser p, unsigned long) {
  return __real_XML_SetHashSalt(p, 0x5a17);
}

namespace {

using stanzad::xml::Element;
using stanzad::xml::ParserLimits;
using stanzad::xml::StreamError;
using stanzad::xml::StreamHeader;
using stanzad::xml::StreamParser;

constexpr std::string_view kHeader =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' to='capulet.lit' version='1.0'>";

// splitmix64: chunk sizes as a pure function of the seed bytes.
struct Rng {
  std::uint64_t state;
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Mostly tiny chunks (splits inside tags, names and UTF-8 sequences), sometimes larger ones.
  std::size_t chunk() {
    std::uint64_t r = next();
    switch (r % 4) {
      case 0:
        return 1;
      case 1:
      case 2:
        return 1 + (r >> 8) % 8;
      default:
        return 1 + (r >> 8) % 512;
    }
  }
};

std::size_t depth(const Element& e) {
  std::size_t deepest = 0;
  for (const Element* child : e.children()) deepest = std::max(deepest, depth(*child));
  return deepest + 1;
}

struct Recorder : StreamParser::Handler {
  StreamParser* parser = nullptr;
  bool restart_on_auth = false;
  bool open = false;         // between on_stream_open and on_stream_close (or a restart)
  std::size_t restarts = 0;  // restart() calls made from callbacks
  std::vector<std::string> events;
  std::vector<Element> stanzas;
  std::vector<std::string> default_ns;  // of the stream each stanza arrived on
  ParserLimits limits;

  void on_stream_open(const StreamHeader& h) override {
    STANZAD_FUZZ_CHECK(!open);
    open = true;
    current_ns = h.default_ns;
    events.push_back("open ns=" + h.ns + " name=" + h.local_name + " default=" + h.default_ns +
                     " to=" + h.to + " from=" + h.from + " id=" + h.id + " version=" + h.version +
                     " lang=" + h.lang);
  }
  void on_stanza(Element&& stanza) override {
    STANZAD_FUZZ_CHECK(open);
    STANZAD_FUZZ_CHECK(parser->stream_open());
    STANZAD_FUZZ_CHECK(!stanza.name().empty());
    STANZAD_FUZZ_CHECK(depth(stanza) <= limits.max_depth);
    // Exercise the tree API on what the parser built.
    (void)stanza.text();
    (void)stanza.child("body");
    (void)stanza.attr("to");
    events.push_back("stanza " + stanza_text(stanza));
    bool restart = restart_on_auth && (stanza.name() == "starttls" || stanza.name() == "auth" ||
                                       stanza.name() == "response");
    stanzas.push_back(std::move(stanza));
    default_ns.push_back(current_ns);
    if (restart) {
      parser->restart();
      open = false;
      ++restarts;
      events.push_back("restart");
    }
  }
  void on_stream_close() override {
    STANZAD_FUZZ_CHECK(open);
    open = false;
    events.push_back("close");
  }

 private:
  static std::string stanza_text(const Element& e) { return stanzad::xml::to_string(e, ""); }
  std::string current_ns;
};

struct Outcome {
  std::vector<std::string> events;
  std::optional<StreamError> error;
};

// Feeds data in the given chunks (all at once if rng is null), feeding again whatever a restart()
// left unconsumed, and checks the FeedResult contract on every call.
Outcome run(std::string_view data, const ParserLimits& limits, bool restart_on_auth, Rng* rng,
            std::vector<Element>* stanzas = nullptr,
            std::vector<std::string>* stanza_ns = nullptr) {
  Recorder rec;
  rec.restart_on_auth = restart_on_auth;
  rec.limits = limits;
  StreamParser parser(rec, limits);
  rec.parser = &parser;
  STANZAD_FUZZ_CHECK(!parser.stream_open());

  Outcome out;
  std::size_t pos = 0;
  while (pos < data.size()) {
    std::size_t n = rng != nullptr ? rng->chunk() : data.size();
    std::string_view piece = data.substr(pos, n);
    std::size_t restarts_before = rec.restarts;
    auto r = parser.feed(piece);
    STANZAD_FUZZ_CHECK(r.consumed <= piece.size());
    if (r.error) {
      out.error = r.error;
      STANZAD_FUZZ_CHECK(!r.detail.empty());
      // A dead parser stays dead, whatever it is fed.
      auto again = parser.feed(data.substr(pos));
      STANZAD_FUZZ_CHECK(again.error == r.error);
      STANZAD_FUZZ_CHECK(parser.feed("<message/>").error == r.error);
      STANZAD_FUZZ_CHECK(parser.feed("").error == r.error);
      break;
    }
    // Only a restart() stops short, and it always makes progress.
    if (r.consumed < piece.size()) STANZAD_FUZZ_CHECK(rec.restarts > restarts_before);
    STANZAD_FUZZ_CHECK(r.consumed > 0 || piece.empty());
    STANZAD_FUZZ_CHECK(parser.stream_open() == rec.open);
    pos += r.consumed;
  }
  out.events = std::move(rec.events);
  if (stanzas != nullptr) *stanzas = std::move(rec.stanzas);
  if (stanza_ns != nullptr) *stanza_ns = std::move(rec.default_ns);
  return out;
}

std::string quote_attr(std::string_view v) {
  std::string out;
  stanzad::xml::escape_attr(v, out);
  return out;
}

// A stanza the parser produced, serialized and parsed again on a fresh stream, is the same tree.
void check_round_trip(const Element& stanza, const std::string& default_ns) {
  std::string doc = "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'";
  if (!default_ns.empty()) doc += " xmlns='" + quote_attr(default_ns) + "'";
  doc += '>';
  stanzad::xml::serialize(stanza, doc, default_ns);
  ParserLimits unlimited;
  unlimited.max_stanza_bytes = doc.size() + 1;
  unlimited.max_header_bytes = doc.size() + 1;
  unlimited.max_depth = depth(stanza) + 1;
  std::vector<Element> again;
  Outcome out = run(doc, unlimited, false, nullptr, &again);
  if (out.error || again.size() != 1 || !(again[0] == stanza)) {
    std::fprintf(stderr, "round trip failed: %s\n", doc.c_str());
    STANZAD_FUZZ_CHECK(!"serialize/parse round trip");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint8_t flags = data[0];
  Rng rng{static_cast<std::uint64_t>(data[0]) << 8 | data[1]};
  std::string_view body(reinterpret_cast<const char*>(data) + 2, size - 2);

  const bool with_header = (flags & 1) != 0;
  const bool tiny_limits = (flags & 2) != 0;
  const bool restart_on_auth = (flags & 4) != 0;

  std::string stream;
  if (with_header) stream = kHeader;
  stream.append(body);

  ParserLimits limits;
  if (tiny_limits) {
    limits.max_stanza_bytes = 64 + data[1] % 64;
    limits.max_depth = 1 + data[1] % 4;
    limits.max_header_bytes = kHeader.size() + data[1] % 32;
  }

  std::vector<Element> stanzas;
  std::vector<std::string> stanza_ns;
  Outcome chunked = run(stream, limits, restart_on_auth, &rng, &stanzas, &stanza_ns);

  // How the bytes were split must not matter. With tiny limits it may: a limit can be noticed
  // between two chunks before a syntax error later in the same stanza. (A NUL byte, which
  // expat alone judged by the split, is refused by the parser itself: docs/fuzzing.md.)
  if (!tiny_limits) {
    Outcome whole = run(stream, limits, restart_on_auth, nullptr);
    if (whole.events != chunked.events || whole.error != chunked.error) {
      std::fprintf(stderr, "chunked and whole feeds differ (%zu vs %zu events, error %d vs %d)\n",
                   chunked.events.size(), whole.events.size(),
                   chunked.error ? static_cast<int>(*chunked.error) : -1,
                   whole.error ? static_cast<int>(*whole.error) : -1);
      STANZAD_FUZZ_CHECK(!"split-independence");
    }
  }
  for (std::size_t i = 0; i < stanzas.size(); ++i) check_round_trip(stanzas[i], stanza_ns[i]);
  return 0;
}
