// stanzad plugin SDK: a header-only C++20 wrapper over the C ABI in plugin.h.
//
// Compiled into the plugin, so no C++ type crosses the boundary: trampolines catch every
// exception, log it and turn it into internal-server-error. See docs/plugins.md.
#pragma once

#include <stanzad/plugin.h>

#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stanzad::sdk {

namespace detail {
// The server's function table; the same for every instance of a plugin.
inline const sz_host_api* api = nullptr;
inline sz_str str(std::string_view s) { return sz_str{s.data(), s.size()}; }
inline std::string_view view(sz_str s) {
  return s.data ? std::string_view(s.data, s.len) : std::string_view();
}
inline void collect(void* user, sz_str value) {
  static_cast<std::string*>(user)->assign(value.data ? value.data : "", value.len);
}
// jid_prep or jid_prep_bare into a string; nullopt when malformed (jid::prep, jid::prep_bare).
inline std::optional<std::string> prep_jid(std::string_view jid, bool bare) {
  auto fn = bare ? api->jid_prep_bare : api->jid_prep;
  std::string out(jid.size() + 16, '\0');  // nodeprep may grow a part ("ß" -> "ss"): retried
  std::size_t len = 0;
  int r = fn(str(jid), out.data(), out.size(), &len);
  if (r == SZ_JID_TOO_SMALL) {
    out.resize(len);
    r = fn(str(jid), out.data(), out.size(), &len);
  }
  if (r != SZ_JID_OK) return std::nullopt;
  out.resize(len);
  return out;
}
}  // namespace detail

enum class Verdict { pass = SZ_PASS, handled = SZ_HANDLED, error = SZ_ERROR };

/// JIDs. bare_of, domain_of and is_bare slice a JID the server already normalized (an event's
/// from, to, session_jid; a stanza's server-stamped addresses): no stringprep. prep and
/// prep_bare (ABI 1.4) normalize one taken from a payload, through the server.
namespace jid {
inline std::string_view bare_of(std::string_view jid) { return jid.substr(0, jid.find('/')); }
inline std::string_view domain_of(std::string_view jid) {
  jid = bare_of(jid);
  auto at = jid.find('@');
  return at == std::string_view::npos ? jid : jid.substr(at + 1);
}
inline bool is_bare(std::string_view jid) { return jid.find('/') == std::string_view::npos; }

// ---- ABI 1.4 (check has_prep()) ------------------------------------------------------------
/// Whether the server can prepare JIDs (ABI 1.4); prep and prep_bare throw
/// std::runtime_error on an older one.
inline bool has_prep() { return SZ_HAS(sdk::detail::api, jid_prep_bare); }
/// A JID from a payload (an item's jid attribute, a command's argument) prepared exactly as
/// the core prepares the addresses it stamps (stringprep via libidn): "Ärger@Example.COM/Home"
/// gives "ärger@example.com/Home". nullopt when it is not a JID.
inline std::optional<std::string> prep(std::string_view jid) {
  if (!has_prep()) throw std::runtime_error("this server cannot prepare JIDs (ABI < 1.4)");
  return sdk::detail::prep_jid(jid, false);
}
/// prep without the resource (which must still be valid): "Ärger@Example.COM/Home" gives
/// "ärger@example.com".
inline std::optional<std::string> prep_bare(std::string_view jid) {
  if (!has_prep()) throw std::runtime_error("this server cannot prepare JIDs (ABI < 1.4)");
  return sdk::detail::prep_jid(jid, true);
}
}  // namespace jid

namespace priority {
inline constexpr int32_t guard = SZ_PRIORITY_GUARD;
inline constexpr int32_t enrich = SZ_PRIORITY_ENRICH;
inline constexpr int32_t normal = SZ_PRIORITY_NORMAL;
inline constexpr int32_t deliver = SZ_PRIORITY_DELIVER;
}  // namespace priority

class Stanza;

/// A borrowed element: valid while its owner (an event, or an owning Stanza) lives.
class StanzaRef {
 public:
  StanzaRef() = default;
  explicit StanzaRef(sz_stanza* s) : s_(s) {}

  explicit operator bool() const { return s_ != nullptr; }
  sz_stanza* get() const { return s_; }

