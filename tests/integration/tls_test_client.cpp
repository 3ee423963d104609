// tests/integration/tls_test_client.cpp: a scripted OpenSSL client for test_tls_records.py, for
// what Python's ssl module cannot do: KeyUpdate (RFC 8446 §4.6.3), a tampered record, and
// watching the server's close_notify and alerts.
//
// Usage: tls_test_client PORT [--starttls DOMAIN] [--tls12] [--suite NAME]
// Commands on stdin, one per line; each is answered by one line on stdout, "ok ..." or
// "error ...":
//   send TEXT              SSL_write TEXT
//   expect MS TEXT         read until TEXT arrived (within MS ms); drops what came up to it
//   keyupdate requested|not   SSL_key_update, sent at once
//   tamper TEXT            TEXT as one record with one ciphertext bit flipped
//   shutdown               send close_notify, wait for the server's (ok closenotify)
//   wait_alert MS          read until the connection fails: "ok alert REASON"
//   status                 "ok version=... cipher=... key_updates_received=N"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

namespace {

int fd = -1;
SSL* ssl = nullptr;
BIO *rbio = nullptr, *wbio = nullptr;
std::string plain;  // decrypted, not yet expected
int key_updates_received = 0;
bool peer_closed = false;

void on_message(int write_p, int, int content_type, const void* buf, size_t len, SSL*, void*) {
  if (!write_p && content_type == SSL3_RT_HANDSHAKE && len > 0 &&
      static_cast<const unsigned char*>(buf)[0] == 24)
    ++key_updates_received;
}

bool flush() {
  char buf[16384];
  int n;
  while ((n = BIO_read(wbio, buf, sizeof buf)) > 0) {
    if (::send(fd, buf, n, MSG_NOSIGNAL) != n) return false;
  }
  return true;
}

// Waits up to `ms` for bytes from the socket into rbio; false on time-out or EOF.
bool fill(int ms) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, ms) <= 0) return false;
  char buf[16384];
  ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  if (n <= 0) return false;
  BIO_write(rbio, buf, static_cast<int>(n));
  return true;
}

std::string ssl_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (!e) return "none";
  const char* r = ERR_reason_error_string(e);
  return r ? r : std::to_string(e);
}

// Reads what is decryptable; returns false when the connection failed or closed.
bool pump(int ms, std::string& why) {
  for (;;) {
    char buf[16384];
    int n = SSL_read(ssl, buf, sizeof buf);
    if (n > 0) {
      plain.append(buf, n);
      continue;
    }
    int err = SSL_get_error(ssl, n);
    if (err == SSL_ERROR_WANT_READ) {
      flush();
      if (!fill(ms)) {
        why = "timeout";
        return true;
      }
      continue;
    }
    if (err == SSL_ERROR_ZERO_RETURN) {
      peer_closed = true;
      why = "closenotify";
      return false;
    }
    why = err == SSL_ERROR_SSL ? ssl_error() : "eof";
    return false;
  }
}

