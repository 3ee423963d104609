// The TLS 1.3 record layer after the handshake: RFC 8446 §5 (records, inner plaintext and
// padding, per-record nonce), §4.6.3 (KeyUpdate), §6 (alerts), §7.1-7.3 (HKDF-Expand-Label,
// traffic key updates, traffic keys). Primitives are OpenSSL's (EVP AEAD, EVP_KDF HKDF).
#include "net/tls13_records.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include <algorithm>
#include <cstring>
#include <limits>

namespace stanzad::net {

namespace {

constexpr std::uint8_t type_alert = 21;
constexpr std::uint8_t type_handshake = 22;
constexpr std::uint8_t type_application_data = 23;
constexpr std::uint8_t handshake_key_update = 24;
constexpr std::uint8_t alert_level_warning = 1;
constexpr std::uint8_t alert_level_fatal = 2;

struct Suite {
  const char* cipher;
  const char* digest;
  std::size_t key_size;
  std::size_t hash_size;
};

const Suite& suite(Tls13Cipher c) {
  static const Suite suites[] = {
      {"AES-128-GCM", "SHA256", 16, 32},
      {"AES-256-GCM", "SHA384", 32, 48},
      {"ChaCha20-Poly1305", "SHA256", 32, 32},
  };
  return suites[static_cast<int>(c)];
}

// Fetched once: an implicit fetch per context would look the algorithm up every time.
const EVP_CIPHER* fetched_cipher(Tls13Cipher c) {
  static EVP_CIPHER* ciphers[] = {
      EVP_CIPHER_fetch(nullptr, suite(Tls13Cipher::aes_128_gcm_sha256).cipher, nullptr),
      EVP_CIPHER_fetch(nullptr, suite(Tls13Cipher::aes_256_gcm_sha384).cipher, nullptr),
      EVP_CIPHER_fetch(nullptr, suite(Tls13Cipher::chacha20_poly1305_sha256).cipher, nullptr),
  };
  return ciphers[static_cast<int>(c)];
}

// RFC 8446 §7.1: HKDF-Expand-Label(Secret, Label, "", Length), the HkdfLabel built here and
// HKDF-Expand done by OpenSSL.
bool expand_label(const char* digest, std::span<const std::uint8_t> secret, std::string_view label,
                  std::uint8_t* out, std::size_t length) {
  static EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  constexpr std::string_view prefix = "tls13 ";
  std::uint8_t info[2 + 1 + 255 + 1];
  std::size_t n = 0;
  if (!kdf || label.size() + prefix.size() > 255) return false;
  info[n++] = static_cast<std::uint8_t>(length >> 8);
  info[n++] = static_cast<std::uint8_t>(length);
  info[n++] = static_cast<std::uint8_t>(prefix.size() + label.size());
  std::memcpy(info + n, prefix.data(), prefix.size());
  n += prefix.size();
  std::memcpy(info + n, label.data(), label.size());
  n += label.size();
  info[n++] = 0;  // empty context
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
  if (!ctx) return false;
  int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>(digest), 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
                                        const_cast<std::uint8_t*>(secret.data()), secret.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, n),
      OSSL_PARAM_construct_end(),
  };
  bool ok = EVP_KDF_derive(ctx, out, length, params) == 1;
  EVP_KDF_CTX_free(ctx);
  return ok;
}

std::size_t record_length(const char* header) {
  return (std::size_t{static_cast<std::uint8_t>(header[3])} << 8) |
         static_cast<std::uint8_t>(header[4]);
}

// §5.1/§5.2: after the handshake every record is protected, so its outer type is
// application_data (a change_cipher_spec is only dropped before the peer's Finished), and it
// carries at most 2^14 + 256 bytes. legacy_record_version is ignored.
std::optional<Alert> check_header(const char* header) {
  if (static_cast<std::uint8_t>(header[0]) != type_application_data)
    return Alert::unexpected_message;
  if (record_length(header) > Tls13Records::max_ciphertext) return Alert::record_overflow;
  return std::nullopt;
}

// The application traffic secrets of one connection, kept by the keylog callback until the
// session takes the connection over (or the SSL is freed).
struct Captured {
  std::array<std::uint8_t, Tls13Records::max_secret> client{}, server{};
  std::size_t client_size = 0, server_size = 0;
};

void free_captured(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  if (!ptr) return;
  OPENSSL_cleanse(ptr, sizeof(Captured));
  delete static_cast<Captured*>(ptr);
}

