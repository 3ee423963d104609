// A client-to-server session: RFC 6120 §4 streams, §5 STARTTLS, §6 SASL, §7 binding, and
// XEP-0368 direct TLS. Lives on one shard for its whole life.
#include "xmpp/c2s_session.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <charconv>

#include "plugin/plugin_manager.hpp"
#include "plugin/stanza_api.hpp"
#include "xml/serializer.hpp"
#include "xmpp/namespaces.hpp"
#include "xmpp/server.hpp"
#include "xmpp/stanza.hpp"

namespace stanzad::xmpp {

namespace asio = boost::asio;

namespace {

std::string hex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

constexpr std::size_t max_backlog = 64;
// XEP-0198 §3 and §5 refusals.
constexpr std::string_view sm_unexpected_request =
    "<failed xmlns='urn:xmpp:sm:3'><unexpected-request "
    "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>";
constexpr std::string_view sm_item_not_found =
    "<failed xmlns='urn:xmpp:sm:3'><item-not-found "
    "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>";
constexpr unsigned max_sasl_failures = 5;
constexpr auto closing_grace = std::chrono::seconds(5);

}  // namespace

C2SSession::C2SSession(Server& server, net::Shard& shard, asio::ip::tcp::socket socket,
                       bool direct_tls)
    : server_(server),
      shard_(shard),
      socket_(std::move(socket)),
      id_(server.next_session_id()),
      direct_tls_(direct_tls),
      state_(direct_tls ? State::tls_handshake : State::stream_header),
      parser_(*this, xml::ParserLimits{server.config().limits.max_stanza_bytes,
                                       server.config().limits.max_depth}),
      timer_(shard.context()),
      shape_timer_(shard.context()),
      tokens_(static_cast<double>(server.config().limits.burst_bytes)),
      refilled_(std::chrono::steady_clock::now()) {}

C2SSession::~C2SSession() {
  if (admitted_) server_.release_connection(ip_);
}

void C2SSession::start() {
  boost::system::error_code ec;
  auto ep = socket_.remote_endpoint(ec);
  ip_ = ec ? std::string("?") : ep.address().to_string();
  peer_ = ip_ + ":" + std::to_string(ep.port());
  admitted_ = server_.admit_connection(ip_);
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  socket_.non_blocking(true, ec);
  spdlog::debug("c2s connected id={} ip={} tls={}", id_, peer_, direct_tls_);
  arm_negotiation_timer();
  if (direct_tls_) {
    start_tls();
  } else {
    do_read();
  }
}

void C2SSession::arm_negotiation_timer() {
  timer_.expires_after(server_.config().limits.negotiation_timeout);
  timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec || self->state_ == State::bound || self->state_ == State::closed) return;
    if (self->state_ == State::closing) {
      self->close_transport();
      return;
    }
    if (self->state_ == State::tls_handshake || self->state_ == State::starttls) {
      // No TLS yet, so no stream to carry an error (and a slow handshake must not earn the
      // closing grace period on top): just hang up.
      spdlog::debug("c2s tls handshake timed out id={} ip={}", self->id_, self->peer_);
      self->close_transport();
      return;
    }
    self->close_with_stream_error("connection-timeout", "stream negotiation took too long");
  });
}

void C2SSession::fire_session_event(std::string_view name, const Jid* jid) {
  plugin::Event ev;
  ev.name = name;
  ev.session = jid;
  ev.from = jid;
  ev.host = host_;
  ev.sink = this;
  server_.pipeline().fire(ev);
}

class C2SSession::WriteBatch {
 public:
  explicit WriteBatch(C2SSession& s) : s_(s), outer_(!s.batching_) { s_.batching_ = true; }
  ~WriteBatch() {
    if (!outer_) return;
    s_.batching_ = false;
    if (!s_.write_deferred_) return;
    s_.write_deferred_ = false;
    s_.start_write();
  }
  WriteBatch(const WriteBatch&) = delete;
  WriteBatch& operator=(const WriteBatch&) = delete;

 private:
  C2SSession& s_;
  bool outer_;
};

// ---- transport -------------------------------------------------------------------------
//
// The TLS handshake is OpenSSL on the socket itself (SSL_set_fd on a non-blocking socket),
// driven by readiness waits. Once a TLS 1.3 handshake is done, stanzad takes the records over
// (net::Tls13Records, <tls native-records>): the SSL object is freed, reads land in one buffer
// per shard and are decrypted there in place, and writes are sealed into the write buffer, so
// an idle session holds its traffic secrets (the idle sweep frees its cipher contexts), its
// released parser and little else. TLS 1.2, and anything the take-over refuses, stays with
// OpenSSL's record layer (no per-connection buffers while idle: SSL_MODE_RELEASE_BUFFERS).

namespace {

// Room for two whole TLS records (2^14 + 256 + 5 bytes each): one read usually ends records.
std::array<char, 2 * 16645>& shard_read_buffer() {
  thread_local std::array<char, 2 * 16645> buffer;
  return buffer;
}

// Whether the last read(2) on a session's socket came back short of what was asked: then the
// kernel had nothing more at that instant, and the next read would only find EAGAIN. Set by
// the socket BIO of a session whose records OpenSSL keeps (note_socket_read), read right
// after SSL_read; one shard reads one socket at a time, so a thread-local will do.
thread_local bool socket_drained = false;

long note_socket_read(BIO*, int oper, const char*, std::size_t len, int, long, int ret,
                      std::size_t* processed) {
  if (oper == (BIO_CB_READ | BIO_CB_RETURN))
    socket_drained = ret <= 0 || (processed != nullptr && *processed < len);
  return ret;
}

std::string tls_error_text() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "connection closed";
  char text[256];
  ERR_error_string_n(e, text, sizeof text);
  return text;
}

}  // namespace

void C2SSession::start_tls() {
  ERR_clear_error();
  ssl_.reset(SSL_new(server_.tls().native_handle()));
  if (!ssl_ || SSL_set_fd(ssl_.get(), socket_.native_handle()) != 1) {
    spdlog::error("c2s cannot start tls id={} error={}", id_, tls_error_text());
    close_transport();
    return;
  }
  BIO_set_callback_ex(SSL_get_rbio(ssl_.get()), &note_socket_read);
  SSL_set_accept_state(ssl_.get());
  state_ = State::tls_handshake;
  handshake_step();
}

void C2SSession::handshake_step() {
  if (detached()) return;
  int r = SSL_do_handshake(ssl_.get());
  if (r == 1) {
    tls_ = true;
    if (server_.config().tls_native_records) {
      // Right after the handshake, before any application data has been read or written.
      std::string_view why;
      if (auto records = net::Tls13Records::take_over(ssl_.get(), why)) {
        records_ = std::move(records);
        ssl_.reset();
      } else {
        spdlog::debug("c2s tls records stay with openssl id={} reason={}", id_, why);
      }
    }
    if (ssl_) {
      // Records stay with OpenSSL: read as many as the socket holds at once (not a header
      // then a body, two read(2) each); a partial record stays buffered (SSL_has_pending).
      SSL_set_read_ahead(ssl_.get(), 1);
    }
    state_ = State::stream_header;
    parser_.reset();
    do_read();
    return;
  }
  int err = SSL_get_error(ssl_.get(), r);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    auto wait = err == SSL_ERROR_WANT_READ ? asio::ip::tcp::socket::wait_read
                                           : asio::ip::tcp::socket::wait_write;
    socket_.async_wait(wait, [self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec) return self->close_transport();
      self->handshake_step();
    });
    return;
  }
  spdlog::debug("c2s tls handshake failed id={} ip={} error={}", id_, peer_, tls_error_text());
  close_transport();
}

