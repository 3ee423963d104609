// The server: shards, listeners, TLS, accounts and the router, wired from a Config.
#include "xmpp/server.hpp"

#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <latch>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "net/tls.hpp"
#include "xmpp/c2s_session.hpp"

namespace stanzad::xmpp {

namespace asio = boost::asio;
using reuse_port = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

namespace {

unsigned shard_count(const config::Config& c) {
  if (c.shards != 0) return c.shards;
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}

net::CertificatePaths certificate_paths(const config::Config& c) {
  if (c.certificate.empty()) return net::ensure_self_signed(c.data_dir, c.hosts);
  return {c.certificate, c.private_key};
}

// Plugins' per-user documents (the C ABI's kv_get/kv_set) in the storage's document store.
class StorageKeyValue : public plugin::PluginStorage {
 public:
  using Notify = std::function<void(const Jid& bare, bool created)>;
  StorageKeyValue(storage::Storage& storage, std::uint32_t iterations, Notify notify)
      : storage_(storage), iterations_(iterations), notify_(std::move(notify)) {}

  int create(std::string_view bare_jid, std::string_view password) override {
    auto jid = account(bare_jid);
    if (storage_.create(jid.domain(), jid.node(), password, iterations_) ==
        storage::Storage::Result::exists)
      return 0;
    notify_(jid, true);
    return 1;
  }
  int remove(std::string_view bare_jid) override {
    auto jid = account(bare_jid);
    if (storage_.remove(jid.domain(), jid.node()) == storage::Storage::Result::not_found) return 0;
    notify_(jid, false);
    return 1;
  }
  int set_password(std::string_view bare_jid, std::string_view password) override {
    auto jid = account(bare_jid);
    return storage_.set_password(jid.domain(), jid.node(), password, iterations_) ==
                   storage::Storage::Result::not_found
               ? 0
               : 1;
  }

  std::optional<std::string> get(std::string_view user_jid, std::string_view store,
                                 std::string_view key) override {
    auto jid = account(user_jid);
    return storage_.get(jid.domain(), jid.node(), store, key);
  }
  void set(std::string_view user_jid, std::string_view store, std::string_view key,
           std::optional<std::string_view> value) override {
    auto jid = account(user_jid);
    if (value) {
      storage_.put(jid.domain(), jid.node(), store, key, *value);
    } else {
      storage_.erase(jid.domain(), jid.node(), store, key);
    }
  }
  void set_async(std::string_view user_jid, std::string_view store, std::string_view key,
                 std::optional<std::string_view> value,
                 std::function<void(bool ok)> done) override {
    auto jid = account(user_jid);
    storage::Completion completion = [done = std::move(done)](storage::WriteResult r) {
      if (done) done(r.ok());
    };
    if (value) {
      storage_.put_async(jid.domain(), jid.node(), store, key, *value, std::move(completion));
    } else {
      storage_.erase_async(jid.domain(), jid.node(), store, key, std::move(completion));
    }
  }
  std::vector<std::string> keys(std::string_view user_jid, std::string_view store) override {
    auto jid = account(user_jid);
    std::vector<std::string> out;
    for (auto& [key, value] : storage_.items(jid.domain(), jid.node(), store))
      out.push_back(std::move(key));
    return out;
  }
  bool exists(std::string_view user_jid) override {
    auto jid = account(user_jid);
    return storage_.exists(jid.domain(), jid.node());
  }
  std::size_t offline_push(std::string_view user_jid, std::string_view stanza) override {
    auto jid = account(user_jid);
    storage_.offline_push(jid.domain(), jid.node(), stanza);
    return storage_.offline_count(jid.domain(), jid.node());
  }
  void offline_push_async(std::string_view user_jid, std::string_view stanza,
                          std::function<void(bool ok)> done) override {
    auto jid = account(user_jid);
    storage_.offline_push_async(jid.domain(), jid.node(), stanza,
                                [done = std::move(done)](storage::WriteResult r) { done(r.ok()); });
  }
  std::vector<std::pair<std::int64_t, std::string>> offline_peek(
      std::string_view user_jid) override {
    auto jid = account(user_jid);
    std::vector<std::pair<std::int64_t, std::string>> out;
    for (auto& m : storage_.offline_peek_queued(jid.domain(), jid.node()))
      out.emplace_back(m.id, std::move(m.stanza));
    return out;
  }
  void offline_delete_upto_async(std::string_view user_jid, std::int64_t id) override {
    auto jid = account(user_jid);
    storage_.offline_delete_upto_async(jid.domain(), jid.node(), id, [](storage::WriteResult r) {
      if (!r.ok()) spdlog::warn("offline queue not trimmed after delivery: it comes again");
    });
  }
  std::size_t offline_count(std::string_view user_jid) override {
    auto jid = account(user_jid);
    return storage_.offline_count(jid.domain(), jid.node());
  }
  std::vector<std::string> offline_take(std::string_view user_jid) override {
    auto jid = account(user_jid);
    std::vector<std::string> out;
    for (auto& m : storage_.offline_pop_all(jid.domain(), jid.node()))
      out.push_back(std::move(m.stanza));
    return out;
  }

