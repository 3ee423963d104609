// server/xml/stream_parser.cpp: expat XMPP stream parser (RFC 6120 §4.2-4.3, §4.8-4.9, §11).
#include "xml/stream_parser.hpp"

#include <expat.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <random>
#include <vector>

namespace stanzad::xml {

namespace {

// Expat joins a namespace URI and a local name with this. It cannot occur in an XML 1.0 document
// (not even as &#1;), and expat >= 2.4.5 refuses namespace URIs that contain the separator.
constexpr char kNsSeparator = '\x01';
constexpr std::string_view kXmlNs = "http://www.w3.org/XML/1998/namespace";
// feed() hands expat at most this much at a time, so size limits are checked while a huge chunk is
// being parsed rather than after it was all buffered.
constexpr std::size_t kSliceBytes = 64 * 1024;

struct QName {
  std::string_view ns;
  std::string_view local;
};

// expat reports names as "uri\x01local\x01prefix" (namespace triplets, so that a resumed parser
// can repeat the stream element's prefix), "uri\x01local" or "local".
QName split(const XML_Char* name) {
  const char* sep = std::strchr(name, kNsSeparator);
  if (sep == nullptr) return {{}, name};
  const char* local = sep + 1;
  const char* end = std::strchr(local, kNsSeparator);
  std::size_t local_len = end ? static_cast<std::size_t>(end - local) : std::strlen(local);
  return {std::string_view(name, static_cast<std::size_t>(sep - name)),
          std::string_view(local, local_len)};
}

// The prefix of a triplet name, empty when there is none.
std::string_view prefix_of(const XML_Char* name) {
  const char* sep = std::strchr(name, kNsSeparator);
  if (sep == nullptr) return {};
  const char* end = std::strchr(sep + 1, kNsSeparator);
  return end ? std::string_view(end + 1) : std::string_view();
}

// An attribute value between single quotes.
void append_quoted(std::string& out, std::string_view value) {
  out += '\'';
  for (char c : value) {
    switch (c) {
      case '\'':
        out += "&apos;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '\t':  // attribute value normalization would turn these into spaces
        out += "&#9;";
        break;
      case '\n':
        out += "&#10;";
        break;
      case '\r':
        out += "&#13;";
        break;
      default:
        out += c;
    }
  }
  out += '\'';
}

// Attribute name as the Element API spells it: "local", "xml:lang" or "{uri}local".
std::string attr_name(const XML_Char* name) {
  QName q = split(name);
  if (q.ns.empty()) return std::string(q.local);
  std::string out;
  if (q.ns == kXmlNs) {
    out.reserve(4 + q.local.size());
    out += "xml:";
  } else {
    out.reserve(q.ns.size() + q.local.size() + 2);
    out += '{';
    out.append(q.ns);
    out += '}';
  }
  out.append(q.local);
  return out;
}

bool is_xml_space(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; };
           return lower(x) == lower(y);
         });
}

StreamError map_expat_error(XML_Error code) {
  switch (code) {
    case XML_ERROR_UNDEFINED_ENTITY:
    case XML_ERROR_RECURSIVE_ENTITY_REF:
    case XML_ERROR_BINARY_ENTITY_REF:
    case XML_ERROR_ATTRIBUTE_EXTERNAL_ENTITY_REF:
    case XML_ERROR_EXTERNAL_ENTITY_HANDLING:
    case XML_ERROR_NOT_STANDALONE:
    case XML_ERROR_ENTITY_DECLARED_IN_PE:
    case XML_ERROR_AMPLIFICATION_LIMIT_BREACH:
      return StreamError::restricted_xml;
    case XML_ERROR_UNKNOWN_ENCODING:
    case XML_ERROR_INCORRECT_ENCODING:
      return StreamError::unsupported_encoding;
    default:
      return StreamError::not_well_formed;
  }
}

}  // namespace

std::string_view to_string(StreamError error) {
  switch (error) {
    case StreamError::not_well_formed:
      return "not-well-formed";
    case StreamError::policy_violation:
      return "policy-violation";
    case StreamError::restricted_xml:
      return "restricted-xml";
    case StreamError::invalid_xml:
      return "invalid-xml";
    case StreamError::bad_format:
      return "bad-format";
    case StreamError::invalid_namespace:
      return "invalid-namespace";
    case StreamError::unsupported_encoding:
      return "unsupported-encoding";
  }
  return "undefined-condition";
}