  std::string_view name() const { return detail::view(detail::api->stanza_name(s_)); }
  std::string_view xmlns() const { return detail::view(detail::api->stanza_xmlns(s_)); }
  /// @return the attribute, or an empty view when absent (see has_attr).
  std::string_view attr(std::string_view name) const {
    return detail::view(detail::api->stanza_attr(s_, detail::str(name)));
  }
  bool has_attr(std::string_view name) const {
    return detail::api->stanza_attr(s_, detail::str(name)).data != nullptr;
  }
  std::string_view from() const { return attr("from"); }
  std::string_view to() const { return attr("to"); }
  std::string_view type() const { return attr("type"); }
  std::string_view id() const { return attr("id"); }

  StanzaRef& set_attr(std::string_view name, std::string_view value) {
    detail::api->stanza_set_attr(s_, detail::str(name), detail::str(value));
    return *this;
  }
  StanzaRef& remove_attr(std::string_view name) {
    detail::api->stanza_remove_attr(s_, detail::str(name));
    return *this;
  }
  /// First child element with that name (and namespace, if given); falsy when none.
  StanzaRef child(std::string_view name, std::string_view xmlns = {}) const {
    return StanzaRef(detail::api->stanza_child(s_, detail::str(name), detail::str(xmlns)));
  }
  std::vector<StanzaRef> children() const {
    std::vector<StanzaRef> out;
    std::size_t n = detail::api->stanza_child_count(s_);
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) out.emplace_back(detail::api->stanza_child_at(s_, i));
    return out;
  }
  /// Appends a child element (empty xmlns: the parent's) and returns it.
  StanzaRef add_child(std::string_view name, std::string_view xmlns = {}) {
    return StanzaRef(detail::api->stanza_add_child(s_, detail::str(name), detail::str(xmlns)));
  }
  inline StanzaRef append(Stanza&& child);
  StanzaRef& add_text(std::string_view text) {
    detail::api->stanza_add_text(s_, detail::str(text));
    return *this;
  }
  /// Appends <name>text</name> and returns *this, for chaining.
  StanzaRef& text_tag(std::string_view name, std::string_view text) {
    add_child(name).add_text(text);
    return *this;
  }
  void clear() { detail::api->stanza_clear(s_); }
  bool remove_child(std::string_view name, std::string_view xmlns = {}) {
    return detail::api->stanza_remove_child(s_, detail::str(name), detail::str(xmlns)) != 0;
  }
  std::string text() const {
    std::string out;
    detail::api->stanza_text(s_, detail::collect, &out);
    return out;
  }
  std::string child_text(std::string_view name, std::string_view xmlns = {}) const {
    StanzaRef c = child(name, xmlns);
    return c ? c.text() : std::string();
  }
  std::string to_string() const {
    std::string out;
    detail::api->stanza_serialize(s_, detail::collect, &out);
    return out;
  }

 protected:
  sz_stanza* s_ = nullptr;
};

/// An owned element: freed when it goes out of scope unless handed over (send, reply…).
class Stanza : public StanzaRef {
 public:
  Stanza(std::string_view name, std::string_view xmlns = "jabber:client")
      : StanzaRef(detail::api->stanza_new(detail::str(name), detail::str(xmlns))) {}
  /// Parses XML; throws std::invalid_argument if it is not one well-formed element.
  static Stanza parse(std::string_view xml) {
    sz_stanza* s = detail::api->stanza_parse(detail::str(xml));
    if (!s) throw std::invalid_argument("not a well-formed element");
    return Stanza(s);
  }
  static Stanza copy_of(StanzaRef other) { return Stanza(detail::api->stanza_copy(other.get())); }
  Stanza(Stanza&& o) noexcept : StanzaRef(std::exchange(o.s_, nullptr)) {}
  Stanza& operator=(Stanza&& o) noexcept {
    if (this != &o) {
      reset();
      s_ = std::exchange(o.s_, nullptr);
    }
    return *this;
  }
  Stanza(const Stanza&) = delete;
  Stanza& operator=(const Stanza&) = delete;
  ~Stanza() { reset(); }

  /// Gives up ownership (to a C call that takes the element).
  sz_stanza* release() { return std::exchange(s_, nullptr); }

 private:
  explicit Stanza(sz_stanza* s) : StanzaRef(s) {}
  void reset() {
    if (s_) detail::api->stanza_free(std::exchange(s_, nullptr));
  }
};

inline StanzaRef StanzaRef::append(Stanza&& child) {
  return StanzaRef(detail::api->stanza_append(s_, child.release()));
}