 private:
  static Jid account(std::string_view user_jid) {
    auto jid = Jid::parse(user_jid);
    if (!jid || jid->node().empty()) throw std::invalid_argument("not an account JID");
    return jid->bare();
  }
  storage::Storage& storage_;
  std::uint32_t iterations_;
  Notify notify_;
};

}  // namespace

Server::Server(config::Config config)
    : config_(std::move(config)),
      shards_(shard_count(config_)),
      router_(shards_, config_.hosts, config_.limits.sessions_per_account),
      pipeline_(shards_.size()),
      accounts_(storage::open(config_)),
      workers_(2),
      tls_(net::make_server_context(certificate_paths(config_), config_.tls_native_records)),
      per_shard_(shards_.size()) {
  router_.set_pipeline(&pipeline_);
  plugins_ = std::make_unique<plugin::PluginManager>(shards_, pipeline_, router_, config_);
  kv_ = std::make_unique<StorageKeyValue>(
      *accounts_, config_.limits.scram_iterations,
      [this](const Jid& jid, bool created) { account_changed(jid, created, false); });
  plugins_->set_storage(kv_.get());
  spdlog::info("storage open {} schema={}", accounts_->describe(), accounts_->schema_version());
}

Server::~Server() {
  shards_.stop();
  shards_.join();
  plugins_.reset();
  shards_.join();
  workers_.stop();
}

void Server::raise_fd_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  // A few descriptors go to listeners, the database, logs and the event loops.
  const auto reserve = 32 + 4 * shards_.size();
  const auto sessions = lim.rlim_cur > reserve ? lim.rlim_cur - reserve : 0;
  spdlog::info("stanzad file descriptor limit={} can hold about {} sessions",
               static_cast<unsigned long long>(lim.rlim_cur),
               static_cast<unsigned long long>(sessions));
}

void Server::open_listeners() {
  for (const auto& lc : config_.listeners) {
    boost::system::error_code ec;
    auto address = asio::ip::make_address(lc.address, ec);
    if (ec) throw std::runtime_error("cannot listen on '" + lc.address + "': not an IP address");
    asio::ip::tcp::endpoint endpoint(address, lc.port);
    const bool direct_tls = lc.kind == config::ListenerKind::c2s_direct_tls;
    // SO_REUSEPORT would let this process join another's listening port and split its
    // connections with it (a second stanzad started by mistake): make sure it is free first.
    {
      asio::ip::tcp::acceptor probe(shards_.at(0).context());
      probe.open(endpoint.protocol(), ec);
      if (!ec) probe.set_option(asio::socket_base::reuse_address(true), ec);
      if (!ec) probe.bind(endpoint, ec);
      if (ec)
        throw std::runtime_error("cannot listen on " + lc.address + ":" + std::to_string(lc.port) +
                                 ": " + ec.message());
    }
    // One acceptor per shard on the same port: the kernel spreads connections (SO_REUSEPORT)
    // and each shard accepts its own, with no hand-off between threads.
    for (unsigned i = 0; i < shards_.size(); ++i) {
      auto l = std::make_unique<Listener>();
      l->shard = &shards_.at(i);
      l->direct_tls = direct_tls;
      l->acceptor = std::make_unique<asio::ip::tcp::acceptor>(l->shard->context());
      auto& a = *l->acceptor;
      a.open(endpoint.protocol(), ec);
      if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
      if (!ec) a.set_option(reuse_port(true), ec);
      if (!ec) a.bind(endpoint, ec);
      if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
      if (ec)
        throw std::runtime_error("cannot listen on " + lc.address + ":" + std::to_string(lc.port) +
                                 ": " + ec.message());
      listeners_.push_back(std::move(l));
    }
    spdlog::info("listener up kind={} address={} port={}", direct_tls ? "c2s-tls" : "c2s",
                 lc.address, lc.port);
  }
}