void C2SSession::do_read() {
  if (reading_ || waiting_ || throttled_ || detached() || state_ == State::starttls ||
      state_ == State::tls_handshake)
    return;
  reading_ = true;
  if (ssl_ && SSL_has_pending(ssl_.get()) == 1) {
    // Plaintext already decrypted inside OpenSSL: the socket may never become readable.
    asio::post(shard_.context(), [self = shared_from_this()] { self->on_readable({}); });
    return;
  }
  socket_.async_wait(
      asio::ip::tcp::socket::wait_read,
      [self = shared_from_this()](const boost::system::error_code& ec) { self->on_readable(ec); });
}

void C2SSession::on_readable(const boost::system::error_code& ec) {
  reading_ = false;
  if (detached()) return;
  if (ec) {
    close_transport();
    return;
  }
  WriteBatch batch(*this);  // the replies to what is read here leave in one write at the end
  auto& buffer = shard_read_buffer();
  // Drain what is there (bounded, so one busy client cannot starve the shard), and stop at a
  // short read rather than read again for EAGAIN: the next readiness wait re-checks the
  // socket (Asio re-arms it with EPOLL_CTL_MOD), so bytes that came since are not missed.
  socket_drained = false;
  bool drained = false;
  for (int round = 0; round < 8; ++round) {
    std::size_t n = 0;
    if (ssl_) {
      ERR_clear_error();
      int r = SSL_read(ssl_.get(), buffer.data(), static_cast<int>(buffer.size()));
      if (r <= 0) {
        int err = SSL_get_error(ssl_.get(), r);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) break;
        if (err != SSL_ERROR_ZERO_RETURN)
          spdlog::debug("c2s read failed id={} error={}", id_, tls_error_text());
        close_transport();
        return;
      }
      n = static_cast<std::size_t>(r);
      drained = socket_drained;  // of the last read(2), in this call or an earlier one
    } else {
      boost::system::error_code rec;
      n = socket_.read_some(asio::buffer(buffer), rec);
      if (rec == asio::error::would_block || rec == asio::error::try_again) break;
      if (rec) {
        if (rec != asio::error::eof)
          spdlog::debug("c2s read failed id={} error={}", id_, rec.message());
        close_transport();
        return;
      }
      drained = n < buffer.size();
    }
    if (records_) {
      if (!open_records(buffer.data(), n)) return;
    } else {
      charge(n);
      if (!consume(std::string_view(buffer.data(), n))) return;
    }
    if (state_ == State::starttls || waiting_ || detached() || state_ == State::closing ||
        tokens_ < 0)
      break;
    if (drained && !(ssl_ && SSL_has_pending(ssl_.get()) == 1)) break;
  }
  if (state_ == State::starttls) {
    after_flush([self = shared_from_this()] {
      if (self->state_ == State::starttls) self->start_tls();
    });
    return;
  }
  if (state_ != State::closing && !throttle()) do_read();
  ++reads_;
  if (state_ == State::bound && !idle_watched_) watch_idle();
}

bool C2SSession::open_records(char* data, std::size_t n) {
  struct Reader {
    C2SSession* self;
    bool alive = true;
    static bool plaintext(void* p, std::string_view text) {
      auto* r = static_cast<Reader*>(p);
      r->self->charge(text.size());
      r->alive = r->self->consume(text);
      return r->alive && r->self->state_ != State::closing && !r->self->detached();
    }
  } reader{this};
  auto status = records_->open(std::span<char>(data, n), &Reader::plaintext, &reader);
  if (!reader.alive || detached()) return false;
  switch (status) {
    case net::Tls13Records::Status::ok:
      // A KeyUpdate the client asked for goes out now, even with nothing else to say.
      if (records_->write_owed() && !write_in_flight_) do_write();
      return true;
    case net::Tls13Records::Status::closed:
      spdlog::debug("c2s tls close_notify id={}", id_);
      break;
    case net::Tls13Records::Status::failed:
      if (auto alert = records_->failure()) {
        spdlog::info("c2s tls record refused id={} ip={} alert={}", id_, peer_,
                     net::to_string(*alert));
      } else {
        spdlog::debug("c2s tls alert from client id={} alert={}", id_,
                      static_cast<int>(records_->peer_alert().value_or(net::Alert{255})));
      }
      break;
  }
  close_transport();  // answers with close_notify, or the failure's alert
  return false;
}

void C2SSession::watch_idle() {
  idle_watched_ = true;
  reads_at_sweep_ = reads_;
  writes_at_sweep_ = writes_;
  shard_.watch_idle(weak_from_this(), &C2SSession::on_idle_sweep);
}

bool C2SSession::on_idle_sweep(void* p) {
  auto* self = static_cast<C2SSession*>(p);
  const bool reading = self->reads_ != self->reads_at_sweep_;
  const bool writing = self->writes_ != self->writes_at_sweep_;
  self->reads_at_sweep_ = self->reads_;
  self->writes_at_sweep_ = self->writes_;
  if (self->state_ == State::bound && reading) return false;  // busy: look again next sweep
  if (self->state_ != State::bound) {
    self->idle_watched_ = false;
    return true;
  }
  // Quiet for a whole sweep period. The parser is rebuilt by the next read; a half-received
  // stanza keeps it (release() refuses), and the next read watches again.
  self->parser_.release();
  // A session that only receives keeps its write side (cipher contexts, buffers) while it
  // receives: freeing it every sweep cost ~14 allocations to rebuild at the next write.
  if (writing) return false;
  self->idle_watched_ = false;
  if (!self->write_in_flight_ && self->out_.empty()) {
    std::string().swap(self->out_);
    std::string().swap(self->writing_);
  }
  if (self->records_) self->records_->release();  // cipher contexts, rebuilt by the next record
  self->backlog_.shrink_to_fit();                 // frees only when empty
  self->sm_.unacked.shrink_to_fit();              // (everything acknowledged)
  return true;
}

void C2SSession::charge(std::size_t n) {
  const auto& limits = server_.config().limits;
  if (limits.bytes_per_second == 0) return;
  auto now = std::chrono::steady_clock::now();
  double elapsed = std::chrono::duration<double>(now - refilled_).count();
  refilled_ = now;
  tokens_ = std::min(static_cast<double>(limits.burst_bytes),
                     tokens_ + elapsed * static_cast<double>(limits.bytes_per_second));
  tokens_ -= static_cast<double>(n);
}

