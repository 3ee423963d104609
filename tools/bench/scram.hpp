// SASL for the load generator: SCRAM-SHA-1 / SCRAM-SHA-256 client (RFC 5802, RFC 7677) and
// PLAIN, with a process-wide cache of derived keys so the generator's own PBKDF2 cost is paid
// once per (password, salt, iterations) rather than once per login.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace stanzad::bench {

std::string base64_encode(std::string_view in);
std::optional<std::string> base64_decode(std::string_view in);

enum class Mechanism { scram_sha1, scram_sha256, plain };
std::optional<Mechanism> parse_mechanism(std::string_view name);
std::string_view mechanism_name(Mechanism m);

class ScramClient {
 public:
  ScramClient(Mechanism m, std::string user, std::string password);

  // Base64 payload of <auth/>.
  std::string initial_response();
  // Base64 challenge in, base64 <response/> out; nullopt if the challenge is malformed.
  std::optional<std::string> respond(std::string_view challenge_b64);
  // Checks the server signature carried by <success/> (base64 "v=...").
  bool verify_success(std::string_view success_b64) const;

 private:
  Mechanism mech_;
  std::string user_, password_, client_nonce_, client_first_bare_;
  std::string expected_server_signature_;
};

std::string plain_initial_response(std::string_view user, std::string_view password);

}  // namespace stanzad::bench
