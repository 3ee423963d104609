// net::Tls13Records: RFC 8448 §3 known answers, RFC 8446 §5 record rules, §4.6.3 KeyUpdate,
// §6 alerts, and the hand-off from a real OpenSSL handshake (memory BIOs) to the record layer.
#include "net/tls13_records.hpp"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <filesystem>
#include <string>
#include <vector>

#include "net/tls.hpp"

namespace stanzad::net {
namespace {

std::string unhex(std::string_view text) {
  std::string out;
  int hi = -1;
  for (char c : text) {
    int v = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
    if (v < 0) continue;
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(static_cast<char>(hi << 4 | v));
      hi = -1;
    }
  }
  return out;
}

std::span<const std::uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// RFC 8448 §3 (Simple 1-RTT Handshake, TLS_AES_128_GCM_SHA256).
const std::string client_secret = unhex(
    "9e 40 64 6c e7 9a 7f 9d c0 5a f8 88 9b ce 65 52 87 5a fa 0b 06 df 00 87 f7 92 eb b7 "
    "c1 75 04 a5");
const std::string server_secret = unhex(
    "a1 1a f9 f0 55 31 f8 56 ad 47 11 6b 45 a9 50 32 82 04 b4 f4 4b fb 6b 3a 4b 4f 1f 3f "
    "cb 63 16 43");
// {server} NewSessionTicket, the first record under the server's application key.
const std::string server_ticket_record = unhex(
    "17 03 03 00 de 3a 6b 8f 90 41 4a 97 d6 95 9c 34 87 68 0d e5 13 4a 2b 24 0e 6c ff ac 11 6e "
    "95 d4 1d 6a f8 f6 b5 80 dc f3 d1 1d 63 c7 58 db 28 9a 01 59 40 25 2f 55 71 3e 06 1d c1 3e "
    "07 88 91 a3 8e fb cf 57 53 ad 8e f1 70 ad 3c 73 53 d1 6d 9d a7 73 b9 ca 7f 2b 9f a1 b6 c0 "
    "d4 a3 d0 3f 75 e0 9c 30 ba 1e 62 97 2a c4 6f 75 f7 b9 81 be 63 43 9b 29 99 ce 13 06 46 15 "
    "13 98 91 d5 e4 c5 b4 06 f1 6e 3f c1 81 a7 7c a4 75 84 00 25 db 2f 0a 77 f8 1b 5a b0 5b 94 "
    "c0 13 46 75 5f 69 23 2c 86 51 9d 86 cb ee ac 87 aa c3 47 d1 43 f9 60 5d 64 f6 50 db 4d 02 "
    "3e 70 e9 52 ca 49 fe 51 37 12 1c 74 bc 26 97 68 7e 24 87 46 d6 df 35 30 05 f3 bc e1 86 96 "
    "12 9c 81 53 55 6b 3b 6c 67 79 b3 7b f1 59 85 68 4f");
const std::string client_app_record = unhex(
    "17 03 03 00 43 a2 3f 70 54 b6 2c 94 d0 af fa fe 82 28 ba 55 cb ef ac ea 42 f9 14 aa 66 bc "
    "ab 3f 2b 98 19 a8 a5 b4 6b 39 5b d5 4a 9a 20 44 1e 2b 62 97 4e 1f 5a 62 92 a2 97 70 14 bd "
    "1e 3d ea e6 3a ee bb 21 69 49 15 e4");
const std::string server_app_record = unhex(
    "17 03 03 00 43 2e 93 7e 11 ef 4a c7 40 e5 38 ad 36 00 5f c4 a4 69 32 fc 32 25 d0 5f 82 aa "
    "1b 36 e3 0e fa f9 7d 90 e6 df fc 60 2d cb 50 1a 59 a8 fc c4 9c 4b f2 e5 f0 a2 1c 00 47 c2 "
    "ab f3 32 54 0d d0 32 e1 67 c2 95 5d");
const std::string client_alert_record =
    unhex("17 03 03 00 13 c9 87 27 60 65 56 66 b7 4d 7f f1 15 3e fd 6d b6 d0 b0 e3");
const std::string server_alert_record =
    unhex("17 03 03 00 13 b5 8f d6 71 66 eb f5 99 d2 47 20 cf be 7e fa 7a 88 64 a9");

std::string payload() {
  std::string p;
  for (int i = 0; i < 50; ++i) p.push_back(static_cast<char>(i));
  return p;
}

// The server's side (reads what the client sends) and, for tests, the client's.
std::unique_ptr<Tls13Records> rfc_server() {
  return std::make_unique<Tls13Records>(Tls13Cipher::aes_128_gcm_sha256, bytes(client_secret),
                                        bytes(server_secret));
}
std::unique_ptr<Tls13Records> rfc_client() {
  return std::make_unique<Tls13Records>(Tls13Cipher::aes_128_gcm_sha256, bytes(server_secret),
                                        bytes(client_secret));
}

struct Received {
  std::string data;
  bool stop_after_first = false;
  static bool sink(void* self, std::string_view plaintext) {
    auto* r = static_cast<Received*>(self);
    r->data.append(plaintext);
    return !r->stop_after_first;
  }
};

Tls13Records::Status feed(Tls13Records& r, std::string input, Received& got) {
  return r.open(std::span<char>(input.data(), input.size()), &Received::sink, &got);
}

TEST(Tls13Records, Rfc8448ClientApplicationDataDecrypts) {
  auto server = rfc_server();
  Received got;
  EXPECT_EQ(feed(*server, client_app_record, got), Tls13Records::Status::ok);
  EXPECT_EQ(got.data, payload());
  EXPECT_EQ(server->read_sequence(), 1u);
}

TEST(Tls13Records, Rfc8448ServerApplicationDataEncrypts) {
  auto server = rfc_server();
  server->set_sequences_for_test(0, 1);  // the NewSessionTicket went first in the trace
  std::string out;
  ASSERT_TRUE(server->seal(payload(), out));
  EXPECT_EQ(out, server_app_record);
}

TEST(Tls13Records, Rfc8448ClientRecordsEncryptTheSame) {
  auto client = rfc_client();
  std::string out;
  ASSERT_TRUE(client->seal(payload(), out));
  EXPECT_EQ(out, client_app_record);
  EXPECT_EQ(client->close_records(), client_alert_record);
}

TEST(Tls13Records, Rfc8448CloseNotifyIsAnsweredWithCloseNotify) {
  auto server = rfc_server();
  Received got;
  EXPECT_EQ(feed(*server, client_app_record + client_alert_record, got),
            Tls13Records::Status::closed);
  EXPECT_EQ(got.data, payload());
  server->set_sequences_for_test(2, 2);
  EXPECT_EQ(server->close_records(), server_alert_record);
  EXPECT_EQ(server->close_records(), "");  // once
  std::string out;
  EXPECT_FALSE(server->seal("late", out));
  // Anything after close_notify is ignored.
  EXPECT_EQ(feed(*server, client_app_record, got), Tls13Records::Status::closed);
}

TEST(Tls13Records, Rfc8448NewSessionTicketIsRefusedAfterTheHandshake) {
  // The trace's ticket is a real post-handshake message other than KeyUpdate: a client-side
  // reader of ours refuses it (our server never receives one; the rule is the same).
  auto client = rfc_client();
  Received got;
  EXPECT_EQ(feed(*client, server_ticket_record, got), Tls13Records::Status::failed);
  EXPECT_EQ(client->failure(), Alert::unexpected_message);
  EXPECT_EQ(client->read_sequence(), 1u);  // it decrypted: the refusal is about its content
}

TEST(Tls13Records, RecordsSplitAtEveryByteDecryptTheSame) {
  auto client = rfc_client();
  std::string stream;
  ASSERT_TRUE(client->seal(payload(), stream));
  ASSERT_EQ(stream, client_app_record);
  ASSERT_TRUE(client->seal("second record", stream));
  stream += client->close_records();
  for (std::size_t split = 0; split <= stream.size(); ++split) {
    for (std::size_t step : {std::size_t{1}, std::size_t{7}, stream.size()}) {
      auto server = rfc_server();
      Received got;
      Tls13Records::Status s = Tls13Records::Status::ok;
      s = feed(*server, stream.substr(0, split), got);
      ASSERT_EQ(s, split == stream.size() ? Tls13Records::Status::closed : Tls13Records::Status::ok)
          << split;
      for (std::size_t at = split; at < stream.size() && s == Tls13Records::Status::ok; at += step)
        s = feed(*server, stream.substr(at, step), got);
      EXPECT_EQ(s, Tls13Records::Status::closed) << "split " << split << " step " << step;
      EXPECT_EQ(got.data, payload() + "second record") << split;
    }
  }
}

TEST(Tls13Records, TamperedRecordsFailWithBadRecordMac) {
  for (std::size_t i = 0; i < client_app_record.size(); ++i) {
    std::string rec = client_app_record;
    rec[i] ^= 0x01;
    auto server = rfc_server();
    Received got;
    if (i == 3) {
      // A longer length: the record is not complete yet, so nothing can be said.
      EXPECT_EQ(feed(*server, rec, got), Tls13Records::Status::ok);
      continue;
    }
    EXPECT_EQ(feed(*server, rec, got), Tls13Records::Status::failed) << i;
    EXPECT_TRUE(got.data.empty());
    // The outer type is checked first; anything else changed fails authentication.
    Alert expected = i == 0 ? Alert::unexpected_message : Alert::bad_record_mac;
    EXPECT_EQ(server->failure(), expected) << i;
    // A failed connection sends its alert, encrypted, once, and accepts nothing more.
    std::string alert = server->close_records();
    EXPECT_EQ(alert.size(), 5u + 2 + 1 + 16);
    auto client = rfc_client();
    Received none;
    EXPECT_EQ(feed(*client, alert, none), Tls13Records::Status::failed);
    EXPECT_EQ(client->peer_alert(), expected);
    EXPECT_EQ(client->close_records(), "");  // nothing answers a fatal alert
  }
  // The same record replayed (a sequence number too far) fails too.
  auto server = rfc_server();
  Received got;
  EXPECT_EQ(feed(*server, client_app_record + client_app_record, got),
            Tls13Records::Status::failed);
  EXPECT_EQ(got.data, payload());
  EXPECT_EQ(server->failure(), Alert::bad_record_mac);
}

TEST(Tls13Records, OversizedRecordsFailWithRecordOverflow) {
  auto server = rfc_server();
  Received got;
  // The header alone is enough: 2^14 + 257 bytes announced.
  EXPECT_EQ(feed(*server, unhex("17 03 03 41 01"), got), Tls13Records::Status::failed);
  EXPECT_EQ(server->failure(), Alert::record_overflow);

  // Within 2^14 + 256 outside, but more than 2^14 + 1 inside (padding counts).
  auto client = rfc_client();
  std::string rec;
  ASSERT_TRUE(client->seal_raw_for_test(23, std::string(16384, 'x'), 1, rec));
  server = rfc_server();
  EXPECT_EQ(feed(*server, rec, got), Tls13Records::Status::failed);
  EXPECT_EQ(server->failure(), Alert::record_overflow);

  // Exactly 2^14 + 1 inside, with padding: accepted.
  client = rfc_client();
  rec.clear();
  ASSERT_TRUE(client->seal_raw_for_test(23, std::string(16000, 'x'), 384, rec));
  server = rfc_server();
  got.data.clear();
  EXPECT_EQ(feed(*server, rec, got), Tls13Records::Status::ok);
  EXPECT_EQ(got.data, std::string(16000, 'x'));
}

TEST(Tls13Records, PaddingIsStrippedAndContentTypesChecked) {
  struct Case {
    std::uint8_t type;
    std::string content;
    std::size_t padding;
    std::optional<Alert> alert;
    std::string data;
  };
  const std::vector<Case> cases = {
      {23, "hello", 100, {}, "hello"},
      {23, "", 0, {}, ""},                             // empty application data is allowed
      {0, "", 40, Alert::unexpected_message, ""},      // all zeros: no content type
      {20, "\x01", 0, Alert::unexpected_message, ""},  // change_cipher_spec, protected
      {24, "x", 0, Alert::unexpected_message, ""},     // no such type
      {22, "", 3, Alert::unexpected_message, ""},      // zero-length handshake
      {21, std::string("\x02\x0a\x00", 3), 0, Alert::decode_error, ""},  // two alerts in one
      {21, "\x02", 0, Alert::decode_error, ""},
      {22, std::string("\x04\x00\x00\x01\x00", 5), 0, Alert::unexpected_message, ""},
      {22, std::string("\x18\x00\x00\x02\x00\x00", 6), 0, Alert::decode_error, ""},
      {22, std::string("\x18\x00\x00\x01\x02", 5), 0, Alert::illegal_parameter, ""},
      // A KeyUpdate must end its record (§5.1, a key change follows).
      {22, std::string("\x18\x00\x00\x01\x00\x18", 6), 0, Alert::unexpected_message, ""},
  };
  for (const auto& c : cases) {
    auto client = rfc_client();
    auto server = rfc_server();
    std::string rec;
    ASSERT_TRUE(client->seal_raw_for_test(c.type, c.content, c.padding, rec));
    Received got;
    auto s = feed(*server, rec, got);
    if (c.alert) {
      EXPECT_EQ(s, Tls13Records::Status::failed) << int(c.type) << " " << c.content.size();
      EXPECT_EQ(server->failure(), c.alert) << int(c.type) << " " << c.content.size();
    } else {
      EXPECT_EQ(s, Tls13Records::Status::ok);
    }
    EXPECT_EQ(got.data, c.data);
  }
}

TEST(Tls13Records, PeerAlertsEndTheConnectionWithoutAnAnswer) {
  auto client = rfc_client();
  auto server = rfc_server();
  std::string recs;
  ASSERT_TRUE(client->seal_raw_for_test(21, std::string("\x01\x5a", 2), 0, recs));  // user_canceled
  ASSERT_TRUE(
      client->seal_raw_for_test(21, std::string("\x02\x28", 2), 0, recs));  // handshake_failure
  Received got;
  EXPECT_EQ(feed(*server, recs, got), Tls13Records::Status::failed);
  EXPECT_EQ(server->failure(), std::nullopt);
  EXPECT_EQ(server->peer_alert(), Alert{40});
  EXPECT_EQ(server->close_records(), "");
}

TEST(Tls13Records, KeyUpdateRequestedIsAnsweredOnce) {
  auto client = rfc_client();
  auto server = rfc_server();
  std::string to_server;
  ASSERT_TRUE(client->seal("before", to_server));
  client->update_write_key(true);
  ASSERT_TRUE(client->seal("after", to_server));
  client->update_write_key(true);  // a second request while the server was silent
  ASSERT_TRUE(client->seal("again", to_server));
  Received got;
  ASSERT_EQ(feed(*server, to_server, got), Tls13Records::Status::ok);
  EXPECT_EQ(got.data, "beforeafteragain");
  EXPECT_EQ(server->read_sequence(), 1u);  // sequence restarts under the new key
  EXPECT_TRUE(server->write_owed());
  std::string to_client;
  ASSERT_TRUE(server->seal("", to_client));  // only the KeyUpdate
  EXPECT_FALSE(server->write_owed());
  EXPECT_EQ(server->write_sequence(), 0u);
  ASSERT_TRUE(server->seal("reply", to_client));
  Received back;
  ASSERT_EQ(feed(*client, to_client, back), Tls13Records::Status::ok);
  EXPECT_EQ(back.data, "reply");
  EXPECT_FALSE(client->write_owed());  // ours said update_not_requested
  // The old key no longer works: a record sealed before the update is refused.
  auto stale = rfc_client();
  std::string old;
  stale->set_sequences_for_test(0, 3);
  ASSERT_TRUE(stale->seal("stale", old));
  EXPECT_EQ(feed(*server, old, got), Tls13Records::Status::failed);
  EXPECT_EQ(server->failure(), Alert::bad_record_mac);
}

TEST(Tls13Records, KeyUpdateSplitOverRecords) {
  auto client = rfc_client();
  auto server = rfc_server();
  std::string recs;
  ASSERT_TRUE(client->seal_raw_for_test(22, std::string("\x18\x00", 2), 0, recs));
  ASSERT_TRUE(client->seal_raw_for_test(22, std::string("\x00\x01\x00", 3), 0, recs));
  Received got;
  ASSERT_EQ(feed(*server, recs, got), Tls13Records::Status::ok);
  EXPECT_EQ(server->read_sequence(), 0u);  // updated
  // Application data between two fragments is refused.
  client = rfc_client();
  server = rfc_server();
  recs.clear();
  ASSERT_TRUE(client->seal_raw_for_test(22, std::string("\x18\x00", 2), 0, recs));
  ASSERT_TRUE(client->seal("x", recs));
  EXPECT_EQ(feed(*server, recs, got), Tls13Records::Status::failed);
  EXPECT_EQ(server->failure(), Alert::unexpected_message);
}

TEST(Tls13Records, SequenceNumbersNeverWrap) {
  auto server = rfc_server();
  server->set_sequences_for_test(~std::uint64_t{0}, 0);
  Received got;
  EXPECT_EQ(feed(*server, client_app_record, got), Tls13Records::Status::failed);
  EXPECT_TRUE(got.data.empty());
  // Our own side updates its key long before: at records_per_key.
  auto client = rfc_client();
  server = rfc_server();
  client->set_sequences_for_test(0, Tls13Records::records_per_key - 1);
  server->set_sequences_for_test(Tls13Records::records_per_key - 1, 0);
  std::string recs;
  ASSERT_TRUE(client->seal("last", recs));
  ASSERT_TRUE(client->seal("first under the next key", recs));
  EXPECT_EQ(client->write_sequence(), 1u);
  ASSERT_EQ(feed(*server, recs, got), Tls13Records::Status::ok);
  EXPECT_EQ(got.data, "lastfirst under the next key");
  EXPECT_FALSE(server->write_owed());
}

TEST(Tls13Records, LargeWritesSplitAndEveryCipherRoundTrips) {
  for (auto cipher : {Tls13Cipher::aes_128_gcm_sha256, Tls13Cipher::aes_256_gcm_sha384,
                      Tls13Cipher::chacha20_poly1305_sha256}) {
    std::size_t n = cipher == Tls13Cipher::aes_256_gcm_sha384 ? 48 : 32;
    std::string a(n, 'a'), b(n, 'b');
    Tls13Records one(cipher, bytes(a), bytes(b)), other(cipher, bytes(b), bytes(a));
    std::string big(100000, 0);
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
    std::string wire;
    ASSERT_TRUE(one.seal(big, wire));
    // 7 records: six of 2^14 and the rest, each 22 bytes longer.
    EXPECT_EQ(wire.size(), big.size() + 7 * 22);
    for (std::size_t at = 0; at < wire.size();) {
      std::size_t len = (std::uint8_t(wire[at + 3]) << 8) | std::uint8_t(wire[at + 4]);
      EXPECT_LE(len, Tls13Records::max_plaintext + 17);
      at += 5 + len;
    }
    Received got;
    ASSERT_EQ(feed(other, wire, got), Tls13Records::Status::ok);
    EXPECT_EQ(got.data, big);
    // Released contexts are rebuilt from the secrets.
    one.release();
    other.release();
    EXPECT_FALSE(one.holds_contexts());
    wire.clear();
    ASSERT_TRUE(one.seal("after release", wire));
    got.data.clear();
    ASSERT_EQ(feed(other, wire, got), Tls13Records::Status::ok);
    EXPECT_EQ(got.data, "after release");
  }
}

TEST(Tls13Records, SinkCanStopReading) {
  auto client = rfc_client();
  auto server = rfc_server();
  std::string recs;
  ASSERT_TRUE(client->seal("one", recs));
  ASSERT_TRUE(client->seal("two", recs));
  Received got;
  got.stop_after_first = true;
  EXPECT_EQ(feed(*server, recs, got), Tls13Records::Status::ok);
  EXPECT_EQ(got.data, "one");
}

// ---- hand-off from a real OpenSSL handshake ----------------------------------------------

class Handoff : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::filesystem::temp_directory_path() /
           ("tls13_records_test_" + std::to_string(::getpid()));
    paths_ = ensure_self_signed(dir_, {"localhost"});
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }

  struct Pair {
    std::shared_ptr<boost::asio::ssl::context> server_ctx;
    SSL_CTX* client_ctx = nullptr;
    SSL* server = nullptr;
    SSL* client = nullptr;
    BIO *to_server = nullptr, *to_client = nullptr;  // written by one, read by the other
    ~Pair() {
      if (server) SSL_free(server);
      if (client) SSL_free(client);
      if (client_ctx) SSL_CTX_free(client_ctx);
    }
    std::string drain(BIO* b) {
      std::string out;
      char buf[4096];
      int n;
      while ((n = BIO_read(b, buf, sizeof buf)) > 0) out.append(buf, n);
      return out;
    }
    void give_client(const std::string& bytes) {
      BIO_write(to_client, bytes.data(), static_cast<int>(bytes.size()));
    }
  };

  // A handshake between an OpenSSL client and the server context stanzad uses.
  std::unique_ptr<Pair> handshake(int max_version, const char* suites, bool native = true) {
    auto p = std::make_unique<Pair>();
    p->server_ctx = make_server_context(paths_, native);
    p->client_ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_max_proto_version(p->client_ctx, max_version);
    if (suites) SSL_CTX_set_ciphersuites(p->client_ctx, suites);
    p->server = SSL_new(p->server_ctx->native_handle());
    p->client = SSL_new(p->client_ctx);
    p->to_server = BIO_new(BIO_s_mem());
    p->to_client = BIO_new(BIO_s_mem());
    BIO_up_ref(p->to_server);
    BIO_up_ref(p->to_client);
    SSL_set_bio(p->server, p->to_server, p->to_client);
    SSL_set_bio(p->client, p->to_client, p->to_server);
    BIO_set_mem_eof_return(p->to_server, -1);
    BIO_set_mem_eof_return(p->to_client, -1);
    SSL_set_accept_state(p->server);
    SSL_set_connect_state(p->client);
    for (int i = 0; i < 10; ++i) {
      int c = SSL_do_handshake(p->client);
      int s = SSL_do_handshake(p->server);
      if (c == 1 && s == 1) return p;
    }
    ADD_FAILURE() << "handshake did not complete";
    return p;
  }

  static inline std::filesystem::path dir_;
  static inline CertificatePaths paths_;
};

