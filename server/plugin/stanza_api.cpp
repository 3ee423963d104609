// The stanza and event functions of the plugin C ABI, shared by the server and the fake host.
#include "plugin/stanza_api.hpp"

#include <cstring>
#include <string>

#include "plugin/event.hpp"
#include "xml/serializer.hpp"
#include "xml/stream_parser.hpp"
#include "xmpp/jid.hpp"
#include "xmpp/stanza.hpp"

namespace stanzad::plugin {

namespace {

struct Capture : xml::StreamParser::Handler {
  std::optional<xml::Element> element;
  int count = 0;
  void on_stream_open(const xml::StreamHeader&) override {}
  void on_stanza(xml::Element&& stanza) override {
    if (++count == 1) element = std::move(stanza);
  }
  void on_stream_close() override {}
};

// jid_prep and jid_prep_bare (ABI 1.4): Jid::parse, the core's own preparation, so a prepared
// JID equals what the core stamps on stanzas.
int prep_into(sz_str in, bool bare, char* out, std::size_t cap, std::size_t* len) {
  auto jid = xmpp::Jid::parse(view(in));
  if (!jid || jid->empty()) return SZ_JID_MALFORMED;
  std::string_view prepared = bare ? jid->bare_view() : std::string_view(jid->str());
  if (len) *len = prepared.size();
  if (prepared.size() > cap || out == nullptr) return SZ_JID_TOO_SMALL;
  std::memcpy(out, prepared.data(), prepared.size());
  return SZ_JID_OK;
}

sz_str event_jid(const xmpp::Jid* j) { return j ? str(j->str()) : sz_str{nullptr, 0}; }

}  // namespace

std::optional<xml::Element> parse_element(std::string_view text) {
  Capture capture;
  xml::StreamParser parser(capture, xml::ParserLimits{16 * 1024 * 1024, 256});
  auto r = parser.feed(
      "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>");
  if (!r.error) r = parser.feed(text);
  if (!r.error) r = parser.feed("</stream:stream>");
  if (r.error || capture.count != 1) return std::nullopt;
  return std::move(capture.element);
}

void fill_stanza_api(sz_host_api& a) {
  a.jid_prep = [](sz_str in, char* out, std::size_t cap, std::size_t* len) {
    return prep_into(in, false, out, cap, len);
  };
  a.jid_prep_bare = [](sz_str in, char* out, std::size_t cap, std::size_t* len) {
    return prep_into(in, true, out, cap, len);
  };
  a.stanza_new = [](sz_str name, sz_str xmlns) -> sz_stanza* {
    return to_c(new xml::Element(std::string(view(name)), std::string(view(xmlns))));
  };
  a.stanza_parse = [](sz_str text) -> sz_stanza* {
    auto el = parse_element(view(text));
    return el ? to_c(new xml::Element(std::move(*el))) : nullptr;
  };
  a.stanza_copy = [](const sz_stanza* s) -> sz_stanza* {
    return to_c(new xml::Element(*from_c(s)));
  };
  a.stanza_free = [](sz_stanza* s) { delete from_c(s); };
  a.stanza_name = [](const sz_stanza* s) { return str(from_c(s)->name()); };
  a.stanza_xmlns = [](const sz_stanza* s) { return str(from_c(s)->xmlns()); };
  a.stanza_attr = [](const sz_stanza* s, sz_str name) -> sz_str {
    const xml::Element* e = from_c(s);
    if (!e->has_attr(view(name))) return sz_str{nullptr, 0};
    std::string_view v = e->attr(view(name));
    return sz_str{v.data() ? v.data() : "", v.size()};
  };
  a.stanza_set_attr = [](sz_stanza* s, sz_str name, sz_str value) {
    from_c(s)->set_attr(std::string(view(name)), std::string(view(value)));
  };
  a.stanza_remove_attr = [](sz_stanza* s, sz_str name) { from_c(s)->remove_attr(view(name)); };
  a.stanza_child = [](sz_stanza* s, sz_str name, sz_str xmlns) -> sz_stanza* {
    return to_c(from_c(s)->child(view(name), view(xmlns)));
  };
  a.stanza_child_count = [](const sz_stanza* s) -> size_t { return from_c(s)->children().size(); };
  a.stanza_child_at = [](sz_stanza* s, size_t i) -> sz_stanza* {
    auto children = from_c(s)->mutable_children();
    return i < children.size() ? to_c(children[i]) : nullptr;
  };
  a.stanza_add_child = [](sz_stanza* s, sz_str name, sz_str xmlns) -> sz_stanza* {
    xml::Element* parent = from_c(s);
    std::string ns = xmlns.len ? std::string(view(xmlns)) : parent->xmlns();
    return to_c(&parent->add_child(std::string(view(name)), std::move(ns)));
  };
  a.stanza_append = [](sz_stanza* parent, sz_stanza* child) -> sz_stanza* {
    std::unique_ptr<xml::Element> owned(from_c(child));
    return to_c(&from_c(parent)->add_child(std::move(*owned)));
  };
  a.stanza_add_text = [](sz_stanza* s, sz_str text) { from_c(s)->add_text(view(text)); };
  a.stanza_clear = [](sz_stanza* s) { from_c(s)->clear_children(); };
  a.stanza_remove_child = [](sz_stanza* s, sz_str name, sz_str xmlns) -> int {
    return from_c(s)->remove_child(view(name), view(xmlns)) ? 1 : 0;
  };
  a.stanza_text = [](const sz_stanza* s, sz_str_fn fn, void* user) {
    std::string t = from_c(s)->text();
    fn(user, str(t));
  };
  a.stanza_serialize = [](const sz_stanza* s, sz_str_fn fn, void* user) {
    std::string out = xml::to_string(*from_c(s), "jabber:client");
    fn(user, str(out));
  };

  a.event_name = [](sz_event* e) { return str(from_c(e)->name); };
  a.event_stanza = [](sz_event* e) {
    return from_c(e)->stanza ? to_c(from_c(e)->stanza) : nullptr;
  };
  a.event_from = [](sz_event* e) { return event_jid(from_c(e)->from); };
  a.event_to = [](sz_event* e) { return event_jid(from_c(e)->to); };
  a.event_session_jid = [](sz_event* e) { return event_jid(from_c(e)->session); };
  a.event_set_error = [](sz_event* e, sz_str condition, sz_str type, sz_str text) {
    Event* ev = from_c(e);
    ev->error_condition = condition.len ? std::string(view(condition)) : "internal-server-error";
    ev->error_type = std::string(view(type));
    ev->error_text = std::string(view(text));
  };
  a.event_set_error_payload = [](sz_event* e, sz_stanza* payload) {
    std::unique_ptr<xml::Element> el(from_c(payload));
    from_c(e)->error_payload.push_back(std::move(*el));
  };
  a.event_remote_address = [](sz_event* e) { return str(from_c(e)->remote_address); };
  a.event_session_write = [](sz_event* e, sz_stanza* stanza) -> int {
    std::unique_ptr<xml::Element> el(from_c(stanza));
    Event* ev = from_c(e);
    if (!ev->sink) return -1;
    ev->sink->write_now(std::move(*el));
    return 0;
  };
}

}  // namespace stanzad::plugin
