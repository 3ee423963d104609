// sdk/testing/fake_host.hpp: an in-process host for unit tests of plugins, C++ or Lua, no server.
//
//   stanzad::testing::FakeHost host({{"body_limit_max_chars", "5"}});
//   host.load_lua("body_limit", "lua/mod_body_limit.lua");   // or
//   host.load_cxx(stanzad_plugin_v1()) auto r = host.fire("message/bare", "<message
//   to='a@example.org'><body>toolong</body></message>",
//                      "b@example.org/x");
//   EXPECT_EQ(r.verdict, SZ_ERROR);  host.sent(), host.logs(), host.advance(1000)...
//
// It implements every sz_host_api member: hooks go to a real HookRegistry, the stanza and event
// functions are the server's own (fill_stanza_api), sent stanzas and replies are recorded, the
// key-value store is in memory, timers fire only when advance() says time has passed.
// Not thread-safe: one test thread.
#pragma once

#include <stanzad/plugin.h>

#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "plugin/hooks.hpp"
#include "xml/element.hpp"

namespace stanzad::testing {

struct LogLine {
  sz_log_level level = SZ_LOG_INFO;
  std::string plugin;  // empty when logged without a host
  std::string message;
};

struct FireResult {
  sz_verdict verdict = SZ_PASS;
  // Set when verdict == SZ_ERROR (what the core would bounce).
  std::string error_condition, error_type, error_text;
  std::vector<std::string> error_payload;  // serialized, in order (event_set_error_payload)
  bool passed() const { return verdict == SZ_PASS; }
  bool handled() const { return verdict == SZ_HANDLED; }
  bool error() const { return verdict == SZ_ERROR; }
};

class FakeHost {
 public:
  using Options = std::map<std::string, std::string>;

  // `host` is the virtual host every loaded instance serves (module.host; "" for global).
  explicit FakeHost(Options options = {}, std::string host = "example.org", std::uint32_t shard = 0,
                    std::uint32_t shards = 1);
  // FakeHost host({{"name", "value"}}) without the ambiguity of std::map's iterator-pair
  // constructor.
  FakeHost(std::initializer_list<Options::value_type> options, std::string host = "example.org",
           std::uint32_t shard = 0, std::uint32_t shards = 1)
      : FakeHost(Options(options), std::move(host), shard, shards) {}
  ~FakeHost();  // unloads every plugin, last loaded first
  FakeHost(const FakeHost&) = delete;
  FakeHost& operator=(const FakeHost&) = delete;

  // Loads a shared-library style plugin from its descriptor (e.g. stanzad_plugin_v1() linked in).
  // Options it declares get their default unless set. @return false (and *error) if refused.
  bool load_cxx(const sz_plugin* plugin, std::string* error = nullptr);
  // Loads lua/mod_<name>.lua-style plugin file `path` as `name`.
  bool load_lua(const std::string& name, const std::string& path, std::string* error = nullptr);
  // Unloads by name (handlers removed, timers cancelled, then the plugin's unload).
  bool unload(const std::string& name);
  bool loaded(const std::string& name) const;

  // Fires `event` with the stanza parsed from `stanza_xml` (none if empty). `from`/`to` default
  // to the stanza's attributes. Throws std::invalid_argument on malformed XML or JIDs.
  FireResult fire(const std::string& event, const std::string& stanza_xml = {},
                  const std::string& from = {}, const std::string& to = {},
                  const std::string& session_jid = {});

  // Every stanza sent (api->send) or replied (event_reply), serialized, in order.
  const std::vector<std::string>& sent() const { return sent_xml_; }
  const std::vector<xml::Element>& sent_elements() const { return sent_; }
  // Only the replies (event_reply), serialized.
  const std::vector<std::string>& replies() const { return replies_; }
  void clear_sent();

  const std::vector<LogLine>& logs() const { return logs_; }
  // Whether some log line contains `needle` (at `level` or above).
  bool logged(std::string_view needle, sz_log_level level = SZ_LOG_DEBUG) const;

  // Moves the fake clock on, firing due timers in order (a timer added by a callback fires in
  // the same advance if it falls due).
  void advance(std::uint64_t ms);
  std::size_t pending_timers() const { return timers_.size(); }
  std::uint64_t now_ms() const { return now_; }