void Server::do_accept(Listener& l) {
  l.acceptor->async_accept([this, &l](const boost::system::error_code& ec,
                                      asio::ip::tcp::socket socket) {
    if (ec == asio::error::operation_aborted || stopping_) return;
    if (ec) {
      // Out of descriptors or a transient error: wait a little instead of spinning.
      spdlog::warn("listener accept failed error={}", ec.message());
      auto timer =
          std::make_shared<asio::steady_timer>(l.shard->context(), std::chrono::milliseconds(100));
      timer->async_wait([this, &l, timer](const boost::system::error_code&) { do_accept(l); });
      return;
    }
    auto session = std::make_shared<C2SSession>(*this, *l.shard, std::move(socket), l.direct_tls);
    session_opened(session);
    session->start();
    do_accept(l);
  });
}

bool Server::admit_connection(const std::string& ip) {
  std::lock_guard lock(ip_mutex_);
  auto& n = connections_by_ip_[ip];
  if (config_.limits.connections_per_ip != 0 && n >= config_.limits.connections_per_ip)
    return false;
  ++n;
  return true;
}

void Server::release_connection(const std::string& ip) {
  std::lock_guard lock(ip_mutex_);
  auto it = connections_by_ip_.find(ip);
  if (it != connections_by_ip_.end() && --it->second == 0) connections_by_ip_.erase(it);
}

bool Server::login_allowed(const std::string& ip) {
  if (config_.limits.auth_failures_per_ip == 0) return true;
  std::lock_guard lock(ip_mutex_);
  auto it = failures_by_ip_.find(ip);
  if (it == failures_by_ip_.end()) return true;
  if (std::chrono::steady_clock::now() - it->second.since >= config_.limits.auth_failure_window) {
    failures_by_ip_.erase(it);
    return true;
  }
  return it->second.count < config_.limits.auth_failures_per_ip;
}

void Server::login_failed(const std::string& ip) {
  std::lock_guard lock(ip_mutex_);
  auto now = std::chrono::steady_clock::now();
  auto& f = failures_by_ip_[ip];
  if (f.count == 0 || now - f.since >= config_.limits.auth_failure_window) f = {0, now};
  ++f.count;
  // Forgotten addresses are swept now and then, so the map stays as large as the attack.
  if (failures_by_ip_.size() > 100000) {
    std::erase_if(failures_by_ip_, [&](const auto& kv) {
      return now - kv.second.since >= config_.limits.auth_failure_window;
    });
  }
}

void Server::remember_resumable(const std::string& id, Resumable r) {
  auto s = r.session.lock();
  if (!s) return;
  std::lock_guard lock(resumable_mutex_);
  resumable_[id] = {s->id(), std::move(r)};
}

std::optional<Server::Resumable> Server::find_resumable(const std::string& id) {
  std::lock_guard lock(resumable_mutex_);
  auto it = resumable_.find(id);
  if (it == resumable_.end()) return std::nullopt;
  return it->second.second;
}

void Server::forget_resumable(const std::string& id, std::uint64_t session_id) {
  std::lock_guard lock(resumable_mutex_);
  auto it = resumable_.find(id);
  if (it != resumable_.end() && it->second.first == session_id) resumable_.erase(it);
}

void Server::session_opened(const std::shared_ptr<C2SSession>& s) {
  per_shard_[net::Shard::current()->index()].sessions.emplace(s->id(), s);
}

void Server::session_closed(std::uint64_t id) {
  per_shard_[net::Shard::current()->index()].sessions.erase(id);
}

void Server::fire_everywhere(std::string_view event) {
  std::latch done(shards_.size());
  for (unsigned i = 0; i < shards_.size(); ++i) {
    asio::post(shards_.at(i).context(), [this, event, &done] {
      plugin::Event ev;
      ev.name = event;
      for (const auto& host : config_.hosts) {
        ev.host = host;
        pipeline_.fire(ev);
      }
      done.count_down();
    });
  }
  done.wait();
}

void Server::run() {
  raise_fd_limit();
  open_listeners();  // bind first: a taken port is fatal before anything else starts
  shards_.start();
  // A plugin that cannot load is refused with its reason; the server serves without it.
  plugins_->load_all(config_.plugins);
  fire_everywhere("host/started");
  for (auto& l : listeners_)
    asio::post(l->shard->context(), [this, l = l.get()] { do_accept(*l); });

  for (const auto& host : config_.hosts) {
    if (accounts_->list(host).empty())
      spdlog::info(
          "host={} has no accounts yet: create one with 'stanzactl adduser you@{} PASSWORD'", host,
          host);
  }
  spdlog::info("stanzad started hosts={} shards={} data={}", fmt::join(config_.hosts, ","),
               shards_.size(), config_.data_dir.string());
  start_control();
  shards_.join();
  control_ctx_.stop();
  if (control_thread_.joinable()) control_thread_.join();
  std::error_code ignored;
  std::filesystem::remove(control_socket(config_), ignored);
  spdlog::info("stanzad stopped");
}

