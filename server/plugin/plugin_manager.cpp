// Loads, unloads and reloads plugins (shared libraries and Lua) on every shard, and serves
// them the C ABI's host functions (sdk/include/stanzad/plugin.h).
#include "plugin/plugin_manager.hpp"

#include <dlfcn.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <latch>
#include <set>
#include <unordered_map>

#include "plugin/lua_host.hpp"
#include "plugin/stanza_api.hpp"
#include "xmpp/router.hpp"

#ifndef STANZAD_PLUGIN_DIR
#define STANZAD_PLUGIN_DIR ""
#endif
#ifndef STANZAD_LUA_DIR
#define STANZAD_LUA_DIR ""
#endif

// One plugin instance on one shard: the C ABI's opaque sz_host.
struct sz_host {
  stanzad::plugin::PluginManager* manager = nullptr;
  stanzad::plugin::LoadedPlugin* plugin = nullptr;
  std::uint64_t id = 0;
  unsigned shard = 0;
  void* state = nullptr;
  std::vector<std::string> features;
  std::vector<std::string> identities;          // category/type/name
  std::vector<std::string> stream_features[2];  // by SZ_STAGE_*
  std::set<std::string, std::less<>> requested_options;
  std::map<std::uint64_t, std::unique_ptr<boost::asio::steady_timer>> timers;
  std::uint64_t next_timer = 0;
};

