// stanzad-bench: a load generator for XMPP servers (stanzad, Prosody, ejabberd…).
//
// Scenarios: idle (C authenticated sessions, server RSS per session), login (logins/s at
// concurrency K), flood (P sender/receiver pairs with a window of W unacknowledged
// messages), rate (a fixed total message rate, latency percentiles, optionally with C idle
// sessions). Every run is bounded in time, reports the server's and the generator's CPU, and
// prints one line "RESULT scenario=... key=value ..." on standard output.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <future>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

#include "client.hpp"
#include "proc_stats.hpp"

namespace stanzad::bench {

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string scenario;
  std::string host = "127.0.0.1";
  int port = 5223;
  std::string domain = "localhost";
  std::string user_pattern = "user%d";
  std::string password = "password";
  int first_user = 1;
  std::string tls = "direct";
  std::string mechanism = "SCRAM-SHA-1";
  int threads = 2;
  pid_t server_pid = 0;
  std::string server_name;
  int sources = 8;
  std::string source_base = "127.0.0.2";
  double time_limit = 900;
  int connect_concurrency = 100;

  int sessions = 1000;           // idle
  double hold = 2;               // idle: seconds to hold the sessions before measuring RSS
  bool hold_until_eof = false;   // idle: hold until stdin closes (rate's idle child process)
  int concurrency = 50;          // login
  int users = 0;                 // login: pool of accounts (default: concurrency)
  double duration = 10;          // login, flood, rate
  int pairs = 100;               // flood, rate
  int window = 10;               // flood
  double rate = 2000;            // rate
  int idle = 0;                  // rate: extra idle sessions
  double settle = 0;             // rate: seconds to wait after connecting, before sending
  bool idle_in_process = false;  // rate: hold the idle sessions in this process, not a child
  std::string latency_log;       // flood, rate: file for one line per message (sent at, latency)
};

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

std::string format_user(const std::string& pattern, int n) {
  std::string out;
  std::size_t pos = pattern.find("%d");
  if (pos == std::string::npos) return pattern + std::to_string(n);
  out = pattern.substr(0, pos) + std::to_string(n) + pattern.substr(pos + 2);
  return out;
}

void raise_fd_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

// The idle sessions of `rate --idle C`, held by a child process (this program's `idle`
// scenario), so that the process timing the messages stays small. On this VM a kernel thread
// (DAMON's physical-memory monitor, kdamond) samples pages every ~0.5 s and stalls, for ~10-25
// ms, the process whose pages it samples, about in proportion to its memory: 10,000 idle
// TLS clients make the generator 800 MB, and most of the tail it measured was its own.
class IdleProcess {
 public:
  ~IdleProcess() { stop(); }

