// The server configuration: the typed result of reading conf/stanzad.xml (docs/configuration.md).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace stanzad::config {

// Message: "FILE:LINE: option 'NAME': what is wrong" (or "FILE: ..." when no line applies).
struct ConfigError : std::runtime_error {
  using runtime_error::runtime_error;
};

enum class ListenerKind { c2s, c2s_direct_tls };

struct Listener {
  ListenerKind kind;
  std::string address;  // an IPv4 or IPv6 literal
  std::uint16_t port;
};

struct Limits {
  std::size_t max_stanza_bytes = 262144;
  std::size_t max_depth = 64;
  std::chrono::seconds negotiation_timeout{60};  // time to authenticate and bind
  std::chrono::seconds resume_timeout{300};      // XEP-0198: how long a dropped session waits
  std::uint32_t sm_max_unacked = 5000;           // XEP-0198: stanzas a session keeps unacked
  // Abuse limits (0 = none). Each is answered with its RFC 6120 error.
  std::uint32_t connections_per_ip = 1000;  // open connections from one address
  std::uint32_t sessions_per_account = 20;  // bound resources of one account
  std::uint32_t auth_failures_per_ip = 10;  // failed logins from one address per window
  std::chrono::seconds auth_failure_window{60};
  std::uint64_t bytes_per_second = 1u << 20;  // what one connection may send us, sustained
  std::uint64_t burst_bytes = 2u << 20;       // and in a burst
  std::uint32_t scram_iterations = 4096;      // for new/changed passwords
};

// <storage>: where accounts, documents, archives and offline messages live (docs/storage.md).
struct Storage {
  enum class Backend { sqlite, mysql };
  Backend backend = Backend::sqlite;
  // sqlite
  std::filesystem::path file;    // absolute; empty = <data_dir>/stanzad.sqlite
  bool synchronous_full = true;  // fsync every commit (durable across power loss)
  // mysql
  std::string host = "127.0.0.1";
  std::uint16_t port = 3306;
  std::filesystem::path socket;  // a Unix socket instead of host:port when set
  std::string database = "stanzad";
  std::string user = "stanzad";
  std::string password;  // from password, password-file or password-env
  std::chrono::seconds connect_timeout{5};
  std::chrono::seconds timeout{10};  // read and write timeout per query
  // both
  unsigned pool_size = 4;            // reading connections (the writer has its own)
  std::size_t queue_limit = 100000;  // writes waiting to commit; more: resource-constraint
  std::size_t batch_limit = 2000;    // writes per group-commit transaction
};

// One <plugin/> element: a plugin to load, globally or for one virtual host, with its
// options (every attribute but name and file). The plugin manager validates the options
// against what the plugin declares, naming `file` and the line.
struct PluginOption {
  std::string value;
  std::size_t line = 0;
};
struct PluginSpec {
  std::string name;            // "ping" → libstanzad_ping.so or mod_ping.lua
  std::string host;            // empty: every host
  std::filesystem::path file;  // explicit .so or .lua; empty: looked up by name
  std::map<std::string, PluginOption, std::less<>> options;
  std::size_t line = 0;
};

struct Config {
  std::filesystem::path source;    // the file read, absolute (empty for built-in defaults)
  std::vector<std::string> hosts;  // normalized (nameprep) virtual host names, at least one
  std::vector<Listener> listeners;
  std::filesystem::path data_dir;                  // absolute
  std::filesystem::path certificate, private_key;  // absolute, or both empty = self-signed
                                                   // made in data_dir on first run
  bool require_tls = true;                         // STARTTLS required on the c2s listeners
  bool tls_native_records = true;  // <tls native-records>: stanzad's own TLS 1.3 record layer
  unsigned shards = 0;             // 0 = number of cores
  Limits limits;
  Storage storage;
  std::string log_level = "info";    // trace|debug|info|warn|error
  std::filesystem::path log_file;    // empty = stderr
  std::vector<PluginSpec> plugins;   // in configuration order
  std::filesystem::path plugin_dir;  // shared-library plugins; empty = the built-in default
  std::filesystem::path lua_dir;     // Lua plugins and runtime; empty = the built-in default
};

// Reads and validates `file`; relative paths in it resolve against the file's directory.
// Throws ConfigError.
Config load(const std::filesystem::path& file);

// As load(), for a document already in memory (tests, fuzzing): `file` names it in errors and
// anchors its relative paths; it is not read.
Config parse(std::string_view text, const std::filesystem::path& file);

}  // namespace stanzad::config