bool C2SSession::throttle() {
  if (tokens_ >= 0) return false;
  // Past its rate: stop reading until the bucket refills. TCP pushes back on the sender;
  // nobody else on this shard waits.
  double rate = static_cast<double>(server_.config().limits.bytes_per_second);
  auto wait = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::duration<double>(-tokens_ / rate));
  spdlog::debug("c2s throttled id={} ip={} for_ms={}", id_, peer_,
                std::chrono::duration_cast<std::chrono::milliseconds>(wait).count());
  throttled_ = true;
  shape_timer_.expires_after(wait);
  shape_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    self->throttled_ = false;
    if (!ec && !self->detached() && self->state_ != State::closing) self->do_read();
  });
  return true;
}

bool C2SSession::consume(std::string_view data) {
  while (!data.empty() && state_ != State::closing && !detached()) {
    auto result = parser_.feed(data);
    if (result.error) {
      spdlog::info("c2s stream error id={} ip={} condition={} detail={}", id_, peer_,
                   xml::to_string(*result.error), result.detail);
      close_with_stream_error(xml::to_string(*result.error), result.detail);
      return false;
    }
    if (result.consumed == 0) break;
    data.remove_prefix(result.consumed);
    // Bytes after <starttls/> are not ours to read in the clear (RFC 6120 §5.4.3.3).
    if (state_ == State::starttls) break;
  }
  return true;
}

void C2SSession::send(std::string_view data) {
  if (detached()) return;
  out_.append(data);
  if (!write_in_flight_) do_write();
}

void C2SSession::send(const xml::Element& el) {
  if (state_ == State::closed) return;
  if (!sm_.enabled) {
    if (detached()) return;
    xml::serialize(el, out_, ns::client);
  } else {
    // XEP-0198: every stanza is kept until the client acknowledges it; while the session
    // waits to be resumed (or moves to its new connection) it is only kept.
    std::string xml;
    xml::serialize(el, xml, ns::client);
    if (!detached()) {
      out_.append(xml);
      if (!sm_.r_pending) {
        out_.append("<r xmlns='urn:xmpp:sm:3'/>");
        sm_.r_pending = true;
      }
    }
    sm_.unacked.push_back(std::move(xml));
    const auto limit = server_.config().limits.sm_max_unacked;
    if (limit != 0 && sm_.unacked.size() > limit && !sm_.overflowing) {
      sm_.overflowing = true;  // ended from the event loop, not from inside a delivery
      asio::post(shard_.context(), [self = shared_from_this()] { self->unacked_overflow(); });
    }
    if (detached()) return;
  }
  if (!write_in_flight_) do_write();
}

void C2SSession::do_write() {
  if (state_ == State::tls_handshake) return;  // written once the handshake is done
  write_in_flight_ = true;
  // The write starts when the session's own handler ends (WriteBatch), or from the event
  // loop, never inside the caller: what else is queued meanwhile goes out in the same write,
  // and a failing socket never closes the session under the feet of whoever was delivering
  // to it (the router iterating an account).
  if (batching_) {
    write_deferred_ = true;
    return;
  }
  asio::post(shard_.context(), [self = shared_from_this()] { self->start_write(); });
}

void C2SSession::start_write() {
  if (detached()) {
    write_in_flight_ = false;
    return;
  }
  if (records_) {
    // Everything queued this round goes out in as few records as fit (2^14 bytes each).
    writing_.clear();
    if (!records_->seal(out_, writing_)) {
      writing_receipts_.swap(out_receipts_);
      on_write(asio::error::connection_reset);
      return;
    }
    out_.clear();
    ++writes_;
    // A session that only receives rebuilt its write context: the sweep frees it again.
    if (state_ == State::bound && !idle_watched_) watch_idle();
  } else {
    writing_.swap(out_);
  }
  writing_receipts_.swap(out_receipts_);
  written_ = 0;
  continue_write();
}

void C2SSession::continue_write() {
  while (written_ < writing_.size()) {
    const char* data = writing_.data() + written_;
    std::size_t left = writing_.size() - written_;
    if (ssl_) {
      ERR_clear_error();
      int r = SSL_write(ssl_.get(), data, static_cast<int>(std::min<std::size_t>(left, 1 << 30)));
      if (r > 0) {
        written_ += static_cast<std::size_t>(r);
        continue;
      }
      int err = SSL_get_error(ssl_.get(), r);
      if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
        auto wait = err == SSL_ERROR_WANT_WRITE ? asio::ip::tcp::socket::wait_write
                                                : asio::ip::tcp::socket::wait_read;
        socket_.async_wait(wait, [self = shared_from_this()](const boost::system::error_code& ec) {
          if (ec) return self->on_write(ec);
          if (!self->detached()) self->continue_write();
        });
        return;
      }
      spdlog::debug("c2s write failed id={} error={}", id_, tls_error_text());
      on_write(asio::error::connection_reset);
      return;
    }
    boost::system::error_code ec;
    std::size_t n = socket_.write_some(asio::buffer(data, left), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      socket_.async_wait(asio::ip::tcp::socket::wait_write,
                         [self = shared_from_this()](const boost::system::error_code& ec) {
                           if (ec) return self->on_write(ec);
                           if (!self->detached()) self->continue_write();
                         });
      return;
    }
    if (ec) {
      on_write(ec);
      return;
    }
    written_ += n;
  }
  on_write({});
}

void C2SSession::on_write(const boost::system::error_code& ec) {
  write_in_flight_ = false;
  writing_.clear();
  // Written, or the stream failed: then the bytes are gone, and without stream management
  // (whose unacknowledged queue routes them again) nothing else will deliver them.
  if (ec && !sm_.enabled)
    for (auto& r : writing_receipts_) r->undelivered();
  writing_receipts_.clear();
  if (writing_.capacity() > 4096) std::string().swap(writing_);  // idle sessions stay small
  if (detached()) return;
  if (ec) {
    spdlog::debug("c2s write failed id={} error={}", id_, ec.message());
    close_transport();
    return;
  }
  if (!out_.empty() || (records_ && records_->write_owed())) {
    do_write();
    return;
  }
  if (out_.capacity() > 4096) std::string().swap(out_);
  auto callbacks = std::move(flushed_);
  flushed_.clear();
  for (auto& fn : callbacks) fn();
}

void C2SSession::after_flush(std::function<void()> fn) {
  if (!write_in_flight_ && out_.empty()) {
    fn();
  } else {
    flushed_.push_back(std::move(fn));
  }
}

void C2SSession::close_socket() {
  if (ssl_ && tls_) {
    ERR_clear_error();
    SSL_shutdown(ssl_.get());  // close_notify, best effort: the socket is non-blocking
    ERR_clear_error();
  } else if (records_) {
    // close_notify (or the alert of a refused record), best effort as above; the rest of a
    // write cut short goes first, so that the alert starts on a record boundary.
    std::string last;
    if (write_in_flight_ && written_ < writing_.size()) last.assign(writing_, written_);
    last += records_->close_records();
    boost::system::error_code ignored;
    if (!last.empty()) socket_.write_some(asio::buffer(last), ignored);
  }
  boost::system::error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  out_.clear();
  if (!sm_.enabled)
    for (auto& r : out_receipts_) r->undelivered();  // never written (see on_write)
  out_receipts_.clear();
}

