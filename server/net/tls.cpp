// TLS for c2s (RFC 6120 §5, XEP-0368): server context and the self-signed default certificate.
#include "net/tls.hpp"

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cstdio>
#include <stdexcept>

#include "net/tls13_records.hpp"

namespace stanzad::net {

namespace {

template <class T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what); }

void write_pem(const std::filesystem::path& path, bool secret, auto&& writer) {
  auto tmp = path;
  tmp += ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f) fail("cannot write " + tmp.string());
  if (secret) ::chmod(tmp.c_str(), 0600);
  bool ok = writer(f);
  if (std::fclose(f) != 0 || !ok) fail("cannot write " + tmp.string());
  std::filesystem::rename(tmp, path);
}

}  // namespace

CertificatePaths ensure_self_signed(const std::filesystem::path& dir,
                                    const std::vector<std::string>& hosts) {
  CertificatePaths paths{dir / "certificate.pem", dir / "private-key.pem"};
  if (std::filesystem::exists(paths.certificate) && std::filesystem::exists(paths.private_key))
    return paths;
  std::filesystem::create_directories(dir);

  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) fail("cannot generate an ECDSA P-256 key");

  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set_int64(X509_get_serialNumber(cert.get()),
                         static_cast<int64_t>(std::time(nullptr)));
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 10L * 365 * 24 * 3600);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  const std::string& cn = hosts.empty() ? std::string("localhost") : hosts.front();
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("stanzad"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);

  std::string san;
  for (const auto& h : hosts) {
    if (!san.empty()) san += ",";
    san += "DNS:" + h + ",DNS:*." + h;
  }
  if (!san.empty()) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, san.c_str());
    if (!ext) fail("cannot build subjectAltName " + san);
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) fail("cannot sign certificate");

  write_pem(paths.private_key, true, [&](FILE* f) {
    return PEM_write_PrivateKey(f, key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1;
  });
  write_pem(paths.certificate, false, [&](FILE* f) { return PEM_write_X509(f, cert.get()) == 1; });
  spdlog::info("tls made a self-signed ECDSA P-256 certificate file={} hosts={}",
               paths.certificate.string(), san);
  return paths;
}

std::shared_ptr<boost::asio::ssl::context> make_server_context(const CertificatePaths& paths,
                                                               bool native_records) {
  namespace ssl = boost::asio::ssl;
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* native = ctx->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(
      native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_cipher_list(native,
                          "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                          "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                          "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
  SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_SERVER);
  SSL_CTX_set_session_id_context(native, reinterpret_cast<const unsigned char*>("stanzad"), 7);
  // Buffers are released when a connection is idle: most XMPP sessions are.
  SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS);
  if (native_records) Tls13Records::capture_secrets(native);

  if (SSL_CTX_use_certificate_chain_file(native, paths.certificate.c_str()) != 1)
    fail("cannot load certificate " + paths.certificate.string());
  if (SSL_CTX_use_PrivateKey_file(native, paths.private_key.c_str(), SSL_FILETYPE_PEM) != 1)
    fail("cannot load private key " + paths.private_key.string());
  if (SSL_CTX_check_private_key(native) != 1)
    fail("private key " + paths.private_key.string() + " does not match certificate " +
         paths.certificate.string());
  return ctx;
}

}  // namespace stanzad::net
