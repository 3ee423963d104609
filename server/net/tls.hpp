// TLS for c2s (RFC 6120 §5, XEP-0368): server context and the self-signed default certificate.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace stanzad::net {

struct CertificatePaths {
  std::filesystem::path certificate;
  std::filesystem::path private_key;
};

// Makes a self-signed ECDSA P-256 certificate for `hosts` in `dir` unless one is there
// already. Returns its paths; throws std::runtime_error on failure.
CertificatePaths ensure_self_signed(const std::filesystem::path& dir,
                                    const std::vector<std::string>& hosts);

// A server context: TLS 1.2 and 1.3 only, forward-secret AEAD ciphers, no compression,
// no renegotiation. With `native_records` (<tls native-records>) TLS 1.3 connections are taken over
// by stanzad's own record layer after the handshake (Tls13Records::capture_secrets: traffic
// secrets kept, no session tickets); otherwise session tickets are on. Throws
// std::runtime_error naming the file that failed to load.
std::shared_ptr<boost::asio::ssl::context> make_server_context(const CertificatePaths& paths,
                                                               bool native_records);

}  // namespace stanzad::net