void Server::start_control() {
  auto signals = std::make_shared<asio::signal_set>(control_ctx_, SIGINT, SIGTERM, SIGHUP);
  auto wait = std::make_shared<std::function<void()>>();
  *wait = [this, signals, wait] {
    signals->async_wait([this, signals, wait](const boost::system::error_code& ec, int signo) {
      if (ec) return;
      if (signo == SIGHUP) {
        reload_config();
        (*wait)();
        return;
      }
      spdlog::info("stanzad received signal={} shutting down", signo);
      shutdown();
      *wait = nullptr;
    });
  };
  (*wait)();

  auto path = control_socket(config_);
  std::error_code stale;
  std::filesystem::remove(path, stale);
  boost::system::error_code ec;
  control_acceptor_ = std::make_unique<asio::local::stream_protocol::acceptor>(control_ctx_);
  asio::local::stream_protocol::endpoint endpoint(path.string());
  control_acceptor_->open(endpoint.protocol(), ec);
  if (!ec) control_acceptor_->bind(endpoint, ec);
  if (!ec) control_acceptor_->listen(8, ec);
  if (ec) {
    spdlog::warn("control socket unavailable path={} error={}", path.string(), ec.message());
  } else {
    ::chmod(path.c_str(), 0600);  // the data directory's owner only, as the database
    do_control_accept();
  }
  control_thread_ = std::thread([this] { control_ctx_.run(); });
}

void Server::do_control_accept() {
  control_acceptor_->async_accept([this](const boost::system::error_code& ec,
                                         asio::local::stream_protocol::socket socket) {
    if (ec) return;
    auto sock = std::make_shared<asio::local::stream_protocol::socket>(std::move(socket));
    auto buf = std::make_shared<asio::streambuf>(4096);
    asio::async_read_until(
        *sock, *buf, '\n', [this, sock, buf](const boost::system::error_code& ec, std::size_t n) {
          if (ec) return;
          std::string line(asio::buffers_begin(buf->data()),
                           asio::buffers_begin(buf->data()) + static_cast<long>(n) - 1);
          auto reply = std::make_shared<std::string>(control_command(line));
          asio::async_write(*sock, asio::buffer(*reply),
                            [sock, reply](const boost::system::error_code&, std::size_t) {});
        });
    do_control_accept();
  });
}

// Plugins hear user/created or user/deleted on the account's owner shard, and a deleted
// account's sessions end. `wait`: until the handlers ran (never from a shard thread).
void Server::account_changed(const Jid& bare, bool created, bool wait) {
  auto fire = [this, bare, created] {
    plugin::Event ev;
    ev.name = created ? "user/created" : "user/deleted";
    ev.from = &bare;
    ev.to = &bare;
    ev.host = bare.domain();
    pipeline_.fire(ev);
  };
  if (wait) {
    std::latch done(1);
    shards_.owner_of(bare.bare_str()).run([&] {
      fire();
      done.count_down();
    });
    done.wait();
  } else {
    boost::asio::post(shards_.owner_of(bare.bare_str()).context(), fire);
  }
  if (!created) router_.close_account(bare, "not-authorized", "account deleted");
}

