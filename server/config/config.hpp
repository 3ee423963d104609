// The server configuration: the typed result of reading conf/stanzad.xml (docs/configuration.md).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
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
  std::uint32_t scram_iterations = 4096;         // for new/changed passwords
};

struct Config {
  std::filesystem::path source;    // the file read, absolute (empty for built-in defaults)
  std::vector<std::string> hosts;  // normalized (nameprep) virtual host names, at least one
  std::vector<Listener> listeners;
  std::filesystem::path data_dir;                  // absolute
  std::filesystem::path certificate, private_key;  // absolute, or both empty = self-signed
                                                   // made in data_dir on first run
  bool require_tls = true;                         // STARTTLS required on the c2s listeners
  unsigned shards = 0;                             // 0 = number of cores
  Limits limits;
  std::string log_level = "info";  // trace|debug|info|warn|error
  std::filesystem::path log_file;  // empty = stderr
};

// Reads and validates `file`; relative paths in it resolve against the file's directory.
// Throws ConfigError.
Config load(const std::filesystem::path& file);

// As load(), for a document already in memory (tests, fuzzing): `file` names it in errors and
// anchors its relative paths; it is not read.
Config parse(std::string_view text, const std::filesystem::path& file);

}  // namespace stanzad::config
