// The server: shards, listeners, TLS, accounts and the router, wired from a Config.
#pragma once

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "config/config.hpp"
#include "net/shard.hpp"
#include "net/worker_pool.hpp"
#include "plugin/plugin_manager.hpp"
#include "storage/storage.hpp"
#include "xmpp/router.hpp"

namespace stanzad::xmpp {

class C2SSession;

class Server {
 public:
  explicit Server(config::Config config);
  ~Server();

  // The control socket stanzactl uses to manage a running server.
  static std::filesystem::path control_socket(const config::Config& config) {
    return config.data_dir / "control.sock";
  }

  // Opens listeners and runs until SIGINT/SIGTERM. Throws on start-up failure.
  void run();
  // Graceful stop: sessions get `system-shutdown`, pending writes are flushed.
  void shutdown();

  const config::Config& config() const { return config_; }
  net::ShardSet& shards() { return shards_; }
  Router& router() { return router_; }
  plugin::Pipeline& pipeline() { return pipeline_; }
  plugin::PluginManager& plugins() { return *plugins_; }
  storage::Storage& accounts() { return *accounts_; }
  storage::Storage& storage() { return *accounts_; }
  net::WorkerPool& workers() { return workers_; }
  boost::asio::ssl::context& tls() { return *tls_; }
  std::uint64_t next_session_id() { return ++session_ids_; }

  // XEP-0198: sessions that can be resumed, by stream id. Any shard may look one up.
  struct Resumable {
    net::Shard* shard = nullptr;
    std::weak_ptr<C2SSession> session;
    std::string bare;  // the account, so nobody resumes another's session
  };
  void remember_resumable(const std::string& id, Resumable r);
  std::optional<Resumable> find_resumable(const std::string& id);
  // Forgets `id` if it still names the session `session_id`.
  void forget_resumable(const std::string& id, std::uint64_t session_id);

  // Abuse limits by client address (any shard; a mutex, taken per connection or login, never
  // per stanza). admit() counts a connection in if its address is under the limit.
  bool admit_connection(const std::string& ip);
  void release_connection(const std::string& ip);
  bool login_allowed(const std::string& ip);
  void login_failed(const std::string& ip);

  // Session registry of the current shard (for shutdown and statistics).
  void session_opened(const std::shared_ptr<C2SSession>& s);
  void session_closed(std::uint64_t id);

 private:
  struct Listener {
    std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor;
    net::Shard* shard;
    bool direct_tls;
  };
  struct PerShard {
    std::unordered_map<std::uint64_t, std::weak_ptr<C2SSession>> sessions;
  };

  void open_listeners();
  void start_control();
  void do_control_accept();
  std::string control_command(const std::string& line);
  void account_changed(const Jid& bare, bool created, bool wait);
  void reload_config();
  void fire_everywhere(std::string_view event);
  void drain_then_stop(unsigned rounds);
  void do_accept(Listener& l);
  void raise_fd_limit();

  config::Config config_;
  net::ShardSet shards_;
  Router router_;
  plugin::Pipeline pipeline_;
  std::unique_ptr<plugin::PluginManager> plugins_;
  std::unique_ptr<storage::Storage> accounts_;
  std::unique_ptr<plugin::PluginStorage> kv_;
  net::WorkerPool workers_;
  std::shared_ptr<boost::asio::ssl::context> tls_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<PerShard> per_shard_;
  std::atomic<std::uint64_t> session_ids_{0};
  std::atomic<bool> stopping_{false};
  std::mutex resumable_mutex_;  // rare: enable, resume, close
  std::mutex ip_mutex_;
  std::unordered_map<std::string, std::uint32_t> connections_by_ip_;
  struct Failures {
    std::uint32_t count = 0;
    std::chrono::steady_clock::time_point since;
  };
  std::unordered_map<std::string, Failures> failures_by_ip_;
  std::unordered_map<std::string, std::pair<std::uint64_t, Resumable>> resumable_;
  // The control thread: signals (SIGHUP reloads, SIGTERM stops) and the control socket
  // stanzactl talks to. Never a shard: plugin loads wait for the shards from here.
  boost::asio::io_context control_ctx_{1};
  std::unique_ptr<boost::asio::local::stream_protocol::acceptor> control_acceptor_;
  std::thread control_thread_;
};

}  // namespace stanzad::xmpp