// One request per connection: "plugin list", "plugin load|unload|reload NAME [HOST]",
// "reload" (as SIGHUP). The answer's last line is "ok" or "error: why".
std::string Server::control_command(const std::string& line) {
  std::vector<std::string> words;
  std::istringstream in(line);
  for (std::string w; in >> w;) words.push_back(w);
  auto error = [](const std::string& why) { return "error: " + why + "\n"; };
  if (words.empty()) return error("empty command");
  if (words[0] == "reload" && words.size() == 1) {
    reload_config();
    return "ok\n";
  }
  if (words[0] == "user" && words.size() == 3 && (words[1] == "created" || words[1] == "deleted")) {
    // stanzactl tells a running server what it did to an account: plugins hear user/created
    // or user/deleted on the account's owner shard, and a deleted account's sessions end.
    auto jid = Jid::parse(words[2]);
    if (!jid || jid->node().empty() || !jid->is_bare() || !router_.is_local_host(jid->domain()))
      return error("'" + words[2] + "' is not a local account");
    account_changed(*jid, words[1] == "created", true);
    return "ok\n";
  }
  if (words[0] != "plugin" || words.size() < 2) return error("unknown command '" + line + "'");
  const std::string& verb = words[1];
  if (verb == "list" && words.size() == 2) {
    std::string out;
    for (const auto& p : plugins_->list())
      out += p.name + " " + (p.host.empty() ? "*" : p.host) + " " + p.kind + " " + p.version + " " +
             p.file + "\n";
    return out + "ok\n";
  }
  if (words.size() < 3 || words.size() > 4)
    return error("usage: plugin load|unload|reload NAME [HOST]");
  std::string name = words[2], host = words.size() == 4 ? words[3] : "";
  std::string result;
  if (verb == "load") {
    config::PluginSpec spec;
    spec.name = name;
    spec.host = host;
    for (const auto& s : config_.plugins)
      if (s.name == name && s.host == host) spec = s;  // with its configured options
    result = plugins_->load(spec);
  } else if (verb == "unload") {
    result = plugins_->unload(name, host);
  } else if (verb == "reload") {
    result = plugins_->reload(name, host);
  } else {
    return error("unknown plugin command '" + verb + "'");
  }
  return result.empty() ? "ok\n" : error(result);
}

void Server::reload_config() {
  // SIGHUP: re-read the configuration; plugins follow it (loaded, unloaded, reloaded when
  // their options changed). Listeners, hosts and storage need a restart.
  config::Config fresh;
  try {
    fresh = config::load(config_.source);
  } catch (const std::exception& e) {
    spdlog::error("config reload refused: {}", e.what());
    return;
  }
  auto errors = plugins_->apply(fresh);
  config_.plugins = fresh.plugins;
  fire_everywhere("config/reloaded");
  spdlog::info("config reloaded file={} plugin_errors={}", config_.source.string(), errors.size());
}

void Server::shutdown() {
  if (stopping_.exchange(true)) return;
  // Shards become quiet one by one; the last one starts the drain that stops them all.
  auto closing = std::make_shared<std::atomic<unsigned>>(shards_.size());
  for (unsigned i = 0; i < shards_.size(); ++i) {
    net::Shard& shard = shards_.at(i);
    asio::post(shard.context(), [this, &shard, closing] {
      for (auto& l : listeners_) {
        if (l->shard != &shard) continue;
        boost::system::error_code ignored;
        l->acceptor->close(ignored);
      }
      // Closing a session (a hibernating one too) routes what its client never acknowledged
      // again (XEP-0198): to the owner's shard, which keeps it in the offline store.
      auto& sessions = per_shard_[shard.index()].sessions;
      std::vector<std::shared_ptr<C2SSession>> live;
      for (auto& [id, weak] : sessions)
        if (auto s = weak.lock()) live.push_back(std::move(s));
      for (auto& s : live) s->close_with_stream_error("system-shutdown", "the server is stopping");
      // Give pending writes a moment to reach clients; the shard keeps running for the others.
      auto timer = std::make_shared<asio::steady_timer>(shard.context());
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
      auto poll = std::make_shared<std::function<void()>>();
      *poll = [this, &shard, timer, deadline, poll, closing] {
        if (per_shard_[shard.index()].sessions.empty() ||
            std::chrono::steady_clock::now() >= deadline) {
          Server* server = this;  // resetting *poll destroys this lambda and its captures
          bool last = --*closing == 0;
          *poll = nullptr;  // break the cycle
          if (last) server->drain_then_stop(4);
          return;
        }
        timer->expires_after(std::chrono::milliseconds(20));
        timer->async_wait([poll](const boost::system::error_code&) {
          if (*poll) (*poll)();
        });
      };
      (*poll)();
    });
  }
}

// Every session is gone, but what their leaving posted may still be queued: messages on their
// way to an owner's shard and its offline store, errors on their way back. A round posts a
// marker to every shard and completes when all have run theirs, so everything posted before
// it has run too; work that this posts again is caught by the next round (one hop per round:
// session, owner, sender's owner), and then the shards stop.
void Server::drain_then_stop(unsigned rounds) {
  auto left = std::make_shared<std::atomic<unsigned>>(shards_.size());
  for (unsigned i = 0; i < shards_.size(); ++i)
    asio::post(shards_.at(i).context(), [this, left, rounds] {
      if (--*left != 0) return;
      if (rounds > 1)
        drain_then_stop(rounds - 1);
      else
        shards_.stop();
    });
}

}  // namespace stanzad::xmpp