/// The reply to an iq get/set: type='result', same id, addresses swapped.
inline Stanza iq_result(StanzaRef iq) {
  Stanza r("iq");
  r.set_attr("type", "result");
  if (iq.has_attr("id")) r.set_attr("id", iq.id());
  if (iq.has_attr("to")) r.set_attr("from", iq.to());
  if (iq.has_attr("from")) r.set_attr("to", iq.from());
  return r;
}

/// One stanza passing through the pipeline. Valid only during the handler call.
class Event {
 public:
  explicit Event(sz_event* e) : e_(e) {}
  std::string_view name() const { return detail::view(detail::api->event_name(e_)); }
  /// The stanza (mutable: a rewrite is seen by later handlers); falsy for life-cycle events.
  StanzaRef stanza() const { return StanzaRef(detail::api->event_stanza(e_)); }
  std::string_view from() const { return detail::view(detail::api->event_from(e_)); }
  std::string_view to() const { return detail::view(detail::api->event_to(e_)); }
  std::string_view session_jid() const { return detail::view(detail::api->event_session_jid(e_)); }
  /// The client's IP address for a session's events (stanza/in, stream/preauth), else empty.
  std::string_view remote_address() const {
    return detail::view(detail::api->event_remote_address(e_));
  }
  /// Sends `reply` to the stanza's sender, from the stanza's target.
  void reply(Stanza&& reply) { detail::api->event_reply(e_, reply.release()); }
  /// Sets the error to bounce and returns Verdict::error: `return ev.error("not-allowed");`
  Verdict error(std::string_view condition, std::string_view text = {},
                std::string_view type = {}) {
    detail::api->event_set_error(e_, detail::str(condition), detail::str(type), detail::str(text));
    return Verdict::error;
  }
  /// The same, with an application-specific element inside <error/> (RFC 6120 §8.3.2), e.g.
  /// <blocked xmlns='urn:xmpp:blocking:errors'/>. Needs a 1.2 server (else without it).
  Verdict error(Stanza&& payload, std::string_view condition, std::string_view text = {},
                std::string_view type = {});
  /// On stanza/out and session events: writes `stanza` to the session now, before the stanza
  /// being processed, skipping stanza/out. False when the event has no session (1.2).
  bool write(Stanza&& stanza);
  sz_event* get() const { return e_; }

 private:
  sz_event* e_;
};

/// One bound resource of an account, as Module::sessions lists it (valid during the call).
class Session {
 public:
  explicit Session(const sz_session* s) : s_(s) {}
  std::string_view jid() const { return detail::view(detail::api->session_jid(s_)); }
  bool available() const { return detail::api->session_available(s_) != 0; }
  int priority() const { return detail::api->session_priority(s_); }
  /// The last available presence it broadcast (borrowed; copy it to keep it), or empty.
  StanzaRef presence() const {
    return StanzaRef(const_cast<sz_stanza*>(detail::api->session_presence(s_)));
  }
  /// A property set with Module::set_session, or nullopt.
  std::optional<std::string_view> property(std::string_view key) const {
    sz_str v = detail::api->session_get(s_, detail::str(key));
    if (!v.data) return std::nullopt;
    return detail::view(v);
  }

 private:
  const sz_session* s_;
};

/// Logging with key=value pairs: log.debug("pong", "to", jid, "count", n).
class Logger {
 public:
  Logger(sz_host* h) : h_(h) {}
  template <class... A>
  void debug(std::string_view msg, const A&... kv) const {
    write(SZ_LOG_DEBUG, msg, kv...);
  }
  template <class... A>
  void info(std::string_view msg, const A&... kv) const {
    write(SZ_LOG_INFO, msg, kv...);
  }
  template <class... A>
  void warn(std::string_view msg, const A&... kv) const {
    write(SZ_LOG_WARN, msg, kv...);
  }
  template <class... A>
  void error(std::string_view msg, const A&... kv) const {
    write(SZ_LOG_ERROR, msg, kv...);
  }

 private:
  template <class... A>
  void write(sz_log_level level, std::string_view msg, const A&... kv) const {
    std::ostringstream out;
    out << msg;
    append(out, kv...);
    std::string line = out.str();
    detail::api->log(h_, level, line.data(), line.size());
  }
  static void append(std::ostringstream&) {}
  template <class K, class V, class... A>
  static void append(std::ostringstream& out, const K& k, const V& v, const A&... rest) {
    out << ' ' << k << '=' << v;
    append(out, rest...);
  }
  sz_host* h_;
};

