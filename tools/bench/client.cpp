// The generator's XMPP client; see client.hpp.
#include "client.hpp"

#include <netinet/in.h>
#include <openssl/ssl.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>

namespace stanzad::bench {

namespace {

constexpr auto negotiation_timeout = std::chrono::seconds(60);
constexpr auto finish_grace = std::chrono::seconds(3);

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// Where the opening tag of `raw` ends (the index of its '>'), honouring quoted values.
std::size_t open_tag_end(std::string_view raw) {
  char quote = 0;
  for (std::size_t i = 1; i < raw.size(); ++i) {
    char c = raw[i];
    if (quote) {
      if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '>') {
      return i;
    }
  }
  return raw.size();
}

std::string_view tag_name(std::string_view tag) {
  std::size_t end = 1;
  while (end < tag.size() && !is_space(tag[end]) && tag[end] != '/' && tag[end] != '>') ++end;
  return tag.substr(1, end - 1);
}

bool local_name_is(std::string_view name, std::string_view local) {
  if (name == local) return true;
  return name.size() > local.size() && name.ends_with(local) &&
         name[name.size() - local.size() - 1] == ':';
}

}  // namespace

std::string_view Element::attr(std::string_view key) const {
  std::size_t pos = 0;
  while ((pos = open_tag.find(key, pos + 1)) != std::string_view::npos) {
    std::size_t eq = pos + key.size();
    if (!is_space(open_tag[pos - 1]) || eq + 1 >= open_tag.size() || open_tag[eq] != '=') continue;
    char quote = open_tag[eq + 1];
    std::size_t end = open_tag.find(quote, eq + 2);
    if (end == std::string_view::npos) return {};
    return open_tag.substr(eq + 2, end - eq - 2);
  }
  return {};
}

std::string_view Element::text(std::string_view child) const {
  std::string_view inner = raw.substr(std::min(open_tag.size(), raw.size()));
  if (open_tag.ends_with("/>")) return {};
  if (!child.empty()) {
    std::size_t pos = 0;
    for (;;) {
      pos = inner.find(child, pos);
      if (pos == std::string_view::npos) return {};
      if (pos > 0 && inner[pos - 1] == '<' && pos + child.size() < inner.size()) {
        char next = inner[pos + child.size()];
        if (next == '>' || next == '/' || is_space(next)) break;
      }
      ++pos;
    }
    std::string_view rest = inner.substr(pos - 1);
    std::size_t tag_end = open_tag_end(rest);
    if (tag_end >= rest.size() || rest[tag_end - 1] == '/') return {};
    inner = rest.substr(tag_end + 1);
  }
  std::size_t end = inner.find('<');
  return inner.substr(0, end == std::string_view::npos ? inner.size() : end);
}

asio::ssl::context make_client_tls_context() {
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  SSL_CTX* native = ctx.native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(native, TLS1_3_VERSION);
  SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(native, SSL_OP_NO_TICKET);
  ctx.set_verify_mode(asio::ssl::verify_none);  // benchmark only
  return ctx;
}

Client::Client(asio::io_context& io, asio::ssl::context& tls, const ClientSettings& settings,
               std::string user, asio::ip::address source, std::string resource)
    : stream_(io, tls),
      timer_(io),
      settings_(settings),
      user_(std::move(user)),
      resource_(resource.empty() ? settings.resource : std::move(resource)),
      source_(source) {}

void Client::start() {
  auto& socket = stream_.next_layer();
  boost::system::error_code ec;
  socket.open(settings_.server.protocol(), ec);
  if (!ec && !source_.is_unspecified()) {
    // Let connect() pick the port per 4-tuple, so each source address has its own range.
    int one = 1;
    ::setsockopt(socket.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    socket.bind(asio::ip::tcp::endpoint(source_, 0), ec);
  }
  if (ec) {
    fail("socket: " + ec.message());
    return;
  }
  timer_.expires_after(negotiation_timeout);
  timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec && self->state_ != State::ready && self->state_ != State::closed &&
        self->state_ != State::finishing)
      self->fail("negotiation timed out");
  });
  socket.async_connect(
      settings_.server,
      [self = shared_from_this()](const boost::system::error_code& ec) { self->on_connect(ec); });
}

