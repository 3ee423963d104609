// The TLS 1.3 record layer after the handshake (RFC 8446 §5, §4.6.3 KeyUpdate, §6 alerts,
// §7.1-7.3 traffic keys), run by stanzad itself so that an idle connection keeps its traffic
// secrets and sequence numbers (~200 bytes) instead of OpenSSL's SSL object (~12 KiB).
// OpenSSL still does the handshake and every cryptographic primitive (EVP AEAD, HKDF).
#pragma once

#include <openssl/ssl.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;

namespace stanzad::net {

// RFC 8446 §6 AlertDescription values the record layer sends or recognizes.
enum class Alert : std::uint8_t {
  close_notify = 0,
  unexpected_message = 10,
  bad_record_mac = 20,
  record_overflow = 22,
  illegal_parameter = 47,
  decode_error = 50,
  internal_error = 80,
  user_canceled = 90,
};
std::string_view to_string(Alert a);

// The three TLS 1.3 cipher suites of RFC 8446 §9.1 that stanzad's own record layer runs.
enum class Tls13Cipher : std::uint8_t {
  aes_128_gcm_sha256,        // 0x1301
  aes_256_gcm_sha384,        // 0x1302
  chacha20_poly1305_sha256,  // 0x1303
};

class Tls13Records {
 public:
  static constexpr std::size_t max_plaintext = 1 << 14;           // §5.1
  static constexpr std::size_t max_ciphertext = (1 << 14) + 256;  // §5.2
  static constexpr std::size_t header_size = 5;
  static constexpr std::size_t tag_size = 16;
  static constexpr std::size_t max_secret = 48;  // SHA-384

  // `read_secret` protects what the peer sends, `write_secret` what we send; both are
  // application_traffic_secret_N of the suite's hash length. Sequence numbers start at 0.
  Tls13Records(Tls13Cipher cipher, std::span<const std::uint8_t> read_secret,
               std::span<const std::uint8_t> write_secret);
  ~Tls13Records();
  Tls13Records(const Tls13Records&) = delete;
  Tls13Records& operator=(const Tls13Records&) = delete;

  // Takes over a server connection whose handshake just completed: TLS 1.3, one of the
  // three suites, both traffic secrets captured by the callback capture_secrets() installs,
  // nothing buffered, no early data, nothing sent with the application keys yet (the context
  // must send no session tickets). Returns null, with `why` set, when any of that does not
  // hold: the caller keeps using OpenSSL. The SSL may be freed afterwards.
  static std::unique_ptr<Tls13Records> take_over(SSL* ssl, std::string_view& why);

  // Installs, on a server context, the keylog callback that keeps each connection's
  // application traffic secrets (in the SSL's ex_data, freed and wiped with it), and turns
  // session tickets off (a ticket would be sent with the application keys after the handshake
  // and advance the write sequence behind our back).
  static void capture_secrets(SSL_CTX* ctx);

  enum class Status {
    ok,      // everything complete in the input was processed; the rest is kept
    closed,  // the peer sent close_notify: answer with close_records() and close
    failed,  // fatal: close_records() holds the alert to send (if any), then close
  };
  // Called with each application-data record's plaintext; returns false to stop (the
  // connection is going away): the remaining input is dropped.
  using Sink = bool (*)(void* user, std::string_view plaintext);

  // Decrypts the records in `input`, in place (the buffer is overwritten), passing the
  // application data to `sink`. An unfinished record at the end is copied and completed by
  // the next call. After closed or failed, nothing more is accepted.
  Status open(std::span<char> input, Sink sink, void* user);

  // Appends `plaintext` to `out` as application-data records of at most 2^14 bytes each
  // (a KeyUpdate of ours first, when one is owed). `plaintext` may be empty (only what is
  // owed is written). Returns false after a failure (nothing is appended).
  bool seal(std::string_view plaintext, std::string& out);

  // Once, when the connection closes: the failure's alert, or close_notify. Empty when
  // nothing may be sent (the peer's fatal alert, or already sent).
  std::string close_records();

  // True when a KeyUpdate of ours is owed (the peer asked): seal("") writes it.
  bool write_owed() const { return send_key_update_; }
  // The alert a failure sent or will send; for logs and tests.
  std::optional<Alert> failure() const { return failed_ ? alert_ : std::nullopt; }
  // The peer's alert that ended the connection, if that is how it ended.
  std::optional<Alert> peer_alert() const { return peer_alert_; }

  // Frees the cipher contexts and an empty partial-record buffer; the next record rebuilds
  // them from the secrets. For idle connections.
  void release();
  bool holds_contexts() const { return read_.ctx || write_.ctx; }

  // Starts our own KeyUpdate before the next record (RFC 8446 §4.6.3); `request_update` asks
  // the peer to update its key too (only tests and the fuzz target play that peer).
  void update_write_key(bool request_update = false) {
    send_key_update_ = true;
    request_update_ = request_update;
  }
  // After this many records under one key we update it ourselves: far below AES-GCM's
  // 2^24.5 full-size records (RFC 8446 §5.5), and the write sequence never wraps.
  static constexpr std::uint64_t records_per_key = std::uint64_t{1} << 23;

  // Tests and fuzzing: seals one record of inner content type `type` with `padding` zero
  // bytes, as a peer could, without any check of what it holds.
  bool seal_raw_for_test(std::uint8_t type, std::string_view content, std::size_t padding,
                         std::string& out) {
    return seal_record(type, content, padding, out);
  }

  // Tests: sequence numbers as if that many records had gone each way.
  void set_sequences_for_test(std::uint64_t read, std::uint64_t write) {
    read_.seq = read;
    write_.seq = write;
  }
  std::uint64_t read_sequence() const { return read_.seq; }
  std::uint64_t write_sequence() const { return write_.seq; }

 private:
  struct Direction {
    std::array<std::uint8_t, max_secret> secret{};
    std::array<std::uint8_t, 12> iv{};
    std::uint64_t seq = 0;
    EVP_CIPHER_CTX* ctx = nullptr;
  };
  bool set_secret(Direction& d, std::span<const std::uint8_t> secret);  // derives the iv
  bool ensure_context(Direction& d, bool encrypt);
  bool next_secret(Direction& d);  // §7.2: application_traffic_secret_N+1
  bool nonce(Direction& d, std::uint8_t out[12]);
  bool seal_record(std::uint8_t type, std::string_view content, std::size_t padding,
                   std::string& out);
  Status record(char* rec, std::size_t size, Sink sink, void* user);
  Status handshake(const char* data, std::size_t size);
  Status fail(Alert a);
  std::size_t hash_size() const;
  std::size_t key_size() const;

  Direction read_, write_;
  std::string partial_;  // an unfinished record from the previous input
  Tls13Cipher cipher_;
  std::optional<Alert> alert_;  // to send after a failure (none: the peer's fatal alert)
  std::optional<Alert> peer_alert_;
  bool failed_ = false;
  bool stop_ = false;        // the sink asked to stop
  bool closed_ = false;      // close_notify received
  bool close_sent_ = false;  // close_records() was called
  bool send_key_update_ = false;
  bool request_update_ = false;
  std::uint8_t handshake_len_ = 0;  // bytes of a handshake message split over records
  std::array<std::uint8_t, 5> handshake_{};
};

}  // namespace stanzad::net