namespace stanzad::plugin {

struct LoadedPlugin {
  config::PluginSpec spec;
  std::string version;
  bool lua = false;
  std::filesystem::path file;
  void* dl = nullptr;
  const sz_plugin* desc = nullptr;
  std::vector<std::string> dependencies;
  std::map<std::string, std::string, std::less<>> options;  // effective values
  std::vector<std::unique_ptr<sz_host>> instances;          // by shard
};

namespace {

PluginManager* g_manager = nullptr;                         // one server per process
std::vector<std::vector<sz_host*>>* g_instances = nullptr;  // by shard, touched by that shard
xmpp::Router* g_router = nullptr;
net::ShardSet* g_shards = nullptr;
Pipeline* g_pipeline = nullptr;
// offline_push_async writes not committed yet, by shard then account (on that shard only), so
// that offline_count there counts them.
std::vector<std::unordered_map<std::string, std::int64_t>> offline_pending;
void offline_pending_done(std::uint32_t shard, const std::string& user) {
  auto& pending = offline_pending[shard];
  if (auto it = pending.find(user); it != pending.end() && --it->second <= 0) pending.erase(it);
}
// Whether the shards still take posted work from receipts ending on any thread: false once
// the manager is gone (after the shards stopped), so a receipt destroyed with them posts
// nothing.
std::atomic<bool> g_running{false};

// The end of an offline delivery (offline_deliver). Every message of it holds this receipt
// until it is done: written to a client's stream, stored again, or refused. When the last one
// lets go, the delivered part of the queue is removed, behind any re-store. If the server
// stops first, or a session without stream management could not write one of them, nothing
// is removed and the whole queue comes again at the next login (at least once).
struct OfflineDelivered : xmpp::Receipt {
  std::string user;
  std::int64_t upto;
  std::uint32_t shard;
  std::atomic<bool> keep{false};  // a message of it could not be written: keep the queue
  OfflineDelivered(std::string u, std::int64_t id, std::uint32_t s)
      : user(std::move(u)), upto(id), shard(s) {}
  void undelivered() override { keep = true; }
  ~OfflineDelivered() override {
    if (keep.load() || !g_running.load()) return;
    boost::asio::post(g_shards->at(shard).context(), [user = std::move(user), upto = upto] {
      auto* storage = g_manager ? g_manager->storage() : nullptr;
      if (!storage) return;
      try {
        storage->offline_delete_upto_async(user, upto);
      } catch (const std::exception& e) {
        spdlog::warn("offline queue not trimmed jid={} error={}", user, e.what());
      }
    });
  }
};

std::string where(const std::filesystem::path& source, std::size_t line) {
  return source.string() + ":" + std::to_string(line);
}

void route_owned(xml::Element* raw, std::string_view fallback_from = {}) {
  std::unique_ptr<xml::Element> el(raw);
  auto to = xmpp::Jid::parse(el->attr("to"));
  auto from = xmpp::Jid::parse(el->has_attr("from") ? el->attr("from") : fallback_from);
  if (!to || !from) {
    spdlog::warn("plugin sent a stanza without valid from/to name={}", el->name());
    return;
  }
  el->set_attr("from", from->str());
  g_router->route(xmpp::Routed{std::move(*el), std::move(*from), std::move(*to)});
}

// A listed session as the C ABI's opaque sz_session (account_sessions).
struct SessionInfo {
  std::string jid;
  const xmpp::Router::SessionView* view;
};
const SessionInfo* info_of(const sz_session* s) { return reinterpret_cast<const SessionInfo*>(s); }

// Runs a storage call for a plugin; a failure is logged and answered `failed`.
template <class T, class F>
T storage_call(sz_host* h, std::string_view what, T failed, F f) {
  auto* storage = g_manager ? g_manager->storage() : nullptr;
  if (!storage) return failed;
  try {
    return f(*storage);
  } catch (const std::exception& e) {
    spdlog::error("plugin={} {} failed error={}", h->plugin->spec.name, what, e.what());
    return failed;
  }
}

// The instance of plugin `name` (for `host`) on `shard`, or null once it was unloaded; on that
// shard only.
sz_host* instance_on(std::uint32_t shard, const std::string& name, const std::string& host) {
  for (sz_host* other : (*g_instances)[shard]) {
    if (other->plugin->spec.name == name && other->plugin->spec.host == host) return other;
  }
  return nullptr;
}

sz_host_api make_api() {
  sz_host_api a{};
  a.size = sizeof(sz_host_api);
  fill_stanza_api(a);
  a.hook = [](sz_host* h, const char* event, int32_t prio, sz_handler fn, void* user) -> int {
    if (!event || !fn || !valid_event_name(event)) return -1;
    g_pipeline->at(h->shard).add(event,
                                 Handler{prio, 0, h->id, h->plugin->spec.host, fn, user, {}});
    return 0;
  };
  a.log = [](sz_host* h, sz_log_level level, const char* msg, size_t len) {
    std::string_view text(msg, len);
    std::string_view name = h ? std::string_view(h->plugin->spec.name) : "?";
    switch (level) {
      case SZ_LOG_DEBUG:
        spdlog::debug("plugin={} {}", name, text);
        break;
      case SZ_LOG_INFO:
        spdlog::info("plugin={} {}", name, text);
        break;
      case SZ_LOG_WARN:
        spdlog::warn("plugin={} {}", name, text);
        break;
      default:
        spdlog::error("plugin={} {}", name, text);
        break;
    }
  };
  a.add_feature = [](sz_host* h, sz_str var) { h->features.emplace_back(view(var)); };
  a.add_identity = [](sz_host* h, sz_str category, sz_str type, sz_str name) {
    h->identities.push_back(std::string(view(category)) + "/" + std::string(view(type)) + "/" +
                            std::string(view(name)));
  };
  a.add_stream_feature = [](sz_host* h, sz_str xml, int stage) {
    if (stage != SZ_STAGE_PRE_AUTH && stage != SZ_STAGE_POST_AUTH) return;
    if (!parse_element(view(xml))) {
      spdlog::error("plugin={} stream feature is not one XML element", h->plugin->spec.name);
      return;
    }
    h->stream_features[stage].emplace_back(view(xml));
  };
  a.get_option = [](sz_host* h, sz_str name) -> sz_str {
    h->requested_options.emplace(view(name));
    auto it = h->plugin->options.find(view(name));
    if (it == h->plugin->options.end()) return sz_str{nullptr, 0};
    return str(it->second);
  };
  a.host_name = [](sz_host* h) { return str(h->plugin->spec.host); };
  a.shard_index = [](sz_host* h) -> uint32_t { return h->shard; };
  a.shard_count = [](sz_host*) -> uint32_t { return g_shards->size(); };
  a.each_feature = [](sz_host* h, sz_str host, sz_str_fn fn, void* user) {
    std::set<std::string_view> seen;
    for (sz_host* other : (*g_instances)[h->shard]) {
      if (!other->plugin->spec.host.empty() && other->plugin->spec.host != view(host)) continue;
      for (const auto& f : other->features)
        if (seen.insert(f).second) fn(user, str(f));
    }
  };
  a.each_identity = [](sz_host* h, sz_str host, sz_str_fn fn, void* user) {
    std::set<std::string_view> seen;
    for (sz_host* other : (*g_instances)[h->shard]) {
      if (!other->plugin->spec.host.empty() && other->plugin->spec.host != view(host)) continue;
      for (const auto& i : other->identities)
        if (seen.insert(i).second) fn(user, str(i));
    }
  };
  a.is_local_host = [](sz_host*, sz_str domain) -> int {
    return g_router->is_local_host(view(domain)) ? 1 : 0;
  };
  a.event_reply = [](sz_event* e, sz_stanza* reply) {
    Event* ev = from_c(e);
    xml::Element* el = from_c(reply);
    if (ev->from) el->set_attr("to", ev->from->str());
    std::string from = ev->to ? ev->to->str() : std::string(ev->host);
    el->set_attr("from", from);
    route_owned(el);
  };
  a.send = [](sz_host* h, sz_stanza* stanza) {
    std::string fallback = h->plugin->spec.host;
    route_owned(from_c(stanza), fallback);
  };
  a.timer_add = [](sz_host* h, uint64_t ms, sz_timer_fn fn, void* user) -> uint64_t {
    std::uint64_t id = ++h->next_timer;
    auto timer = std::make_unique<boost::asio::steady_timer>(g_shards->at(h->shard).context());
    timer->expires_after(std::chrono::milliseconds(ms));
    timer->async_wait([h, id, fn, user](const boost::system::error_code& ec) {
      if (ec) return;  // cancelled: at unload, or by timer_cancel
      auto node = h->timers.extract(id);
      fn(user);
    });
    h->timers.emplace(id, std::move(timer));
    return id;
  };
  a.timer_cancel = [](sz_host* h, uint64_t id) {
    auto it = h->timers.find(id);
    if (it == h->timers.end()) return;
    it->second->cancel();
    h->timers.erase(it);
  };
  a.kv_get = [](sz_host* h, sz_str user_jid, sz_str store, sz_str key, sz_str_fn fn,
                void* user) -> int {
    auto* kv = g_manager ? g_manager->storage() : nullptr;
    if (!kv) return -1;
    try {
      auto v = kv->get(view(user_jid), view(store), view(key));
      if (!v) return 0;
      fn(user, str(*v));
      return 1;
    } catch (const std::exception& e) {
      spdlog::error("plugin={} key-value read failed error={}", h->plugin->spec.name, e.what());
      return -1;
    }
  };
  a.kv_set = [](sz_host* h, sz_str user_jid, sz_str store, sz_str key, sz_str value) -> int {
    auto* kv = g_manager ? g_manager->storage() : nullptr;
    if (!kv) return -1;
    try {
      std::optional<std::string_view> v;
      if (value.data) v = view(value);
      kv->set(view(user_jid), view(store), view(key), v);
      return 0;
    } catch (const std::exception& e) {
      spdlog::error("plugin={} key-value write failed error={}", h->plugin->spec.name, e.what());
      return -1;
    }
  };
  // ---- 1.2
  a.owner_shard = [](sz_host*, sz_str jid) -> uint32_t {
    auto j = xmpp::Jid::parse(view(jid));
    return g_router->owner_index(j ? j->bare_str() : std::string(view(jid)));
  };
  a.post = [](sz_host* h, uint32_t shard, sz_task_fn fn, void* user) {
    if (shard >= g_shards->size()) shard = h->shard;
    // The instance is looked up when the task runs: the plugin may be unloaded by then.
    boost::asio::post(g_shards->at(shard).context(),
                      [shard, fn, user, name = h->plugin->spec.name, host = h->plugin->spec.host] {
                        fn(instance_on(shard, name, host), user);
                      });
  };
  a.instance_state = [](sz_host* h) { return h->state; };
  a.account_sessions = [](sz_host*, sz_str bare_jid, sz_session_fn fn, void* user) -> int {
    auto j = xmpp::Jid::parse(view(bare_jid));
    if (!j) return 0;
    std::string bare = j->bare_str();
    return g_router->sessions(bare, [&](const xmpp::Router::SessionView& v) {
      SessionInfo info{bare + "/" + std::string(v.resource), &v};
      fn(user, reinterpret_cast<const sz_session*>(&info));
    });
  };
  a.session_jid = [](const sz_session* s) { return str(info_of(s)->jid); };
  a.session_available = [](const sz_session* s) -> int { return info_of(s)->view->available; };
  a.session_priority = [](const sz_session* s) -> int32_t { return info_of(s)->view->priority; };
  a.session_presence = [](const sz_session* s) -> const sz_stanza* {
    const xml::Element* p = info_of(s)->view->presence;
    return p ? reinterpret_cast<const sz_stanza*>(p) : nullptr;
  };
  a.session_get = [](const sz_session* s, sz_str key) -> sz_str {
    for (const auto& [k, v] : *info_of(s)->view->properties)
      if (k == view(key)) return str(v);
    return sz_str{nullptr, 0};
  };
  a.session_property_at = [](const sz_session* s, size_t i, sz_str* key, sz_str* value) -> int {
    const auto& props = *info_of(s)->view->properties;
    if (i >= props.size()) return 0;
    *key = str(props[i].first);
    *value = str(props[i].second);
    return 1;
  };
  a.session_set = [](sz_host*, sz_str full_jid, sz_str key, sz_str value) {
    auto j = xmpp::Jid::parse(view(full_jid));
    if (!j || j->is_bare()) return;
    std::optional<std::string> v;
    if (value.data) v.emplace(view(value));
    g_router->set_property(*j, std::string(view(key)), std::move(v));
  };
  a.user_exists = [](sz_host* h, sz_str bare_jid) -> int {
    return storage_call(h, "account lookup", -1,
                        [&](PluginStorage& s) { return s.exists(view(bare_jid)) ? 1 : 0; });
  };
  a.kv_keys = [](sz_host* h, sz_str user_jid, sz_str store, sz_str_fn fn, void* user) -> int {
    return storage_call(h, "key listing", -1, [&](PluginStorage& s) {
      auto keys = s.keys(view(user_jid), view(store));
      for (const auto& k : keys) fn(user, str(k));
      return static_cast<int>(keys.size());
    });
  };
  a.offline_push = [](sz_host* h, sz_str user_jid, sz_str xml) -> int64_t {
    return storage_call(h, "offline store", int64_t{-1}, [&](PluginStorage& s) {
      return static_cast<int64_t>(s.offline_push(view(user_jid), view(xml)));
    });
  };
  a.offline_count = [](sz_host* h, sz_str user_jid) -> int64_t {
    int64_t stored = storage_call(h, "offline count", int64_t{-1}, [&](PluginStorage& s) {
      return static_cast<int64_t>(s.offline_count(view(user_jid)));
    });
    if (stored < 0) return stored;
    const auto& pending = offline_pending[h->shard];
    auto it = pending.find(std::string(view(user_jid)));
    return stored + (it == pending.end() ? 0 : it->second);
  };
  a.user_create = [](sz_host* h, sz_str jid, sz_str password) -> int {
    auto j = xmpp::Jid::parse(view(jid));
    if (!j || j->node().empty() || !j->is_bare() || !g_router->is_local_host(j->domain()))
      return -2;  // not a local account's JID
    return storage_call(h, "account creation", -1,
                        [&](PluginStorage& s) { return s.create(j->str(), view(password)); });
  };
  a.user_remove = [](sz_host* h, sz_str jid) -> int {
    return storage_call(h, "account removal", -1,
                        [&](PluginStorage& s) { return s.remove(view(jid)); });
  };
  a.user_set_password = [](sz_host* h, sz_str jid, sz_str password) -> int {
    return storage_call(h, "password change", -1, [&](PluginStorage& s) {
      return s.set_password(view(jid), view(password));
    });
  };
  a.offline_take = [](sz_host* h, sz_str user_jid, sz_str_fn fn, void* user) -> int {
    return storage_call(h, "offline take", -1, [&](PluginStorage& s) {
      auto all = s.offline_take(view(user_jid));
      for (const auto& m : all) fn(user, str(m));
      return static_cast<int>(all.size());
    });
  };
  // ---- 1.3
  a.kv_set_async = [](sz_host* h, sz_str user_jid, sz_str store, sz_str key, sz_str value,
                      sz_done_fn done, void* user) -> int {
    std::optional<std::string_view> v;
    if (value.data) v = view(value);
    std::function<void(bool)> finished;
    if (done) {
      // Runs on the storage's writer thread (or here, if refused): back to this shard, where
      // the instance is looked up again (it may have been unloaded meanwhile).
      finished = [shard = h->shard, done, user, name = h->plugin->spec.name,
                  host = h->plugin->spec.host](bool ok) {
        boost::asio::post(g_shards->at(shard).context(),
                          [=] { done(instance_on(shard, name, host), user, ok ? 1 : 0); });
      };
    }
    return storage_call(h, "key-value write", -1, [&](PluginStorage& s) {
      s.set_async(view(user_jid), view(store), view(key), v, std::move(finished));
      return 0;
    });
  };
  // ---- 1.5
  a.offline_push_async = [](sz_host* h, sz_event* ev, sz_str user_jid, sz_str xml) -> int {
    std::string user(view(user_jid));
    // The sender's acknowledgement: held by the write until it committed or failed, and let
    // go on the writer's thread (a receipt may end on any thread).
    std::shared_ptr<xmpp::Receipt> receipt;
    if (ev && from_c(ev)->receipt) receipt = *from_c(ev)->receipt;
    const std::uint32_t shard = h->shard;
    auto finished = [shard, user, stanza = std::string(view(xml)),
                     receipt = std::move(receipt)](bool ok) mutable {
      boost::asio::post(g_shards->at(shard).context(), [shard, user, ok, stanza] {
        offline_pending_done(shard, user);
        if (ok) return;
        spdlog::error("offline message not stored jid={}", user);
        if (auto el = parse_element(stanza)) {
          auto from = xmpp::Jid::parse(el->attr("from"));
          auto to = xmpp::Jid::parse(el->attr("to"));
          if (from && to)
            g_router->bounce(xmpp::Routed{std::move(*el), std::move(*from), std::move(*to)},
                             "internal-server-error", "the message could not be stored", "wait");
        }
      });
      receipt.reset();
    };
    ++offline_pending[shard][user];
    int r = storage_call(h, "offline store", -1, [&](PluginStorage& s) {
      s.offline_push_async(user, view(xml), std::move(finished));
      return 0;
    });
    if (r != 0) offline_pending_done(shard, user);
    return r;
  };
  a.offline_deliver = [](sz_host* h, sz_str user_jid, sz_str full_jid) -> int64_t {
    auto full = xmpp::Jid::parse(view(full_jid));
    if (!full || full->node().empty()) return -1;
    std::vector<std::pair<std::int64_t, std::string>> queue;
    if (storage_call(h, "offline delivery", -1, [&](PluginStorage& s) {
          queue = s.offline_peek(view(user_jid));
          return 0;
        }) != 0)
      return -1;
    if (queue.empty()) return 0;
    auto done = std::make_shared<OfflineDelivered>(std::string(view(user_jid)), queue.back().first,
                                                   h->shard);
    int64_t routed = 0;
    for (auto& [id, xml] : queue) {
      auto el = parse_element(xml);
      auto from = el ? xmpp::Jid::parse(el->attr("from")) : std::nullopt;
      if (!el || !from) {  // removed with the rest
        spdlog::warn("plugin={} offline message unreadable jid={} id={}", h->plugin->spec.name,
                     view(user_jid), id);
        continue;
      }
      el->set_attr("to", full->str());  // if the resource left meanwhile: the bare JID's rules
      g_router->route(xmpp::Routed{std::move(*el), std::move(*from), *full, done});
      ++routed;
    }
    return routed;
  };
  a.fire = [](sz_host* h, const char* event, sz_stanza* stanza) -> sz_verdict {
    Event ev;
    ev.name = event;
    ev.stanza = stanza ? from_c(stanza) : nullptr;
    ev.host = h->plugin->spec.host;
    return g_pipeline->at(h->shard).fire(ev);
  };
  return a;
}

std::vector<std::vector<sz_host*>> instances_by_shard;

}  // namespace

const sz_host_api& PluginManager::api() {
  static const sz_host_api table = make_api();
  return table;
}

PluginManager::PluginManager(net::ShardSet& shards, Pipeline& pipeline, xmpp::Router& router,
                             const config::Config& config)
    : shards_(shards),
      pipeline_(pipeline),
      router_(router),
      source_(config.source),
      plugin_dir_(config.plugin_dir.empty() ? std::filesystem::path(STANZAD_PLUGIN_DIR)
                                            : config.plugin_dir),
      lua_dir_(config.lua_dir.empty() ? std::filesystem::path(STANZAD_LUA_DIR) : config.lua_dir) {
  g_manager = this;
  g_router = &router;
  g_shards = &shards;
  g_pipeline = &pipeline;
  instances_by_shard.assign(shards.size(), {});
  offline_pending.assign(shards.size(), {});
  g_running = true;
  g_instances = &instances_by_shard;
  lua::set_runtime_path(lua_dir_.string());
}

PluginManager::~PluginManager() {
  g_running = false;
  g_manager = nullptr;
}

void PluginManager::run_on_every_shard(const std::function<void(unsigned)>& fn) {
  assert(net::Shard::current() == nullptr);
  std::latch done(shards_.size());
  for (unsigned i = 0; i < shards_.size(); ++i) {
    boost::asio::post(shards_.at(i).context(), [&fn, &done, i] {
      fn(i);
      done.count_down();
    });
  }
  done.wait();
}

std::filesystem::path PluginManager::resolve(const config::PluginSpec& spec, bool& lua) const {
  if (!spec.file.empty()) {
    lua = spec.file.extension() == ".lua";
    return spec.file;
  }
  auto lua_file = lua_dir_ / ("mod_" + spec.name + ".lua");
  if (std::filesystem::exists(lua_file)) {
    lua = true;
    return lua_file;
  }
  lua = false;
  return plugin_dir_ / ("libstanzad_" + spec.name + ".so");
}

std::string PluginManager::check_options(LoadedPlugin& p, const config::PluginSpec& spec) const {
  const sz_plugin* d = p.desc;
  std::size_t count = d->options ? d->option_count : 0;
  for (std::size_t i = 0; i < count; ++i) {
    const sz_option& o = d->options[i];
    p.options[o.name] = o.default_value ? o.default_value : "";
  }
  for (const auto& [name, given] : spec.options) {
    const sz_option* o = nullptr;
    for (std::size_t i = 0; i < count; ++i)
      if (name == d->options[i].name) o = &d->options[i];
    std::string at =
        where(source_, given.line) + ": option 'plugin " + spec.name + "/" + name + "': ";
    if (!o) {
      std::string known;
      for (std::size_t i = 0; i < count; ++i)
        known += (known.empty() ? "" : ", ") + std::string(d->options[i].name);
      return at + "unknown option" +
             (known.empty() ? " (the plugin takes none)" : " (expected one of: " + known + ")");
    }
    if (o->type == SZ_OPT_INTEGER) {
      long long v = 0;
      auto [end, ec] =
          std::from_chars(given.value.data(), given.value.data() + given.value.size(), v);
      if (given.value.empty() || ec != std::errc() ||
          end != given.value.data() + given.value.size())
        return at + "'" + given.value + "' is not an integer";
      if (v < o->min || v > o->max)
        return at + "'" + given.value + "' is out of range (" + std::to_string(o->min) + " to " +
               std::to_string(o->max) + ")";
    } else if (o->type == SZ_OPT_BOOLEAN) {
      const std::string& v = given.value;
      if (v != "true" && v != "false" && v != "yes" && v != "no" && v != "1" && v != "0")
        return at + "'" + v + "' is not a boolean (true/false, yes/no, 1/0)";
    }
    p.options[name] = given.value;
  }
  return {};
}

std::vector<std::string> PluginManager::load_all(const std::vector<config::PluginSpec>& specs) {
  std::lock_guard lock(mutex_);
  std::vector<const config::PluginSpec*> pending;
  for (const auto& s : specs) pending.push_back(&s);
  std::vector<std::string> errors;
  // Dependencies first: retry what waits for another plugin until nothing moves.
  bool progress = true;
  std::map<const config::PluginSpec*, std::string> waiting;
  while (progress && !pending.empty()) {
    progress = false;
    std::vector<const config::PluginSpec*> still;
    for (const auto* spec : pending) {
      missing_dependency_ = false;
      std::string error = load_locked(*spec);
      if (error.empty()) {
        progress = true;
      } else if (missing_dependency_) {
        waiting[spec] = error;
        still.push_back(spec);
      } else {
        errors.push_back(error);
      }
    }
    pending = std::move(still);
  }
  for (const auto* spec : pending) errors.push_back(waiting[spec]);
  for (const auto& e : errors) spdlog::error("{}", e);
  return errors;
}

std::string PluginManager::load(const config::PluginSpec& spec) {
  std::lock_guard lock(mutex_);
  std::string error = load_locked(spec);
  if (!error.empty()) spdlog::error("{}", error);
  return error;
}

std::string PluginManager::load_locked(const config::PluginSpec& spec) {
  const std::string at = where(source_, spec.line) + ": plugin '" + spec.name + "': ";
  for (const auto& p : plugins_)
    if (p->spec.name == spec.name && p->spec.host == spec.host) return at + "already loaded";

  auto p = std::make_unique<LoadedPlugin>();
  p->spec = spec;
  p->file = resolve(spec, p->lua);
  if (!std::filesystem::exists(p->file)) return at + "no such file " + p->file.string();

  if (!p->lua) {
    p->dl = dlopen(p->file.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!p->dl) return at + "cannot load " + p->file.string() + ": " + dlerror();
    auto entry = reinterpret_cast<sz_entry_fn>(dlsym(p->dl, SZ_ENTRY_SYMBOL));
    const sz_plugin* d = entry ? entry() : nullptr;
    std::string refused;
    if (!d) {
      refused = p->file.string() + " is not a stanzad plugin (no " SZ_ENTRY_SYMBOL ")";
    } else if (d->abi_major != SZ_ABI_MAJOR) {
      refused = "built for plugin ABI " + std::to_string(d->abi_major) +
                ", this server provides ABI " + std::to_string(SZ_ABI_MAJOR);
    } else if (d->size < offsetof(sz_plugin, dependencies) + sizeof(d->dependencies) || !d->load ||
               !d->unload) {
      refused = "its descriptor is incomplete";
    }
    if (!refused.empty()) {
      dlclose(p->dl);
      return at + refused;
    }
    p->desc = d;
    p->version = d->version ? d->version : "";
    if (d->dependencies)
      for (auto* dep = d->dependencies; *dep; ++dep) p->dependencies.emplace_back(*dep);
    for (const auto& dep : p->dependencies) {
      bool found = std::any_of(plugins_.begin(), plugins_.end(), [&](const auto& q) {
        return q->spec.name == dep && (q->spec.host.empty() || q->spec.host == spec.host);
      });
      if (!found) {
        dlclose(p->dl);
        missing_dependency_ = true;
        return at + "needs plugin '" + dep + "', which is not loaded";
      }
    }
    if (std::string e = check_options(*p, spec); !e.empty()) {
      dlclose(p->dl);
      return e;
    }
  } else {
    for (const auto& [name, given] : spec.options) p->options[name] = given.value;
    p->version = "lua";
  }

  // One instance per shard, each loaded on its own shard.
  p->instances.resize(shards_.size());
  std::vector<std::string> shard_errors(shards_.size());
  for (unsigned i = 0; i < shards_.size(); ++i) {
    auto h = std::make_unique<sz_host>();
    h->manager = this;
    h->plugin = p.get();
    h->id = ++next_instance_;
    h->shard = i;
    p->instances[i] = std::move(h);
  }
  LoadedPlugin* raw = p.get();
  run_on_every_shard([&](unsigned i) {
    sz_host* h = raw->instances[i].get();
    if (raw->lua) {
      std::string error;
      h->state = lua::load(h, &api(), raw->spec.name, raw->file.string(), error);
      if (!h->state) shard_errors[i] = error.empty() ? "refused to load" : error;
    } else {
      h->state = raw->desc->load(h, &api());
      if (!h->state) shard_errors[i] = "refused to load (see the log above)";
    }
    if (h->state) instances_by_shard[i].push_back(h);
  });

  std::string error;
  for (const auto& e : shard_errors)
    if (!e.empty() && error.empty()) error = at + e;
  if (error.empty() && raw->lua) {
    // Lua plugins declare options by asking for them: anything else configured is a typo.
    const auto& asked = raw->instances[0]->requested_options;
    for (const auto& [name, given] : spec.options) {
      if (!asked.contains(name)) {
        error = where(source_, given.line) + ": option 'plugin " + spec.name + "/" + name +
                "': unknown option (the plugin never reads it)";
        break;
      }
    }
  }
  plugins_.push_back(std::move(p));
  if (!error.empty()) {
    unload_locked(spec.name, spec.host);
    return error;
  }
  spdlog::info("plugin loaded name={} host={} version={} file={}", spec.name,
               spec.host.empty() ? "*" : spec.host, raw->version, raw->file.string());
  return {};
}

std::string PluginManager::unload(const std::string& name, const std::string& host) {
  std::lock_guard lock(mutex_);
  for (const auto& q : plugins_) {
    for (const auto& dep : q->dependencies) {
      if (dep == name && (host.empty() || q->spec.host == host || q->spec.host.empty()))
        return "plugin '" + name + "' is needed by '" + q->spec.name + "'";
    }
  }
  return unload_locked(name, host);
}

std::string PluginManager::unload_locked(const std::string& name, const std::string& host) {
  auto it = std::find_if(plugins_.begin(), plugins_.end(), [&](const auto& p) {
    return p->spec.name == name && p->spec.host == host;
  });
  if (it == plugins_.end()) return "plugin '" + name + "' is not loaded";
  LoadedPlugin* p = it->get();
  run_on_every_shard([&](unsigned i) {
    sz_host* h = p->instances[i].get();
    // Handlers go first, so no event queued on this shard reaches a plugin being unloaded.
    pipeline_.at(i).remove_owner(h->id);
    for (auto& [id, timer] : h->timers) timer->cancel();
    h->timers.clear();
    auto& list = instances_by_shard[i];
    list.erase(std::remove(list.begin(), list.end(), h), list.end());
    if (h->state) {
      if (p->lua) {
        lua::unload(h->state);
      } else {
        p->desc->unload(h->state);
      }
      h->state = nullptr;
    }
  });
  // Timer handlers cancelled above may still sit in the shards' queues and point at the
  // instances: let every shard drain once more before freeing them.
  run_on_every_shard([](unsigned) {});
  if (p->dl) dlclose(p->dl);
  spdlog::info("plugin unloaded name={} host={}", name, host.empty() ? "*" : host);
  plugins_.erase(it);
  return {};
}

std::string PluginManager::reload(const std::string& name, const std::string& host) {
  std::lock_guard lock(mutex_);
  auto it = std::find_if(plugins_.begin(), plugins_.end(), [&](const auto& p) {
    return p->spec.name == name && p->spec.host == host;
  });
  if (it == plugins_.end()) return "plugin '" + name + "' is not loaded";
  config::PluginSpec spec = (*it)->spec;
  if (std::string e = unload_locked(name, host); !e.empty()) return e;
  return load_locked(spec);
}

std::vector<std::string> PluginManager::apply(const config::Config& config) {
  std::vector<std::string> errors;
  std::vector<config::PluginSpec> to_load;
  {
    std::lock_guard lock(mutex_);
    source_ = config.source;
    auto same = [](const config::PluginSpec& a, const config::PluginSpec& b) {
      if (a.file != b.file || a.options.size() != b.options.size()) return false;
      for (const auto& [k, v] : a.options) {
        auto it = b.options.find(k);
        if (it == b.options.end() || it->second.value != v.value) return false;
      }
      return true;
    };
    // Unload what is gone or changed (newest first, so dependents go before what they need).
    for (auto i = plugins_.size(); i-- > 0;) {
      const auto& spec = plugins_[i]->spec;
      auto found = std::find_if(config.plugins.begin(), config.plugins.end(), [&](const auto& s) {
        return s.name == spec.name && s.host == spec.host;
      });
      if (found == config.plugins.end() || !same(*found, spec)) {
        std::string name = spec.name, host = spec.host;
        if (auto e = unload_locked(name, host); !e.empty()) errors.push_back(e);
      }
    }
    for (const auto& s : config.plugins) {
      bool loaded = std::any_of(plugins_.begin(), plugins_.end(), [&](const auto& p) {
        return p->spec.name == s.name && p->spec.host == s.host;
      });
      if (!loaded) to_load.push_back(s);
    }
  }
  auto more = load_all(to_load);
  errors.insert(errors.end(), more.begin(), more.end());
  return errors;
}

void PluginManager::stream_features(int stage, std::string_view host, std::string& out) {
  for (sz_host* h : instances_by_shard[net::Shard::current()->index()]) {
    if (!h->plugin->spec.host.empty() && h->plugin->spec.host != host) continue;
    for (const auto& f : h->stream_features[stage]) out.append(f);
  }
}

std::vector<PluginInfo> PluginManager::list() const {
  std::lock_guard lock(mutex_);
  std::vector<PluginInfo> out;
  for (const auto& p : plugins_)
    out.push_back(
        {p->spec.name, p->spec.host, p->version, p->lua ? "lua" : "shared", p->file.string()});
  return out;
}

}  // namespace stanzad::plugin