void Client::on_connect(const boost::system::error_code& ec) {
  if (state_ == State::closed) return;
  if (ec) {
    fail("connect: " + ec.message());
    return;
  }
  stream_.next_layer().set_option(asio::ip::tcp::no_delay(true));
  if (settings_.direct_tls) {
    do_handshake();
  } else {
    state_ = State::negotiating;
    open_stream();
    do_read();
  }
}

void Client::do_handshake() {
  state_ = State::handshake;
  SSL* ssl = stream_.native_handle();
  SSL_set_tlsext_host_name(ssl, settings_.domain.c_str());
  if (settings_.direct_tls) {
    static const unsigned char alpn[] = "\x0bxmpp-client";
    SSL_set_alpn_protos(ssl, alpn, sizeof alpn - 1);
  }
  stream_.async_handshake(
      asio::ssl::stream_base::client,
      [self = shared_from_this()](const boost::system::error_code& ec) { self->on_handshake(ec); });
}

void Client::on_handshake(const boost::system::error_code& ec) {
  if (state_ == State::closed) return;
  if (ec) {
    fail("tls handshake: " + ec.message());
    return;
  }
  tls_ = true;
  state_ = State::negotiating;
  pause_reading_ = false;
  in_.clear();
  scan_ = tag_start_ = elem_start_ = 0;
  depth_ = 0;
  in_tag_ = false;
  quote_ = 0;
  open_stream();
  do_read();
}

void Client::open_stream() {
  send("<?xml version='1.0'?><stream:stream to='" + settings_.domain +
       "' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>");
}

void Client::do_read() {
  if (reading_ || pause_reading_ || state_ == State::closed) return;
  reading_ = true;
  auto handler = [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
    self->on_read(ec, n);
  };
  if (tls_)
    stream_.async_read_some(asio::buffer(read_buf_), std::move(handler));
  else
    stream_.next_layer().async_read_some(asio::buffer(read_buf_), std::move(handler));
}

void Client::on_read(const boost::system::error_code& ec, std::size_t n) {
  reading_ = false;
  if (state_ == State::closed) return;
  if (ec) {
    if (state_ == State::finishing)
      close();
    else
      fail("read: " + ec.message());
    return;
  }
  in_.append(read_buf_, n);
  scan();
  do_read();
}

// Finds complete top-level elements by counting tags at depth 1 (inside <stream:stream>).
// Quoted attribute values may hold '>'; text may hold '>' but not '<' (XML forbids it).
void Client::scan() {
  while (scan_ < in_.size() && state_ != State::closed) {
    char c = in_[scan_];
    if (in_tag_) {
      if (quote_) {
        if (c == quote_) quote_ = 0;
      } else if (c == '"' || c == '\'') {
        quote_ = c;
      } else if (c == '>') {
        in_tag_ = false;
        char kind = in_[tag_start_ + 1];
        if (kind == '?' || kind == '!') {
          // declaration, comment: nothing
        } else if (kind == '/') {
          --depth_;
          if (depth_ == 1) {
            std::string_view raw(in_.data() + elem_start_, scan_ + 1 - elem_start_);
            Element el{raw, tag_name(raw), raw.substr(0, open_tag_end(raw) + 1)};
            ++scan_;
            on_element(el);
            continue;
          }
          if (depth_ <= 0) {
            ++scan_;
            on_stream_close();
            continue;
          }
        } else if (in_[scan_ - 1] == '/') {
          if (depth_ == 1) {
            std::string_view raw(in_.data() + tag_start_, scan_ + 1 - tag_start_);
            Element el{raw, tag_name(raw), raw};
            ++scan_;
            on_element(el);
            continue;
          }
        } else {
          if (depth_ == 0) {
            ++depth_;
            ++scan_;
            on_stream_open();
            continue;
          }
          if (depth_ == 1) elem_start_ = tag_start_;
          ++depth_;
        }
      }
    } else if (c == '<') {
      in_tag_ = true;
      tag_start_ = scan_;
    }
    ++scan_;
  }
  // Drop what is consumed: keep from the start of an unfinished element or tag.
  std::size_t keep = scan_;
  if (in_tag_) keep = std::min(keep, tag_start_);
  if (depth_ >= 2) keep = std::min(keep, elem_start_);
  if (keep > 0 && keep <= in_.size()) {
    in_.erase(0, keep);
    scan_ -= keep;
    tag_start_ = tag_start_ >= keep ? tag_start_ - keep : 0;
    elem_start_ = elem_start_ >= keep ? elem_start_ - keep : 0;
  }
}

