// SCRAM client with a derived-key cache; see scram.hpp.
#include "scram.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <map>
#include <mutex>
#include <tuple>

namespace stanzad::bench {

namespace {

const EVP_MD* digest(Mechanism m) { return m == Mechanism::scram_sha1 ? EVP_sha1() : EVP_sha256(); }

std::string hmac(const EVP_MD* md, std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(md, key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string hash(const EVP_MD* md, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, md, nullptr);
  return std::string(reinterpret_cast<char*>(out), len);
}

struct DerivedKeys {
  std::string client_key, stored_key, server_key;
};

// Keyed by (mechanism, password, salt, iterations): a re-login of the same account is free.
const DerivedKeys& derived_keys(Mechanism m, const std::string& password, const std::string& salt,
                                int iterations) {
  static std::mutex mutex;
  static std::map<std::tuple<int, std::string, std::string, int>, DerivedKeys> cache;
  auto key = std::make_tuple(static_cast<int>(m), password, salt, iterations);
  {
    std::lock_guard lock(mutex);
    if (auto it = cache.find(key); it != cache.end()) return it->second;
  }
  const EVP_MD* md = digest(m);
  unsigned char salted[EVP_MAX_MD_SIZE];
  int size = EVP_MD_get_size(md);
  PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                    reinterpret_cast<const unsigned char*>(salt.data()),
                    static_cast<int>(salt.size()), iterations, md, size, salted);
  std::string sp(reinterpret_cast<char*>(salted), size);
  DerivedKeys keys;
  keys.client_key = hmac(md, sp, "Client Key");
  keys.stored_key = hash(md, keys.client_key);
  keys.server_key = hmac(md, sp, "Server Key");
  std::lock_guard lock(mutex);
  return cache.emplace(std::move(key), std::move(keys)).first->second;  // std::map: stable refs
}

std::string_view attribute(std::string_view message, char name) {
  std::size_t pos = 0;
  while (pos < message.size()) {
    std::size_t end = message.find(',', pos);
    if (end == std::string_view::npos) end = message.size();
    std::string_view part = message.substr(pos, end - pos);
    if (part.size() >= 2 && part[0] == name && part[1] == '=') return part.substr(2);
    pos = end + 1;
  }
  return {};
}

std::string sasl_name(std::string_view user) {
  std::string out;
  for (char c : user) {
    if (c == ',')
      out += "=2C";
    else if (c == '=')
      out += "=3D";
    else
      out += c;
  }
  return out;
}

}  // namespace

std::string base64_encode(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  out.resize(n);
  return out;
}

std::optional<std::string> base64_decode(std::string_view in) {
  std::string clean;
  for (char c : in)
    if (c != '\n' && c != '\r' && c != ' ' && c != '\t') clean += c;
  if (clean.empty() || clean == "=") return std::string();
  if (clean.size() % 4 != 0) return std::nullopt;
  std::string out(3 * clean.size() / 4, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(clean.data()),
                          static_cast<int>(clean.size()));
  if (n < 0) return std::nullopt;
  std::size_t pad = 0;
  if (clean.ends_with("=="))
    pad = 2;
  else if (clean.ends_with("="))
    pad = 1;
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

std::optional<Mechanism> parse_mechanism(std::string_view name) {
  if (name == "SCRAM-SHA-1") return Mechanism::scram_sha1;
  if (name == "SCRAM-SHA-256") return Mechanism::scram_sha256;
  if (name == "PLAIN") return Mechanism::plain;
  return std::nullopt;
}

std::string_view mechanism_name(Mechanism m) {
  switch (m) {
    case Mechanism::scram_sha1:
      return "SCRAM-SHA-1";
    case Mechanism::scram_sha256:
      return "SCRAM-SHA-256";
    case Mechanism::plain:
      return "PLAIN";
  }
  return "?";
}

ScramClient::ScramClient(Mechanism m, std::string user, std::string password)
    : mech_(m), user_(std::move(user)), password_(std::move(password)) {
  unsigned char raw[18];
  RAND_bytes(raw, sizeof raw);
  client_nonce_ = base64_encode(std::string_view(reinterpret_cast<char*>(raw), sizeof raw));
}

std::string ScramClient::initial_response() {
  client_first_bare_ = "n=" + sasl_name(user_) + ",r=" + client_nonce_;
  return base64_encode("n,," + client_first_bare_);
}

std::optional<std::string> ScramClient::respond(std::string_view challenge_b64) {
  auto server_first = base64_decode(challenge_b64);
  if (!server_first) return std::nullopt;
  std::string_view nonce = attribute(*server_first, 'r');
  auto salt = base64_decode(attribute(*server_first, 's'));
  std::string iterations_text(attribute(*server_first, 'i'));
  if (nonce.substr(0, client_nonce_.size()) != client_nonce_ || !salt || iterations_text.empty())
    return std::nullopt;
  int iterations = std::atoi(iterations_text.c_str());
  if (iterations <= 0) return std::nullopt;

  const DerivedKeys& keys = derived_keys(mech_, password_, *salt, iterations);
  const EVP_MD* md = digest(mech_);
  std::string without_proof = "c=biws,r=" + std::string(nonce);
  std::string auth_message = client_first_bare_ + "," + *server_first + "," + without_proof;
  std::string signature = hmac(md, keys.stored_key, auth_message);
  std::string proof = keys.client_key;
  for (std::size_t i = 0; i < proof.size(); ++i) proof[i] ^= signature[i];
  expected_server_signature_ = hmac(md, keys.server_key, auth_message);
  return base64_encode(without_proof + ",p=" + base64_encode(proof));
}

bool ScramClient::verify_success(std::string_view success_b64) const {
  auto data = base64_decode(success_b64);
  if (!data) return false;
  auto v = base64_decode(attribute(*data, 'v'));
  return v && *v == expected_server_signature_;
}

std::string plain_initial_response(std::string_view user, std::string_view password) {
  std::string msg;
  msg += '\0';
  msg += user;
  msg += '\0';
  msg += password;
  return base64_encode(msg);
}

}  // namespace stanzad::bench