/// What a plugin instance uses to set itself up and act: one per shard.
class Module {
 public:
  using Handler = std::function<Verdict(Event&)>;

  Module(sz_host* h) : h_(h) {}
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  ~Module() {
    for (auto id : timers_) detail::api->timer_cancel(h_, id);
  }

  /// Registers a handler; higher priority runs first. Throws on an invalid event name.
  void hook(const std::string& event, Handler fn, int32_t prio = priority::normal) {
    handlers_.push_back(std::make_unique<Handler>(std::move(fn)));
    if (detail::api->hook(h_, event.c_str(), prio, &Module::trampoline, handlers_.back().get()) !=
        0)
      throw std::invalid_argument("invalid event name: " + event);
  }
  void add_feature(std::string_view var) { detail::api->add_feature(h_, detail::str(var)); }
  /// Offers a stream feature (one element, as XML) before authentication or beside binding.
  /// Needs a 1.1 server; throws on an older one.
  void add_stream_feature(std::string_view xml, bool after_auth = true) {
    if (!SZ_HAS(detail::api, add_stream_feature))
      throw std::runtime_error("this server has no stream features for plugins (ABI < 1.1)");
    detail::api->add_stream_feature(h_, detail::str(xml),
                                    after_auth ? SZ_STAGE_POST_AUTH : SZ_STAGE_PRE_AUTH);
  }
  void add_identity(std::string_view category, std::string_view type, std::string_view name = {}) {
    detail::api->add_identity(h_, detail::str(category), detail::str(type), detail::str(name));
  }
  std::string_view option(std::string_view name) const {
    return detail::view(detail::api->get_option(h_, detail::str(name)));
  }
  std::int64_t option_integer(std::string_view name) const {
    return std::stoll(std::string(option(name)));
  }
  bool option_boolean(std::string_view name) const {
    std::string_view v = option(name);
    return v == "true" || v == "yes" || v == "1";
  }
  std::string_view host() const { return detail::view(detail::api->host_name(h_)); }
  std::uint32_t shard() const { return detail::api->shard_index(h_); }
  std::uint32_t shards() const { return detail::api->shard_count(h_); }
  bool is_local_host(std::string_view domain) const {
    return detail::api->is_local_host(h_, detail::str(domain)) != 0;
  }
  Logger log() const { return Logger(h_); }
  /// Routes a stanza from the server: set its from and to.
  void send(Stanza&& stanza) { detail::api->send(h_, stanza.release()); }
  /// Every feature (or "category/type/name" identity) declared for `host` by any plugin.
  std::vector<std::string> features(std::string_view host) const { return each(host, true); }
  std::vector<std::string> identities(std::string_view host) const { return each(host, false); }
  /// Runs fn once after `ms` milliseconds on this shard. Cancelled if the module unloads first.
  std::uint64_t after(std::uint64_t ms, std::function<void()> fn) {
    auto* box = new std::function<void()>(std::move(fn));
    std::uint64_t id = detail::api->timer_add(h_, ms, &Module::timer_trampoline, box);
    timers_.push_back(id);
    return id;
  }
  /// Per-user key-value documents. nullopt when absent; throws std::runtime_error on error.
  std::optional<std::string> kv_get(std::string_view user, std::string_view store,
                                    std::string_view key) {
    std::string out;
    int r = detail::api->kv_get(h_, detail::str(user), detail::str(store), detail::str(key),
                                detail::collect, &out);
    if (r < 0) throw std::runtime_error("storage error");
    if (r == 0) return std::nullopt;
    return out;
  }
  void kv_set(std::string_view user, std::string_view store, std::string_view key,
              std::string_view value) {
    if (detail::api->kv_set(h_, detail::str(user), detail::str(store), detail::str(key),
                            detail::str(value)) != 0)
      throw std::runtime_error("storage error");
  }
  void kv_delete(std::string_view user, std::string_view store, std::string_view key) {
    if (detail::api->kv_set(h_, detail::str(user), detail::str(store), detail::str(key),
                            sz_str{nullptr, 0}) != 0)
      throw std::runtime_error("storage error");
  }
  // ---- ABI 1.3 (check has_async_kv()) ----------------------------------------------------
  bool has_async_kv() const { return SZ_HAS(detail::api, kv_set_async); }
  /// kv_set (value) or kv_delete (nullopt) without waiting for the commit; `done(plugin, ok)`
  /// runs later on this shard with this plugin's object (T, as declared with STANZAD_PLUGIN),
  /// not if the plugin was unloaded meanwhile. kv_get may return the old value until then.
  /// Throws std::runtime_error if the write was refused at once.
  template <class T>
  void kv_set_async(std::string_view user, std::string_view store, std::string_view key,
                    std::optional<std::string_view> value, std::function<void(T&, bool)> done);
  /// Fires this plugin's own event; returns the verdict.
  Verdict fire(const std::string& event, StanzaRef stanza = {}) {
    return static_cast<Verdict>(detail::api->fire(h_, event.c_str(), stanza.get()));
  }
  // ---- ABI 1.2: shards, sessions, accounts, offline queues (check has_sessions()) ----------
  bool has_sessions() const { return SZ_HAS(detail::api, instance_state); }
  /// The shard owning an entity (a local account's JID): its /bare, /full, account/ events
  /// run there.
  std::uint32_t owner_shard(std::string_view jid) const {
    return detail::api->owner_shard(h_, detail::str(jid));
  }
  /// Runs fn with this plugin's object (T, as declared with STANZAD_PLUGIN) on `shard`, after
  /// what is queued there. Not run if the plugin was unloaded meanwhile.
  template <class T>
  void post(std::uint32_t shard, std::function<void(T&)> fn);
  /// Calls fn for each bound resource of a local account. Only on the account's owner shard:
  /// returns -1 elsewhere, else the count.
  int sessions(std::string_view bare_jid, const std::function<void(const Session&)>& fn) {
    auto call = [](void* user, const sz_session* s) {
      (*static_cast<const std::function<void(const Session&)>*>(user))(Session(s));
    };
    return detail::api->account_sessions(h_, detail::str(bare_jid), call,
                                         const_cast<std::function<void(const Session&)>*>(&fn));
  }
  /// Sets (or, with nullopt, clears) a property of a bound session, from any shard.
  void set_session(std::string_view full_jid, std::string_view key,
                   std::optional<std::string_view> value) {
    detail::api->session_set(h_, detail::str(full_jid), detail::str(key),
                             value ? detail::str(*value) : sz_str{nullptr, 0});
  }
  /// Whether a local account exists; throws std::runtime_error on a storage error.
  bool user_exists(std::string_view bare_jid) {
    int r = detail::api->user_exists(h_, detail::str(bare_jid));
    if (r < 0) throw std::runtime_error("storage error");
    return r == 1;
  }
  /// Creates a local account: true, or false if it exists; throws std::invalid_argument for a
  /// JID that is no valid local account, std::runtime_error on a storage error. Plugins hear
  /// user/created.
  bool user_create(std::string_view bare_jid, std::string_view password) {
    int r = detail::api->user_create(h_, detail::str(bare_jid), detail::str(password));
    if (r == -2) throw std::invalid_argument("not a valid local account JID");
    if (r < 0) throw std::runtime_error("could not create the account");
    return r == 1;
  }
  /// Removes a local account and everything stored for it; its sessions end. False if none.
  bool user_remove(std::string_view bare_jid) {
    int r = detail::api->user_remove(h_, detail::str(bare_jid));
    if (r < 0) throw std::runtime_error("could not remove the account");
    return r == 1;
  }
  bool user_set_password(std::string_view bare_jid, std::string_view password) {
    int r = detail::api->user_set_password(h_, detail::str(bare_jid), detail::str(password));
    if (r < 0) throw std::runtime_error("could not change the password");
    return r == 1;
  }
  /// The keys of a user's store, in order.
  std::vector<std::string> kv_keys(std::string_view user, std::string_view store) {
    std::vector<std::string> out;
    auto add = [](void* u, sz_str v) {
      static_cast<std::vector<std::string>*>(u)->emplace_back(v.data ? v.data : "", v.len);
    };
    if (detail::api->kv_keys(h_, detail::str(user), detail::str(store), add, &out) < 0)
      throw std::runtime_error("storage error");
    return out;
  }
  /// Appends to a user's offline queue (committed on return); returns its new length.
  std::int64_t offline_push(std::string_view user, std::string_view xml) {
    std::int64_t n = detail::api->offline_push(h_, detail::str(user), detail::str(xml));
    if (n < 0) throw std::runtime_error("storage error");
    return n;
  }
  std::int64_t offline_count(std::string_view user) {
    std::int64_t n = detail::api->offline_count(h_, detail::str(user));
    if (n < 0) throw std::runtime_error("storage error");
    return n;
  }
  /// Takes the whole offline queue, oldest first (as XML).
  std::vector<std::string> offline_take(std::string_view user) {
    std::vector<std::string> out;
    auto add = [](void* u, sz_str v) {
      static_cast<std::vector<std::string>*>(u)->emplace_back(v.data ? v.data : "", v.len);
    };
    if (detail::api->offline_take(h_, detail::str(user), add, &out) < 0)
      throw std::runtime_error("storage error");
    return out;
  }
  // ---- ABI 1.5 (check has_async_offline()) -----------------------------------------------
  bool has_async_offline() const { return SZ_HAS(detail::api, offline_push_async); }
  /// offline_push without waiting, from a message/offline handler on the owner shard: joins
  /// the next group commit (offline_take and offline_count see it at once), and the sender's
  /// XEP-0198 acknowledgement of `ev`'s message waits for that commit; a failed write goes
  /// back to the sender as an error. Throws std::runtime_error if refused at once.
  void offline_push_async(Event& ev, std::string_view user, std::string_view xml) {
    if (detail::api->offline_push_async(h_, ev.get(), detail::str(user), detail::str(xml)) != 0)
      throw std::runtime_error("storage error");
  }
  /// Routes the account's offline queue, oldest first, to `full_jid` (on the owner shard); a
  /// message leaves the store only once it was written to a stream, stored again or refused,
  /// so a crash meanwhile delivers it again. Returns how many were routed (1.5).
  std::int64_t offline_deliver(std::string_view user, std::string_view full_jid) {
    std::int64_t n = detail::api->offline_deliver(h_, detail::str(user), detail::str(full_jid));
    if (n < 0) throw std::runtime_error("storage error");
    return n;
  }
  sz_host* get() const { return h_; }