  // The in-memory key-value store; fail_storage(true) makes kv_get/kv_set report errors.
  std::optional<std::string> kv(const std::string& user, const std::string& store,
                                const std::string& key) const;
  void set_kv(const std::string& user, const std::string& store, const std::string& key,
              const std::string& value);
  void fail_storage(bool fail) { fail_storage_ = fail; }

  // Accounts (user_exists), bound sessions (account_sessions, session_set; every account is
  // owned by this shard), offline queues, and what event_session_write wrote.
  void add_user(const std::string& bare_jid) { users_.insert(bare_jid); }
  void remove_user(const std::string& bare_jid) { users_.erase(bare_jid); }
  // Binds a resource; `presence_xml` (when given) makes it available with that presence.
  void add_session(const std::string& full_jid, const std::string& presence_xml = {},
                   int priority = 0);
  void remove_session(const std::string& full_jid);
  std::optional<std::string> session_property(const std::string& full_jid,
                                              const std::string& key) const;
  std::vector<std::string>& offline(const std::string& bare_jid) { return offline_[bare_jid]; }
  // How many of those came through offline_push_async (1.5).
  std::size_t offline_async_pushes() const { return offline_async_pushes_; }
  // Stanzas written to the event's session (event_session_write), serialized.
  const std::vector<std::string>& written() const { return written_; }
  // Tasks posted (post) run when run_posted() or advance() is called, in order; so do
  // kv_set_async's writes (the store changes then) and their completions.
  std::size_t run_posted();

  void set_option(const std::string& name, const std::string& value) { options_[name] = value; }
  // Option names plugins asked for through get_option.
  const std::set<std::string>& requested_options() const { return requested_; }

  // Features and identities ("category/type/name") declared by loaded plugins.
  std::vector<std::string> features() const;
  // Stream features declared (add_stream_feature), as "pre:<xml>" or "post:<xml>".
  std::vector<std::string> stream_features() const;
  std::vector<std::string> identities() const;
  void add_local_host(const std::string& domain) { local_hosts_.insert(domain); }

  const std::string& host_name() const { return host_; }
  plugin::HookRegistry& hooks() { return hooks_; }
  const sz_host_api& api() const { return api_; }

 private:
  struct Instance;
  struct Timer {
    std::uint64_t due = 0;
    std::uint64_t owner = 0;
    sz_timer_fn fn = nullptr;
    void* user = nullptr;
  };
  struct Feature {
    std::uint64_t owner = 0;
    std::string value;
  };

  static Instance* instance(sz_host* h) { return reinterpret_cast<Instance*>(h); }
  static FakeHost* fake(sz_host* h);
  Instance& add_instance(const std::string& name);
  void drop(Instance& inst);
  void record_sent(sz_stanza* s, bool reply);
  void fill_api();

  std::string host_;
  std::uint32_t shard_, shards_;
  Options options_;
  std::set<std::string> requested_;
  std::set<std::string> local_hosts_;
  sz_host_api api_{};
  plugin::HookRegistry hooks_;
  std::vector<std::unique_ptr<Instance>> instances_;
  std::uint64_t next_owner_ = 0;
  std::vector<Feature> features_, identities_, stream_features_;
  std::vector<xml::Element> sent_;
  std::vector<std::string> sent_xml_, replies_;
  std::vector<LogLine> logs_;
  std::map<std::uint64_t, Timer> timers_;
  std::uint64_t next_timer_ = 0;
  std::uint64_t now_ = 0;
  std::map<std::tuple<std::string, std::string, std::string>, std::string> kv_;
  bool fail_storage_ = false;
  struct FakeSession {
    std::string jid;
    bool available = false;
    int priority = 0;
    std::optional<xml::Element> presence;
    std::vector<std::pair<std::string, std::string>> properties;
  };
  struct Posted {
    std::string plugin;
    sz_task_fn fn = nullptr;
    void* user = nullptr;
  };
  struct AsyncWrite {  // kv_set_async: applied by run_posted()
    std::tuple<std::string, std::string, std::string> key;
    std::optional<std::string> value;
    sz_done_fn done = nullptr;
    void* user = nullptr;
    FakeHost* fake = nullptr;
  };
  std::set<std::string> users_;
  std::map<std::string, std::vector<FakeSession>> sessions_;  // by bare JID
  std::map<std::string, std::vector<std::string>> offline_;
  std::size_t offline_async_pushes_ = 0;
  std::vector<std::string> written_;
  std::vector<Posted> posted_;
};

}  // namespace stanzad::testing
