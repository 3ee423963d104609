// plugins/offline/offline.cpp: XEP-0160 offline message storage (RFC 6121 §8.5.2.2.1) with
// XEP-0203 delay stamps, XEP-0334 store hints and a per-user quota; delivered at the next
// initial presence of non-negative priority.
#include <cstdint>
#include <ctime>
#include <stanzad/plugin.hpp>
#include <string>
#include <string_view>
#include <unordered_map>

namespace sz = stanzad::sdk;

namespace {

constexpr std::string_view delay_ns = "urn:xmpp:delay";
constexpr std::string_view hints_ns = "urn:xmpp:hints";
constexpr std::string_view chatstates_ns = "http://jabber.org/protocol/chatstates";
constexpr std::string_view carbons_ns = "urn:xmpp:carbons:2";

const sz_option options[] = {
    {"offline_max_messages", SZ_OPT_INTEGER, "1000", 0, 1000000,
     "messages kept for one account; more are refused with resource-constraint (0: store none)"},
};

using sz::jid::bare_of;
using sz::jid::domain_of;

// XEP-0082 DateTime in UTC, e.g. 2026-11-28T00:01:02Z.
std::string utc_stamp() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

enum class Keep { store, drop, refuse };

// XEP-0160 §3 and XEP-0334: what is worth keeping for later. Messages that only signal
// something transient (a chat state, a carbon copy) are dropped silently, as RFC 6121
// §8.5.2.2.1 allows; groupchat is refused (service-unavailable from the core).
Keep classify(sz::StanzaRef msg) {
  std::string_view type = msg.type();
  if (type == "groupchat" || type == "error" || type == "headline") return Keep::refuse;
  if (msg.child("no-store", hints_ns) || msg.child("no-permanent-store", hints_ns))
    return Keep::drop;
  if (msg.child("store", hints_ns)) return Keep::store;
  if (msg.child("sent", carbons_ns) || msg.child("received", carbons_ns)) return Keep::drop;
  for (const auto& child : msg.children()) {
    std::string_view ns = child.xmlns(), name = child.name();
    if (ns == chatstates_ns || ns == hints_ns || ns == delay_ns) continue;
    if (ns == "jabber:client" && name == "thread") continue;
    if (ns == carbons_ns && name == "private") continue;
    return Keep::store;  // a body, a subject, or any other payload (receipts, markers, OMEMO…)
  }
  return Keep::drop;
}

int presence_priority(sz::StanzaRef presence) {
  std::string p = presence.child_text("priority");
  if (p.empty()) return 0;
  try {
    return std::stoi(p);
  } catch (const std::exception&) {
    return 0;
  }
}

class Offline {
 public:
  explicit Offline(sz::Module& m)
      : m_(m), log_(m.log()), max_messages_(m.option_integer("offline_max_messages")) {
    if (!m.has_sessions()) throw std::runtime_error("offline needs a server with ABI 1.2");
    m.add_feature("msgoffline");
    m.hook("message/offline", [this](sz::Event& ev) { return store(ev); });
    m.hook("account/available", [this](sz::Event& ev) { return deliver(ev); });
    m.hook("user/deleted", [this](sz::Event& ev) {
      known_.erase(std::string(bare_of(ev.from())));
      return sz::Verdict::pass;
    });
  }