 private:
  std::vector<std::string> each(std::string_view host, bool features) const {
    std::vector<std::string> out;
    auto add = [](void* user, sz_str v) {
      static_cast<std::vector<std::string>*>(user)->emplace_back(v.data ? v.data : "", v.len);
    };
    if (features) {
      detail::api->each_feature(h_, detail::str(host), add, &out);
    } else {
      detail::api->each_identity(h_, detail::str(host), add, &out);
    }
    return out;
  }
  static sz_verdict trampoline(sz_event* e, void* user) {
    Event ev(e);
    try {
      return static_cast<sz_verdict>((*static_cast<Handler*>(user))(ev));
    } catch (const std::exception& ex) {
      ev.error("internal-server-error", {}, "cancel");
      std::string msg =
          std::string("handler threw event=") + std::string(ev.name()) + " what=" + ex.what();
      detail::api->log(nullptr, SZ_LOG_ERROR, msg.data(), msg.size());
    } catch (...) {
      ev.error("internal-server-error", {}, "cancel");
      std::string msg = std::string("handler threw event=") + std::string(ev.name());
      detail::api->log(nullptr, SZ_LOG_ERROR, msg.data(), msg.size());
    }
    return SZ_ERROR;
  }
  static void timer_trampoline(void* user) {
    std::unique_ptr<std::function<void()>> fn(static_cast<std::function<void()>*>(user));
    try {
      (*fn)();
    } catch (const std::exception& ex) {
      std::string msg = std::string("timer threw what=") + ex.what();
      detail::api->log(nullptr, SZ_LOG_ERROR, msg.data(), msg.size());
    } catch (...) {
    }
  }