// Expat salts its hash tables (against floods of colliding names) from getrandom() for every
// new parser unless given a salt: a system call per stream, two per login, one per idle
// session's parser rebuild. The salts come from a per-thread generator seeded once from the
// kernel instead: as unpredictable to a client, which never sees them.
unsigned long next_hash_salt() {
  thread_local std::uint64_t state = [] {
    std::random_device kernel;
    return (static_cast<std::uint64_t>(kernel()) << 32) ^ kernel();
  }();
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);  // splitmix64
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return static_cast<unsigned long>(z) | 1;  // 0 means "none": expat would ask the kernel
}

struct StreamParser::Impl {
  Impl(Handler& handler, ParserLimits limits) : handler_(&handler), limits_(limits) { init(); }
  ~Impl() {
    if (parser_ != nullptr) XML_ParserFree(parser_);
  }

  Handler* handler_;
  ParserLimits limits_;
  XML_Parser parser_ = nullptr;

  // Open elements, counting the stream element: 0 before the header, 1 between stanzas.
  std::size_t level_ = 0;
  bool stream_open_ = false;
  bool header_seen_ = false;     // stays true after the stream closes
  Element stanza_;               // the stanza being built (level_ >= 2)
  std::vector<Element*> stack_;  // open elements of stanza_, stanza_ itself first
  StreamHeader header_;

  // Byte offsets from the start of the current document (since the last reset).
  std::uint64_t fed_ = 0;         // bytes handed to expat
  std::uint64_t slice_base_ = 0;  // offset of the slice expat is parsing
  std::uint64_t boundary_ = 0;    // where the pending stanza began (its '<'), or the last one ended
  std::uint64_t quiet_at_ = 0;    // end of the last stanza or stream-level whitespace
  // A released parser is rebuilt by feeding it resume_header_ (the stream element's name and
  // namespace declarations) silently; its byte offsets are then ours minus the header's length.
  std::int64_t shift_ = 0;
  std::string resume_header_;
  bool resuming_ = false;  // the next start tag is resume_header_'s: not reported

  std::optional<StreamError> error_;
  std::string detail_;
  bool in_parse_ = false;
  bool restart_pending_ = false;
  std::uint64_t restart_offset_ = 0;
  std::exception_ptr exception_;

  void init() {
    parser_ = XML_ParserCreateNS("UTF-8", kNsSeparator);
    if (parser_ == nullptr) throw std::bad_alloc();
    XML_SetHashSalt(parser_, next_hash_salt());
    XML_SetReturnNSTriplet(parser_, XML_TRUE);
    // Debian's expat 2.5.0 backports reparse deferral, which holds back a large token until about
    // as many bytes again arrive: a lone big stanza would hang. The stanza limit bounds the cost.
    XML_SetReparseDeferralEnabled(parser_, XML_FALSE);
    XML_SetUserData(parser_, this);
    XML_SetElementHandler(parser_, &Impl::on_start, &Impl::on_end);
    XML_SetCharacterDataHandler(parser_, &Impl::on_text);
    XML_SetStartNamespaceDeclHandler(parser_, &Impl::on_ns_decl);
    XML_SetXmlDeclHandler(parser_, &Impl::on_xml_decl);
    // RFC 6120 §11.1: no comments, processing instructions, DTDs or entity declarations.
    XML_SetCommentHandler(parser_, &Impl::on_comment);
    XML_SetProcessingInstructionHandler(parser_, &Impl::on_pi);
    XML_SetStartDoctypeDeclHandler(parser_, &Impl::on_doctype);
    XML_SetEntityDeclHandler(parser_, &Impl::on_entity_decl);
    XML_SetParamEntityParsing(parser_, XML_PARAM_ENTITY_PARSING_NEVER);
    XML_SetExternalEntityRefHandler(parser_, &Impl::on_external_entity);
  }

  void reset_state() {
    if (parser_ != nullptr) XML_ParserFree(parser_);
    parser_ = nullptr;
    level_ = 0;
    stream_open_ = false;
    header_seen_ = false;
    stanza_ = Element();
    stack_.clear();
    header_ = StreamHeader();
    fed_ = slice_base_ = boundary_ = quiet_at_ = 0;
    shift_ = 0;
    resume_header_.clear();
    resuming_ = false;
    error_.reset();
    detail_.clear();
    restart_pending_ = false;
    restart_offset_ = 0;
    exception_ = nullptr;
    init();
  }

  // True when callbacks must be ignored: an error was raised or a restart is pending, and expat
  // may still deliver an event or two before it stops.
  bool stopped() const { return error_.has_value() || restart_pending_; }

