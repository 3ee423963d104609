// Loads, unloads and reloads plugins (shared libraries and Lua) on every shard, and serves
// them the C ABI's host functions (sdk/include/stanzad/plugin.h).
#pragma once

#include <stanzad/plugin.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "net/shard.hpp"
#include "plugin/hooks.hpp"

namespace stanzad::xmpp {
class Router;
}

namespace stanzad::plugin {

struct LoadedPlugin;

// What the storage layer offers plugins: per-user key-value documents, accounts, offline
// queues. Every call blocks on the storage and throws on a failure.
struct PluginStorage {
  virtual ~PluginStorage() = default;
  // nullopt when absent; throws on a storage failure.
  virtual std::optional<std::string> get(std::string_view user_jid, std::string_view store,
                                         std::string_view key) = 0;
  // value nullopt deletes. Throws on a storage failure.
  virtual void set(std::string_view user_jid, std::string_view store, std::string_view key,
                   std::optional<std::string_view> value) = 0;
  // Like set, without waiting: done(ok) runs on the storage's writer thread once the write
  // committed or failed (or at once, on the calling thread, when it is refused). Writes are
  // committed in the order queued, after those of set.
  virtual void set_async(std::string_view user_jid, std::string_view store, std::string_view key,
                         std::optional<std::string_view> value,
                         std::function<void(bool ok)> done) = 0;
  virtual std::vector<std::string> keys(std::string_view user_jid, std::string_view store) = 0;
  virtual bool exists(std::string_view user_jid) = 0;
  virtual std::size_t offline_push(std::string_view user_jid, std::string_view stanza) = 0;
  // Queued behind every write already waiting; done(ok) runs on the storage's writer thread.
  virtual void offline_push_async(std::string_view user_jid, std::string_view stanza,
                                  std::function<void(bool ok)> done) = 0;
  virtual std::size_t offline_count(std::string_view user_jid) = 0;
  virtual std::vector<std::string> offline_take(std::string_view user_jid) = 0;
  // The queue, oldest first, with each message's id, seeing every write queued before it;
  // nothing is removed.
  virtual std::vector<std::pair<std::int64_t, std::string>> offline_peek(
      std::string_view user_jid) = 0;
  // Removes the queue up to `id`, behind what is queued (no completion).
  virtual void offline_delete_upto_async(std::string_view user_jid, std::int64_t id) = 0;
  // Accounts: 1 done, 0 exists (create) / no such account (remove, set_password). Creating and
  // removing tell plugins (user/created, user/deleted) and end a removed account's sessions.
  virtual int create(std::string_view bare_jid, std::string_view password) = 0;
  virtual int remove(std::string_view bare_jid) = 0;
  virtual int set_password(std::string_view bare_jid, std::string_view password) = 0;
};

// The pipeline: one hook registry per shard. fire() runs on the calling shard.
class Pipeline {
 public:
  explicit Pipeline(unsigned shards) : registries_(shards) {}
  HookRegistry& here() { return registries_[net::Shard::current()->index()]; }
  HookRegistry& at(unsigned shard) { return registries_[shard]; }
  sz_verdict fire(Event& ev) { return here().fire(ev); }

 private:
  std::vector<HookRegistry> registries_;
};

struct PluginInfo {
  std::string name, host, version, kind, file;
};

class PluginManager {
 public:
  PluginManager(net::ShardSet& shards, Pipeline& pipeline, xmpp::Router& router,
                const config::Config& config);
  ~PluginManager();

  void set_storage(PluginStorage* kv) { kv_ = kv; }
  PluginStorage* storage() const { return kv_; }

  // Loads every plugin of the configuration, dependencies first. A plugin that cannot load
  // is refused with one line (returned, and logged) and the rest go on. Shards must be
  // running; never call from a shard thread.
  std::vector<std::string> load_all(const std::vector<config::PluginSpec>& specs);
  // "" on success, else why not. Same threading rule as load_all.
  std::string load(const config::PluginSpec& spec);
  std::string unload(const std::string& name, const std::string& host = {});
  std::string reload(const std::string& name, const std::string& host = {});
  // Applies a new configuration's plugin list: loads new ones, unloads removed ones, reloads
  // those whose options changed. Returns the errors.
  std::vector<std::string> apply(const config::Config& config);
  std::vector<PluginInfo> list() const;
  // Appends the stream features plugins declared for `host` at `stage` (SZ_STAGE_*); on a shard.
  static void stream_features(int stage, std::string_view host, std::string& out);

  // The C ABI function table handed to every plugin.
  static const sz_host_api& api();

 private:
  std::string load_locked(const config::PluginSpec& spec);
  std::string unload_locked(const std::string& name, const std::string& host);
  std::filesystem::path resolve(const config::PluginSpec& spec, bool& lua) const;
  std::string check_options(LoadedPlugin& p, const config::PluginSpec& spec) const;
  void run_on_every_shard(const std::function<void(unsigned)>& fn);

  net::ShardSet& shards_;
  Pipeline& pipeline_;
  xmpp::Router& router_;
  std::filesystem::path source_;  // the config file, for error messages
  std::filesystem::path plugin_dir_, lua_dir_;
  PluginStorage* kv_ = nullptr;
  mutable std::mutex mutex_;  // guards plugins_ (control path only)
  std::vector<std::unique_ptr<LoadedPlugin>> plugins_;
  std::uint64_t next_instance_ = 0;
  bool missing_dependency_ = false;  // set by load_locked when a dependency is not loaded yet
};

}  // namespace stanzad::plugin