  sz_host* h_;
  std::vector<std::unique_ptr<Handler>> handlers_;
  std::vector<std::uint64_t> timers_;
};

inline Verdict Event::error(Stanza&& payload, std::string_view condition, std::string_view text,
                            std::string_view type) {
  if (SZ_HAS(detail::api, event_set_error_payload))
    detail::api->event_set_error_payload(e_, payload.release());
  return error(condition, text, type);
}

inline bool Event::write(Stanza&& stanza) {
  return detail::api->event_session_write(e_, stanza.release()) == 0;
}

namespace detail {
template <class T>
struct Instance {
  Module module;
  std::unique_ptr<T> plugin;
  explicit Instance(sz_host* h) : module(h) {}
};

template <class T>
void* load(sz_host* h, const sz_host_api* a) {
  if (!a || a->size < offsetof(sz_host_api, fire) + sizeof(a->fire)) return nullptr;
  api = a;
  try {
    auto inst = std::make_unique<Instance<T>>(h);
    inst->plugin = std::make_unique<T>(inst->module);
    return inst.release();
  } catch (const std::exception& ex) {
    std::string msg = std::string("plugin load failed: ") + ex.what();
    a->log(h, SZ_LOG_ERROR, msg.data(), msg.size());
  } catch (...) {
    a->log(h, SZ_LOG_ERROR, "plugin load failed", 18);
  }
  return nullptr;
}

template <class T>
struct Posted {
  std::function<void(T&)> fn;
};
}  // namespace detail

