// tests/fuzz/sasl_fuzz.cpp: the SASL payload parsers (RFC 6120 §6): SCRAM server steps
// (RFC 5802 §5-7, RFC 7677), PLAIN (RFC 4616) and strict base64 (RFC 4648 §4).
//
// Input: byte 0 holds flags, the rest is "client-first-message\nclient-final-message".
//   bit 0: SCRAM-SHA-256 (else SCRAM-SHA-1)
//   bit 1: an unknown user (fake credentials)
// The known user is "user" with password "pencil" and the salts, iteration counts and server
// nonces of the RFC 5802 §5 and RFC 7677 §3 examples, so their exchanges succeed.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "xmpp/base64.hpp"
#include "xmpp/sasl.hpp"

namespace sasl = stanzad::xmpp::sasl;

namespace {

struct Known {
  std::string server_nonce;
  sasl::ScramCredentials creds;
};

Known make_known(sasl::Hash h, std::string server_nonce, std::string_view salt_b64) {
  auto salt = stanzad::xmpp::base64_decode(salt_b64);
  STANZAD_FUZZ_CHECK(salt.has_value());
  return {std::move(server_nonce), sasl::derive_credentials(h, "pencil", *salt, 4096)};
}

const Known& known(sasl::Hash h) {
  static const Known sha1 = make_known(sasl::Hash::sha1, "3rfcNHYJY1ZVvWVs7j", "QSXCR+Q6sek8bf92");
  static const Known sha256 =
      make_known(sasl::Hash::sha256, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", "W22ZaJ0SNY7soEsUEjb6gQ==");
  return h == sasl::Hash::sha1 ? sha1 : sha256;
}

void check_base64(std::string_view text) {
  // Decoding is strict (canonical input only), so whatever it accepts encodes back unchanged.
  if (auto bytes = stanzad::xmpp::base64_decode(text)) {
    STANZAD_FUZZ_CHECK(stanzad::xmpp::base64_encode(*bytes) == text);
  }
  // And any bytes survive encoding.
  auto back = stanzad::xmpp::base64_decode(stanzad::xmpp::base64_encode(text));
  STANZAD_FUZZ_CHECK(back.has_value() && *back == text);
}

void check_plain(std::string_view msg) {
  auto m = sasl::parse_plain(msg);
  if (!m) return;
  STANZAD_FUZZ_CHECK(!m->authcid.empty() && !m->password.empty());
  std::string joined = m->authzid + '\0' + m->authcid + '\0' + m->password;
  STANZAD_FUZZ_CHECK(joined == msg);
}

void check_scram(sasl::Hash h, bool unknown_user, std::string_view first, std::string_view final) {
  const Known& k = known(h);
  sasl::ScramServer server(h, k.server_nonce);
  STANZAD_FUZZ_CHECK(server.hash() == h);
  if (server.client_first(first)) {
    // A failed exchange stays failed.
    STANZAD_FUZZ_CHECK(server.client_final(final).has_value());
    STANZAD_FUZZ_CHECK(!server.succeeded());
    return;
  }
  STANZAD_FUZZ_CHECK(!server.succeeded());
  server.set_unknown_user_iterations(4096);
  std::string server_first =
      server.server_first(unknown_user ? std::nullopt : std::optional(k.creds));
  STANZAD_FUZZ_CHECK(server_first.starts_with("r="));
  STANZAD_FUZZ_CHECK(server_first.find(k.server_nonce + ",s=") != std::string::npos);
  STANZAD_FUZZ_CHECK(server_first.ends_with(",i=4096"));

  auto failure = server.client_final(final);
  STANZAD_FUZZ_CHECK(failure.has_value() != server.succeeded());
  if (failure) {
    STANZAD_FUZZ_CHECK(!sasl::to_string(*failure).empty());
    return;
  }
  // Fake credentials never authenticate.
  STANZAD_FUZZ_CHECK(!unknown_user);
  std::string v = server.server_final();
  STANZAD_FUZZ_CHECK(v.starts_with("v="));
  auto signature = stanzad::xmpp::base64_decode(std::string_view(v).substr(2));
  STANZAD_FUZZ_CHECK(signature.has_value() && signature->size() == sasl::hash_size(h));
  // No second final step.
  STANZAD_FUZZ_CHECK(server.client_final(final).has_value());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t flags = data[0];
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const sasl::Hash h = (flags & 1) != 0 ? sasl::Hash::sha256 : sasl::Hash::sha1;
  const bool unknown_user = (flags & 2) != 0;

  auto nl = rest.find('\n');
  std::string_view first = rest.substr(0, nl);
  std::string_view final = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);

  check_scram(h, unknown_user, first, final);
  check_plain(rest);
  check_base64(first);
  check_base64(final);
  (void)sasl::scram_hash(first);
  return 0;
}
