// The server: shards, listeners, TLS, accounts and the router, wired from a Config.
#pragma once

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <unordered_map>
#include <vector>

#include "config/config.hpp"
#include "net/shard.hpp"
#include "net/worker_pool.hpp"
#include "storage/account_store.hpp"
#include "xmpp/router.hpp"

namespace stanzad::xmpp {

class C2SSession;

class Server {
 public:
  explicit Server(config::Config config);
  ~Server();

  // Opens listeners and runs until SIGINT/SIGTERM. Throws on start-up failure.
  void run();
  // Graceful stop: sessions get `system-shutdown`, pending writes are flushed.
  void shutdown();

  const config::Config& config() const { return config_; }
  net::ShardSet& shards() { return shards_; }
  Router& router() { return router_; }
  storage::AccountStore& accounts() { return *accounts_; }
  net::WorkerPool& workers() { return workers_; }
  boost::asio::ssl::context& tls() { return *tls_; }
  std::uint64_t next_session_id() { return ++session_ids_; }

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
  void do_accept(Listener& l);
  void raise_fd_limit();

  config::Config config_;
  net::ShardSet shards_;
  Router router_;
  std::unique_ptr<storage::AccountStore> accounts_;
  net::WorkerPool workers_;
  std::shared_ptr<boost::asio::ssl::context> tls_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<PerShard> per_shard_;
  std::atomic<std::uint64_t> session_ids_{0};
  std::atomic<bool> stopping_{false};
};

}  // namespace stanzad::xmpp
