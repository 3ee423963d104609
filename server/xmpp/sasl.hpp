// server/xmpp/sasl.hpp: RFC 6120 §6 SASL: SCRAM server (RFC 5802, RFC 7677), PLAIN (RFC 4616).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "xmpp/base64.hpp"

namespace stanzad::xmpp::sasl {

enum class Hash { sha1, sha256 };

std::string_view mechanism_name(Hash h);  // "SCRAM-SHA-1", "SCRAM-SHA-256"
// The inverse of mechanism_name; nullopt for any other mechanism (PLAIN included).
std::optional<Hash> scram_hash(std::string_view mechanism);
std::size_t hash_size(Hash h);  // 20 or 32 bytes

// Iteration count for new credentials and for the fake credentials of unknown users.
inline constexpr std::uint32_t default_iterations = 4096;

// Stored SCRAM credentials (never the password). Binary strings (raw bytes), not base64.
struct ScramCredentials {
  Hash hash = Hash::sha256;
  std::string salt;
  std::uint32_t iterations = 0;
  std::string stored_key;
  std::string server_key;
};

// PBKDF2-HMAC over the SASLprep'd password (RFC 4013; used raw if it does not prepare).
// Requires 0 < iterations <= INT_MAX.
ScramCredentials derive_credentials(Hash h, std::string_view password, std::string_view salt,
                                    std::uint32_t iterations);
// Cryptographically random bytes (OpenSSL RAND_bytes); aborts if the RNG fails.
std::string random_bytes(std::size_t n);

using xmpp::base64_decode;
using xmpp::base64_encode;

// RFC 6120 §6.5 SASL failure conditions used by the server.
enum class Failure {
  aborted,
  account_disabled,
  credentials_expired,
  encryption_required,
  incorrect_encoding,
  invalid_authzid,
  invalid_mechanism,
  malformed_request,
  mechanism_too_weak,
  not_authorized,
  temporary_auth_failure,
};
std::string_view to_string(Failure f);  // the element name, e.g. "not-authorized"

// Server side of one SCRAM exchange, split into steps so the caller can fetch credentials
// asynchronously between them. Messages are the decoded (not base64) SASL payloads.
// We offer no -PLUS mechanism, so channel binding requests ("p=") are refused.
class ScramServer {
 public:
  explicit ScramServer(Hash h);
  // Fixes the server nonce part (tests with RFC vectors); it must be printable ASCII
  // without ','.
  ScramServer(Hash h, std::string server_nonce);

  Hash hash() const { return hash_; }

  // Step 1: the client-first-message. nullopt if it is acceptable.
  std::optional<Failure> client_first(std::string_view msg);
  const std::string& username() const { return username_; }  // unescaped, not yet nodeprep'd
  const std::string& authzid() const { return authzid_; }    // empty if none was sent

  // Step 2: returns the server-first-message. Pass nullopt for an unknown user (or
  // credentials of another hash): the exchange continues with fake credentials, stable per
  // username within this process, and client_final fails with not_authorized.
  std::string server_first(const std::optional<ScramCredentials>& creds);
  // Iteration count advertised to unknown users; match what real accounts use.
  void set_unknown_user_iterations(std::uint32_t i) { unknown_iterations_ = i; }

  // Step 3: the client-final-message. nullopt means authenticated.
  std::optional<Failure> client_final(std::string_view msg);
  bool succeeded() const { return state_ == State::succeeded; }

  // After success: the server-final-message "v=..." to send in <success/>.
  std::string server_final() const;

 private:
  enum class State { start, first_received, first_sent, succeeded, failed };

  std::optional<Failure> fail(Failure f) {
    state_ = State::failed;
    return f;
  }

  Hash hash_;
  State state_ = State::start;
  std::string server_nonce_;
  std::string gs2_header_;         // e.g. "n,,": what c= must carry
  std::string client_first_bare_;  // for AuthMessage
  std::string server_first_;       // for AuthMessage
  std::string nonce_;              // client nonce + server nonce
  std::string username_;
  std::string authzid_;
  std::string stored_key_;
  std::string server_key_;
  std::string server_signature_;
  bool known_user_ = false;
  std::uint32_t unknown_iterations_ = default_iterations;
};

// PLAIN: "authzid\0authcid\0passwd". Returns nullopt if malformed.
struct PlainMessage {
  std::string authzid, authcid, password;
};
std::optional<PlainMessage> parse_plain(std::string_view decoded);

// Verifies a password against stored credentials (recomputes PBKDF2; constant-time compare).
bool verify_password(const ScramCredentials& creds, std::string_view password);

}  // namespace stanzad::xmpp::sasl