TEST_F(Handoff, EveryTls13SuiteIsTakenOverAndTalksToOpenSsl) {
  for (const char* suite :
       {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}) {
    SCOPED_TRACE(suite);
    auto p = handshake(TLS1_3_VERSION, suite);
    std::string_view why;
    auto records = Tls13Records::take_over(p->server, why);
    ASSERT_TRUE(records) << why;
    SSL_free(p->server);
    p->server = nullptr;  // what stanzad does: the SSL is gone

    // Client → server, before and after a KeyUpdate the client asks us to answer.
    ASSERT_EQ(SSL_write(p->client, "<presence/>", 11), 11);
    ASSERT_EQ(SSL_key_update(p->client, SSL_KEY_UPDATE_REQUESTED), 1);
    ASSERT_EQ(SSL_write(p->client, "<message/>", 10), 10);
    Received got;
    std::string wire = p->drain(p->to_server);
    ASSERT_EQ(feed(*records, wire, got), Tls13Records::Status::ok);
    EXPECT_EQ(got.data, "<presence/><message/>");
    EXPECT_TRUE(records->write_owed());

    // Server → client: our KeyUpdate, then data under the new key.
    std::string out;
    ASSERT_TRUE(records->seal(std::string(40000, 'z') + "<end/>", out));
    p->give_client(out);
    std::string read;
    char buf[16384];
    int n;
    while ((n = SSL_read(p->client, buf, sizeof buf)) > 0) read.append(buf, n);
    EXPECT_EQ(read, std::string(40000, 'z') + "<end/>");

    // The client updates again without asking; then closes.
    ASSERT_EQ(SSL_key_update(p->client, SSL_KEY_UPDATE_NOT_REQUESTED), 1);
    ASSERT_EQ(SSL_write(p->client, "x", 1), 1);
    ASSERT_EQ(SSL_shutdown(p->client), 0);
    got.data.clear();
    EXPECT_EQ(feed(*records, p->drain(p->to_server), got), Tls13Records::Status::closed);
    EXPECT_EQ(got.data, "x");
    EXPECT_FALSE(records->write_owed());
    p->give_client(records->close_records());
    EXPECT_EQ(SSL_shutdown(p->client), 1);  // our close_notify was understood
  }
}

