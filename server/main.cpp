// stanzad: the XMPP server's entry point (command line, logging, start-up).
#include <malloc.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstring>
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
