// server/xmpp/sasl.cpp: RFC 5802 §5-§7 and RFC 7677 SCRAM server, RFC 4616 PLAIN, RFC 4013
// SASLprep of passwords, RFC 6120 §6.5 failure names.
#include "xmpp/sasl.hpp"

#include <idn-free.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stringprep.h>

#include <cassert>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "xmpp/jid.hpp"

namespace stanzad::xmpp::sasl {

namespace {

// Above this, passwords are used raw rather than fed to libidn (bounds its cost).
constexpr std::size_t max_saslprep_bytes = 4096;
constexpr std::size_t server_nonce_bytes = 18;
constexpr std::size_t fake_salt_bytes = 16;

const EVP_MD* evp_md(Hash h) { return h == Hash::sha1 ? EVP_sha1() : EVP_sha256(); }

std::string hmac(Hash h, std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(evp_md(h), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), out,
           &len) == nullptr) {
    std::fputs("fatal: openssl hmac failed\n", stderr);
    std::abort();
  }
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string digest(Hash h, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out, &len, evp_md(h), nullptr) != 1) {
    std::fputs("fatal: openssl digest failed\n", stderr);
    std::abort();
  }
  return std::string(reinterpret_cast<const char*>(out), len);
}

bool equal_ct(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// RFC 4013 as a "query" (unassigned allowed), the way RFC 5802 clients prepare passwords, and
// identically at registration and at login so the two always agree.
std::string saslprep_or_raw(std::string_view password) {
  bool printable_ascii = true;
  for (unsigned char c : password) {
    if (c < 0x20 || c > 0x7e) {
      printable_ascii = false;
      break;
    }
  }
  if (printable_ascii || password.size() > max_saslprep_bytes || !is_valid_utf8(password)) {
    return std::string(password);  // SASLprep is the identity on printable ASCII
  }
  char* out = nullptr;
  std::string in(password);
  int rc = stringprep_profile(in.c_str(), &out, "SASLprep", Stringprep_profile_flags{});
  std::string result = (rc == STRINGPREP_OK && out != nullptr && out[0] != '\0') ? out : in;
  if (out != nullptr) idn_free(out);
  return result;
}

// RFC 5802 §5.1 saslname: "=2C" is ',', "=3D" is '=', any other '=' is an error.
std::optional<std::string> decode_saslname(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '=') {
      out.push_back(s[i]);
      continue;
    }
    auto esc = s.substr(i + 1, 2);
    if (esc == "2C") {
      out.push_back(',');
    } else if (esc == "3D") {
      out.push_back('=');
    } else {
      return std::nullopt;
    }
    i += 2;
  }
  if (out.empty() || !is_valid_utf8(out)) return std::nullopt;
  return out;
}

bool is_valid_nonce(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (c < 0x21 || c > 0x7e || c == ',') return false;
  }
  return true;
}

// Splits off the next ','-separated attribute.
std::string_view next_attr(std::string_view& s) {
  auto comma = s.find(',');
  std::string_view attr = s.substr(0, comma);
  s = comma == std::string_view::npos ? std::string_view{} : s.substr(comma + 1);
  return attr;
}

// Keys the fake salts of unknown users, so that a given name always gets the same salt
// within a process and probing cannot tell unknown from known names.
const std::string& fake_salt_key() {
  static const std::string key = random_bytes(32);
  return key;
}

}  // namespace

std::string_view mechanism_name(Hash h) {
  return h == Hash::sha1 ? "SCRAM-SHA-1" : "SCRAM-SHA-256";
}

std::optional<Hash> scram_hash(std::string_view mechanism) {
  if (mechanism == "SCRAM-SHA-1") return Hash::sha1;
  if (mechanism == "SCRAM-SHA-256") return Hash::sha256;
  return std::nullopt;
}

std::size_t hash_size(Hash h) { return h == Hash::sha1 ? 20 : 32; }

