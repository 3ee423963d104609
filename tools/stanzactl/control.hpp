// stanzactl's side of the control socket a running stanzad listens on (<data-dir>/control.sock).
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace stanzad::ctl {

struct ControlReply {
  bool ok = false;
  std::string body;   // lines before the final "ok" / "error: …"
  std::string error;  // the "error: …" text without the prefix
};

// Sends one command line; nullopt when no server listens (not running, or another data dir).
std::optional<ControlReply> control(const std::filesystem::path& socket,
                                    const std::string& command);

}  // namespace stanzad::ctl