int captured_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, free_captured);
  return index;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "LABEL <client random, hex> <secret, hex>" (the NSS key log format OpenSSL writes).
void on_keylog(const SSL* ssl, const char* line) {
  std::string_view l(line);
  bool client = l.starts_with("CLIENT_TRAFFIC_SECRET_0 ");
  bool server = l.starts_with("SERVER_TRAFFIC_SECRET_0 ");
  if (!client && !server) return;
  auto space = l.rfind(' ');
  std::string_view hex = l.substr(space + 1);
  if (hex.size() % 2 != 0 || hex.size() / 2 > Tls13Records::max_secret) return;
  auto* s = const_cast<SSL*>(ssl);
  auto* c = static_cast<Captured*>(SSL_get_ex_data(s, captured_index()));
  if (!c) {
    c = new Captured;
    if (SSL_set_ex_data(s, captured_index(), c) != 1) {
      delete c;
      return;
    }
  }
  auto& out = client ? c->client : c->server;
  std::size_t n = hex.size() / 2;
  for (std::size_t i = 0; i < n; ++i) {
    int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return;
    out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  (client ? c->client_size : c->server_size) = n;
}

}  // namespace

std::string_view to_string(Alert a) {
  switch (a) {
    case Alert::close_notify:
      return "close_notify";
    case Alert::unexpected_message:
      return "unexpected_message";
    case Alert::bad_record_mac:
      return "bad_record_mac";
    case Alert::record_overflow:
      return "record_overflow";
    case Alert::illegal_parameter:
      return "illegal_parameter";
    case Alert::decode_error:
      return "decode_error";
    case Alert::internal_error:
      return "internal_error";
    case Alert::user_canceled:
      return "user_canceled";
  }
  return "unknown";
}

void Tls13Records::capture_secrets(SSL_CTX* ctx) {
  captured_index();
  SSL_CTX_set_keylog_callback(ctx, on_keylog);
  SSL_CTX_set_num_tickets(ctx, 0);
}

std::unique_ptr<Tls13Records> Tls13Records::take_over(SSL* ssl, std::string_view& why) {
  auto* captured = static_cast<Captured*>(SSL_get_ex_data(ssl, captured_index()));
  if (SSL_version(ssl) != TLS1_3_VERSION) {
    why = "not tls 1.3";
    return nullptr;
  }
  const SSL_CIPHER* c = SSL_get_current_cipher(ssl);
  std::optional<Tls13Cipher> cipher;
  switch (c ? SSL_CIPHER_get_protocol_id(c) : 0) {
    case 0x1301:
      cipher = Tls13Cipher::aes_128_gcm_sha256;
      break;
    case 0x1302:
      cipher = Tls13Cipher::aes_256_gcm_sha384;
      break;
    case 0x1303:
      cipher = Tls13Cipher::chacha20_poly1305_sha256;
      break;
    default:
      why = "cipher suite not supported";
      return nullptr;
  }
  if (!SSL_is_server(ssl) || !SSL_is_init_finished(ssl)) {
    why = "handshake not finished";
    return nullptr;
  }
  // Anything OpenSSL already read, sent or owes after the handshake would desynchronize the
  // sequence numbers: only a connection with nothing in flight is taken.
  if (SSL_has_pending(ssl) || SSL_pending(ssl) > 0) {
    why = "data already buffered";
    return nullptr;
  }
  if (SSL_get_early_data_status(ssl) == SSL_EARLY_DATA_ACCEPTED) {
    why = "early data";
    return nullptr;
  }
  if (SSL_get_num_tickets(ssl) != 0) {
    why = "session tickets on";
    return nullptr;
  }
  if (SSL_get_key_update_type(ssl) != SSL_KEY_UPDATE_NONE) {
    why = "key update pending";
    return nullptr;
  }
  std::size_t hash = suite(*cipher).hash_size;
  if (!captured || captured->client_size != hash || captured->server_size != hash) {
    why = "traffic secrets not captured";
    return nullptr;
  }
  auto records = std::make_unique<Tls13Records>(
      *cipher, std::span<const std::uint8_t>(captured->client.data(), hash),
      std::span<const std::uint8_t>(captured->server.data(), hash));
  // The secrets now live in the record layer only.
  SSL_set_ex_data(ssl, captured_index(), nullptr);
  free_captured(nullptr, captured, nullptr, 0, 0, nullptr);
  if (records->failed_) {
    why = "cannot derive traffic keys";
    return nullptr;
  }
  return records;
}