template <class T>
void Module::post(std::uint32_t shard, std::function<void(T&)> fn) {
  auto* box = new detail::Posted<T>{std::move(fn)};
  detail::api->post(
      h_, shard,
      [](sz_host* here, void* user) {
        std::unique_ptr<detail::Posted<T>> p(static_cast<detail::Posted<T>*>(user));
        if (!here) return;
        auto* inst = static_cast<detail::Instance<T>*>(detail::api->instance_state(here));
        if (!inst || !inst->plugin) return;
        try {
          p->fn(*inst->plugin);
        } catch (const std::exception& ex) {
          std::string msg = std::string("posted task threw what=") + ex.what();
          detail::api->log(here, SZ_LOG_ERROR, msg.data(), msg.size());
        } catch (...) {
        }
      },
      box);
}

namespace detail {
template <class T>
struct WriteDone {
  std::function<void(T&, bool)> fn;
};
}  // namespace detail

template <class T>
void Module::kv_set_async(std::string_view user, std::string_view store, std::string_view key,
                          std::optional<std::string_view> value,
                          std::function<void(T&, bool)> done) {
  auto* box = done ? new detail::WriteDone<T>{std::move(done)} : nullptr;
  sz_done_fn trampoline = [](sz_host* here, void* user, int ok) {
    std::unique_ptr<detail::WriteDone<T>> p(static_cast<detail::WriteDone<T>*>(user));
    if (!here) return;
    auto* inst = static_cast<detail::Instance<T>*>(detail::api->instance_state(here));
    if (!inst || !inst->plugin) return;
    try {
      p->fn(*inst->plugin, ok != 0);
    } catch (const std::exception& ex) {
      std::string msg = std::string("write completion threw what=") + ex.what();
      detail::api->log(here, SZ_LOG_ERROR, msg.data(), msg.size());
    } catch (...) {
    }
  };
  // A null data pointer means delete: an empty value keeps a non-null one.
  sz_str v = value ? sz_str{value->data() ? value->data() : "", value->size()} : sz_str{nullptr, 0};
  if (detail::api->kv_set_async(h_, detail::str(user), detail::str(store), detail::str(key), v,
                                box ? trampoline : nullptr, box) != 0) {
    delete box;
    throw std::runtime_error("storage error");
  }
}

namespace detail {
template <class T>
void unload(void* state) {
  auto* inst = static_cast<Instance<T>*>(state);
  try {
    inst->plugin.reset();
  } catch (...) {
  }
  delete inst;
}
}  // namespace detail

}  // namespace stanzad::sdk

/// Declares the plugin class T (constructed with a Module&, once per shard).
#define STANZAD_PLUGIN(T, NAME, VERSION) STANZAD_PLUGIN_WITH(T, NAME, VERSION, nullptr, 0, nullptr)

/// The same, with a static sz_option array (OPTS, COUNT) and a NULL-terminated list of
/// plugin names it depends on (DEPS), either may be nullptr.
#define STANZAD_PLUGIN_WITH(T, NAME, VERSION, OPTS, COUNT, DEPS)             \
  extern "C" SZ_EXPORT const sz_plugin* stanzad_plugin_v1(void) {            \
    static const sz_plugin descriptor = {SZ_ABI_MAJOR,                       \
                                         sizeof(sz_plugin),                  \
                                         NAME,                               \
                                         VERSION,                            \
                                         &::stanzad::sdk::detail::load<T>,   \
                                         &::stanzad::sdk::detail::unload<T>, \
                                         OPTS,                               \
                                         COUNT,                              \
                                         DEPS};                              \
    return &descriptor;                                                      \
  }