ScramCredentials derive_credentials(Hash h, std::string_view password, std::string_view salt,
                                    std::uint32_t iterations) {
  assert(iterations > 0 && iterations <= INT_MAX);
  std::string prepped = saslprep_or_raw(password);
  std::string salted(hash_size(h), '\0');
  if (PKCS5_PBKDF2_HMAC(prepped.data(), static_cast<int>(prepped.size()),
                        reinterpret_cast<const unsigned char*>(salt.data()),
                        static_cast<int>(salt.size()), static_cast<int>(iterations), evp_md(h),
                        static_cast<int>(salted.size()),
                        reinterpret_cast<unsigned char*>(salted.data())) != 1) {
    std::fputs("fatal: openssl pbkdf2 failed\n", stderr);
    std::abort();
  }
  ScramCredentials c;
  c.hash = h;
  c.salt = std::string(salt);
  c.iterations = iterations;
  c.stored_key = digest(h, hmac(h, salted, "Client Key"));
  c.server_key = hmac(h, salted, "Server Key");
  OPENSSL_cleanse(salted.data(), salted.size());
  OPENSSL_cleanse(prepped.data(), prepped.size());
  return c;
}

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  if (n > 0 && RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    std::fputs("fatal: openssl random number generator failed\n", stderr);
    std::abort();
  }
  return out;
}

std::string_view to_string(Failure f) {
  switch (f) {
    case Failure::aborted:
      return "aborted";
    case Failure::account_disabled:
      return "account-disabled";
    case Failure::credentials_expired:
      return "credentials-expired";
    case Failure::encryption_required:
      return "encryption-required";
    case Failure::incorrect_encoding:
      return "incorrect-encoding";
    case Failure::invalid_authzid:
      return "invalid-authzid";
    case Failure::invalid_mechanism:
      return "invalid-mechanism";
    case Failure::malformed_request:
      return "malformed-request";
    case Failure::mechanism_too_weak:
      return "mechanism-too-weak";
    case Failure::not_authorized:
      return "not-authorized";
    case Failure::temporary_auth_failure:
      return "temporary-auth-failure";
  }
  return "not-authorized";
}

ScramServer::ScramServer(Hash h) : hash_(h) {}

ScramServer::ScramServer(Hash h, std::string server_nonce)
    : hash_(h), server_nonce_(std::move(server_nonce)) {
  assert(is_valid_nonce(server_nonce_));
}

std::optional<Failure> ScramServer::client_first(std::string_view msg) {
  if (state_ != State::start) return fail(Failure::malformed_request);
  std::string_view rest = msg;
  // RFC 5802 §7 gs2-header. "y": the client could bind but thinks we cannot, which is true
  // while we offer no -PLUS mechanism. "p=": it insists on binding, which we cannot do.
  std::string_view flag = next_attr(rest);
  if (flag != "n" && flag != "y") return fail(Failure::malformed_request);
  std::string_view authz = next_attr(rest);
  if (rest.empty()) return fail(Failure::malformed_request);
  if (!authz.empty()) {
    if (!authz.starts_with("a=")) return fail(Failure::malformed_request);
    auto decoded = decode_saslname(authz.substr(2));
    if (!decoded) return fail(Failure::malformed_request);
    authzid_ = std::move(*decoded);
  }
  gs2_header_ = std::string(msg.substr(0, msg.size() - rest.size()));
  client_first_bare_ = std::string(rest);

  // client-first-message-bare: [reserved-mext ","] username "," nonce ["," extensions].
  // A mandatory extension ("m=") we do not know must fail the exchange (§5.1).
  std::string_view user = next_attr(rest);
  if (!user.starts_with("n=")) return fail(Failure::malformed_request);
  auto decoded = decode_saslname(user.substr(2));
  if (!decoded) return fail(Failure::malformed_request);
  username_ = std::move(*decoded);
  std::string_view nonce = next_attr(rest);
  if (!nonce.starts_with("r=") || !is_valid_nonce(nonce.substr(2))) {
    return fail(Failure::malformed_request);
  }
  nonce_ = std::string(nonce.substr(2));
  state_ = State::first_received;
  return std::nullopt;
}