TEST_F(Handoff, OpenSslSeesOurAlertAfterATamperedRecord) {
  auto p = handshake(TLS1_3_VERSION, nullptr);
  std::string_view why;
  auto records = Tls13Records::take_over(p->server, why);
  ASSERT_TRUE(records) << why;
  ASSERT_EQ(SSL_write(p->client, "<message/>", 10), 10);
  std::string wire = p->drain(p->to_server);
  wire[wire.size() - 3] ^= 0x40;
  Received got;
  EXPECT_EQ(feed(*records, wire, got), Tls13Records::Status::failed);
  EXPECT_EQ(records->failure(), Alert::bad_record_mac);
  p->give_client(records->close_records());
  char buf[16];
  EXPECT_LE(SSL_read(p->client, buf, sizeof buf), 0);
  EXPECT_EQ(SSL_get_error(p->client, -1), SSL_ERROR_SSL);
  unsigned long err = ERR_peek_last_error();
  EXPECT_NE(std::string(ERR_reason_error_string(err) ? ERR_reason_error_string(err) : "")
                .find("bad record mac"),
            std::string::npos);
  ERR_clear_error();
}

TEST_F(Handoff, Tls12StaysWithOpenSsl) {
  auto p = handshake(TLS1_2_VERSION, nullptr);
  std::string_view why;
  EXPECT_FALSE(Tls13Records::take_over(p->server, why));
  EXPECT_EQ(why, "not tls 1.3");
  // OpenSSL's record layer still works on it.
  ASSERT_EQ(SSL_write(p->client, "hi", 2), 2);
  char buf[8];
  EXPECT_EQ(SSL_read(p->server, buf, sizeof buf), 2);
}