  void fail(StreamError error, std::string detail) {
    // After restart() the rest of the input belongs to the next stream: nothing in it can fail.
    if (error_ || restart_pending_) return;
    error_ = error;
    detail_ = std::move(detail);
    if (in_parse_) XML_StopParser(parser_, XML_FALSE);
  }

  std::uint64_t event_start() const {
    return static_cast<std::uint64_t>(XML_GetCurrentByteIndex(parser_) + shift_);
  }
  std::uint64_t event_end() const {
    return event_start() + static_cast<std::uint64_t>(XML_GetCurrentByteCount(parser_));
  }

  void fail_stanza_size() {
    fail(StreamError::policy_violation,
         "stanza exceeds " + std::to_string(limits_.max_stanza_bytes) + " bytes");
  }

  // Size limits for bytes expat has been given but that complete nothing yet.
  void check_pending() {
    if (!header_seen_) {
      if (fed_ > limits_.max_header_bytes) {
        fail(StreamError::policy_violation,
             "stream header exceeds " + std::to_string(limits_.max_header_bytes) + " bytes");
      }
    } else if (stream_open_ && fed_ - boundary_ > limits_.max_stanza_bytes) {
      fail_stanza_size();
    }
  }

  template <class F>
  void guarded(F&& f) {
    try {
      f();
    } catch (...) {
      exception_ = std::current_exception();
      fail(StreamError::bad_format, "stream handler threw an exception");
    }
  }

  // --- expat callbacks ---

  static void XMLCALL on_start(void* user, const XML_Char* name, const XML_Char** atts) {
    auto* self = static_cast<Impl*>(user);
    if (self->resuming_) {
      self->resuming_ = false;
      return;
    }
    if (self->stopped()) return;
    self->guarded([&] { self->start(name, atts); });
  }

  void start(const XML_Char* name, const XML_Char** atts) {
    QName q = split(name);
    if (level_ == 0) {
      open_stream(name, q, atts);
      return;
    }
    // level_ is the new element's depth within its stanza (the stanza itself is 1).
    if (level_ > limits_.max_depth) {
      fail(StreamError::policy_violation,
           "stanza nesting exceeds " + std::to_string(limits_.max_depth) + " levels");
      return;
    }
    Element* el;
    if (level_ == 1) {
      std::uint64_t at = event_start();
      if (at - boundary_ > limits_.max_stanza_bytes) {
        // Whitespace before this stanza already broke the limit.
        fail_stanza_size();
        return;
      }
      boundary_ = at;
      stanza_ = Element(std::string(q.local), std::string(q.ns));
      el = &stanza_;
    } else {
      el = &stack_.back()->add_child(Element(std::string(q.local), std::string(q.ns)));
    }
    if (atts[0] != nullptr) {
      std::size_t n = 0;
      while (atts[n] != nullptr) n += 2;
      // expat has already rejected duplicates (in hashed time); set_attr's scan is quadratic.
      el->reserve_attrs(n / 2);
      for (std::size_t i = 0; i < n; i += 2) {
        el->append_attr(attr_name(atts[i]), atts[i + 1]);
      }
    }
    stack_.push_back(el);
    ++level_;
  }

  void open_stream(const XML_Char* name, QName q, const XML_Char** atts) {
    if (event_end() > limits_.max_header_bytes) {
      fail(StreamError::policy_violation,
           "stream header exceeds " + std::to_string(limits_.max_header_bytes) + " bytes");
      return;
    }
    header_.ns.assign(q.ns);
    header_.local_name.assign(q.local);
    if (q.ns != kStreamsNs) {
      fail(StreamError::invalid_namespace,
           "stream element namespace is '" + header_.ns + "', not " + std::string(kStreamsNs));
      return;
    }
    if (q.local != "stream") {
      fail(StreamError::bad_format, "root element is <" + header_.local_name + ">, not <stream>");
      return;
    }
    for (std::size_t i = 0; atts[i] != nullptr; i += 2) {
      QName a = split(atts[i]);
      const char* value = atts[i + 1];
      if (a.ns.empty()) {
        if (a.local == "to") {
          header_.to = value;
        } else if (a.local == "from") {
          header_.from = value;
        } else if (a.local == "id") {
          header_.id = value;
        } else if (a.local == "version") {
          header_.version = value;
        }
      } else if (a.ns == kXmlNs && a.local == "lang") {
        header_.lang = value;
      }
    }
    std::string_view prefix = prefix_of(name);
    std::string open = "<";
    if (!prefix.empty()) {
      open.append(prefix);
      open += ':';
    }
    open.append(q.local);
    resume_header_.insert(0, open);
    resume_header_ += '>';
    level_ = 1;
    stream_open_ = true;
    header_seen_ = true;
    boundary_ = quiet_at_ = event_end();
    handler_->on_stream_open(header_);
  }

