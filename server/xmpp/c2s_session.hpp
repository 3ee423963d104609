// A client-to-server session: RFC 6120 §4 streams, §5 STARTTLS, §6 SASL, §7 binding, and
// XEP-0368 direct TLS. Lives on one shard for its whole life.
#pragma once

#include <openssl/ssl.h>

#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/container/deque.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "net/shard.hpp"
#include "net/tls13_records.hpp"
#include "plugin/event.hpp"
#include "xml/stream_parser.hpp"
#include "xmpp/jid.hpp"
#include "xmpp/router.hpp"
#include "xmpp/sasl.hpp"

namespace stanzad::xmpp {

class Server;

// XEP-0198 inbound count, durable (DESIGN.md, "acknowledged means durable"): the client's
// n-th stanza counts in `h` only once it is done — written to its recipient's stream,
// committed to storage, refused, or a kind that needs nothing more — and `h` never skips one
// still on its way. Receipts complete from any shard: hence the mutex. Shared with the
// receipts and moved along when the session resumes on another connection.
class InboundAcks : public std::enable_shared_from_this<InboundAcks> {
 public:
  // A receipt for the next stanza; the stanza counts when the last copy is released.
  std::shared_ptr<Receipt> next();
  std::uint32_t h() const;
  // An <r/> came: true to answer now; otherwise the answer is owed until what the client had
  // sent so far is done, and then `session` is asked to send it.
  bool request();
  void attach(net::Shard* shard, std::weak_ptr<C2SSession> session);