TEST_F(Handoff, WithoutNativeRecordsNothingIsCaptured) {
  auto p = handshake(TLS1_3_VERSION, nullptr, false);
  std::string_view why;
  EXPECT_FALSE(Tls13Records::take_over(p->server, why));
  EXPECT_EQ(why, "session tickets on");
}

TEST_F(Handoff, BufferedApplicationDataIsNotTakenOver) {
  // The client's first data arrives with its Finished; the server reads one record at a time,
  // so the data is still in the transport, and the take-over sees it as its first record.
  auto q = handshake(TLS1_3_VERSION, nullptr);
  ASSERT_EQ(SSL_write(q->client, "early", 5), 5);
  std::string_view why;
  auto records = Tls13Records::take_over(q->server, why);
  ASSERT_TRUE(records) << why;
  Received got;
  EXPECT_EQ(feed(*records, q->drain(q->to_server), got), Tls13Records::Status::ok);
  EXPECT_EQ(got.data, "early");
  // Once OpenSSL has read (and buffered) application data, the connection stays with it.
  auto r = handshake(TLS1_3_VERSION, nullptr);
  ASSERT_EQ(SSL_write(r->client, "one", 3), 3);
  ASSERT_EQ(SSL_write(r->client, "two", 3), 3);
  SSL_set_read_ahead(r->server, 1);
  char buf[2];
  ASSERT_EQ(SSL_read(r->server, buf, 2), 2);
  EXPECT_FALSE(Tls13Records::take_over(r->server, why));
  EXPECT_EQ(why, "data already buffered");
}

}  // namespace
}  // namespace stanzad::net