void C2SSession::close_transport() {
  if (detached()) return;
  close_socket();
  if (state_ == State::bound && sm_.enabled && sm_.resumable) {
    hibernate();
    return;
  }
  closed();
}

void C2SSession::hibernate() {
  // XEP-0198 §5: the connection broke, not the session. It stays bound, keeps what is
  // delivered to it, and waits for the client to resume it from a new connection.
  state_ = State::hibernating;
  sm_.r_pending = false;
  spdlog::info("c2s session waits for resumption id={} jid={} unacked={} timeout={}s", id_,
               jid_->str(), sm_.unacked.size(), server_.config().limits.resume_timeout.count());
  timer_.expires_after(server_.config().limits.resume_timeout);
  timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec || self->state_ != State::hibernating) return;
    spdlog::info("c2s resumption timed out id={} jid={}", self->id_, self->jid_->str());
    self->closed();
  });
}

// XEP-0198 leaves the size of the unacknowledged queue to the server. A client that never
// acknowledges, or a session waiting for resumption while messages pour in, would otherwise
// keep every stanza sent to it; past sm-max-unacked the session ends (as ejabberd's
// max_ack_queue; Prosody's smacks_max_queue_size) and what it held is routed again as at any
// end: to another resource, to the offline store, or back to its sender.
void C2SSession::unacked_overflow() {
  sm_.overflowing = false;
  const auto limit = server_.config().limits.sm_max_unacked;
  if (limit == 0 || sm_.unacked.size() <= limit) return;  // acknowledged meanwhile
  if (state_ != State::bound && state_ != State::hibernating) return;
  spdlog::info("c2s too many unacknowledged stanzas id={} jid={} unacked={} limit={}", id_,
               jid_->str(), sm_.unacked.size(), limit);
  if (state_ == State::hibernating) {
    closed();
    return;
  }
  close_with_stream_error("resource-constraint", "too many unacknowledged stanzas");
}

void C2SSession::closed() {
  state_ = State::closed;
  timer_.cancel();
  leave();
  backlog_.clear();
  flushed_.clear();
  spdlog::debug("c2s closed id={} jid={}", id_, jid_ ? jid_->str() : std::string());
  server_.session_closed(id_);
}

void C2SSession::leave() {
  if (!jid_ || left_) return;
  left_ = true;
  // RFC 6121 §4.6.3: those given directed presence learn that this resource is gone.
  for (const auto& to : directed_) {
    auto target = Jid::parse(to);
    if (!target) continue;
    xml::Element unavailable("presence", std::string(ns::client));
    unavailable.set_attr("type", "unavailable");
    unavailable.set_attr("from", jid_->str());
    unavailable.set_attr("to", to);
    server_.router().route(Routed{std::move(unavailable), *jid_, *target});
  }
  directed_.clear();
  server_.router().unbind(*jid_, id_);
  if (sm_.enabled) {
    server_.forget_resumable(sm_.id, id_);
    reroute_unacked();
  }
  fire_session_event("session/closed", &*jid_);
}

void C2SSession::reroute_unacked() {
  // XEP-0198 §5: what the client never acknowledged was not delivered. After the unbind
  // (queued first, so the owner no longer knows this resource) messages are routed again:
  // to another resource, the offline store, or back to their sender as an error; iq
  // requests are answered with an error; presence is stale and dropped.
  auto unacked = std::move(sm_.unacked);
  sm_.unacked.clear();
  for (const auto& xml : unacked)
    if (auto el = plugin::parse_element(xml)) server_.router().route_again(std::move(*el));
}

void C2SSession::close_with_stream_error(std::string_view condition, std::string_view text) {
  if (state_ == State::closing || state_ == State::closed) return;
  if (!header_sent_) send_stream_header();
  std::string out = "<stream:error><";
  out.append(condition);
  out.append(" xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>");
  if (!text.empty()) {
    out.append("<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>");
    xml::escape_text(text, out);
    out.append("</text>");
  }
  out.append("</stream:error></stream:stream>");
  send(out);
  spdlog::debug("c2s sent stream error id={} condition={}", id_, condition);
  state_ = State::closing;
  leave();
  // A peer that never reads must not keep the session: close after a grace period.
  timer_.expires_after(closing_grace);
  timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) self->close_transport();
  });
  after_flush([self = shared_from_this()] { self->close_transport(); });
}

// ---- stream ----------------------------------------------------------------------------

void C2SSession::send_stream_header() {
  stream_id_ = hex(sasl::random_bytes(8));
  std::string out =
      "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
      "xmlns:stream='http://etherx.jabber.org/streams' id='";
  out.append(stream_id_);
  out.append("' from='");
  xml::escape_attr(host_.empty() ? server_.config().hosts.front() : host_, out);
  out.append("' version='1.0' xml:lang='en'>");
  header_sent_ = true;
  send(out);
}

void C2SSession::on_stream_open(const xml::StreamHeader& header) {
  const bool restarted = !host_.empty();
  std::optional<std::string> to = Jid::prep_domain(header.to);
  if (!restarted && to && server_.router().is_local_host(*to)) host_ = *to;
  send_stream_header();

  if (!admitted_) {
    close_with_stream_error("policy-violation", "too many connections from your address");
    return;
  }
  if (header.ns != ns::streams || header.local_name != "stream") {
    close_with_stream_error("invalid-namespace",
                            "the stream element is not in the streams namespace");
    return;
  }
  if (header.default_ns != ns::client) {
    close_with_stream_error("invalid-namespace", "this port serves jabber:client streams");
    return;
  }
  if (header.version.empty() || header.version.substr(0, 2) != "1.") {
    close_with_stream_error("unsupported-version", "stanzad speaks XMPP version 1.0");
    return;
  }
  if (!to || host_.empty() || *to != host_) {
    close_with_stream_error("host-unknown", "this server does not serve that domain");
    return;
  }
  if (!header.lang.empty()) lang_ = header.lang;
  state_ = state_ == State::authenticated ? State::binding : State::negotiating;
  send_features();
}

void C2SSession::send_features() {
  std::string out = "<stream:features>";
  if (state_ == State::binding) {
    out.append(
        "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
        "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session>"
        "<sm xmlns='urn:xmpp:sm:3'/>");
    plugin::PluginManager::stream_features(SZ_STAGE_POST_AUTH, host_, out);
  } else {
    if (!tls_) {
      out.append("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>");
      if (server_.config().require_tls) out.append("<required/>");
      out.append("</starttls>");
    }
    if (tls_ || !server_.config().require_tls) {
      out.append(
          "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
          "<mechanism>SCRAM-SHA-256</mechanism><mechanism>SCRAM-SHA-1</mechanism>");
      if (tls_) out.append("<mechanism>PLAIN</mechanism>");  // never in the clear
      out.append("</mechanisms>");
      plugin::PluginManager::stream_features(SZ_STAGE_PRE_AUTH, host_, out);
    }
  }
  out.append("</stream:features>");
  send(out);
}