bool read_plain_until(const std::string& needle, int ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (plain.find(needle) == std::string::npos) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) return false;
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return false;
    plain.append(buf, n);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: tls_test_client PORT [--starttls DOMAIN] [--tls12]\n");
    return 2;
  }
  std::string starttls, suite;
  bool tls12 = false;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--starttls" && i + 1 < argc) starttls = argv[++i];
    if (a == "--suite" && i + 1 < argc) suite = argv[++i];
    if (a == "--tls12") tls12 = true;
  }
  fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(argv[1])));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::cout << "error connect" << std::endl;
    return 1;
  }
  if (!starttls.empty()) {
    std::string open = "<?xml version='1.0'?><stream:stream to='" + starttls +
                       "' version='1.0' xmlns='jabber:client' "
                       "xmlns:stream='http://etherx.jabber.org/streams'>"
                       "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
    ::send(fd, open.data(), open.size(), MSG_NOSIGNAL);
    if (!read_plain_until("<proceed", 10000)) {
      std::cout << "error no proceed" << std::endl;
      return 1;
    }
    // Everything after <proceed/> is TLS; the server sends nothing more in the clear.
    plain.clear();
  }
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, tls12 ? TLS1_2_VERSION : TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx, tls12 ? TLS1_2_VERSION : TLS1_3_VERSION);
  if (!suite.empty()) SSL_CTX_set_ciphersuites(ctx, suite.c_str());
  SSL_CTX_set_msg_callback(ctx, on_message);
  ssl = SSL_new(ctx);
  rbio = BIO_new(BIO_s_mem());
  wbio = BIO_new(BIO_s_mem());
  BIO_set_mem_eof_return(rbio, -1);
  SSL_set_bio(ssl, rbio, wbio);
  SSL_set_connect_state(ssl);
  for (;;) {
    int r = SSL_do_handshake(ssl);
    flush();
    if (r == 1) break;
    if (SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ || !fill(10000)) {
      std::cout << "error handshake " << ssl_error() << std::endl;
      return 1;
    }
  }
  std::cout << "ok connected " << SSL_get_version(ssl) << std::endl;

  std::string line;
  while (std::getline(std::cin, line)) {
    auto space = line.find(' ');
    std::string cmd = line.substr(0, space);
    std::string arg = space == std::string::npos ? "" : line.substr(space + 1);
    std::string why;
    if (cmd == "send" || cmd == "tamper") {
      if (SSL_write(ssl, arg.data(), static_cast<int>(arg.size())) <= 0) {
        std::cout << "error write " << ssl_error() << std::endl;
        continue;
      }
      if (cmd == "tamper") {
        std::string wire;
        char buf[16384];
        int n;
        while ((n = BIO_read(wbio, buf, sizeof buf)) > 0) wire.append(buf, n);
        wire[wire.size() - 20] ^= 0x04;  // inside the ciphertext, before the tag
        ::send(fd, wire.data(), wire.size(), MSG_NOSIGNAL);
      }
      flush();
      std::cout << "ok" << std::endl;
    } else if (cmd == "expect") {
      auto sp = arg.find(' ');
      int ms = std::stoi(arg.substr(0, sp));
      std::string text = arg.substr(sp + 1);
      auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
      bool alive = true;
      while (plain.find(text) == std::string::npos && alive &&
             std::chrono::steady_clock::now() < deadline)
        alive = pump(100, why);
      auto at = plain.find(text);
      if (at != std::string::npos) {
        plain.erase(0, at + text.size());
        std::cout << "ok" << std::endl;
      } else {
        std::cout << "error " << (alive ? "timeout" : why) << " got=" << plain << std::endl;
      }
    } else if (cmd == "keyupdate") {
      int type = arg == "requested" ? SSL_KEY_UPDATE_REQUESTED : SSL_KEY_UPDATE_NOT_REQUESTED;
      if (SSL_key_update(ssl, type) != 1 || SSL_do_handshake(ssl) != 1) {
        std::cout << "error keyupdate " << ssl_error() << std::endl;
        continue;
      }
      flush();
      std::cout << "ok" << std::endl;
    } else if (cmd == "shutdown") {
      SSL_shutdown(ssl);
      flush();
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (!peer_closed && std::chrono::steady_clock::now() < deadline && pump(100, why)) {
      }
      if (peer_closed) {
        std::cout << "ok closenotify" << std::endl;
      } else {
        std::cout << "error " << why << std::endl;
      }
    } else if (cmd == "wait_alert") {
      int ms = std::stoi(arg);
      auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
      bool alive = true;
      while (alive && std::chrono::steady_clock::now() < deadline) alive = pump(100, why);
      std::cout << (alive ? "error still open" : "ok alert " + why) << std::endl;
    } else if (cmd == "status") {
      std::cout << "ok version=" << SSL_get_version(ssl)
                << " cipher=" << SSL_CIPHER_get_name(SSL_get_current_cipher(ssl))
                << " key_updates_received=" << key_updates_received << std::endl;
    } else {
      std::cout << "error unknown command " << cmd << std::endl;
    }
  }
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ::close(fd);
  return 0;
}