Tls13Records::Tls13Records(Tls13Cipher cipher, std::span<const std::uint8_t> read_secret,
                           std::span<const std::uint8_t> write_secret)
    : cipher_(cipher) {
  if (!set_secret(read_, read_secret) || !set_secret(write_, write_secret)) {
    failed_ = true;
    alert_ = Alert::internal_error;
  }
}

Tls13Records::~Tls13Records() {
  release();
  OPENSSL_cleanse(read_.secret.data(), read_.secret.size());
  OPENSSL_cleanse(write_.secret.data(), write_.secret.size());
  OPENSSL_cleanse(read_.iv.data(), read_.iv.size());
  OPENSSL_cleanse(write_.iv.data(), write_.iv.size());
}

std::size_t Tls13Records::hash_size() const { return suite(cipher_).hash_size; }
std::size_t Tls13Records::key_size() const { return suite(cipher_).key_size; }

bool Tls13Records::set_secret(Direction& d, std::span<const std::uint8_t> secret) {
  if (secret.size() != hash_size()) return false;
  std::memcpy(d.secret.data(), secret.data(), secret.size());
  EVP_CIPHER_CTX_free(d.ctx);  // keyed with the previous secret
  d.ctx = nullptr;
  d.seq = 0;
  // §7.3: the iv is needed for every record; the key only while a context is built.
  return expand_label(suite(cipher_).digest, secret, "iv", d.iv.data(), d.iv.size());
}

bool Tls13Records::next_secret(Direction& d) {
  // §7.2: application_traffic_secret_N+1 = HKDF-Expand-Label(secret_N, "traffic upd", "",
  // Hash.length)
  std::array<std::uint8_t, max_secret> next{};
  std::size_t n = hash_size();
  bool ok = expand_label(suite(cipher_).digest, std::span(d.secret.data(), n), "traffic upd",
                         next.data(), n) &&
            set_secret(d, std::span<const std::uint8_t>(next.data(), n));
  OPENSSL_cleanse(next.data(), next.size());
  return ok;
}

bool Tls13Records::ensure_context(Direction& d, bool encrypt) {
  if (d.ctx) return true;
  std::array<std::uint8_t, 32> key{};
  bool ok = expand_label(suite(cipher_).digest, std::span(d.secret.data(), hash_size()), "key",
                         key.data(), key_size());
  if (ok) {
    d.ctx = EVP_CIPHER_CTX_new();
    ok = d.ctx && EVP_CipherInit_ex2(d.ctx, fetched_cipher(cipher_), key.data(), nullptr,
                                     encrypt ? 1 : 0, nullptr) == 1;
  }
  OPENSSL_cleanse(key.data(), key.size());
  if (!ok) {
    EVP_CIPHER_CTX_free(d.ctx);
    d.ctx = nullptr;
  }
  return ok;
}

bool Tls13Records::nonce(Direction& d, std::uint8_t out[12]) {
  // §5.3: the 64-bit sequence number, big-endian and left-padded to the iv length, XOR the iv.
  std::memcpy(out, d.iv.data(), 12);
  for (int i = 0; i < 8; ++i) out[11 - i] ^= static_cast<std::uint8_t>(d.seq >> (8 * i));
  return true;
}

void Tls13Records::release() {
  EVP_CIPHER_CTX_free(read_.ctx);
  EVP_CIPHER_CTX_free(write_.ctx);
  read_.ctx = write_.ctx = nullptr;
  if (partial_.empty()) std::string().swap(partial_);
}

Tls13Records::Status Tls13Records::fail(Alert a) {
  if (!failed_) {
    failed_ = true;
    alert_ = a;
  }
  return Status::failed;
}

Tls13Records::Status Tls13Records::open(std::span<char> input, Sink sink, void* user) {
  if (failed_) return Status::failed;
  if (closed_) return Status::closed;
  stop_ = false;
  std::size_t pos = 0;
  if (!partial_.empty()) {
    // Complete the record an earlier input began: at most one record is ever copied.
    for (;;) {
      std::size_t want = header_size;
      if (partial_.size() >= header_size) {
        if (auto a = check_header(partial_.data())) return fail(*a);
        want += record_length(partial_.data());
        if (partial_.size() == want) break;
      }
      std::size_t take = std::min(want - partial_.size(), input.size() - pos);
      if (take == 0) return Status::ok;
      partial_.append(input.data() + pos, take);
      pos += take;
    }
    Status s = record(partial_.data(), partial_.size(), sink, user);
    partial_.clear();
    if (s != Status::ok || stop_) return s;
  }
  while (input.size() - pos >= header_size) {
    char* rec = input.data() + pos;
    if (auto a = check_header(rec)) return fail(*a);
    std::size_t size = header_size + record_length(rec);
    if (input.size() - pos < size) break;
    pos += size;
    Status s = record(rec, size, sink, user);
    if (s != Status::ok || stop_) return s;
  }
  partial_.assign(input.data() + pos, input.size() - pos);
  return Status::ok;
}

