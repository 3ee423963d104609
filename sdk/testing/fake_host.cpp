// sdk/testing/fake_host.cpp: the in-process plugin host for unit tests (see fake_host.hpp).
#include "fake_host.hpp"

#include <algorithm>
#include <stdexcept>

#include "plugin/event.hpp"
#include "plugin/lua_host.hpp"
#include "plugin/stanza_api.hpp"
#include "xml/serializer.hpp"
#include "xmpp/jid.hpp"

namespace stanzad::testing {

namespace {

using plugin::str;
using plugin::view;

// The last FakeHost constructed and alive: receives log lines written without a host (the C++
// SDK's trampolines log with a NULL host).
FakeHost* g_active = nullptr;

// What event_session_write writes to, in the fake: the host's record.
struct Recorder : plugin::SessionSink {
  std::vector<std::string>* out = nullptr;
  void write_now(xml::Element stanza) override {
    std::string text;
    xml::serialize(stanza, text, "jabber:client");
    out->push_back(std::move(text));
  }
};

// The event as the fake fires it: event_reply needs to find its host.
struct FakeEvent : plugin::Event {
  FakeHost* fake = nullptr;
  std::string name_storage;
};

}  // namespace

struct FakeHost::Instance {
  FakeHost* fake = nullptr;
  std::uint64_t owner = 0;
  std::string name;
  bool lua = false;
  const sz_plugin* cxx = nullptr;
  void* state = nullptr;
};

FakeHost* FakeHost::fake(sz_host* h) { return h ? instance(h)->fake : g_active; }

FakeHost::FakeHost(Options options, std::string host, std::uint32_t shard, std::uint32_t shards)
    : host_(std::move(host)), shard_(shard), shards_(shards), options_(std::move(options)) {
  if (!host_.empty()) local_hosts_.insert(host_);
  fill_api();
  g_active = this;
}

FakeHost::~FakeHost() {
  while (!instances_.empty()) drop(*instances_.back());
  if (g_active == this) g_active = nullptr;
}

FakeHost::Instance& FakeHost::add_instance(const std::string& name) {
  auto inst = std::make_unique<Instance>();
  inst->fake = this;
  inst->owner = ++next_owner_;
  inst->name = name;
  instances_.push_back(std::move(inst));
  return *instances_.back();
}

void FakeHost::drop(Instance& inst) {
  // As the plugin manager does: handlers and timers go first, then the plugin's own unload.
  hooks_.remove_owner(inst.owner);
  std::erase_if(timers_, [&](const auto& t) { return t.second.owner == inst.owner; });
  if (inst.lua) {
    plugin::lua::unload(inst.state);
  } else if (inst.cxx && inst.state) {
    inst.cxx->unload(inst.state);
  }
  std::erase_if(features_, [&](const Feature& f) { return f.owner == inst.owner; });
  std::erase_if(stream_features_, [&](const Feature& f) { return f.owner == inst.owner; });
  std::erase_if(identities_, [&](const Feature& f) { return f.owner == inst.owner; });
  std::erase_if(instances_, [&](const auto& p) { return p.get() == &inst; });
}

bool FakeHost::load_cxx(const sz_plugin* p, std::string* error) {
  auto fail = [&](std::string why) {
    if (error) *error = std::move(why);
    return false;
  };
  if (!p) return fail("no plugin descriptor");
  if (p->abi_major != SZ_ABI_MAJOR)
    return fail("plugin " + std::string(p->name ? p->name : "?") + " built for ABI " +
                std::to_string(p->abi_major) + ", host has " + std::to_string(SZ_ABI_MAJOR));
  for (std::size_t i = 0; p->options && i < p->option_count; ++i) {
    const sz_option& o = p->options[i];
    if (o.name && o.default_value && !options_.count(o.name)) options_[o.name] = o.default_value;
  }
  Instance& inst = add_instance(p->name ? p->name : "");
  inst.cxx = p;
  inst.state = p->load(reinterpret_cast<sz_host*>(&inst), &api_);
  if (!inst.state) {
    inst.cxx = nullptr;
    drop(inst);
    return fail("plugin " + std::string(p->name ? p->name : "?") + " refused to load");
  }
  return true;
}

bool FakeHost::load_lua(const std::string& name, const std::string& path, std::string* error) {
  Instance& inst = add_instance(name);
  inst.lua = true;
  std::string why;
  inst.state = plugin::lua::load(reinterpret_cast<sz_host*>(&inst), &api_, name, path, why);
  if (!inst.state) {
    inst.lua = false;
    drop(inst);
    if (error) *error = why;
    return false;
  }
  return true;
}

bool FakeHost::unload(const std::string& name) {
  for (auto& inst : instances_) {
    if (inst->name == name) {
      drop(*inst);
      return true;
    }
  }
  return false;
}

bool FakeHost::loaded(const std::string& name) const {
  return std::any_of(instances_.begin(), instances_.end(),
                     [&](const auto& i) { return i->name == name; });
}

FireResult FakeHost::fire(const std::string& event, const std::string& stanza_xml,
                          const std::string& from, const std::string& to,
                          const std::string& session_jid) {
  std::optional<xml::Element> stanza;
  if (!stanza_xml.empty()) {
    stanza = plugin::parse_element(stanza_xml);
    if (!stanza) throw std::invalid_argument("not one well-formed element: " + stanza_xml);
  }
  auto jid = [&](const std::string& given, std::string_view attr) -> std::optional<xmpp::Jid> {
    std::string_view text = given;
    if (text.empty() && stanza) text = stanza->attr(attr);
    if (text.empty()) return std::nullopt;
    auto j = xmpp::Jid::parse(text);
    if (!j) throw std::invalid_argument("malformed JID: " + std::string(text));
    return j;
  };
  std::optional<xmpp::Jid> jfrom = jid(from, "from"), jto = jid(to, "to"),
                           jsession = jid(session_jid, "");
  FakeEvent ev;
  ev.fake = this;
  ev.name_storage = event;
  ev.name = ev.name_storage;
  ev.stanza = stanza ? &*stanza : nullptr;
  ev.from = jfrom ? &*jfrom : nullptr;
  ev.to = jto ? &*jto : nullptr;
  ev.session = jsession ? &*jsession : nullptr;
  ev.host = host_;
  Recorder recorder;
  recorder.out = &written_;
  if (jsession) ev.sink = &recorder;
  FireResult r;
  r.verdict = hooks_.fire(ev);
  if (r.verdict == SZ_ERROR) {
    r.error_condition = ev.error_condition;
    r.error_type = ev.error_type;
    r.error_text = ev.error_text;
    for (const auto& el : ev.error_payload) {
      std::string text;
      xml::serialize(el, text, "jabber:client");
      r.error_payload.push_back(std::move(text));
    }
  }
  return r;
}

void FakeHost::add_session(const std::string& full_jid, const std::string& presence_xml,
                           int priority) {
  auto j = xmpp::Jid::parse(full_jid);
  if (!j || j->is_bare()) throw std::invalid_argument("not a full JID: " + full_jid);
  FakeSession s;
  s.jid = j->str();
  s.priority = priority;
  if (!presence_xml.empty()) {
    s.presence = plugin::parse_element(presence_xml);
    if (!s.presence) throw std::invalid_argument("not one well-formed element: " + presence_xml);
    s.available = true;
  }
  auto& list = sessions_[j->bare_str()];
  std::erase_if(list, [&](const FakeSession& o) { return o.jid == s.jid; });
  list.push_back(std::move(s));
}

void FakeHost::remove_session(const std::string& full_jid) {
  auto j = xmpp::Jid::parse(full_jid);
  if (!j) return;
  std::erase_if(sessions_[j->bare_str()], [&](const FakeSession& o) { return o.jid == j->str(); });
}

std::optional<std::string> FakeHost::session_property(const std::string& full_jid,
                                                      const std::string& key) const {
  auto j = xmpp::Jid::parse(full_jid);
  if (!j) return std::nullopt;
  auto it = sessions_.find(j->bare_str());
  if (it == sessions_.end()) return std::nullopt;
  for (const auto& s : it->second) {
    if (s.jid != j->str()) continue;
    for (const auto& [k, v] : s.properties)
      if (k == key) return v;
  }
  return std::nullopt;
}

std::size_t FakeHost::run_posted() {
  std::size_t n = 0;
  while (!posted_.empty()) {
    Posted p = posted_.front();
    posted_.erase(posted_.begin());
    sz_host* here = nullptr;
    for (auto& inst : instances_)
      if (inst->name == p.plugin) here = reinterpret_cast<sz_host*>(inst.get());
    p.fn(here, p.user);
    ++n;
  }
  return n;
}

void FakeHost::clear_sent() {
  sent_.clear();
  sent_xml_.clear();
  replies_.clear();
}

bool FakeHost::logged(std::string_view needle, sz_log_level level) const {
  return std::any_of(logs_.begin(), logs_.end(), [&](const LogLine& l) {
    return l.level >= level && l.message.find(needle) != std::string::npos;
  });
}

void FakeHost::advance(std::uint64_t ms) {
  std::uint64_t target = now_ + ms;
  for (;;) {
    auto next = timers_.end();
    for (auto it = timers_.begin(); it != timers_.end(); ++it)
      if (it->second.due <= target && (next == timers_.end() || it->second.due < next->second.due))
        next = it;
    if (next == timers_.end()) break;
    Timer t = next->second;
    timers_.erase(next);
    now_ = std::max(now_, t.due);
    t.fn(t.user);
  }
  now_ = target;
  run_posted();
}

std::optional<std::string> FakeHost::kv(const std::string& user, const std::string& store,
                                        const std::string& key) const {
  auto it = kv_.find({user, store, key});
  if (it == kv_.end()) return std::nullopt;
  return it->second;
}

void FakeHost::set_kv(const std::string& user, const std::string& store, const std::string& key,
                      const std::string& value) {
  kv_[{user, store, key}] = value;
}

std::vector<std::string> FakeHost::stream_features() const {
  std::vector<std::string> out;
  for (const auto& f : stream_features_) out.push_back(f.value);
  return out;
}

std::vector<std::string> FakeHost::features() const {
  std::vector<std::string> out;
  for (const auto& f : features_) out.push_back(f.value);
  return out;
}

std::vector<std::string> FakeHost::identities() const {
  std::vector<std::string> out;
  for (const auto& f : identities_) out.push_back(f.value);
  return out;
}

void FakeHost::record_sent(sz_stanza* s, bool reply) {
  std::unique_ptr<xml::Element> el(plugin::from_c(s));
  std::string text = xml::to_string(*el, "jabber:client");
  if (reply) replies_.push_back(text);
  sent_xml_.push_back(std::move(text));
  sent_.push_back(std::move(*el));
}

void FakeHost::fill_api() {
  api_.size = sizeof(sz_host_api);
  plugin::fill_stanza_api(api_);

  api_.hook = [](sz_host* h, const char* event, int32_t prio, sz_handler fn, void* user) -> int {
    if (!event || !plugin::valid_event_name(event) || !fn) return -1;
    plugin::Handler handler;
    handler.priority = prio;
    handler.owner = instance(h)->owner;
    handler.fn = fn;
    handler.user = user;
    fake(h)->hooks_.add(event, std::move(handler));
    return 0;
  };
  api_.log = [](sz_host* h, sz_log_level level, const char* msg, size_t len) {
    FakeHost* f = fake(h);
    if (!f) return;
    f->logs_.push_back(LogLine{level, h ? instance(h)->name : std::string(),
                               std::string(msg ? msg : "", msg ? len : 0)});
  };
  api_.add_stream_feature = [](sz_host* h, sz_str xml, int stage) {
    std::string prefix = stage == SZ_STAGE_PRE_AUTH ? "pre:" : "post:";
    fake(h)->stream_features_.push_back(
        Feature{instance(h)->owner, prefix + std::string(view(xml))});
  };
  api_.add_feature = [](sz_host* h, sz_str var) {
    fake(h)->features_.push_back(Feature{instance(h)->owner, std::string(view(var))});
  };
  api_.add_identity = [](sz_host* h, sz_str category, sz_str type, sz_str name) {
    std::string v =
        std::string(view(category)) + "/" + std::string(view(type)) + "/" + std::string(view(name));
    fake(h)->identities_.push_back(Feature{instance(h)->owner, std::move(v)});
  };
  api_.get_option = [](sz_host* h, sz_str name) -> sz_str {
    FakeHost* f = fake(h);
    std::string key(view(name));
    f->requested_.insert(key);
    auto it = f->options_.find(key);
    if (it == f->options_.end()) return sz_str{nullptr, 0};
    return sz_str{it->second.c_str(), it->second.size()};
  };
  api_.host_name = [](sz_host* h) { return str(fake(h)->host_); };
  api_.shard_index = [](sz_host* h) { return fake(h)->shard_; };
  api_.shard_count = [](sz_host* h) { return fake(h)->shards_; };
  api_.each_feature = [](sz_host* h, sz_str, sz_str_fn fn, void* user) {
    auto copy = fake(h)->features_;  // fn may call back into the host
    for (const auto& f : copy) fn(user, str(f.value));
  };
  api_.each_identity = [](sz_host* h, sz_str, sz_str_fn fn, void* user) {
    auto copy = fake(h)->identities_;
    for (const auto& f : copy) fn(user, str(f.value));
  };
  api_.is_local_host = [](sz_host* h, sz_str domain) -> int {
    return fake(h)->local_hosts_.count(std::string(view(domain))) ? 1 : 0;
  };

  api_.event_reply = [](sz_event* e, sz_stanza* reply) {
    auto* ev = static_cast<FakeEvent*>(plugin::from_c(e));
    xml::Element* r = plugin::from_c(reply);
    std::string to =
        ev->from ? ev->from->str() : (ev->stanza ? std::string(ev->stanza->attr("from")) : "");
    std::string from =
        ev->to ? ev->to->str() : (ev->stanza ? std::string(ev->stanza->attr("to")) : "");
    if (!to.empty()) r->set_attr("to", to);
    if (!from.empty()) r->set_attr("from", from);
    ev->fake->record_sent(reply, true);
  };
  api_.send = [](sz_host* h, sz_stanza* s) { fake(h)->record_sent(s, false); };
  api_.timer_add = [](sz_host* h, uint64_t ms, sz_timer_fn fn, void* user) -> uint64_t {
    FakeHost* f = fake(h);
    std::uint64_t id = ++f->next_timer_;
    f->timers_[id] = Timer{f->now_ + ms, instance(h)->owner, fn, user};
    return id;
  };
  api_.timer_cancel = [](sz_host* h, uint64_t id) { fake(h)->timers_.erase(id); };
  api_.kv_get = [](sz_host* h, sz_str user, sz_str store, sz_str key, sz_str_fn fn,
                   void* ud) -> int {
    FakeHost* f = fake(h);
    if (f->fail_storage_) return -1;
    auto it =
        f->kv_.find({std::string(view(user)), std::string(view(store)), std::string(view(key))});
    if (it == f->kv_.end()) return 0;
    fn(ud, str(it->second));
    return 1;
  };
  api_.kv_set = [](sz_host* h, sz_str user, sz_str store, sz_str key, sz_str value) -> int {
    FakeHost* f = fake(h);
    if (f->fail_storage_) return -1;
    std::tuple<std::string, std::string, std::string> k{
        std::string(view(user)), std::string(view(store)), std::string(view(key))};
    if (value.data) {
      f->kv_[k] = std::string(view(value));
    } else {
      f->kv_.erase(k);
    }
    return 0;
  };
  // Like a group commit: the write lands, and done runs, when the posted tasks run.
  api_.kv_set_async = [](sz_host* h, sz_str user, sz_str store, sz_str key, sz_str value,
                         sz_done_fn done, void* ud) -> int {
    FakeHost* f = fake(h);
    if (f->fail_storage_) return -1;
    auto* write = new AsyncWrite{
        {std::string(view(user)), std::string(view(store)), std::string(view(key))},
        value.data ? std::optional<std::string>(std::string(view(value))) : std::nullopt,
        done,
        ud,
        f};
    f->posted_.push_back(Posted{instance(h)->name,
                                [](sz_host* here, void* p) {
                                  std::unique_ptr<AsyncWrite> w(static_cast<AsyncWrite*>(p));
                                  if (w->value) {
                                    w->fake->kv_[w->key] = *w->value;
                                  } else {
                                    w->fake->kv_.erase(w->key);
                                  }
                                  if (w->done) w->done(here, w->user, 1);
                                },
                                write});
    return 0;
  };
  api_.fire = [](sz_host* h, const char* event, sz_stanza* stanza) -> sz_verdict {
    FakeHost* f = fake(h);
    FakeEvent ev;
    ev.fake = f;
    ev.name_storage = event ? event : "";
    ev.name = ev.name_storage;
    ev.stanza = stanza ? plugin::from_c(stanza) : nullptr;
    ev.host = f->host_;
    return f->hooks_.fire(ev);
  };

  // ---- 1.2: one shard owns everything here
  api_.owner_shard = [](sz_host* h, sz_str) -> uint32_t { return fake(h)->shard_; };
  api_.post = [](sz_host* h, uint32_t, sz_task_fn fn, void* user) {
    fake(h)->posted_.push_back(Posted{instance(h)->name, fn, user});
  };
  api_.instance_state = [](sz_host* h) { return instance(h)->state; };
  api_.account_sessions = [](sz_host* h, sz_str bare, sz_session_fn fn, void* user) -> int {
    FakeHost* f = fake(h);
    auto j = xmpp::Jid::parse(view(bare));
    if (!j) return 0;
    auto it = f->sessions_.find(j->bare_str());
    if (it == f->sessions_.end()) return 0;
    auto copy = it->second;  // fn may change the account
    for (const auto& s : copy) fn(user, reinterpret_cast<const sz_session*>(&s));
    return static_cast<int>(copy.size());
  };
  api_.session_jid = [](const sz_session* s) {
    return str(reinterpret_cast<const FakeSession*>(s)->jid);
  };
  api_.session_available = [](const sz_session* s) -> int {
    return reinterpret_cast<const FakeSession*>(s)->available ? 1 : 0;
  };
  api_.session_priority = [](const sz_session* s) -> int32_t {
    return reinterpret_cast<const FakeSession*>(s)->priority;
  };
  api_.session_presence = [](const sz_session* s) -> const sz_stanza* {
    const auto& p = reinterpret_cast<const FakeSession*>(s)->presence;
    return p ? reinterpret_cast<const sz_stanza*>(&*p) : nullptr;
  };
  api_.session_get = [](const sz_session* s, sz_str key) -> sz_str {
    for (const auto& [k, v] : reinterpret_cast<const FakeSession*>(s)->properties)
      if (k == view(key)) return str(v);
    return sz_str{nullptr, 0};
  };
  api_.session_property_at = [](const sz_session* s, size_t i, sz_str* key, sz_str* value) -> int {
    const auto& props = reinterpret_cast<const FakeSession*>(s)->properties;
    if (i >= props.size()) return 0;
    *key = str(props[i].first);
    *value = str(props[i].second);
    return 1;
  };
  api_.session_set = [](sz_host* h, sz_str full, sz_str key, sz_str value) {
    FakeHost* f = fake(h);
    auto j = xmpp::Jid::parse(view(full));
    if (!j) return;
    for (auto& s : f->sessions_[j->bare_str()]) {
      if (s.jid != j->str()) continue;
      std::erase_if(s.properties, [&](const auto& kv) { return kv.first == view(key); });
      if (value.data) s.properties.emplace_back(std::string(view(key)), std::string(view(value)));
    }
  };
  api_.user_exists = [](sz_host* h, sz_str bare) -> int {
    FakeHost* f = fake(h);
    if (f->fail_storage_) return -1;
    return f->users_.count(std::string(view(bare))) ? 1 : 0;
  };
  api_.user_create = [](sz_host* h, sz_str bare, sz_str) -> int {
    FakeHost* f = fake(h);
    if (f->fail_storage_) return -1;
    auto j = xmpp::Jid::parse(view(bare));
    if (!j || j->node().empty() || !j->is_bare()) return -2;
    return f->users_.insert(j->bare_str()).second ? 1 : 0;
  };
  api_.user_remove = [](sz_host* h, sz_str bare) -> int {
    FakeHost* f = fake(h);
    if (f->fail_storage_) return -1;
    auto j = xmpp::Jid::parse(view(bare));
    if (!j) return -1;
    return f->users_.erase(j->bare_str()) ? 1 : 0;
  };
  api_.user_set_password = [](sz_host* h, sz_str bare, sz_str) -> int {
    FakeHost* f = fake(h);
    if (f->fail_storage_) return -1;
    auto j = xmpp::Jid::parse(view(bare));
    return j && f->users_.count(j->bare_str()) ? 1 : 0;
  };
  api_.kv_keys = [](sz_host* h, sz_str user, sz_str store, sz_str_fn fn, void* ud) -> int {
    FakeHost* f = fake(h);
    if (f->fail_storage_) return -1;
    int n = 0;
    for (const auto& [k, v] : f->kv_) {
      if (std::get<0>(k) != view(user) || std::get<1>(k) != view(store)) continue;
      fn(ud, str(std::get<2>(k)));
      ++n;
    }
    return n;
  };
  api_.offline_push = [](sz_host* h, sz_str user, sz_str xml) -> int64_t {
    FakeHost* f = fake(h);
    if (f->fail_storage_) return -1;
    auto& q = f->offline_[std::string(view(user))];
    q.emplace_back(view(xml));
    return static_cast<int64_t>(q.size());
  };
  // The queue sees it at once, as offline_take and offline_count do on the server (the write
  // is queued ahead of theirs); only the commit, which the fake does not model, comes later.
  api_.offline_push_async = [](sz_host* h, sz_event*, sz_str user, sz_str xml) -> int {
    FakeHost* f = fake(h);
    if (f->fail_storage_) return -1;
    f->offline_[std::string(view(user))].emplace_back(view(xml));
    ++f->offline_async_pushes_;
    return 0;
  };
  // Sends the queue to full_jid at once (sent()) and empties it: the fake has no streams, so
  // every message counts as written.
  api_.offline_deliver = [](sz_host* h, sz_str user, sz_str full) -> int64_t {
    FakeHost* f = fake(h);
    if (f->fail_storage_) return -1;
    auto q = std::move(f->offline_[std::string(view(user))]);
    f->offline_[std::string(view(user))].clear();
    int64_t n = 0;
    for (const auto& m : q) {
      auto el = plugin::parse_element(m);
      if (!el) continue;
      el->set_attr("to", std::string(view(full)));
      f->record_sent(plugin::to_c(new xml::Element(std::move(*el))), false);
      ++n;
    }
    return n;
  };
  api_.offline_count = [](sz_host* h, sz_str user) -> int64_t {
    FakeHost* f = fake(h);
    if (f->fail_storage_) return -1;
    return static_cast<int64_t>(f->offline_[std::string(view(user))].size());
  };
  api_.offline_take = [](sz_host* h, sz_str user, sz_str_fn fn, void* ud) -> int {
    FakeHost* f = fake(h);
    if (f->fail_storage_) return -1;
    auto q = std::move(f->offline_[std::string(view(user))]);
    f->offline_[std::string(view(user))].clear();
    for (const auto& m : q) fn(ud, str(m));
    return static_cast<int>(q.size());
  };
}

}  // namespace stanzad::testing