void Client::on_stream_open() {}

void Client::on_stream_close() {
  if (state_ == State::finishing)
    close();
  else
    fail("server closed the stream");
}

void Client::on_element(const Element& el) {
  if (state_ == State::ready || state_ == State::finishing) {
    if (el.name == "iq") {
      std::string_view type = el.attr("type");
      if (type == "get" || type == "set") {  // e.g. a server ping: answer, do not count
        send("<iq type='result' id='" + std::string(el.attr("id")) + "' to='" +
             std::string(el.attr("from")) + "'/>");
        return;
      }
    }
    if (local_name_is(el.name, "error")) {
      fail("stream error: " + std::string(el.raw.substr(0, 300)));
      return;
    }
    if (on_stanza) on_stanza(*this, el);
    return;
  }
  if (local_name_is(el.name, "features")) {
    if (!tls_) {
      send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    } else if (!authenticated_) {
      std::string payload;
      if (settings_.mechanism == Mechanism::plain) {
        payload = plain_initial_response(user_, settings_.password);
      } else {
        scram_ = std::make_unique<ScramClient>(settings_.mechanism, user_, settings_.password);
        payload = scram_->initial_response();
      }
      send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='" +
           std::string(mechanism_name(settings_.mechanism)) + "'>" + payload + "</auth>");
    } else {
      send("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" +
           resource_ + "</resource></bind></iq>");
    }
  } else if (el.name == "proceed") {
    pause_reading_ = true;  // the rest of the bytes belong to TLS
    do_handshake();
  } else if (el.name == "challenge") {
    auto response = scram_ ? scram_->respond(el.text()) : std::nullopt;
    if (!response) {
      fail("bad SCRAM challenge");
      return;
    }
    send("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + *response + "</response>");
  } else if (el.name == "success") {
    if (scram_ && !scram_->verify_success(el.text())) {
      fail("server signature does not verify");
      return;
    }
    authenticated_ = true;
    depth_ = 0;  // the stream restarts (RFC 6120 §6.4.6)
    open_stream();
  } else if (el.name == "failure") {
    fail("SASL failure for " + user_ + ": " + std::string(el.raw.substr(0, 200)));
  } else if (el.name == "iq" && el.attr("id") == "bind1") {
    if (el.attr("type") != "result") {
      fail("bind failed: " + std::string(el.raw.substr(0, 200)));
      return;
    }
    if (settings_.send_presence) send("<presence/>");
    state_ = State::ready;
    timer_.cancel();
    if (on_ready) on_ready(*this);
  } else if (local_name_is(el.name, "error")) {
    fail("stream error: " + std::string(el.raw.substr(0, 300)));
  }
}

void Client::send(std::string_view data) {
  if (state_ == State::closed) return;
  out_.append(data);
  do_write();
}

void Client::do_write() {
  if (writing_ || out_.empty() || state_ == State::closed) return;
  writing_ = true;
  out_writing_.swap(out_);
  out_.clear();
  auto handler = [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
    self->writing_ = false;
    self->out_writing_.clear();
    if (self->state_ == State::closed) return;
    if (ec) {
      if (self->state_ == State::finishing)
        self->close();
      else
        self->fail("write: " + ec.message());
      return;
    }
    self->do_write();
  };
  if (tls_)
    asio::async_write(stream_, asio::buffer(out_writing_), std::move(handler));
  else
    asio::async_write(stream_.next_layer(), asio::buffer(out_writing_), std::move(handler));
}

void Client::finish() {
  if (state_ == State::closed || state_ == State::finishing) return;
  bool was_negotiating = state_ != State::ready;
  state_ = State::finishing;
  if (was_negotiating && !tls_) {
    close();
    return;
  }
  send("</stream:stream>");
  timer_.expires_after(finish_grace);
  timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) self->close();
  });
}

void Client::fail(std::string_view why) {
  if (state_ == State::closed) return;
  if (on_failed) on_failed(*this, why);
  close();
}

void Client::close() {
  if (state_ == State::closed) return;
  state_ = State::closed;
  timer_.cancel();
  boost::system::error_code ec;
  stream_.next_layer().close(ec);
  if (on_closed) on_closed(*this);
}

}  // namespace stanzad::bench