void C2SSession::on_stream_close() {
  spdlog::debug("c2s stream closed by client id={}", id_);
  if (state_ == State::closing || state_ == State::closed) return;
  send("</stream:stream>");
  state_ = State::closing;
  leave();
  after_flush([self = shared_from_this()] { self->close_transport(); });
}

void C2SSession::on_stanza(xml::Element&& stanza) {
  if (waiting_) {
    if (backlog_.size() >= max_backlog) {
      close_with_stream_error("policy-violation", "too many stanzas during negotiation");
      return;
    }
    backlog_.push_back(std::move(stanza));
    return;
  }
  in_parser_ = true;
  handle_stanza(std::move(stanza));
  in_parser_ = false;
}

void C2SSession::wait_for(bool waiting) {
  waiting_ = waiting;
  if (waiting) return;
  while (!waiting_ && !backlog_.empty() && state_ != State::closing && state_ != State::closed) {
    xml::Element next = std::move(backlog_.front());
    backlog_.pop_front();
    handle_stanza(std::move(next));
  }
  do_read();
}

void C2SSession::restart_stream() {
  // Inside a parser callback the parser stops after this element; otherwise (an
  // asynchronous step finished) nothing is being parsed and a reset is enough.
  if (in_parser_) {
    parser_.restart();
  } else {
    parser_.reset();
  }
}

void C2SSession::handle_stanza(xml::Element&& stanza) {
  switch (state_) {
    case State::negotiating:
      handle_negotiation(std::move(stanza));
      break;
    case State::binding:
      handle_bind_phase(std::move(stanza));
      break;
    case State::bound:
      handle_bound(std::move(stanza));
      break;
    default:
      break;
  }
}

// ---- STARTTLS and SASL -----------------------------------------------------------------