 private:
  void done(std::uint32_t seq);
  struct Ticket;
  mutable std::mutex mutex_;
  std::uint32_t h_ = 0, received_ = 0, owed_ = 0;
  std::set<std::uint32_t> ahead_;  // done, after one still on its way
  net::Shard* shard_ = nullptr;
  std::weak_ptr<C2SSession> session_;
};

class C2SSession : public std::enable_shared_from_this<C2SSession>,
                   private xml::StreamParser::Handler,
                   private plugin::SessionSink {
  // Boost's deque allocates nothing until used and frees everything in shrink_to_fit() when
  // empty; std::deque allocates about 600 bytes at construction, for each of a session's queues.
  template <class T>
  using Queue = boost::container::deque<T>;

 public:
  C2SSession(Server& server, net::Shard& shard, boost::asio::ip::tcp::socket socket,
             bool direct_tls);
  ~C2SSession() override;

  void start();

  // Both run on this session's shard only.
  void deliver(xml::Element stanza, std::shared_ptr<Receipt> receipt = {});
  // The acknowledgement an <r/> was owed (InboundAcks::request).
  void send_ack();
  void close_with_stream_error(std::string_view condition, std::string_view text = {});

  std::uint64_t id() const { return id_; }

 private:
  enum class State {
    tls_handshake,  // direct TLS: handshake before any XML
    stream_header,  // waiting for <stream:stream>
    negotiating,    // features sent; STARTTLS or SASL next
    starttls,       // <proceed/> sent; TLS handshake follows
    authenticated,  // SASL succeeded; waiting for the restarted stream
    binding,        // stream restarted; waiting for resource binding
    bound,          // a full JID: stanzas are routed
    hibernating,    // XEP-0198: the connection broke; waiting to be resumed
    moving,         // XEP-0198: being resumed from another connection
    closing,
    closed,
  };

  // StreamParser::Handler
  void on_stream_open(const xml::StreamHeader& header) override;
  void on_stanza(xml::Element&& stanza) override;
  void on_stream_close() override;

  void start_tls();
  void handshake_step();
  void do_read();
  void on_readable(const boost::system::error_code& ec);
  bool consume(std::string_view data);           // false when the stream died
  bool open_records(char* data, std::size_t n);  // native TLS 1.3 records; false: stop reading
  void watch_idle();
  static bool on_idle_sweep(void* self);  // Shard::IdleCheck
  void charge(std::size_t n);             // traffic shaping: a token bucket per connection
  bool throttle();                        // true: reading paused until the bucket refills
  void send(std::string_view data);
  void send(const xml::Element& el);
  void do_write();
  void start_write();  // seals (native records) what is queued and writes it
  // While one lives, the session's own handler is running: a write it starts waits for the
  // handler's end (one write, no posted handler and event-loop poll per reply).
  class WriteBatch;
  void continue_write();
  void on_write(const boost::system::error_code& ec);
  void after_flush(std::function<void()> fn);
  void close_transport();
  void close_socket();
  void hibernate();
  void unacked_overflow();
  bool detached() const;  // no connection to write to (closed, hibernating or moving)
  void reroute_unacked();
  void closed();
  void leave();
  void restart_stream();

  void handle_stanza(xml::Element&& stanza);
  void handle_negotiation(xml::Element&& el);
  void handle_auth(xml::Element&& el);
  void handle_sasl_response(xml::Element&& el);
  bool authzid_matches(std::string_view authzid, const std::optional<std::string>& user) const;
  void scram_client_first(std::string_view message);
  void plain_auth(std::string_view message);
  void sasl_fail(sasl::Failure failure, std::string_view why);
  void sasl_succeed(std::string username, std::string additional_data);
  void handle_bind_phase(xml::Element&& el);
  void handle_bind(xml::Element&& iq);
  void handle_bound(xml::Element&& stanza);
  void handle_own_presence(xml::Element&& presence);

  // XEP-0198 stream management.
  struct StreamManagement {
    bool enabled = false;
    bool resumable = false;
    bool r_pending = false;    // an <r/> is out; the next goes after its <a/>
    bool overflowing = false;  // past sm-max-unacked: the session's end is posted
    std::string id;
    std::shared_ptr<InboundAcks> in;  // stanzas from the client, and which are done
    std::uint32_t acked = 0;          // stanzas the client acknowledged
    Queue<std::string> unacked;       // sent, not acknowledged, oldest first
  };
  struct Transfer {
    Jid jid;
    StreamManagement sm;
    std::set<std::string> directed;
    bool available;
  };
  void handle_sm(xml::Element&& el);
  bool acknowledge(std::string_view h);
  void handle_resume(xml::Element&& el);
  void move_to(SessionHandle to, std::function<void(std::optional<Transfer>)> done);
  void resumed(Transfer t, const std::string& h);
  void reply_error(const xml::Element& stanza, std::string_view condition,
                   std::string_view text = {}, std::string_view type = {},
                   const std::vector<xml::Element>& payload = {});
  void write_now(xml::Element stanza) override { send(stanza); }
  void send_stream_header();
  void fire_session_event(std::string_view name, const Jid* jid);
  void send_features();
  void wait_for(bool waiting);
  void arm_negotiation_timer();

  Server& server_;
  net::Shard& shard_;
  boost::asio::ip::tcp::socket socket_;
  struct SslFree {
    void operator()(SSL* s) const { SSL_free(s); }
  };
  std::unique_ptr<SSL, SslFree> ssl_;
  // After a TLS 1.3 handshake, stanzad's own record layer replaces ssl_ (net/tls13_records.hpp):
  // an idle session keeps its traffic secrets and sequence numbers, not an SSL object.
  std::unique_ptr<net::Tls13Records> records_;
  const std::uint64_t id_;
  const bool direct_tls_;
  std::string ip_;
  std::string peer_;
  bool admitted_ = false;  // counted in the per-address connection limit
  State state_;
  bool tls_ = false;
  bool header_sent_ = false;
  bool reading_ = false;
  bool waiting_ = false;         // an asynchronous step (credentials, binding) is pending
  bool in_parser_ = false;       // inside a StreamParser callback
  bool left_ = false;            // unbound from the router
  Queue<xml::Element> backlog_;  // stanzas that arrived while waiting_

  xml::StreamParser parser_;
  std::string out_;      // bytes queued for the next write
  std::string writing_;  // bytes of the write in flight
  std::vector<std::shared_ptr<Receipt>> out_receipts_, writing_receipts_;  // of those bytes
  std::size_t written_ = 0;
  bool write_in_flight_ = false;
  bool batching_ = false;        // a WriteBatch lives
  bool write_deferred_ = false;  // do_write ran during it: start_write when it ends
  std::vector<std::function<void()>> flushed_;
  boost::asio::steady_timer timer_;
  boost::asio::steady_timer shape_timer_;
  double tokens_;  // bytes this connection may still send before it is throttled
  std::chrono::steady_clock::time_point refilled_;
  bool throttled_ = false;
  // Reads so far, and at the last idle sweep: a session without a read between two sweeps is
  // quiet, and frees what it can rebuild (its parser, its output buffers).
  std::uint32_t reads_ = 0;
  std::uint32_t reads_at_sweep_ = 0;
  std::uint32_t writes_ = 0;  // record batches sealed (own TLS 1.3 records)
  std::uint32_t writes_at_sweep_ = 0;
  bool idle_watched_ = false;

  std::string stream_id_;
  std::string host_;
  std::string lang_ = "en";
  enum class ScramStep { client_first, waiting, client_final };
  std::unique_ptr<sasl::ScramServer> scram_;
  sasl::Hash scram_hash_ = sasl::Hash::sha256;
  ScramStep scram_step_ = ScramStep::client_first;
  bool plain_pending_ = false;
  std::string sasl_user_;
  unsigned sasl_failures_ = 0;
  std::string username_;
  std::optional<Jid> jid_;  // full JID once bound
  bool available_ = false;
  std::set<std::string> directed_;  // full JIDs given directed presence (RFC 6121 §4.6)
  StreamManagement sm_;
};

}  // namespace stanzad::xmpp
