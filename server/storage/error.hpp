// The one exception storage throws, with a kind that tells the caller which stanza error to send.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace stanzad::storage {

enum class ErrorKind {
  internal,     // a bug, a constraint, a corrupt row: retrying will not help
  unavailable,  // the database cannot be reached (MariaDB down, connection lost, timeout);
                // nothing was acknowledged, and the store reconnects by itself
  overloaded,   // too many writes queued or every connection busy: try again later
  schema,       // the database's schema is unknown (newer than this stanzad) or broken
};

struct StorageError : std::runtime_error {
  explicit StorageError(const std::string& what, ErrorKind kind = ErrorKind::internal)
      : runtime_error(what), kind(kind) {}
  ErrorKind kind;
};

// The RFC 6120 §8.3.3 condition a stanza handler answers with when storage fails:
// overloaded is `resource-constraint` (type wait), everything else `internal-server-error`
// (type wait for unavailable, cancel otherwise).
constexpr std::string_view stanza_condition(ErrorKind kind) {
  return kind == ErrorKind::overloaded ? "resource-constraint" : "internal-server-error";
}
constexpr std::string_view stanza_error_type(ErrorKind kind) {
  return kind == ErrorKind::unavailable || kind == ErrorKind::overloaded ? "wait" : "cancel";
}
constexpr std::string_view to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::internal:
      return "internal";
    case ErrorKind::unavailable:
      return "unavailable";
    case ErrorKind::overloaded:
      return "overloaded";
    case ErrorKind::schema:
      return "schema";
  }
  return "internal";
}

}  // namespace stanzad::storage