 private:
  // On the recipient's owner shard, for a message no available resource could take.
  sz::Verdict store(sz::Event& ev) {
    sz::StanzaRef msg = ev.stanza();
    switch (classify(msg)) {
      case Keep::refuse:
        return sz::Verdict::pass;  // the core answers service-unavailable
      case Keep::drop:
        log_.debug("offline dropped", "to", ev.to(), "from", ev.from());
        return sz::Verdict::handled;
      case Keep::store:
        break;
    }
    std::string user(bare_of(ev.to()));
    if (max_messages_ == 0 ||
        (queued(user, false) >= max_messages_ && queued(user, true) >= max_messages_)) {
      log_.debug("offline queue full", "jid", user, "max", max_messages_);
      // As ejabberd: the sender learns the message was not kept, and may try again later.
      return ev.error("resource-constraint", "the recipient's offline message queue is full",
                      "wait");
    }
    // XEP-0203: when it was stored, by whom. A message coming back here (its resource left
    // while it was being delivered) keeps its first stamp.
    std::string domain(domain_of(user));
    bool stamped = false;
    for (const auto& child : msg.children())
      if (child.name() == "delay" && child.xmlns() == delay_ns && child.attr("from") == domain)
        stamped = true;
    if (!stamped) {
      sz::StanzaRef delay = msg.add_child("delay", delay_ns);
      delay.set_attr("from", domain);
      delay.set_attr("stamp", utc_stamp());
    }
    std::int64_t n = 0;
    if (m_.has_async_offline()) {
      // Joins the next group commit; the sender's acknowledgement waits for it, the shard
      // does not (a synchronous push held it for a whole commit, ~1 ms, per message).
      m_.offline_push_async(ev, user, msg.to_string());
      n = ++known_[user];
    } else {
      n = known_[user] = m_.offline_push(user, msg.to_string());
    }
    log_.debug("offline stored", "jid", user, "queued", n);
    return sz::Verdict::handled;
  }

  // On the owner shard, after the initial presence was broadcast: the queue goes to the
  // resource that came online, and to it only (as Prosody), if it may receive messages to the
  // bare JID (RFC 6121 §8.5.2.1.1: not with a negative priority).
  sz::Verdict deliver(sz::Event& ev) {
    sz::StanzaRef presence = ev.stanza();
    if (presence && presence_priority(presence) < 0) return sz::Verdict::pass;
    std::string full(ev.session_jid().empty() ? ev.from() : ev.session_jid());
    std::string user(bare_of(full));
    known_.erase(user);  // emptied below, or read again at the next message
    if (m_.offline_count(user) == 0) return sz::Verdict::pass;
    if (m_.has_async_offline()) {
      // SDK 1.5: each message leaves the store once it was written to the stream (or stored
      // again, or refused), so a crash during the delivery does not lose what was taken.
      std::int64_t n = m_.offline_deliver(user, full);
      log_.debug("offline delivering", "jid", full, "count", n);
      return sz::Verdict::pass;
    }
    auto queue = m_.offline_take(user);
    log_.debug("offline delivering", "jid", full, "count", queue.size());
    for (const auto& xml : queue) {
      try {
        sz::Stanza msg = sz::Stanza::parse(xml);
        msg.set_attr("to", full);  // if the resource left meanwhile: the bare JID's rules
        m_.send(std::move(msg));
      } catch (const std::exception& ex) {
        log_.warn("offline message unreadable", "jid", user, "error", ex.what());
      }
    }
    return sz::Verdict::pass;
  }

  // A queue's length: as this (owner) shard last knew it, or read from storage when it does
  // not know or `exact` is asked. Every offline message of an account is stored here, so the
  // count kept from one read onwards saves a COUNT(*) of the queue per message (linear in the
  // queue); the quota is read again before anything is refused, so a queue emptied elsewhere
  // (an account removed by stanzactl) costs that one read, never a wrong refusal.
  std::int64_t queued(const std::string& user, bool exact) {
    if (!exact)
      if (auto it = known_.find(user); it != known_.end()) return it->second;
    if (known_.size() >= max_known) known_.clear();  // bounded: forgetting only costs reads
    std::int64_t n = m_.offline_count(user);
    known_[user] = n;
    return n;
  }

  static constexpr std::size_t max_known = 100000;
  sz::Module& m_;
  sz::Logger log_;
  std::int64_t max_messages_;
  std::unordered_map<std::string, std::int64_t> known_;  // by bare JID, this shard's accounts
};

}  // namespace

STANZAD_PLUGIN_WITH(Offline, "offline", "1.0.0", options, 1, nullptr)
