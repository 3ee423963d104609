// server/xml/stream_parser.hpp: expat XMPP stream parser (RFC 6120 §4.2-4.3, §4.8-4.9, §11).
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "xml/element.hpp"

namespace stanzad::xml {

// The hash salt each new expat parser gets (never 0): from a per-thread generator seeded once
// from the kernel, so that making a parser costs no system call.
unsigned long next_hash_salt();

inline constexpr std::string_view kStreamsNs = "http://etherx.jabber.org/streams";

struct ParserLimits {
  // Bytes of one top-level stanza, from its '<' to the end of its end tag. Also bounds the
  // whitespace between two stanzas.
  std::size_t max_stanza_bytes = 256 * 1024;
  // Element nesting inside a stanza: the stanza itself is level 1, its children level 2, ...
  std::size_t max_depth = 64;
  // Bytes before the stream header is complete (XML declaration, whitespace and the tag).
  std::size_t max_header_bytes = 16 * 1024;
};

// RFC 6120 §4.9.3 stream error conditions the parser itself can raise.
enum class StreamError {
  not_well_formed,       // expat syntax errors, invalid UTF-8, text at stream level
  policy_violation,      // a ParserLimits limit was exceeded
  restricted_xml,        // comment, processing instruction, DTD, entity declaration or reference
  invalid_xml,           // not raised by the parser itself (kept for callers)
  bad_format,            // the root element is not a <stream/>; a Handler threw
  invalid_namespace,     // the root element is not in the streams namespace
  unsupported_encoding,  // the XML declaration names an encoding other than UTF-8
};
// The RFC 6120 condition name: "not-well-formed", "policy-violation", ...
std::string_view to_string(StreamError error);

struct StreamHeader {      // the opening <stream:stream ...> tag
  std::string ns;          // namespace of the stream element: http://etherx.jabber.org/streams
  std::string local_name;  // "stream"
  std::string default_ns;  // default (content) namespace declared on it, e.g. jabber:client
  std::string to, from, id, version, lang;  // attributes (lang = xml:lang)
};

// Turns bytes from a peer into a stream header, stanzas and a stream close. One per connection;
// not thread-safe. Handler callbacks run synchronously inside feed(); they must not call feed()
// or reset(), and should not throw (an exception is propagated out of feed() after the parser is
// marked dead with bad_format).
class StreamParser {
 public:
  struct Handler {
    virtual ~Handler() = default;
    virtual void on_stream_open(const StreamHeader& header) = 0;
    // Each complete depth-1 child of the stream, with its namespace (jabber:client stanzas have
    // xmlns "jabber:client"; <starttls/> has urn:ietf:params:xml:ns:xmpp-tls, etc.).
    virtual void on_stanza(Element&& stanza) = 0;
    virtual void on_stream_close() = 0;  // </stream:stream>
  };

  explicit StreamParser(Handler& handler, ParserLimits limits = {});
  ~StreamParser();
  StreamParser(StreamParser&&) noexcept;
  StreamParser& operator=(StreamParser&&) noexcept;
  StreamParser(const StreamParser&) = delete;
  StreamParser& operator=(const StreamParser&) = delete;

  struct FeedResult {
    std::optional<StreamError> error;  // set => stream is dead: send the stream error and close
    std::string detail;                // human-readable reason for logs
    std::size_t consumed = 0;          // bytes of data consumed (== data.size() unless restart())
  };

  // Feeds the next chunk of bytes (any split, even mid-UTF-8-sequence) and runs the Handler
  // callbacks it completes. Once an error is returned, every later call returns it again.
  FeedResult feed(std::string_view data);

  // From inside a Handler callback (after <starttls/>, SASL <success/>): parsing stops right after
  // the current stanza (or header); feed() returns with consumed = bytes up to and including its
  // end, and the parser is reset to expect a new stream header (optional XML declaration, then
  // <stream:stream>). The caller feeds the remaining bytes, or drops them. Outside a callback it
  // is the same as reset().
  void restart();
  // Back to the initial state (expecting a stream header); clears any error.
  void reset();
  // Frees the expat parser (about 10 KiB: its tables and input buffer) when the stream is open
  // and between stanzas with no partial input pending; for an idle connection. The next feed()
  // builds a new one primed with the stream header's namespace declarations, so the stream goes
  // on exactly as before. False (nothing freed) anywhere else, and inside a Handler callback.
  bool release();
  bool released() const;
  // Applies from the next check on.
  void set_limits(ParserLimits limits);
  const ParserLimits& limits() const;

  // True between on_stream_open and on_stream_close.
  bool stream_open() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace stanzad::xml