  // Starts the child and waits until its sessions are connected; false (and why on stderr)
  // if it could not start, or not every session connected.
  bool start(const Options& o, int first, int count) {
    int to_child[2], from_child[2];
    if (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(from_child, O_CLOEXEC) != 0) {
      std::perror("pipe");
      return false;
    }
    std::vector<std::string> args = {"stanzad-bench",
                                     "idle",
                                     "--hold-until-eof",
                                     "--sessions",
                                     std::to_string(count),
                                     "--first",
                                     std::to_string(first),
                                     "--host",
                                     o.host,
                                     "--port",
                                     std::to_string(o.port),
                                     "--domain",
                                     o.domain,
                                     "--user",
                                     o.user_pattern,
                                     "--password",
                                     o.password,
                                     "--tls",
                                     o.tls,
                                     "--mech",
                                     o.mechanism,
                                     "--threads",
                                     std::to_string(o.threads),
                                     "--sources",
                                     std::to_string(o.sources),
                                     "--source-base",
                                     o.source_base,
                                     "--connect-concurrency",
                                     std::to_string(o.connect_concurrency),
                                     "--time-limit",
                                     std::to_string(o.time_limit)};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, to_child[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, from_child[1], STDOUT_FILENO);
    int rc = ::posix_spawn(&pid_, "/proc/self/exe", &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(to_child[0]);
    ::close(from_child[1]);
    to_child_ = to_child[1];
    if (rc != 0) {
      std::fprintf(stderr, "cannot start the idle sessions' process: %s\n", std::strerror(rc));
      pid_ = 0;
      ::close(from_child[0]);
      return false;
    }
    // "READY <connected> <failed>", or EOF if the child gave up.
    std::string line;
    auto deadline = Clock::now() + std::chrono::duration<double>(o.time_limit);
    while (line.find('\n') == std::string::npos && Clock::now() < deadline) {
      pollfd p{from_child[0], POLLIN, 0};
      if (::poll(&p, 1, 1000) <= 0) continue;
      char buf[128];
      ssize_t n = ::read(from_child[0], buf, sizeof buf);
      if (n <= 0) break;
      line.append(buf, static_cast<std::size_t>(n));
    }
    ::close(from_child[0]);
    unsigned long ready = 0, failed = 0;
    if (std::sscanf(line.c_str(), "READY %lu %lu", &ready, &failed) != 2 ||
        ready != static_cast<unsigned long>(count)) {
      std::fprintf(stderr, "the idle sessions' process connected %lu of %d sessions\n", ready,
                   count);
      return false;
    }
    return true;
  }

  // Closes the child's stdin: it ends its streams and exits (killed if it takes over 30 s).
  void stop() {
    if (to_child_ >= 0) ::close(to_child_), to_child_ = -1;
    if (pid_ <= 0) return;
    for (int i = 0; i < 300; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = 0;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = 0;
  }

  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = 0;
  int to_child_ = -1;
};

// One io_context per thread, each run by its own thread until stop().
class Threads {
 public:
  explicit Threads(int n) {
    for (int i = 0; i < n; ++i) {
      ios_.push_back(std::make_unique<asio::io_context>(1));
      guards_.emplace_back(ios_.back()->get_executor());
    }
    for (auto& io : ios_) threads_.emplace_back([&io] { io->run(); });
  }
  ~Threads() { stop(); }
  std::size_t size() const { return ios_.size(); }
  asio::io_context& at(std::size_t i) { return *ios_[i % ios_.size()]; }
  // Runs f on thread i and waits for it.
  template <class F>
  void run_on(std::size_t i, F f) {
    std::promise<void> done;
    asio::post(at(i), [&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }
  template <class F>
  void run_on_all(F f) {
    for (std::size_t i = 0; i < size(); ++i) run_on(i, [&] { f(i); });
  }
  void stop() {
    for (auto& g : guards_) g.reset();
    for (auto& io : ios_) io->stop();
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }

 private:
  std::vector<std::unique_ptr<asio::io_context>> ios_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards_;
  std::vector<std::thread> threads_;
};

// Key=value pairs for the RESULT line, printed in insertion order.
class Result {
 public:
  explicit Result(std::string scenario) { add("scenario", scenario); }
  void add(const std::string& key, const std::string& value) {
    line_ += (line_.empty() ? "" : " ") + key + "=" + value;
  }
  void add(const std::string& key, double value, int precision = 3) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", precision, value);
    add(key, std::string(buf));
  }
  void add(const std::string& key, std::int64_t value) { add(key, std::to_string(value)); }
  void add(const std::string& key, int value) { add(key, std::to_string(value)); }
  void add(const std::string& key, std::size_t value) { add(key, std::to_string(value)); }
  void print() const { std::printf("RESULT %s\n", line_.c_str()), std::fflush(stdout); }

 private:
  std::string line_;
};

class Bench {
 public:
  explicit Bench(const Options& o) : o_(o), tls_(make_client_tls_context()), threads_(o.threads) {
    boost::system::error_code ec;
    auto address = asio::ip::make_address(o.host, ec);
    if (ec) throw std::runtime_error("--host must be an IP address: " + o.host);
    settings_.server = asio::ip::tcp::endpoint(address, static_cast<unsigned short>(o.port));
    settings_.domain = o.domain;
    settings_.password = o.password;
    settings_.direct_tls = o.tls == "direct";
    settings_.mechanism = *parse_mechanism(o.mechanism);
    if (address.is_loopback() && address.is_v4() && o.sources > 0) {
      auto base = asio::ip::make_address_v4(o.source_base).to_uint();
      for (int i = 0; i < o.sources; ++i) sources_.push_back(asio::ip::address_v4(base + i));
    } else {
      sources_.push_back(asio::ip::address());
    }
  }

  int run() {
    if (o_.scenario == "idle") return idle();
    if (o_.scenario == "login") return login();
    if (o_.scenario == "flood") return flood();
    if (o_.scenario == "rate") return rate();
    return 2;
  }

 private:
  std::shared_ptr<Client> make_client(std::size_t thread, int user_number,
                                      std::string resource = {}) {
    auto source = sources_[next_source_++ % sources_.size()];
    return std::make_shared<Client>(threads_.at(thread), tls_, settings_,
                                    format_user(o_.user_pattern, user_number), source,
                                    std::move(resource));
  }

  void report_failure(const Client& c, std::string_view why) {
    if (failures_logged_.fetch_add(1) < 5)
      std::fprintf(stderr, "client %s: %.*s\n", c.user().c_str(), static_cast<int>(why.size()),
                   why.data());
  }

  void common(Result& r, const CpuMeter& cpu) {
    r.add("server", o_.server_name.empty() ? std::string("unknown") : o_.server_name);
    r.add("threads", o_.threads);
    r.add("tls", o_.tls);
    r.add("wall_s", cpu.wall_seconds());
    if (cpu.server_seconds() >= 0)
      r.add("server_cpu_cores", cpu.server_seconds() / cpu.wall_seconds());
    r.add("gen_cpu_cores", cpu.generator_seconds() / cpu.wall_seconds());
  }

  bool over_time() const {
    return std::chrono::duration<double>(Clock::now() - started_).count() > o_.time_limit;
  }

  // Connects `count` sessions for users first, first+1, … with at most connect_concurrency
  // negotiating at once; clients[i] holds session i. Returns how many became ready.
  std::size_t connect_sessions(std::vector<std::shared_ptr<Client>>& clients, int first,
                               std::size_t count, std::atomic<std::size_t>& failed,
                               std::function<std::size_t(std::size_t)> thread_of) {
    clients.resize(count);
    std::atomic<std::size_t> ready{0};
    failed = 0;
    std::size_t threads = threads_.size();
    std::vector<std::vector<std::size_t>> todo(threads);
    for (std::size_t i = 0; i < count; ++i) todo[thread_of(i) % threads].push_back(i);
    std::vector<std::size_t> next(threads, 0);
    std::size_t slots = std::max<std::size_t>(1, o_.connect_concurrency / threads);
    std::vector<std::function<void()>> launch(threads);
    for (std::size_t t = 0; t < threads; ++t) {
      launch[t] = [&, t] {
        if (next[t] >= todo[t].size()) return;
        std::size_t i = todo[t][next[t]++];
        auto c = make_client(t, first + static_cast<int>(i));
        c->index = i;
        c->on_ready = [&, t](Client&) {
          ++ready;
          launch[t]();
        };
        c->on_failed = [&, t](Client& c, std::string_view why) {
          report_failure(c, why);
          ++failed;
          launch[t]();
        };
        clients[i] = c;
        c->start();
      };
    }
    threads_.run_on_all([&](std::size_t t) {
      for (std::size_t s = 0; s < slots; ++s) launch[t]();
    });
    while (ready + failed < count && !over_time())
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    // The launchers live on this stack: detach them before returning.
    threads_.run_on_all([&](std::size_t t) {
      next[t] = todo[t].size();
      for (std::size_t k = 0; k < todo[t].size(); ++k) {
        auto& c = clients[todo[t][k]];
        if (c) {
          c->on_ready = nullptr;
          c->on_failed = [this](Client& c, std::string_view why) { report_failure(c, why); };
        }
      }
    });
    return ready;
  }

  void finish_all(std::vector<std::shared_ptr<Client>>& clients,
                  std::function<std::size_t(std::size_t)> thread_of) {
    threads_.run_on_all([&](std::size_t t) {
      for (std::size_t i = 0; i < clients.size(); ++i)
        if (clients[i] && thread_of(i) % threads_.size() == t) {
          clients[i]->on_failed = nullptr;
          clients[i]->on_stanza = nullptr;
          clients[i]->finish();
        }
    });
    // Give the closing handshakes a moment (bounded).
    std::this_thread::sleep_for(std::chrono::milliseconds(clients.size() > 1000 ? 1500 : 300));
  }

  // ---- idle ---------------------------------------------------------------------------

  int idle() {
    auto rss_before = o_.server_pid ? process_rss_kib(o_.server_pid) : std::nullopt;
    std::vector<std::shared_ptr<Client>> clients;
    std::atomic<std::size_t> failed{0};
    auto thread_of = [](std::size_t i) { return i; };
    CpuMeter cpu(o_.server_pid);
    std::size_t ready = connect_sessions(clients, o_.first_user,
                                         static_cast<std::size_t>(o_.sessions), failed, thread_of);
    cpu.stop();
    double connect_s = cpu.wall_seconds();
    if (o_.hold_until_eof) {
      // The parent (rate --idle) waits for this line, and closes our stdin when it is done.
      std::printf("READY %zu %zu\n", ready, failed.load());
      std::fflush(stdout);
      std::fprintf(stderr, "%zu idle sessions connected in %.1f s\n", ready, connect_s);
      char buf[256];
      while (::read(STDIN_FILENO, buf, sizeof buf) > 0) {
      }
      finish_all(clients, thread_of);
      return failed == 0 ? 0 : 1;
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(o_.hold));
    auto rss_after = o_.server_pid ? process_rss_kib(o_.server_pid) : std::nullopt;

    Result r("idle");
    common(r, cpu);
    r.add("sessions", o_.sessions);
    r.add("ready", ready);
    r.add("failed", failed.load());
    r.add("connect_s", connect_s);
    r.add("logins_per_s", static_cast<double>(ready) / connect_s, 1);
    if (cpu.server_seconds() >= 0 && ready > 0)
      r.add("server_ms_per_login", cpu.server_seconds() * 1000 / static_cast<double>(ready));
    if (rss_before && rss_after) {
      // value_or: GCC 12 sees the optionals as maybe uninitialized through *opt here.
      const long before = rss_before.value_or(0), after = rss_after.value_or(0);
      r.add("rss_before_kib", before);
      r.add("rss_after_kib", after);
      if (ready > 0)
        r.add("kib_per_session", static_cast<double>(after - before) / static_cast<double>(ready),
              2);
    }
    finish_all(clients, thread_of);
    r.print();
    return failed == 0 ? 0 : 1;
  }

  // ---- login --------------------------------------------------------------------------

  struct LoginThread {
    std::vector<double> latencies_ms;
    std::size_t done = 0, failed = 0, in_flight = 0;
    bool measuring = false, stopping = false;
    int next_user = 0;
  };

  int login() {
    int users = o_.users > 0 ? o_.users : o_.concurrency;
    std::size_t threads = threads_.size();
    std::vector<LoginThread> state(threads);
    std::atomic<std::uint64_t> resource_counter{0};
    std::atomic<std::size_t> warm{0};
    std::vector<std::function<void()>> launch(threads);
    for (std::size_t t = 0; t < threads; ++t) {
      state[t].next_user = static_cast<int>(t);
      launch[t] = [&, t] {
        LoginThread& s = state[t];
        if (s.stopping) return;
        int user = o_.first_user + s.next_user % users;
        s.next_user += static_cast<int>(threads);
        auto c = make_client(t, user, "l" + std::to_string(resource_counter++));
        auto started = Clock::now();
        ++s.in_flight;
        c->on_ready = [&, t, started](Client& c) {
          LoginThread& s = state[t];
          --s.in_flight;
          if (s.measuring) {
            ++s.done;
            s.latencies_ms.push_back(
                std::chrono::duration<double, std::milli>(Clock::now() - started).count());
          } else {
            ++warm;
          }
          c.on_failed = nullptr;
          c.finish();
          launch[t]();
        };
        c->on_failed = [&, t](Client& c, std::string_view why) {
          LoginThread& s = state[t];
          --s.in_flight;
          report_failure(c, why);
          if (s.measuring)
            ++s.failed;
          else
            ++warm;
          launch[t]();
        };
        c->start();
      };
    }
    std::size_t slots = std::max<std::size_t>(1, o_.concurrency / threads);
    // Warm-up: every account logs in once (fills the generator's SCRAM key cache).
    threads_.run_on_all([&](std::size_t t) {
      for (std::size_t s = 0; s < slots; ++s) launch[t]();
    });
    while (warm < static_cast<std::size_t>(users) && !over_time())
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    CpuMeter cpu(o_.server_pid);
    threads_.run_on_all([&](std::size_t t) { state[t].measuring = true; });
    std::size_t warm_at_start = warm;
    std::this_thread::sleep_for(std::chrono::duration<double>(o_.duration));
    threads_.run_on_all([&](std::size_t t) { state[t].stopping = true; });
    cpu.stop();
    // Wait for the logins still negotiating (bounded), so nothing outlives this frame.
    auto deadline = Clock::now() + std::chrono::seconds(15);
    for (;;) {
      std::size_t in_flight = 0;
      threads_.run_on_all([&](std::size_t t) { in_flight += state[t].in_flight; });
      if (in_flight == 0 || Clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::vector<double> latencies;
    std::size_t done = 0, failed = 0;
    threads_.run_on_all([&](std::size_t t) {
      latencies.insert(latencies.end(), state[t].latencies_ms.begin(), state[t].latencies_ms.end());
      done += state[t].done;
      failed += state[t].failed;
    });
    std::sort(latencies.begin(), latencies.end());
    // Logins that completed during the window (the few finishing after it are in done).
    Result r("login");
    common(r, cpu);
    r.add("mechanism", o_.mechanism);
    r.add("concurrency", o_.concurrency);
    r.add("users", users);
    r.add("warmup_logins", warm_at_start);
    r.add("logins", done);
    r.add("failed", failed);
    r.add("logins_per_s", static_cast<double>(done) / cpu.wall_seconds(), 1);
    r.add("p50_ms", percentile(latencies, 50, true));
    r.add("p90_ms", percentile(latencies, 90, true));
    r.add("p99_ms", percentile(latencies, 99, true));
    r.add("max_ms", latencies.empty() ? 0.0 : latencies.back());
    if (cpu.server_seconds() >= 0 && done > 0)
      r.add("server_ms_per_login", cpu.server_seconds() * 1000 / static_cast<double>(done));
    r.add("gen_ms_per_login", cpu.generator_seconds() * 1000 / std::max<double>(1, done));
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // let closes drain
    r.print();
    return failed == 0 && done > 0 ? 0 : 1;
  }

  // ---- flood and rate: pairs of clients -------------------------------------------------

  struct Pair {
    std::shared_ptr<Client> sender, receiver;
    std::string to;  // receiver's full JID
    std::uint64_t sent = 0, received = 0, duplicated = 0, out_of_order = 0;
    std::uint64_t max_seq = 0;
    std::vector<std::uint8_t> seen;
  };

  struct PairThread {
    std::vector<std::size_t> pairs;
    std::vector<double> latencies_ms;
    std::vector<std::int64_t> sent_ns;  // with --latency-log: when each of latencies_ms was sent
    bool sending = false;
    std::size_t next_pair = 0;
    std::uint64_t scheduled = 0;
    std::unique_ptr<asio::steady_timer> timer;
  };

  static std::string_view field(std::string_view body, std::string_view key) {
    std::size_t pos = body.find(key);
    if (pos == std::string_view::npos) return {};
    std::size_t start = pos + key.size();
    std::size_t end = body.find(' ', start);
    return body.substr(start, end == std::string_view::npos ? body.size() - start : end - start);
  }

  static std::uint64_t number(std::string_view s) {
    std::uint64_t v = 0;
    std::from_chars(s.data(), s.data() + s.size(), v);
    return v;
  }

  void send_message(Pair& p, std::size_t index, std::string& batch) {
    std::uint64_t seq = p.sent++;
    char buf[160];
    int n = std::snprintf(buf, sizeof buf,
                          "<message type='chat' to='%s' id='m%" PRIu64 "'><body>p=%zu s=%" PRIu64
                          " t=%" PRId64 "</body></message>",
                          p.to.c_str(), seq, index, seq, now_ns());
    batch.append(buf, static_cast<std::size_t>(n));
  }

  // Receiver side: checks order and duplicates, records latency; true if new.
  bool on_message(PairThread& th, const Element& el) {
    if (el.name != "message") return false;
    std::string_view body = el.text("body");
    std::size_t index = number(field(body, "p="));
    if (index >= pairs_.size() || field(body, "s=").empty()) return false;
    Pair& p = pairs_[index];
    std::uint64_t seq = number(field(body, "s="));
    std::int64_t t = static_cast<std::int64_t>(number(field(body, "t=")));
    if (seq >= p.seen.size()) p.seen.resize(std::max<std::size_t>(seq + 1, p.seen.size() * 2));
    if (p.seen[seq]) {
      ++p.duplicated;
      return false;
    }
    p.seen[seq] = 1;
    if (p.received > 0 && seq < p.max_seq) ++p.out_of_order;
    p.max_seq = std::max(p.max_seq, seq);
    ++p.received;
    ++delivered_;
    if (record_latency_) {
      th.latencies_ms.push_back(static_cast<double>(now_ns() - t) / 1e6);
      if (!o_.latency_log.empty()) th.sent_ns.push_back(t);
    }
    return true;
  }

  // Connects the pairs (and `extra_idle` idle sessions after them); false on failure.
  bool connect_pairs(std::size_t extra_idle, std::vector<std::shared_ptr<Client>>& idle) {
    std::size_t n = static_cast<std::size_t>(o_.pairs);
    pairs_.resize(n);
    pair_threads_.resize(threads_.size());
    for (std::size_t i = 0; i < n; ++i) pair_threads_[i % threads_.size()].pairs.push_back(i);
    std::vector<std::shared_ptr<Client>> clients;
    std::atomic<std::size_t> failed{0};
    // Client 2i sends to client 2i+1; both on thread i % T so a pair never crosses threads.
    auto thread_of = [](std::size_t i) { return i / 2; };
    std::size_t ready = connect_sessions(clients, o_.first_user, 2 * n, failed, thread_of);
    if (ready < 2 * n) {
      std::fprintf(stderr, "only %zu of %zu pair sessions connected\n", ready, 2 * n);
      return false;
    }
    for (std::size_t i = 0; i < n; ++i) {
      pairs_[i].sender = clients[2 * i];
      pairs_[i].receiver = clients[2 * i + 1];
      pairs_[i].to = format_user(o_.user_pattern, o_.first_user + static_cast<int>(2 * i + 1)) +
                     "@" + o_.domain + "/" + settings_.resource;
    }
    if (extra_idle > 0) {
      CpuMeter cpu(o_.server_pid);
      std::size_t ok = connect_sessions(idle, o_.first_user + static_cast<int>(2 * n), extra_idle,
                                        failed, [](std::size_t i) { return i; });
      cpu.stop();
      std::fprintf(stderr, "%zu idle sessions connected in %.1f s\n", ok, cpu.wall_seconds());
      if (ok < extra_idle) return false;
    }
    return true;
  }

  void pair_totals(Result& r) {
    std::uint64_t sent = 0, received = 0, dup = 0, ooo = 0;
    for (auto& p : pairs_) {
      sent += p.sent;
      received += p.received;
      dup += p.duplicated;
      ooo += p.out_of_order;
    }
    r.add("sent", static_cast<std::int64_t>(sent));
    r.add("received", static_cast<std::int64_t>(received));
    r.add("lost", static_cast<std::int64_t>(sent - received));
    r.add("duplicated", static_cast<std::int64_t>(dup));
    r.add("out_of_order", static_cast<std::int64_t>(ooo));
  }

  void latency_fields(Result& r) {
    if (!o_.latency_log.empty()) write_latency_log();
    std::vector<double> all;
    for (auto& th : pair_threads_)
      all.insert(all.end(), th.latencies_ms.begin(), th.latencies_ms.end());
    std::sort(all.begin(), all.end());
    r.add("p50_ms", percentile(all, 50, true));
    r.add("p90_ms", percentile(all, 90, true));
    r.add("p99_ms", percentile(all, 99, true));
    r.add("p999_ms", percentile(all, 99.9, true));
    r.add("max_ms", all.empty() ? 0.0 : all.back());
  }

  // One line per delivered message, in the order sent: seconds since the first was sent,
  // latency in ms. Shows whether the tail is spread out or comes in bursts, and when.
  void write_latency_log() {
    std::vector<std::pair<std::int64_t, double>> rows;
    for (auto& th : pair_threads_)
      for (std::size_t k = 0; k < th.sent_ns.size(); ++k)
        rows.emplace_back(th.sent_ns[k], th.latencies_ms[k]);
    std::sort(rows.begin(), rows.end());
    std::FILE* f = std::fopen(o_.latency_log.c_str(), "w");
    if (f == nullptr) {
      std::perror(o_.latency_log.c_str());
      return;
    }
    // CLOCK_MONOTONIC, as `perf record -k CLOCK_MONOTONIC` stamps its samples.
    if (!rows.empty())
      std::fprintf(f, "# t0 %.6f (CLOCK_MONOTONIC seconds)\n",
                   static_cast<double>(rows.front().first) / 1e9);
    for (auto& [t, ms] : rows)
      std::fprintf(f, "%.6f %.3f\n", static_cast<double>(t - rows.front().first) / 1e9, ms);
    std::fclose(f);
  }

  // Waits until every sent message arrived, or `limit` passes.
  void drain(std::chrono::seconds limit) {
    auto deadline = Clock::now() + limit;
    for (;;) {
      std::uint64_t sent = 0, received = 0;
      threads_.run_on_all([&](std::size_t t) {
        for (std::size_t i : pair_threads_[t].pairs) {
          sent += pairs_[i].sent;
          received += pairs_[i].received;
        }
      });
      if (received >= sent || Clock::now() > deadline) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  void pump(PairThread& th, std::size_t index) {
    Pair& p = pairs_[index];
    if (!th.sending) return;
    std::string batch;
    while (p.sent - p.received < static_cast<std::uint64_t>(o_.window))
      send_message(p, index, batch);
    if (!batch.empty()) p.sender->send(batch);
  }

  int flood() {
    std::vector<std::shared_ptr<Client>> none;
    if (!connect_pairs(0, none)) return 1;
    record_latency_ = true;
    threads_.run_on_all([&](std::size_t t) {
      PairThread& th = pair_threads_[t];
      for (std::size_t i : th.pairs) {
        pairs_[i].receiver->on_stanza = [this, &th, i](Client&, const Element& el) {
          if (on_message(th, el)) pump(th, i);
        };
      }
    });
    std::uint64_t delivered_start = delivered_;
    CpuMeter cpu(o_.server_pid);
    threads_.run_on_all([&](std::size_t t) {
      PairThread& th = pair_threads_[t];
      th.sending = true;
      for (std::size_t i : th.pairs) pump(th, i);
    });
    std::this_thread::sleep_for(std::chrono::duration<double>(o_.duration));
    std::uint64_t delivered = delivered_ - delivered_start;
    cpu.stop();
    threads_.run_on_all([&](std::size_t t) { pair_threads_[t].sending = false; });
    drain(std::chrono::seconds(5));

    Result r("flood");
    common(r, cpu);
    r.add("pairs", o_.pairs);
    r.add("window", o_.window);
    r.add("duration_s", o_.duration, 1);
    r.add("delivered", static_cast<std::int64_t>(delivered));
    r.add("msgs_per_s", static_cast<double>(delivered) / cpu.wall_seconds(), 1);
    if (cpu.server_seconds() >= 0 && delivered > 0)
      r.add("server_us_per_msg", cpu.server_seconds() * 1e6 / static_cast<double>(delivered), 2);
    r.add("gen_us_per_msg", cpu.generator_seconds() * 1e6 / std::max<double>(1, delivered), 2);
    pair_totals(r);
    latency_fields(r);
    std::vector<std::shared_ptr<Client>> all;
    threads_.run_on_all([&](std::size_t) {});
    for (auto& p : pairs_) {
      all.push_back(p.sender);
      all.push_back(p.receiver);
    }
    finish_all(all, [](std::size_t i) { return i / 2; });
    r.print();
    std::uint64_t lost = 0, dup = 0;
    for (auto& p : pairs_) lost += p.sent - p.received, dup += p.duplicated;
    return lost == 0 && dup == 0 && delivered > 0 ? 0 : 1;
  }

  void tick(std::size_t t, Clock::time_point start, Clock::time_point at) {
    PairThread& th = pair_threads_[t];
    if (!th.sending || th.pairs.empty()) return;
    double share = o_.rate / static_cast<double>(threads_.size());
    double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    auto due = static_cast<std::uint64_t>(elapsed * share);
    std::vector<std::string> batches(th.pairs.size());
    while (th.scheduled < due) {
      std::size_t k = th.next_pair++ % th.pairs.size();
      send_message(pairs_[th.pairs[k]], th.pairs[k], batches[k]);
      ++th.scheduled;
    }
    for (std::size_t k = 0; k < th.pairs.size(); ++k)
      if (!batches[k].empty()) pairs_[th.pairs[k]].sender->send(batches[k]);
    // Wake when the next message is due, not on a fixed tick: at 2,000 msg/s a fixed 500 µs
    // tick woke each thread twice per message it sent, and every wake-up is CPU taken from
    // the server on the same cores. Never more often than every 500 µs (at high rates several
    // messages go per wake-up); each carries the time it was actually sent.
    auto due_next =
        start + std::chrono::duration_cast<Clock::duration>(
                    std::chrono::duration<double>(static_cast<double>(th.scheduled + 1) / share));
    auto next = std::max(due_next, at + std::chrono::microseconds(500));
    th.timer->expires_at(next);
    th.timer->async_wait([this, t, start, next](const boost::system::error_code& ec) {
      if (!ec) tick(t, start, next);
    });
  }

  int rate() {
    std::vector<std::shared_ptr<Client>> idle;
    IdleProcess idle_process;
    if (!connect_pairs(o_.idle_in_process ? static_cast<std::size_t>(o_.idle) : 0, idle)) return 1;
    if (o_.idle > 0 && !o_.idle_in_process &&
        !idle_process.start(o_, o_.first_user + 2 * o_.pairs, o_.idle))
      return 1;
    if (o_.settle > 0) std::this_thread::sleep_for(std::chrono::duration<double>(o_.settle));
    auto rss = o_.server_pid ? process_rss_kib(o_.server_pid) : std::nullopt;
    record_latency_ = true;
    threads_.run_on_all([&](std::size_t t) {
      PairThread& th = pair_threads_[t];
      th.timer = std::make_unique<asio::steady_timer>(threads_.at(t));
      for (std::size_t i : th.pairs)
        pairs_[i].receiver->on_stanza = [this, &th](Client&, const Element& el) {
          on_message(th, el);
        };
    });
    std::uint64_t delivered_start = delivered_;
    CpuMeter cpu(o_.server_pid);
    CpuMeter idle_cpu(idle_process.pid());
    auto start = Clock::now();
    threads_.run_on_all([&](std::size_t t) {
      pair_threads_[t].sending = true;
      tick(t, start, start);
    });
    std::this_thread::sleep_for(std::chrono::duration<double>(o_.duration));
    threads_.run_on_all([&](std::size_t t) {
      pair_threads_[t].sending = false;
      pair_threads_[t].timer->cancel();
    });
    cpu.stop();
    idle_cpu.stop();
    std::uint64_t delivered = delivered_ - delivered_start;
    drain(std::chrono::seconds(5));

    Result r("rate");
    common(r, cpu);
    if (idle_process.pid() > 0 && idle_cpu.server_seconds() >= 0)
      r.add("idle_gen_cpu_cores", idle_cpu.server_seconds() / idle_cpu.wall_seconds());
    r.add("rate", o_.rate, 0);
    r.add("pairs", o_.pairs);
    r.add("idle", o_.idle);
    r.add("duration_s", o_.duration, 1);
    r.add("msgs_per_s", static_cast<double>(delivered) / cpu.wall_seconds(), 1);
    if (cpu.server_seconds() >= 0 && delivered > 0)
      r.add("server_us_per_msg", cpu.server_seconds() * 1e6 / static_cast<double>(delivered), 2);
    if (rss) r.add("server_rss_kib", *rss);
    pair_totals(r);
    latency_fields(r);
    std::vector<std::shared_ptr<Client>> all;
    for (auto& p : pairs_) {
      all.push_back(p.sender);
      all.push_back(p.receiver);
    }
    finish_all(all, [](std::size_t i) { return i / 2; });
    finish_all(idle, [](std::size_t i) { return i; });
    idle_process.stop();
    r.print();
    std::uint64_t lost = 0;
    for (auto& p : pairs_) lost += p.sent - p.received;
    return lost == 0 ? 0 : 1;
  }

  const Options& o_;
  asio::ssl::context tls_;
  ClientSettings settings_;
  std::vector<asio::ip::address> sources_;
  std::atomic<std::size_t> next_source_{0};
  std::atomic<int> failures_logged_{0};
  Clock::time_point started_ = Clock::now();
  std::vector<Pair> pairs_;
  std::vector<PairThread> pair_threads_;
  std::atomic<std::uint64_t> delivered_{0};
  bool record_latency_ = false;
  Threads threads_;  // last: its threads stop before the state above is destroyed
};

}  // namespace

}  // namespace stanzad::bench

int main(int argc, char** argv) {
  using stanzad::bench::Options;
  Options o;
  CLI::App app{"stanzad-bench: XMPP load generator (idle, login, flood, rate)"};
  app.add_option("scenario", o.scenario, "idle | login | flood | rate")
      ->required()
      ->check(CLI::IsMember({"idle", "login", "flood", "rate"}));
  app.add_option("--host", o.host, "server IP address")->capture_default_str();
  app.add_option("--port", o.port, "server port (direct TLS or STARTTLS, see --tls)")
      ->capture_default_str();
  app.add_option("--domain", o.domain, "XMPP domain")->capture_default_str();
  app.add_option("--user", o.user_pattern, "user name pattern, %d = number")->capture_default_str();
  app.add_option("--password", o.password, "password of every account")->capture_default_str();
  app.add_option("--first", o.first_user, "number of the first account")->capture_default_str();
  app.add_option("--tls", o.tls, "direct (XEP-0368) or starttls")
      ->check(CLI::IsMember({"direct", "starttls"}))
      ->capture_default_str();
  app.add_option("--mech", o.mechanism, "SASL mechanism")
      ->check(CLI::IsMember({"SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"}))
      ->capture_default_str();
  app.add_option("--threads", o.threads, "generator threads (one io_context each)")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--server-pid", o.server_pid, "server process, for CPU and RSS");
  app.add_option("--server-name", o.server_name, "label for the RESULT line");
  app.add_option("--sources", o.sources, "number of 127.0.0.x source addresses (loopback)")
      ->capture_default_str();
  app.add_option("--source-base", o.source_base, "first source address")->capture_default_str();
  app.add_option("--time-limit", o.time_limit, "hard limit for the whole run, seconds")
      ->capture_default_str();
  app.add_option("--connect-concurrency", o.connect_concurrency,
                 "sessions negotiating at once while connecting")
      ->capture_default_str();
  app.add_option("--sessions", o.sessions, "idle: sessions")->capture_default_str();
  app.add_option("--hold", o.hold, "idle: seconds to wait before reading RSS")
      ->capture_default_str();
  app.add_flag("--hold-until-eof", o.hold_until_eof,
               "idle: hold until standard input closes (how rate --idle runs its child)");
  app.add_option("--concurrency", o.concurrency, "login: logins in flight")->capture_default_str();
  app.add_option("--users", o.users, "login: accounts to cycle through (default: concurrency)");
  app.add_option("--duration", o.duration, "login, flood, rate: seconds measured")
      ->capture_default_str();
  app.add_option("--pairs", o.pairs, "flood, rate: sender/receiver pairs")->capture_default_str();
  app.add_option("--window", o.window, "flood: unacknowledged messages per pair")
      ->capture_default_str();
  app.add_option("--rate", o.rate, "rate: total messages per second")->capture_default_str();
  app.add_option("--idle", o.idle, "rate: extra idle sessions (accounts after the pairs')")
      ->capture_default_str();
  app.add_option("--settle", o.settle, "rate: seconds to wait after connecting, before sending")
      ->capture_default_str();
  app.add_flag("--idle-in-process", o.idle_in_process,
               "rate: hold the idle sessions in this process (default: a child process)");
  app.add_option("--latency-log", o.latency_log,
                 "flood, rate: write \"seconds-since-start latency-ms\" per message to this file");
  CLI11_PARSE(app, argc, argv);

  stanzad::bench::raise_fd_limit();
  // A hard bound even if the server stops answering: the whole process ends.
  std::thread([limit = o.time_limit + 60] {
    std::this_thread::sleep_for(std::chrono::duration<double>(limit));
    std::fprintf(stderr, "stanzad-bench: time limit exceeded, exiting\n");
    std::_Exit(3);
  }).detach();
  try {
    stanzad::bench::Bench bench(o);
    int rc = bench.run();
    std::fflush(stdout);
    std::_Exit(rc);  // skip tearing down thousands of sessions
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stanzad-bench: %s\n", e.what());
    return 2;
  }
}