Tls13Records::Status Tls13Records::record(char* rec, std::size_t size, Sink sink, void* user) {
  auto* header = reinterpret_cast<std::uint8_t*>(rec);
  std::uint8_t* body = header + header_size;
  std::size_t body_size = size - header_size;
  // §5.2: no AEAD output is shorter than its tag; §5.4: TLSInnerPlaintext is at most 2^14 + 1.
  if (body_size < tag_size) return fail(Alert::bad_record_mac);
  std::size_t inner_size = body_size - tag_size;
  if (inner_size > max_plaintext + 1) return fail(Alert::record_overflow);
  // §5.3: a sequence number never wraps (the peer must update its key first).
  if (read_.seq == std::numeric_limits<std::uint64_t>::max()) return fail(Alert::internal_error);
  if (!ensure_context(read_, false)) return fail(Alert::internal_error);

  std::uint8_t iv[12];
  nonce(read_, iv);
  int n = 0;
  EVP_CIPHER_CTX* ctx = read_.ctx;
  if (EVP_CipherInit_ex2(ctx, nullptr, nullptr, iv, 0, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(tag_size),
                          body + inner_size) != 1 ||
      EVP_DecryptUpdate(ctx, nullptr, &n, header, static_cast<int>(header_size)) != 1)
    return fail(Alert::internal_error);
  int out = 0;
  if (inner_size > 0 && EVP_DecryptUpdate(ctx, body, &out, body, static_cast<int>(inner_size)) != 1)
    return fail(Alert::bad_record_mac);
  int last = 0;
  if (EVP_DecryptFinal_ex(ctx, body + out, &last) != 1) return fail(Alert::bad_record_mac);
  ++read_.seq;

  // §5.4: the content type is the last non-zero byte; what follows it is padding.
  std::size_t end = inner_size;
  while (end > 0 && body[end - 1] == 0) --end;
  if (end == 0) return fail(Alert::unexpected_message);
  std::uint8_t type = body[end - 1];
  const char* content = reinterpret_cast<const char*>(body);
  std::size_t content_size = end - 1;

  switch (type) {
    case type_application_data:
      // §5.1: a handshake message split over records is not interleaved with other types.
      if (handshake_len_ != 0) return fail(Alert::unexpected_message);
      if (content_size > 0 && !sink(user, std::string_view(content, content_size))) stop_ = true;
      return Status::ok;
    case type_alert: {
      if (handshake_len_ != 0) return fail(Alert::unexpected_message);
      // §5.1: one alert per record, never fragmented.
      if (content_size != 2) return fail(Alert::decode_error);
      auto description = static_cast<Alert>(content[1]);
      if (description == Alert::close_notify) {
        closed_ = true;  // §6.1: anything after it is ignored
        return Status::closed;
      }
      // §6.1: user_canceled is followed by close_notify; every other alert ends the
      // connection, and nothing is sent back.
      if (description == Alert::user_canceled) return Status::ok;
      peer_alert_ = description;
      failed_ = true;
      alert_.reset();
      return Status::failed;
    }
    case type_handshake:
      // §5.1: no zero-length handshake fragments.
      if (content_size == 0) return fail(Alert::unexpected_message);
      return handshake(content, content_size);
    default:
      return fail(Alert::unexpected_message);
  }
}

