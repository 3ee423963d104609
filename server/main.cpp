// stanzad: the XMPP server's entry point (command line, logging, start-up).
#include <malloc.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "config/config.hpp"
#include "xmpp/server.hpp"

namespace {

constexpr const char* usage =
    "usage: stanzad [--config FILE]\n"
    "\n"
    "Runs the stanzad XMPP server.\n"
    "\n"
    "  -c, --config FILE  configuration file (default: " STANZAD_DEFAULT_CONFIG
    ")\n"
    "  -h, --help         print this help and exit\n"
    "  -V, --version      print the version and exit\n"
    "\n"
    "Accounts are managed with stanzactl; see docs/configuration.md for every option.\n";

void setup_logging(const stanzad::config::Config& config) {
  if (!config.log_file.empty()) {
    auto logger = spdlog::basic_logger_mt("stanzad", config.log_file.string());
    spdlog::set_default_logger(logger);
  }
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %l %v");
  spdlog::flush_on(spdlog::level::info);
}

// Descriptors the server needs besides its connections: listeners (one per shard each),
// epoll and wake-up descriptors, the database and its journal, the log, the control socket,
// plugins being loaded. Generous: running out of them refuses connections, nothing worse.
constexpr rlim_t reserved_descriptors = 64;

// Every connection is a descriptor, and the usual soft limit (1024) would cap the server at
// about a thousand sessions whatever the machine: take all the hard limit allows. Returns the
// soft limit now in force (0 if unknown).
rlim_t raise_descriptor_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  return limit.rlim_cur;
}

void log_descriptor_limit(rlim_t limit) {
  if (limit == 0) return;
  if (limit == RLIM_INFINITY) {
    spdlog::info("descriptor limit: unlimited");
    return;
  }
  std::error_code ec;
  rlim_t open_now = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++open_now;
  rlim_t used = open_now + reserved_descriptors;
  rlim_t sessions = limit > used ? limit - used : 0;
  auto level = sessions < 1000 ? spdlog::level::warn : spdlog::level::info;
  spdlog::log(level,
              "descriptor limit {} (soft, raised to the hard limit): room for about {} "
              "connections{}",
              limit, sessions,
              sessions < 1000 ? "; raise the hard limit (LimitNOFILE=, ulimit -Hn) for more" : "");
}

}  // namespace

int main(int argc, char** argv) {
  // TLS writes go through OpenSSL's socket BIO (write(2)): a peer that hung up must give
  // EPIPE on that connection, not a signal that ends the server.
  std::signal(SIGPIPE, SIG_IGN);
  // glibc gives every thread that allocates an arena of its own (up to 8 per core): the
  // shards, the worker pool, the storage writer. An idle session's memory then ends up spread
  // over several arenas, each fragmented its own way: 22.4 KiB RSS per idle TLS session with
  // the default against 19.5 with two arenas (2,000 sessions). Small blocks come from each
  // thread's cache without taking the arena lock, so sharing costs little.
  mallopt(M_ARENA_MAX, 2);
  const rlim_t descriptor_limit = raise_descriptor_limit();
  std::string config_file = STANZAD_DEFAULT_CONFIG;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::cout << usage;
      return 0;
    }
    if (arg == "-V" || arg == "--version") {
      std::cout << "stanzad " STANZAD_VERSION "\n";
      return 0;
    }
    if ((arg == "-c" || arg == "--config") && i + 1 < argc) {
      config_file = argv[++i];
    } else if (arg.starts_with("--config=")) {
      config_file = std::string(arg.substr(9));
    } else {
      std::cerr << "stanzad: unknown argument '" << arg << "' (see --help)\n";
      return 2;
    }
  }

  stanzad::config::Config config;
  try {
    config = stanzad::config::load(config_file);
  } catch (const std::exception& e) {
    std::cerr << "stanzad: " << e.what() << "\n";
    return 1;
  }
  const bool logs_to_file = !config.log_file.empty();
  try {
    setup_logging(config);
    log_descriptor_limit(descriptor_limit);
    stanzad::xmpp::Server server(std::move(config));
    server.run();
  } catch (const std::exception& e) {
    spdlog::critical("stanzad cannot start: {}", e.what());
    // The log may be a file: the operator at the terminal gets the reason too.
    if (logs_to_file) std::cerr << "stanzad: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