std::string ScramServer::server_first(const std::optional<ScramCredentials>& creds) {
  assert(state_ == State::first_received);
  if (server_nonce_.empty()) server_nonce_ = base64_encode(random_bytes(server_nonce_bytes));
  nonce_ += server_nonce_;

  std::string salt;
  std::uint32_t iterations;
  const std::size_t hlen = hash_size(hash_);
  if (creds && creds->hash == hash_ && creds->stored_key.size() == hlen &&
      creds->server_key.size() == hlen && creds->iterations > 0) {
    known_user_ = true;
    salt = creds->salt;
    iterations = creds->iterations;
    stored_key_ = creds->stored_key;
    server_key_ = creds->server_key;
  } else {
    known_user_ = false;
    std::string label(mechanism_name(hash_));
    label.push_back('\0');
    label += username_;
    salt = hmac(Hash::sha256, fake_salt_key(), label).substr(0, fake_salt_bytes);
    iterations = unknown_iterations_;
    stored_key_ = random_bytes(hlen);
    server_key_ = random_bytes(hlen);
  }
  server_first_ = "r=" + nonce_ + ",s=" + base64_encode(salt) + ",i=" + std::to_string(iterations);
  state_ = State::first_sent;
  return server_first_;
}

std::optional<Failure> ScramServer::client_final(std::string_view msg) {
  if (state_ != State::first_sent) return fail(Failure::malformed_request);
  // client-final-message = channel-binding "," nonce ["," extensions] "," proof
  auto proof_at = msg.rfind(",p=");
  if (proof_at == std::string_view::npos) return fail(Failure::malformed_request);
  std::string_view without_proof = msg.substr(0, proof_at);
  auto proof = base64_decode(msg.substr(proof_at + 3));
  if (!proof || proof->size() != hash_size(hash_)) return fail(Failure::malformed_request);

  std::string_view rest = without_proof;
  std::string_view cb = next_attr(rest);
  std::string_view nonce = next_attr(rest);
  if (!cb.starts_with("c=") || !nonce.starts_with("r=")) return fail(Failure::malformed_request);
  auto cb_data = base64_decode(cb.substr(2));
  if (!cb_data) return fail(Failure::malformed_request);
  // Without channel binding, c= repeats the gs2 header: a mismatch means tampering.
  if (*cb_data != gs2_header_) return fail(Failure::not_authorized);
  if (nonce.substr(2) != nonce_) return fail(Failure::not_authorized);

  std::string auth_message = client_first_bare_;
  auth_message += ',';
  auth_message += server_first_;
  auth_message += ',';
  auth_message += without_proof;

  std::string client_key = hmac(hash_, stored_key_, auth_message);  // ClientSignature
  for (std::size_t i = 0; i < client_key.size(); ++i) client_key[i] ^= (*proof)[i];
  bool proof_ok = equal_ct(digest(hash_, client_key), stored_key_);
  OPENSSL_cleanse(client_key.data(), client_key.size());
  if (!proof_ok || !known_user_) return fail(Failure::not_authorized);

  server_signature_ = hmac(hash_, server_key_, auth_message);
  state_ = State::succeeded;
  return std::nullopt;
}

std::string ScramServer::server_final() const {
  assert(state_ == State::succeeded);
  return "v=" + base64_encode(server_signature_);
}

std::optional<PlainMessage> parse_plain(std::string_view decoded) {
  auto first = decoded.find('\0');
  if (first == std::string_view::npos) return std::nullopt;
  auto second = decoded.find('\0', first + 1);
  if (second == std::string_view::npos) return std::nullopt;
  PlainMessage m;
  m.authzid = std::string(decoded.substr(0, first));
  m.authcid = std::string(decoded.substr(first + 1, second - first - 1));
  m.password = std::string(decoded.substr(second + 1));
  // is_valid_utf8 also rejects a third NUL.
  if (m.authcid.empty() || m.password.empty() || !is_valid_utf8(m.authzid) ||
      !is_valid_utf8(m.authcid) || !is_valid_utf8(m.password)) {
    return std::nullopt;
  }
  return m;
}

bool verify_password(const ScramCredentials& creds, std::string_view password) {
  if (creds.iterations == 0 || creds.iterations > INT_MAX ||
      creds.stored_key.size() != hash_size(creds.hash))
    return false;
  ScramCredentials c = derive_credentials(creds.hash, password, creds.salt, creds.iterations);
  // Evaluate both comparisons: no early exit on the first.
  bool stored_ok = equal_ct(c.stored_key, creds.stored_key);
  bool server_ok = equal_ct(c.server_key, creds.server_key);
  return stored_ok && server_ok;
}

}  // namespace stanzad::xmpp::sasl