void C2SSession::handle_negotiation(xml::Element&& el) {
  if (el.xmlns() == ns::tls && el.name() == "starttls") {
    if (tls_) {
      close_with_stream_error("policy-violation", "TLS is already in place");
      return;
    }
    send("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    state_ = State::starttls;
    restart_stream();
    return;
  }
  if (el.xmlns() == ns::sasl) {
    if (!tls_ && server_.config().require_tls) {
      sasl_fail(sasl::Failure::encryption_required, "sasl before starttls");
      return;
    }
    if (el.name() == "auth") {
      handle_auth(std::move(el));
    } else if (el.name() == "response") {
      handle_sasl_response(std::move(el));
    } else if (el.name() == "abort") {
      sasl_fail(sasl::Failure::aborted, "client aborted");
    } else {
      sasl_fail(sasl::Failure::malformed_request, "unknown sasl element");
    }
    return;
  }
  if (el.xmlns() == ns::client && el.name() == "iq" && (tls_ || !server_.config().require_tls)) {
    // A plugin may answer an iq before authentication (XEP-0077 in-band registration); it
    // writes its answer with event_session_write.
    plugin::Event ev;
    auto domain = Jid::parse(host_);  // the virtual host the stream was opened to
    ev.name = "stream/preauth";
    ev.stanza = &el;
    ev.to = domain ? &*domain : nullptr;
    ev.host = host_;
    ev.sink = this;
    ev.remote_address = ip_;
    if (server_.pipeline().fire(ev) == SZ_HANDLED) return;
  }
  // RFC 6120 §4.9.3.12: nothing but negotiation before authentication.
  close_with_stream_error("not-authorized", "authenticate first");
}

void C2SSession::handle_auth(xml::Element&& el) {
  scram_.reset();
  if (!server_.login_allowed(ip_)) {
    // Brute force from this address: no attempt is even checked until the window passes.
    sasl_fail(sasl::Failure::temporary_auth_failure, "too many failed logins from this address");
    return;
  }
  std::string_view mechanism = el.attr("mechanism");
  std::string text = el.text();
  std::optional<std::string> initial;
  if (text == "=") {
    initial = std::string();
  } else if (!text.empty()) {
    initial = sasl::base64_decode(text);
    if (!initial) {
      sasl_fail(sasl::Failure::incorrect_encoding, "bad base64");
      return;
    }
  }

  if (mechanism == "SCRAM-SHA-256" || mechanism == "SCRAM-SHA-1") {
    scram_ = std::make_unique<sasl::ScramServer>(mechanism == "SCRAM-SHA-256" ? sasl::Hash::sha256
                                                                              : sasl::Hash::sha1);
    scram_hash_ = mechanism == "SCRAM-SHA-256" ? sasl::Hash::sha256 : sasl::Hash::sha1;
    scram_step_ = ScramStep::client_first;
    if (!initial || initial->empty()) {
      send("<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");  // RFC 6120 §6.4.2
      return;
    }
    scram_client_first(*initial);
    return;
  }
  if (mechanism == "PLAIN" && tls_) {
    if (!initial) {
      send("<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
      plain_pending_ = true;
      return;
    }
    plain_auth(*initial);
    return;
  }
  sasl_fail(sasl::Failure::invalid_mechanism, "mechanism not offered");
}

void C2SSession::handle_sasl_response(xml::Element&& el) {
  std::string text = el.text();
  std::optional<std::string> data = text.empty() ? std::string() : sasl::base64_decode(text);
  if (!data) {
    sasl_fail(sasl::Failure::incorrect_encoding, "bad base64");
    return;
  }
  if (plain_pending_) {
    plain_pending_ = false;
    plain_auth(*data);
    return;
  }
  if (!scram_) {
    sasl_fail(sasl::Failure::malformed_request, "no exchange in progress");
    return;
  }
  if (scram_step_ == ScramStep::client_first) {
    scram_client_first(*data);
    return;
  }
  if (scram_step_ != ScramStep::client_final) {
    sasl_fail(sasl::Failure::malformed_request, "unexpected response");
    return;
  }
  if (auto failure = scram_->client_final(*data)) {
    sasl_fail(*failure, "scram proof");
    return;
  }
  sasl_succeed(sasl_user_, scram_->server_final());
}

// RFC 6120 §6.3.8: an authorization identity, if given, must be the account itself.
bool C2SSession::authzid_matches(std::string_view authzid,
                                 const std::optional<std::string>& user) const {
  if (authzid.empty()) return true;
  auto authz = Jid::parse(authzid);
  return user && authz && authz->node() == *user && authz->domain() == host_ && authz->is_bare();
}

void C2SSession::scram_client_first(std::string_view message) {
  if (auto failure = scram_->client_first(message)) {
    sasl_fail(*failure, "scram client-first");
    return;
  }
  std::optional<std::string> user = Jid::prep_node(scram_->username());
  if (!authzid_matches(scram_->authzid(), user)) {
    sasl_fail(sasl::Failure::invalid_authzid, "authzid differs from the user");
    return;
  }
  sasl_user_ = user.value_or(std::string());
  scram_step_ = ScramStep::waiting;
  wait_for(true);
  server_.workers().submit(
      shard_,
      [&store = server_.accounts(), host = host_, user,
       hash = scram_hash_]() -> std::optional<sasl::ScramCredentials> {
        if (!user) return std::nullopt;
        return store.credentials(host, *user, hash);
      },
      [self = shared_from_this()](std::optional<sasl::ScramCredentials> creds) {
        WriteBatch batch(*self);
        if (self->state_ != State::negotiating || !self->scram_) return self->wait_for(false);
        std::string challenge = "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>";
        challenge.append(sasl::base64_encode(self->scram_->server_first(creds)));
        challenge.append("</challenge>");
        self->scram_step_ = ScramStep::client_final;
        self->send(challenge);
        self->wait_for(false);
      },
      [self = shared_from_this()](const std::string& what) {
        spdlog::error("c2s credential lookup failed id={} error={}", self->id_, what);
        self->sasl_fail(sasl::Failure::temporary_auth_failure, "storage");
        self->wait_for(false);
      });
}

void C2SSession::plain_auth(std::string_view message) {
  auto plain = sasl::parse_plain(message);
  if (!plain) {
    sasl_fail(sasl::Failure::malformed_request, "bad PLAIN message");
    return;
  }
  std::optional<std::string> user = Jid::prep_node(plain->authcid);
  if (!authzid_matches(plain->authzid, user)) {
    sasl_fail(sasl::Failure::invalid_authzid, "authzid differs from the user");
    return;
  }
  if (!user) {
    sasl_fail(sasl::Failure::not_authorized, "bad username");
    return;
  }
  wait_for(true);
  server_.workers().submit(
      shard_,
      [&store = server_.accounts(), host = host_, user = *user,
       password = std::move(plain->password)]() {
        auto creds = store.credentials(host, user, sasl::Hash::sha256);
        return creds && sasl::verify_password(*creds, password);
      },
      [self = shared_from_this(), user = *user](bool ok) {
        if (self->state_ == State::negotiating) {
          if (ok) {
            self->sasl_succeed(user, {});
          } else {
            self->sasl_fail(sasl::Failure::not_authorized, "wrong password");
          }
        }
        self->wait_for(false);
      },
      [self = shared_from_this()](const std::string& what) {
        spdlog::error("c2s credential lookup failed id={} error={}", self->id_, what);
        self->sasl_fail(sasl::Failure::temporary_auth_failure, "storage");
        self->wait_for(false);
      });
}

void C2SSession::sasl_fail(sasl::Failure failure, std::string_view why) {
  scram_.reset();
  plain_pending_ = false;
  std::string out = "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><";
  out.append(sasl::to_string(failure));
  out.append("/></failure>");
  send(out);
  if (failure == sasl::Failure::not_authorized) server_.login_failed(ip_);
  spdlog::info("c2s authentication failed id={} ip={} user={} condition={} reason={}", id_, peer_,
               sasl_user_, sasl::to_string(failure), why);
  if (failure != sasl::Failure::aborted && ++sasl_failures_ >= max_sasl_failures)
    close_with_stream_error("policy-violation", "too many failed authentication attempts");
}

void C2SSession::sasl_succeed(std::string username, std::string additional_data) {
  scram_.reset();
  username_ = std::move(username);
  std::string out = "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'";
  if (additional_data.empty()) {
    out.append("/>");
  } else {
    out.append(">");
    out.append(sasl::base64_encode(additional_data));
    out.append("</success>");
  }
  send(out);
  state_ = State::authenticated;
  backlog_.clear();  // anything pipelined belonged to the old stream
  restart_stream();
  spdlog::info("c2s authenticated id={} jid={}@{}", id_, username_, host_);
  if (auto bare = Jid::make(username_, host_)) fire_session_event("session/authenticated", &*bare);
}

// ---- resource binding ------------------------------------------------------------------

void C2SSession::handle_bind_phase(xml::Element&& el) {
  if (el.xmlns() == ns::sm) {
    if (el.name() == "resume") {
      handle_resume(std::move(el));
    } else {
      // §3: stream management is enabled after binding.
      send(sm_unexpected_request);
    }
    return;
  }
  if (el.name() == "iq" && el.xmlns() == ns::client && el.attr("type") == "set") {
    if (el.child("bind", ns::bind)) {
      handle_bind(std::move(el));
      return;
    }
    if (el.child("session", ns::session)) {
      send(make_iq_result(el));
      return;
    }
  }
  close_with_stream_error("not-authorized", "bind a resource first");
}

void C2SSession::handle_bind(xml::Element&& iq) {
  std::string requested = iq.child("bind", ns::bind)->child_text("resource", ns::bind);
  if (requested.empty()) requested = "stanzad-" + hex(sasl::random_bytes(6));
  std::optional<std::string> resource = Jid::prep_resource(requested);
  std::optional<Jid> full;
  if (resource) full = Jid::make(username_, host_, *resource);
  if (!full) {
    iq.remove_attr("from");
    send(make_error_reply(iq, "bad-request", "the resource is not valid"));
    return;
  }
  wait_for(true);
  server_.router().bind(
      *full, SessionHandle{id_, &shard_, weak_from_this()},
      [self = shared_from_this(), full = *full, iq_id = std::string(iq.attr("id")),
       request = iq](bool bound) {
        WriteBatch batch(*self);
        if (!bound) {
          xml::Element error = make_error_reply(request, "resource-constraint",
                                                "this account has all the sessions it may have");
          error.remove_attr("to");
          self->send(error);
          self->wait_for(false);
          return;
        }
        if (self->state_ != State::binding) {
          self->server_.router().unbind(full, self->id_);
          self->wait_for(false);
          return;
        }
        self->jid_ = full;
        self->state_ = State::bound;
        self->timer_.cancel();
        xml::Element result("iq", std::string(ns::client));
        result.set_attr("type", "result");
        result.set_attr("id", iq_id);
        result.add_child("bind", std::string(ns::bind))
            .add_child("jid", std::string(ns::bind))
            .add_text(full.str());
        self->send(result);
        spdlog::info("c2s bound id={} jid={} ip={}", self->id_, full.str(), self->peer_);
        self->fire_session_event("session/bound", &*self->jid_);
        self->wait_for(false);
      });
}

// ---- routing ---------------------------------------------------------------------------

void C2SSession::deliver(xml::Element stanza, std::shared_ptr<Receipt> receipt) {
  if (state_ != State::bound && state_ != State::hibernating && state_ != State::moving) {
    // Routed here before the owner's shard learnt that this session left (its unbind is
    // queued there ahead of this): not delivered, so routed again, the sender's
    // acknowledgement still waiting. Dropping it would have acknowledged a lost message.
    if (left_) server_.router().route_again(std::move(stanza), std::move(receipt));
    return;
  }
  plugin::Event ev;
  ev.name = "stanza/out";
  ev.stanza = &stanza;
  ev.session = &*jid_;
  ev.host = host_;
  ev.sink = this;
  // Last chance to rewrite or drop (handled): the stanza is serialized once, below.
  if (server_.pipeline().fire(ev) != SZ_PASS) return;
  send(stanza);
  // The sender's acknowledgement waits until these bytes are written (on_write).
  if (receipt && !detached() && state_ != State::closed)
    out_receipts_.push_back(std::move(receipt));
}

void C2SSession::reply_error(const xml::Element& stanza, std::string_view condition,
                             std::string_view text, std::string_view type,
                             const std::vector<xml::Element>& payload) {
  if (!may_bounce(stanza)) return;
  xml::Element reply = make_error_reply(stanza, condition, text);
  if (xml::Element* error = reply.child("error", ns::client)) {
    if (!type.empty()) error->set_attr("type", std::string(type));
    for (const auto& el : payload) error->add_child(el);
  }
  reply.set_attr("to", jid_->str());
  reply.remove_attr("from");
  if (stanza.has_attr("to")) reply.set_attr("from", std::string(stanza.attr("to")));
  send(reply);
}

void C2SSession::handle_bound(xml::Element&& stanza) {
  if (stanza.xmlns() == ns::sm) {
    handle_sm(std::move(stanza));
    return;
  }
  const std::string& kind = stanza.name();
  if (stanza.xmlns() != ns::client || (kind != "message" && kind != "presence" && kind != "iq")) {
    // Elements of a plugin's stream feature (RFC 6120 §4.3.2): the plugin takes them.
    plugin::Event ev;
    ev.name = "stream/element";
    ev.stanza = &stanza;
    ev.from = &*jid_;
    ev.session = &*jid_;
    ev.host = host_;
    ev.sink = this;
    if (server_.pipeline().fire(ev) == SZ_HANDLED) return;
    close_with_stream_error("unsupported-stanza-type", "not a stanza");
    return;
  }
  // XEP-0198 §4: every stanza counts, whatever becomes of it — once it is done: a message
  // carries its receipt to its recipient's stream or to storage; anything else is done when
  // this function returns (the receipt is released here).
  std::shared_ptr<Receipt> receipt = sm_.enabled ? sm_.in->next() : nullptr;
  // RFC 6120 §8.1.2.1: the server stamps `from`; a client may only name itself.
  if (stanza.has_attr("from")) {
    auto from = Jid::parse(stanza.attr("from"));
    if (!from || (*from != *jid_ && *from != jid_->bare())) {
      close_with_stream_error("invalid-from", "the from address is not yours");
      return;
    }
  }
  stanza.set_attr("from", jid_->str());

  Jid to;
  if (stanza.has_attr("to")) {
    auto parsed = Jid::parse(stanza.attr("to"));
    if (!parsed) {
      reply_error(stanza, "jid-malformed", "the to address is not a valid JID");
      return;
    }
    to = std::move(*parsed);
    stanza.set_attr("to", to.str());
  }

  if (kind == "iq") {
    std::string_view type = stanza.attr("type");
    bool request = type == "get" || type == "set";
    if (!stanza.has_attr("id") || (!request && type != "result" && type != "error")) {
      reply_error(stanza, "bad-request", "an iq needs an id and a valid type");
      return;
    }
    if (request && stanza.children().size() != 1) {
      reply_error(stanza, "bad-request", "an iq request carries exactly one payload");
      return;
    }
    if (request && (to.empty() || to == jid_->bare() || to.is_host())) {
      const xml::Element* payload = stanza.first_child();
      if (payload && payload->xmlns() == ns::session && payload->name() == "session") {
        send(make_iq_result(stanza));  // RFC 3921 legacy session: a no-op today
        return;
      }
      if (payload && payload->xmlns() == ns::bind) {
        reply_error(stanza, "not-allowed", "this session is already bound");
        return;
      }
    }
  }

  {
    plugin::Event ev;
    ev.name = "stanza/in";
    ev.stanza = &stanza;
    ev.from = &*jid_;
    ev.to = to.empty() ? nullptr : &to;
    ev.session = &*jid_;
    ev.host = host_;
    ev.sink = this;
    ev.remote_address = ip_;
    sz_verdict v = server_.pipeline().fire(ev);
    if (v == SZ_HANDLED) return;
    if (v == SZ_ERROR) {
      reply_error(stanza, ev.error_condition, ev.error_text, ev.error_type, ev.error_payload);
      return;
    }
  }

  if (kind == "presence" && to.empty()) {
    handle_own_presence(std::move(stanza));
    return;
  }
  if (kind == "presence") {
    std::string_view type = stanza.attr("type");
    if (type.empty() && to != jid_->bare()) directed_.insert(to.str());
    if (type == "unavailable") directed_.erase(to.str());
  }
  if (to.empty()) to = jid_->bare();  // RFC 6120 §8.1.1.1: no `to` means the account
  if (kind != "message") receipt.reset();
  server_.router().route(Routed{std::move(stanza), *jid_, std::move(to), std::move(receipt)});
}

void C2SSession::handle_own_presence(xml::Element&& presence) {
  std::string_view type = presence.attr("type");
  if (!type.empty() && type != "unavailable") return;  // probes and subscriptions need a `to`
  available_ = type.empty();
  if (!available_) {
    // RFC 6121 §4.5.2: unavailable also goes to everyone given directed presence.
    for (const auto& to : directed_) {
      auto target = Jid::parse(to);
      if (!target) continue;
      xml::Element copy = presence;
      copy.set_attr("to", to);
      server_.router().route(Routed{std::move(copy), *jid_, *target});
    }
    directed_.clear();
  }
  server_.router().broadcast_own_presence(Routed{std::move(presence), *jid_, jid_->bare()}, id_);
}

}  // namespace stanzad::xmpp

namespace stanzad::xmpp {

// ---- stream management (XEP-0198) --------------------------------------------------------

struct InboundAcks::Ticket : Receipt {
  std::shared_ptr<InboundAcks> acks;
  std::uint32_t seq;
  Ticket(std::shared_ptr<InboundAcks> a, std::uint32_t n) : acks(std::move(a)), seq(n) {}
  ~Ticket() override { acks->done(seq); }
};

std::shared_ptr<Receipt> InboundAcks::next() {
  std::uint32_t seq;
  {
    std::lock_guard lock(mutex_);
    seq = ++received_;
  }
  return std::make_shared<Ticket>(shared_from_this(), seq);
}

std::uint32_t InboundAcks::h() const {
  std::lock_guard lock(mutex_);
  return h_;
}

bool InboundAcks::request() {
  std::lock_guard lock(mutex_);
  if (h_ == received_) return true;
  owed_ = received_;
  return false;
}

void InboundAcks::attach(net::Shard* shard, std::weak_ptr<C2SSession> session) {
  std::lock_guard lock(mutex_);
  shard_ = shard;
  session_ = std::move(session);
}

void InboundAcks::done(std::uint32_t seq) {
  net::Shard* shard = nullptr;
  std::weak_ptr<C2SSession> session;
  {
    std::lock_guard lock(mutex_);
    if (seq != h_ + 1) {
      ahead_.insert(seq);
      return;
    }
    ++h_;
    for (auto it = ahead_.begin(); it != ahead_.end() && *it == h_ + 1; it = ahead_.erase(it)) ++h_;
    if (owed_ == 0 || h_ < owed_ || !shard_) return;
    owed_ = 0;
    shard = shard_;
    session = session_;
  }
  boost::asio::post(shard->context(), [session] {
    if (auto s = session.lock()) s->send_ack();
  });
}

void C2SSession::send_ack() {
  if (!sm_.enabled || !sm_.in || detached()) return;
  send("<a xmlns='urn:xmpp:sm:3' h='" + std::to_string(sm_.in->h()) + "'/>");
}

bool C2SSession::detached() const {
  return state_ == State::closed || state_ == State::hibernating || state_ == State::moving;
}

void C2SSession::handle_sm(xml::Element&& el) {
  const std::string& name = el.name();
  if (name == "r") {
    // Answered once everything the client sent so far is done (durable), at once if it is.
    if (!sm_.enabled || sm_.in->request())
      send("<a xmlns='urn:xmpp:sm:3' h='" + std::to_string(sm_.in ? sm_.in->h() : 0) + "'/>");
    return;
  }
  if (name == "a") {
    if (!sm_.enabled) return;
    sm_.r_pending = false;
    acknowledge(el.attr("h"));
    return;
  }
  if (name == "enable") {
    if (sm_.enabled) {
      send(sm_unexpected_request);
      return;
    }
    std::string_view resume = el.attr("resume");
    sm_.enabled = true;
    sm_.in = std::make_shared<InboundAcks>();
    sm_.in->attach(&shard_, weak_from_this());
    sm_.resumable = resume == "true" || resume == "1";
    sm_.id = hex(sasl::random_bytes(16));
    std::string out = "<enabled xmlns='urn:xmpp:sm:3' id='" + sm_.id + "'";
    if (sm_.resumable) {
      server_.remember_resumable(sm_.id,
                                 Server::Resumable{&shard_, weak_from_this(), jid_->bare_str()});
      out += " resume='true' max='" +
             std::to_string(server_.config().limits.resume_timeout.count()) + "'";
    }
    send(out + "/>");
    spdlog::debug("c2s stream management on id={} resumable={}", id_, sm_.resumable);
    return;
  }
  close_with_stream_error("unsupported-stanza-type", "unknown stream management element");
}

bool C2SSession::acknowledge(std::string_view h_text) {
  std::uint32_t h = 0;
  auto [end, ec] = std::from_chars(h_text.data(), h_text.data() + h_text.size(), h);
  // Counters wrap at 2^32 (§4): what is newly acknowledged is the difference.
  std::uint32_t newly = h - sm_.acked;
  if (h_text.empty() || ec != std::errc() || end != h_text.data() + h_text.size() ||
      newly > sm_.unacked.size()) {
    std::string text =
        "<stream:error><undefined-condition "
        "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><handled-count-too-high "
        "xmlns='urn:xmpp:sm:3' h='" +
        std::string(h_text) + "' send-count='" + std::to_string(sm_.acked + sm_.unacked.size()) +
        "'/></stream:error></stream:stream>";
    spdlog::info("c2s bad acknowledgement id={} h={}", id_, h_text);
    if (!detached()) {
      send(text);
      state_ = State::closing;
      leave();
      after_flush([self = shared_from_this()] { self->close_transport(); });
    }
    return false;
  }
  sm_.unacked.erase(sm_.unacked.begin(), sm_.unacked.begin() + newly);
  sm_.acked = h;
  return true;
}

void C2SSession::handle_resume(xml::Element&& el) {
  std::string previd(el.attr("previd"));
  std::string h(el.attr("h"));
  auto found = server_.find_resumable(previd);
  if (!found || found->bare != username_ + "@" + host_) {
    send(sm_item_not_found);
    return;
  }
  wait_for(true);
  SessionHandle me{id_, &shard_, weak_from_this()};
  auto self = shared_from_this();
  auto fail = [self] {
    self->shard_.run([self] {
      self->send(sm_item_not_found);
      self->wait_for(false);
    });
  };
  found->shard->run([old = found->session, me, self, h, fail]() {
    auto o = old.lock();
    if (!o || !o->sm_.resumable || (o->state_ != State::bound && o->state_ != State::hibernating))
      return fail();
    o->move_to(me, [self, h, fail](std::optional<Transfer> t) {
      if (!t) return fail();
      self->shard_.run([self, h, t = std::move(*t)]() mutable { self->resumed(std::move(t), h); });
    });
  });
}

void C2SSession::move_to(SessionHandle to, std::function<void(std::optional<Transfer>)> done) {
  // On the old session's shard. Its connection, if it still has one, is stale: the client
  // has moved on (§5). The router is repointed first; everything it delivered here before
  // that is queued with the rest, and then the whole state moves.
  if (state_ == State::bound) close_socket();
  state_ = State::moving;
  timer_.cancel();
  server_.router().rebind(
      *jid_, id_, std::move(to), shard_,
      [self = shared_from_this(), done = std::move(done)](bool ok) {
        if (!ok) {
          self->closed();
          return done(std::nullopt);
        }
        Transfer t{*self->jid_, std::move(self->sm_), std::move(self->directed_), self->available_};
        self->sm_ = {};
        self->directed_.clear();
        // Gone without leaving: the binding now belongs to the new session.
        self->left_ = true;
        self->closed();
        done(std::move(t));
      });
}

void C2SSession::resumed(Transfer t, const std::string& h) {
  jid_ = std::move(t.jid);
  sm_ = std::move(t.sm);
  directed_ = std::move(t.directed);
  available_ = t.available;
  sm_.r_pending = false;
  server_.remember_resumable(sm_.id,
                             Server::Resumable{&shard_, weak_from_this(), jid_->bare_str()});
  if (state_ != State::binding) {
    // This connection died while the state moved: it is ours to let go properly.
    left_ = false;
    leave();
    wait_for(false);
    return;
  }
  state_ = State::bound;
  timer_.cancel();
  sm_.in->attach(&shard_, weak_from_this());
  send("<resumed xmlns='urn:xmpp:sm:3' previd='" + sm_.id + "' h='" + std::to_string(sm_.in->h()) +
       "'/>");
  if (!acknowledge(h)) return;
  // Whatever the client did not get, again, in order.
  for (const auto& xml : sm_.unacked) out_.append(xml);
  if (!sm_.unacked.empty()) {
    out_.append("<r xmlns='urn:xmpp:sm:3'/>");
    sm_.r_pending = true;
  }
  if (!write_in_flight_ && !out_.empty()) do_write();
  spdlog::info("c2s resumed id={} jid={} resent={}", id_, jid_->str(), sm_.unacked.size());
  fire_session_event("session/resumed", &*jid_);
  wait_for(false);
}

}  // namespace stanzad::xmpp
