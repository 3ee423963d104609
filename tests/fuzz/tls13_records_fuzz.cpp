// tests/fuzz/tls13_records_fuzz.cpp: net::Tls13Records' decoder (RFC 8446 §5, §4.6.3, §6)
// on what a peer holding the keys could send, split at random points.
//
// Random bytes almost never authenticate, so the input is a script for a peer that holds the
// client's keys: byte 0 picks the cipher suite, byte 1 seeds the chunk splits, then each
// operation seals something (application data, any inner type with padding, KeyUpdates,
// alerts) or appends raw bytes. The server side decodes the stream. Invariants: what it
// delivers is always a prefix of the application data sealed; a failure names its alert
// (or the peer's); a script with only well-formed records decodes completely; an owed
// KeyUpdate, once sent, is understood by the peer.
#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "net/tls13_records.hpp"

using stanzad::net::Tls13Cipher;
using stanzad::net::Tls13Records;

namespace {

struct Input {
  const std::uint8_t* data;
  std::size_t size;
  std::size_t pos = 0;
  bool empty() const { return pos >= size; }
  std::uint8_t byte() { return pos < size ? data[pos++] : 0; }
  std::string_view take(std::size_t n) {
    n = std::min(n, size - pos);
    std::string_view s(reinterpret_cast<const char*>(data + pos), n);
    pos += n;
    return s;
  }
};

bool collect(void* out, std::string_view plaintext) {
  static_cast<std::string*>(out)->append(plaintext);
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in{data, size};
  auto cipher = static_cast<Tls13Cipher>(in.byte() % 3);
  std::minstd_rand splits(in.byte() + 1);
  std::size_t n = cipher == Tls13Cipher::aes_256_gcm_sha384 ? 48 : 32;
  std::string client_secret(n, '\x11'), server_secret(n, '\x22');
  auto span = [](const std::string& s) {
    return std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
  };
  Tls13Records server(cipher, span(client_secret), span(server_secret));
  Tls13Records peer(cipher, span(server_secret), span(client_secret));

  std::string stream, expected;
  bool well_formed = true, requested = false;
  while (!in.empty() && stream.size() < 200000) {
    switch (in.byte() % 6) {
      case 0:  // raw bytes: framing and authentication break
        stream.append(in.take(in.byte()));
        well_formed = false;
        break;
      case 1: {  // application data, split into records by seal()
        std::size_t len = in.byte() * 97u;
        std::string text(in.take(len));
        text.resize(len, 'x');
        STANZAD_FUZZ_CHECK(peer.seal(text, stream));
        expected += text;
        break;
      }
      case 2: {  // any inner type, any padding
        std::uint8_t type = in.byte();
        std::size_t padding = in.byte() * 67u;
        std::string_view content = in.take(in.byte());
        STANZAD_FUZZ_CHECK(peer.seal_raw_for_test(type, content, padding, stream));
        // What the receiver sees: the last non-zero byte is the type (with type 0, a byte of
        // the content).
        std::string inner = std::string(content) + static_cast<char>(type);
        std::size_t end = inner.find_last_not_of('\0');
        bool data = end != std::string::npos && inner[end] == 23;
        if (data && inner.size() + padding <= Tls13Records::max_plaintext + 1) {
          expected.append(inner, 0, end);
        } else {
          well_formed = false;
        }
        break;
      }
      case 3:
      case 4: {  // a KeyUpdate, maybe asking for ours
        bool request = in.byte() & 1;
        requested |= request;
        peer.update_write_key(request);
        STANZAD_FUZZ_CHECK(peer.seal("", stream));
        break;
      }
      case 5: {  // an alert
        char alert[2] = {static_cast<char>(in.byte()), static_cast<char>(in.byte())};
        STANZAD_FUZZ_CHECK(peer.seal_raw_for_test(21, std::string_view(alert, 2), 0, stream));
        well_formed = false;
        break;
      }
    }
  }

  std::string delivered;
  auto status = Tls13Records::Status::ok;
  for (std::size_t at = 0; at < stream.size() && status == Tls13Records::Status::ok;) {
    std::size_t chunk = std::min<std::size_t>(stream.size() - at, 1 + splits() % 20000);
    status = server.open(std::span<char>(stream.data() + at, chunk), collect, &delivered);
    at += chunk;
  }
  STANZAD_FUZZ_CHECK(expected.starts_with(delivered));
  if (status == Tls13Records::Status::failed)
    STANZAD_FUZZ_CHECK(server.failure().has_value() || server.peer_alert().has_value());
  if (well_formed) {
    STANZAD_FUZZ_CHECK(status == Tls13Records::Status::ok);
    STANZAD_FUZZ_CHECK(delivered == expected);
    STANZAD_FUZZ_CHECK(server.write_owed() == requested);
  }

  if (status == Tls13Records::Status::ok) {
    // Our answer (with the KeyUpdate owed, if any) reaches the peer intact.
    std::string reply;
    STANZAD_FUZZ_CHECK(server.seal("reply", reply));
    STANZAD_FUZZ_CHECK(!server.write_owed());
    std::string back;
    auto s = peer.open(std::span<char>(reply.data(), reply.size()), collect, &back);
    STANZAD_FUZZ_CHECK(s == Tls13Records::Status::ok);
    STANZAD_FUZZ_CHECK(back == "reply");
  } else {
    std::string reply;
    STANZAD_FUZZ_CHECK(!server.seal("reply", reply) || status == Tls13Records::Status::closed);
    (void)server.close_records();
    STANZAD_FUZZ_CHECK(server.close_records().empty());
  }
  return 0;
}