  static void XMLCALL on_end(void* user, const XML_Char* /*name*/) {
    auto* self = static_cast<Impl*>(user);
    if (self->stopped()) return;
    self->guarded([self] { self->end(); });
  }

  void end() {
    if (level_ == 1) {
      level_ = 0;
      stream_open_ = false;
      handler_->on_stream_close();
      return;
    }
    --level_;
    stack_.pop_back();
    if (level_ != 1) return;
    std::uint64_t stanza_end = event_end();
    if (stanza_end - boundary_ > limits_.max_stanza_bytes) {
      fail_stanza_size();
      return;
    }
    boundary_ = quiet_at_ = stanza_end;
    Element stanza = std::move(stanza_);
    stanza_ = Element();
    handler_->on_stanza(std::move(stanza));
  }

  static void XMLCALL on_text(void* user, const XML_Char* s, int len) {
    auto* self = static_cast<Impl*>(user);
    if (self->stopped()) return;
    std::string_view text(s, static_cast<std::size_t>(len));
    if (self->level_ >= 2) {
      self->stack_.back()->add_text(text);
    } else if (!is_xml_space(text)) {
      self->fail(StreamError::not_well_formed, "text at stream level");
    } else if (self->event_end() - self->boundary_ > self->limits_.max_stanza_bytes) {
      self->fail(StreamError::policy_violation, "whitespace between stanzas exceeds " +
                                                    std::to_string(self->limits_.max_stanza_bytes) +
                                                    " bytes");
    } else if (self->level_ == 1) {
      self->quiet_at_ = self->event_end();
    }
  }

  static void XMLCALL on_ns_decl(void* user, const XML_Char* prefix, const XML_Char* uri) {
    auto* self = static_cast<Impl*>(user);
    if (self->resuming_ || self->stopped()) return;
    // Declarations are reported just before the start tag carrying them.
    if (self->level_ != 0) return;
    if (prefix == nullptr) self->header_.default_ns = uri ? uri : "";
    // Kept to rebuild the stream's context after release().
    self->resume_header_ += " xmlns";
    if (prefix != nullptr) {
      self->resume_header_ += ':';
      self->resume_header_ += prefix;
    }
    self->resume_header_ += '=';
    append_quoted(self->resume_header_, uri ? uri : "");
  }

  static void XMLCALL on_xml_decl(void* user, const XML_Char* /*version*/, const XML_Char* encoding,
                                  int /*standalone*/) {
    auto* self = static_cast<Impl*>(user);
    if (self->stopped()) return;
    // RFC 6120 §11.6: UTF-8 only. expat was told UTF-8 and ignores the declaration, so check it.
    if (encoding != nullptr && !iequals(encoding, "UTF-8")) {
      self->fail(StreamError::unsupported_encoding,
                 std::string("unsupported encoding '") + encoding + "'");
    }
  }

  static void XMLCALL on_comment(void* user, const XML_Char*) {
    static_cast<Impl*>(user)->fail(StreamError::restricted_xml, "comment");
  }

  static void XMLCALL on_pi(void* user, const XML_Char*, const XML_Char*) {
    static_cast<Impl*>(user)->fail(StreamError::restricted_xml, "processing instruction");
  }

  static void XMLCALL on_doctype(void* user, const XML_Char*, const XML_Char*, const XML_Char*,
                                 int) {
    static_cast<Impl*>(user)->fail(StreamError::restricted_xml, "document type declaration");
  }

  static void XMLCALL on_entity_decl(void* user, const XML_Char*, int, const XML_Char*, int,
                                     const XML_Char*, const XML_Char*, const XML_Char*,
                                     const XML_Char*) {
    static_cast<Impl*>(user)->fail(StreamError::restricted_xml, "entity declaration");
  }

  static int XMLCALL on_external_entity(XML_Parser parser, const XML_Char*, const XML_Char*,
                                        const XML_Char*, const XML_Char*) {
    auto* self = static_cast<Impl*>(XML_GetUserData(parser));
    self->fail(StreamError::restricted_xml, "external entity reference");
    return XML_STATUS_ERROR;
  }

  // --- feeding ---

  FeedResult result(std::size_t consumed) const { return FeedResult{error_, detail_, consumed}; }

