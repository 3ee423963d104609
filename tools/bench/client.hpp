// A small XMPP client for load generation: TCP from a chosen source address, direct TLS or
// STARTTLS (TLS 1.3, certificates not verified), SASL, resource binding, initial presence,
// then raw stanzas in and out. One client lives on one io_context (one thread) for its life.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "scram.hpp"

namespace stanzad::bench {

namespace asio = boost::asio;

struct ClientSettings {
  asio::ip::tcp::endpoint server;
  std::string domain;
  std::string password;
  std::string resource = "bench";
  bool direct_tls = true;
  Mechanism mechanism = Mechanism::scram_sha1;
  bool send_presence = true;
};

// A top-level element as it arrived: the raw bytes, its name and its opening tag.
struct Element {
  std::string_view raw, name, open_tag;
  std::string_view attr(std::string_view key) const;
  // The text inside the first descendant named `child`, or the element's own text if `child`
  // is empty; entities are not decoded (the generator only reads base64 and digits).
  std::string_view text(std::string_view child = {}) const;
};

// TLS 1.3 only, no verification, no session resumption: every login is a full handshake.
asio::ssl::context make_client_tls_context();

class Client : public std::enable_shared_from_this<Client> {
 public:
  Client(asio::io_context& io, asio::ssl::context& tls, const ClientSettings& settings,
         std::string user, asio::ip::address source, std::string resource = {});

  std::function<void(Client&)> on_ready;                         // bound (and presence sent)
  std::function<void(Client&, const Element&)> on_stanza;        // every stanza once ready
  std::function<void(Client&, std::string_view why)> on_failed;  // before ready, or dropped
  std::function<void(Client&)> on_closed;                        // transport closed

  void start();
  void send(std::string_view data);
  // Sends </stream:stream>, then closes the socket when the server closes its stream (or
  // after a grace period).
  void finish();
  void close();

  const std::string& user() const { return user_; }
  bool ready() const { return state_ == State::ready; }
  std::size_t index = 0;  // free for the scenario to use

 private:
  enum class State { connecting, handshake, negotiating, ready, finishing, closed };

  void on_connect(const boost::system::error_code& ec);
  void do_handshake();
  void on_handshake(const boost::system::error_code& ec);
  void open_stream();
  void do_read();
  void on_read(const boost::system::error_code& ec, std::size_t n);
  void scan();
  void on_stream_open();
  void on_stream_close();
  void on_element(const Element& el);
  void do_write();
  void fail(std::string_view why);

  asio::ssl::stream<asio::ip::tcp::socket> stream_;
  asio::steady_timer timer_;
  const ClientSettings& settings_;
  std::string user_, resource_;
  asio::ip::address source_;
  State state_ = State::connecting;
  bool tls_ = false, authenticated_ = false, reading_ = false, writing_ = false;
  bool pause_reading_ = false;
  std::unique_ptr<ScramClient> scram_;

  std::string in_, out_, out_writing_;
  char read_buf_[8192];
  // Scanner state over in_: top-level elements are found by depth, without a full parser.
  std::size_t scan_ = 0, tag_start_ = 0, elem_start_ = 0;
  int depth_ = 0;
  bool in_tag_ = false;
  char quote_ = 0;
};

}  // namespace stanzad::bench