Tls13Records::Status Tls13Records::handshake(const char* data, std::size_t size) {
  // After the handshake a client may send only KeyUpdate (§4.6.3): we never ask for
  // post-handshake authentication, and tickets go the other way. Anything else is refused.
  for (std::size_t i = 0; i < size; ++i) {
    auto byte = static_cast<std::uint8_t>(data[i]);
    if (handshake_len_ == 0 && byte != handshake_key_update) return fail(Alert::unexpected_message);
    handshake_[handshake_len_++] = byte;
    if (handshake_len_ == 4) {
      std::uint32_t length =
          std::uint32_t{handshake_[1]} << 16 | std::uint32_t{handshake_[2]} << 8 | handshake_[3];
      if (length != 1) return fail(Alert::decode_error);
    } else if (handshake_len_ == 5) {
      std::uint8_t request = handshake_[4];
      // §4.6.3: update_not_requested(0), update_requested(1); anything else is illegal.
      if (request > 1) return fail(Alert::illegal_parameter);
      // §5.1: a message before a key change ends its record.
      if (i + 1 != size) return fail(Alert::unexpected_message);
      handshake_len_ = 0;
      if (!next_secret(read_)) return fail(Alert::internal_error);
      // §4.6.3: answered with one KeyUpdate of ours before our next application data, however
      // many requests came while we were silent.
      if (request == 1) {
        send_key_update_ = true;
        request_update_ = false;
      }
    }
  }
  return Status::ok;
}

bool Tls13Records::seal_record(std::uint8_t type, std::string_view content, std::size_t padding,
                               std::string& out) {
  if (!ensure_context(write_, true)) {
    fail(Alert::internal_error);
    return false;
  }
  std::size_t inner = content.size() + 1 + padding;
  std::size_t body = inner + tag_size;
  std::size_t old = out.size();
  out.resize(old + header_size + body);
  auto* p = reinterpret_cast<std::uint8_t*>(out.data() + old);
  p[0] = type_application_data;
  p[1] = 3;  // legacy_record_version 0x0303
  p[2] = 3;
  p[3] = static_cast<std::uint8_t>(body >> 8);
  p[4] = static_cast<std::uint8_t>(body);
  std::uint8_t* b = p + header_size;
  if (!content.empty()) std::memcpy(b, content.data(), content.size());
  b[content.size()] = type;
  std::memset(b + content.size() + 1, 0, padding);

  std::uint8_t iv[12];
  nonce(write_, iv);
  int n = 0, last = 0;
  EVP_CIPHER_CTX* ctx = write_.ctx;
  bool ok =
      EVP_CipherInit_ex2(ctx, nullptr, nullptr, iv, 1, nullptr) == 1 &&
      EVP_EncryptUpdate(ctx, nullptr, &n, p, static_cast<int>(header_size)) == 1 &&
      EVP_EncryptUpdate(ctx, b, &n, b, static_cast<int>(inner)) == 1 &&
      EVP_EncryptFinal_ex(ctx, b + n, &last) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, static_cast<int>(tag_size), b + inner) == 1;
  if (!ok) {
    out.resize(old);
    fail(Alert::internal_error);
    return false;
  }
  ++write_.seq;
  return true;
}

bool Tls13Records::seal(std::string_view plaintext, std::string& out) {
  if (failed_ || close_sent_) return false;
  std::size_t records = (plaintext.size() + max_plaintext - 1) / max_plaintext;
  out.reserve(out.size() + plaintext.size() + (records + 1) * (header_size + 1 + tag_size) + 5);
  for (;;) {
    if (write_.seq >= records_per_key) send_key_update_ = true;
    if (send_key_update_) {
      const char message[] = {static_cast<char>(handshake_key_update), 0, 0, 1,
                              static_cast<char>(request_update_ ? 1 : 0)};
      if (!seal_record(type_handshake, std::string_view(message, sizeof message), 0, out))
        return false;
      send_key_update_ = request_update_ = false;
      // §4.6.3: our next record uses the next secret.
      if (!next_secret(write_)) {
        fail(Alert::internal_error);
        return false;
      }
    }
    if (plaintext.empty()) return true;
    std::size_t n = std::min(plaintext.size(), max_plaintext);
    if (!seal_record(type_application_data, plaintext.substr(0, n), 0, out)) return false;
    plaintext.remove_prefix(n);
  }
}

std::string Tls13Records::close_records() {
  std::string out;
  if (close_sent_) return out;
  close_sent_ = true;
  if (failed_ && !alert_) return out;  // the peer's fatal alert ended it
  Alert a = failed_ ? *alert_ : Alert::close_notify;
  const char alert[] = {
      static_cast<char>(a == Alert::close_notify ? alert_level_warning : alert_level_fatal),
      static_cast<char>(a)};
  // A failure to seal here leaves nothing to send: the connection closes either way.
  seal_record(type_alert, std::string_view(alert, sizeof alert), 0, out);
  return out;
}

}  // namespace stanzad::net