  FeedResult feed(std::string_view data) {
    if (error_) return result(0);
    // XML allows NUL nowhere. Refused here rather than by expat, whose verdict on a NUL before
    // the root element depends on how the bytes were split (it may read it as UTF-16 and
    // wait): the same bytes must get the same answer however TCP cut them.
    if (auto nul = data.find('\0'); nul != std::string_view::npos) {
      FeedResult before = feed_slices(data.substr(0, nul));
      if (before.error || before.consumed < nul) return before;  // an error, or a restart
      fail(StreamError::not_well_formed, "NUL byte");
      return result(nul);
    }
    return feed_slices(data);
  }

  // Between stanzas with no partial input inside expat: free it (the bulk of an idle stream's
  // memory). The next feed() rebuilds it.
  bool release() {
    if (parser_ == nullptr) return true;
    if (in_parse_ || !stream_open_ || level_ != 1 || error_ || restart_pending_ || resuming_ ||
        quiet_at_ != fed_)
      return false;
    XML_ParserFree(parser_);
    parser_ = nullptr;
    std::vector<Element*>().swap(stack_);
    return true;
  }

  // A new expat parser in the middle of the stream: it reads resume_header_ first (reporting
  // nothing), so the stream's namespace prefixes are declared and its end tag matches.
  void resume() {
    init();
    resuming_ = true;
    in_parse_ = true;
    XML_Status status = XML_Parse(parser_, resume_header_.data(),
                                  static_cast<int>(resume_header_.size()), XML_FALSE);
    in_parse_ = false;
    shift_ = static_cast<std::int64_t>(fed_) - static_cast<std::int64_t>(resume_header_.size());
    if (status != XML_STATUS_OK) {
      error_ = StreamError::bad_format;
      detail_ = "cannot resume the stream parser";
    }
  }

  FeedResult feed_slices(std::string_view data) {
    if (parser_ == nullptr && !data.empty()) {
      resume();
      if (error_) return result(0);
    }
    std::size_t pos = 0;
    while (pos < data.size()) {
      std::size_t n = std::min(kSliceBytes, data.size() - pos);
      slice_base_ = fed_;
      fed_ += n;
      in_parse_ = true;
      XML_Status status = XML_Parse(parser_, data.data() + pos, static_cast<int>(n), XML_FALSE);
      in_parse_ = false;
      if (exception_) {
        std::exception_ptr e = exception_;
        exception_ = nullptr;
        std::rethrow_exception(e);
      }
      if (error_) return result(pos);
      if (status == XML_STATUS_SUSPENDED && restart_pending_) {
        std::uint64_t in_slice = std::clamp(restart_offset_, slice_base_, fed_) - slice_base_;
        reset_state();
        return result(pos + static_cast<std::size_t>(in_slice));
      }
      if (status == XML_STATUS_ERROR) {
        XML_Error code = XML_GetErrorCode(parser_);
        error_ = map_expat_error(code);
        detail_ = std::string(XML_ErrorString(code)) + " at line " +
                  std::to_string(XML_GetCurrentLineNumber(parser_)) + " column " +
                  std::to_string(XML_GetCurrentColumnNumber(parser_));
        return result(pos);
      }
      pos += n;
      check_pending();
      if (error_) return result(pos);
    }
    return result(pos);
  }

  void restart() {
    if (!in_parse_) {
      reset_state();
      return;
    }
    if (restart_pending_ || error_) return;
    restart_pending_ = true;
    restart_offset_ = event_end();
    XML_StopParser(parser_, XML_TRUE);
  }
};

StreamParser::StreamParser(Handler& handler, ParserLimits limits)
    : impl_(std::make_unique<Impl>(handler, limits)) {}
StreamParser::~StreamParser() = default;
StreamParser::StreamParser(StreamParser&&) noexcept = default;
StreamParser& StreamParser::operator=(StreamParser&&) noexcept = default;

StreamParser::FeedResult StreamParser::feed(std::string_view data) { return impl_->feed(data); }
void StreamParser::restart() { impl_->restart(); }
void StreamParser::reset() {
  // Freeing expat under its own callback would be fatal: treat a misplaced reset as restart.
  if (impl_->in_parse_) {
    impl_->restart();
  } else {
    impl_->reset_state();
  }
}
bool StreamParser::release() { return impl_->release(); }
bool StreamParser::released() const { return impl_->parser_ == nullptr; }
void StreamParser::set_limits(ParserLimits limits) { impl_->limits_ = limits; }
const ParserLimits& StreamParser::limits() const { return impl_->limits_; }
bool StreamParser::stream_open() const { return impl_->stream_open_; }

}  // namespace stanzad::xml
