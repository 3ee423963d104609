// plugins/carbons/carbons.cpp: XEP-0280 Message Carbons: enable/disable (§4, §5), which
// messages are copied (§6), received copies (§7), sent copies (§8), <private/> (§9).
#include <algorithm>
#include <memory>
#include <stanzad/plugin.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace sz = stanzad::sdk;

namespace {

constexpr std::string_view carbons_ns = "urn:xmpp:carbons:2";
constexpr std::string_view forward_ns = "urn:xmpp:forward:0";
constexpr std::string_view hints_ns = "urn:xmpp:hints";
constexpr std::string_view delay_ns = "urn:xmpp:delay";
constexpr std::string_view muc_user_ns = "http://jabber.org/protocol/muc#user";
constexpr std::string_view enabled_key = "carbons:enabled";  // a session property, "1" or unset

using sz::jid::bare_of;
using sz::jid::domain_of;
using sz::jid::is_bare;

// §6, with Prosody's reading of it. `outgoing`: the account sent it (else it receives it).
bool eligible(sz::StanzaRef msg, bool outgoing) {
  if (msg.name() != "message") return false;
  if (msg.child("private", carbons_ns) || msg.child("no-copy", hints_ns)) return false;
  // Our own copies, and what a client forged to look like one, are never copied again.
  if (msg.child("sent", carbons_ns) || msg.child("received", carbons_ns)) return false;
  // From a MUC room or service, private messages included (§6).
  if (!outgoing && msg.child("x", muc_user_ns)) return false;
  std::string_view type = msg.has_attr("type") ? msg.type() : "normal";
  if (type == "chat") return true;
  if (type == "normal" && msg.child("body")) return true;
  // The bounce of a message sent to a bare JID (§6 allows errors to eligible messages).
  if (type == "error" && !outgoing && is_bare(msg.from())) return true;
  return false;
}

// Delivered from offline storage: the offline plugin stamps what it stored with a delay from
// the recipient's domain. The resources online then were told when it arrived (or had a
// negative priority and got a copy then); copying it again would duplicate it.
bool from_offline_store(sz::StanzaRef msg, std::string_view domain) {
  for (const auto& child : msg.children())
    if (child.name() == "delay" && child.xmlns() == delay_ns && child.attr("from") == domain)
      return true;
  return false;
}

// <message from=bare to=full type=…><sent|received><forwarded><message/>…
sz::Stanza wrap(sz::StanzaRef original, std::string_view direction, std::string_view bare,
                std::string_view to) {
  sz::Stanza carbon("message");
  carbon.set_attr("from", bare);
  carbon.set_attr("to", to);
  if (original.has_attr("type")) carbon.set_attr("type", original.type());
  carbon.add_child(direction, carbons_ns)
      .add_child("forwarded", forward_ns)
      .append(sz::Stanza::copy_of(original));
  return carbon;
}

class Carbons {
 public:
  explicit Carbons(sz::Module& m) : m_(m), log_(m.log()) {
    if (!m.has_sessions()) throw std::runtime_error("carbons needs a server with ABI 1.2");
    m.add_feature(carbons_ns);
    m.hook("iq-set/bare/urn:xmpp:carbons:2:enable",
           [this](sz::Event& ev) { return toggle(ev, true); });
    m.hook("iq-set/bare/urn:xmpp:carbons:2:disable",
           [this](sz::Event& ev) { return toggle(ev, false); });
    // Observers: after guards (blocking) refused what they refuse; they always pass.
    m.hook("stanza/in/message", [this](sz::Event& ev) { return outgoing(ev); });
    m.hook("message/bare", [this](sz::Event& ev) { return incoming(ev); });
    m.hook("message/full", [this](sz::Event& ev) { return incoming(ev); });
    m.hook("session/closed", [this](sz::Event& ev) {
      std::string full(ev.session_jid());
      if (is_enabled(full)) announce(full, false);
      return sz::Verdict::pass;
    });
  }

  // This shard's copy of which resources have carbons on (every shard holds the same, told
  // by announce): most messages come from and go to accounts with none, and then cost
  // nothing here — no copy, no trip to the owner shard, no listing of sessions.
  void note(const std::string& full, bool enable) {
    std::string bare(bare_of(full));
    if (enable) {
      enabled_[bare].insert(full);
      return;
    }
    auto it = enabled_.find(bare);
    if (it == enabled_.end()) return;
    it->second.erase(full);
    if (it->second.empty()) enabled_.erase(it);
  }

  // On the sender's owner shard: a <sent/> copy to each other enabled resource.
  void copy_sent(const sz::Stanza& msg) {
    std::string from(msg.from());
    std::string bare(bare_of(from));
    std::vector<std::string> targets;
    m_.sessions(bare, [&](const sz::Session& s) {
      if (s.jid() != from && s.available() && s.property(enabled_key))
        targets.emplace_back(s.jid());
    });
    for (const auto& to : targets) m_.send(wrap(msg, "sent", bare, to));
  }

 private:
  // §4, §5: on the account's owner shard, from one of its resources.
  sz::Verdict toggle(sz::Event& ev, bool enable) {
    std::string_view from = ev.from();
    if (is_bare(from) || bare_of(from) != bare_of(ev.to()))
      return ev.error("not-allowed", "carbons are enabled by a resource for itself", "cancel");
    if (enable) {
      m_.set_session(from, enabled_key, "1");
    } else {
      m_.set_session(from, enabled_key, std::nullopt);
    }
    announce(std::string(from), enable);
    log_.debug(enable ? "carbons enabled" : "carbons disabled", "jid", from);
    ev.reply(sz::iq_result(ev.stanza()));
    return sz::Verdict::handled;
  }

  // §8, on the session's shard: the copies are made on the owner shard, which lists the
  // account's resources. The original goes on its way at once.
  sz::Verdict outgoing(sz::Event& ev) {
    sz::StanzaRef msg = ev.stanza();
    if (!msg || msg.name() != "message") return sz::Verdict::pass;
    std::string_view from = ev.from();
    std::string_view to = ev.to();
    // To the account itself (or no `to`): its resources get it as received copies.
    if (to.empty() || bare_of(to) == bare_of(from)) return sz::Verdict::pass;
    if (!any_enabled(bare_of(from), from)) return sz::Verdict::pass;
    if (!eligible(msg, true)) return sz::Verdict::pass;
    auto copy = std::make_shared<sz::Stanza>(sz::Stanza::copy_of(msg));
    if (!copy->has_attr("to")) copy->set_attr("to", to);
    m_.post<Carbons>(m_.owner_shard(bare_of(from)),
                     [copy](Carbons& self) { self.copy_sent(*copy); });
    return sz::Verdict::pass;
  }

  // §7, on the recipient's owner shard, before the core delivers it: a <received/> copy to
  // each enabled resource the core will not deliver it to.
  sz::Verdict incoming(sz::Event& ev) {
    sz::StanzaRef msg = ev.stanza();
    std::string_view to = ev.to();
    std::string bare(bare_of(to));
    if (msg.child("private", carbons_ns)) {
      msg.remove_child("private", carbons_ns);  // §9: the recipient need not see it
      return sz::Verdict::pass;
    }
    if (!any_enabled(bare, {})) return sz::Verdict::pass;
    if (!eligible(msg, false) || from_offline_store(msg, domain_of(to))) return sz::Verdict::pass;

    struct Res {
      std::string jid;
      bool available, enabled;
      int priority;
    };
    std::vector<Res> all;
    m_.sessions(bare, [&](const sz::Session& s) {
      all.push_back(
          {std::string(s.jid()), s.available(), s.property(enabled_key).has_value(), s.priority()});
    });
    if (all.empty()) return sz::Verdict::pass;

    // What the core will do (RFC 6121 §8.5): a full JID that is bound gets it; otherwise the
    // available resources of highest non-negative priority.
    std::vector<std::string_view> delivered;
    if (!is_bare(to)) {
      for (const auto& r : all)
        if (r.jid == to) delivered.push_back(r.jid);
    }
    if (delivered.empty()) {
      int best = -1;
      for (const auto& r : all)
        if (r.available && r.priority >= 0) best = std::max(best, r.priority);
      for (const auto& r : all)
        if (r.available && r.priority >= 0 && r.priority == best) delivered.push_back(r.jid);
    }
    std::string_view from = ev.from();
    for (const auto& r : all) {
      if (!r.available || !r.enabled || r.jid == from)
        continue;  // not to the resource that sent it
      if (std::find(delivered.begin(), delivered.end(), r.jid) != delivered.end()) continue;
      m_.send(wrap(msg, "received", bare, r.jid));
    }
    return sz::Verdict::pass;
  }

  // Tells every shard (this one included, in order with its other tasks). A message sent on
  // another shard in the instant before the news arrives gets no copy.
  void announce(const std::string& full, bool enable) {
    for (std::uint32_t shard = 0; shard < m_.shards(); ++shard)
      m_.post<Carbons>(shard, [full, enable](Carbons& self) { self.note(full, enable); });
  }
  bool is_enabled(const std::string& full) const {
    auto it = enabled_.find(std::string(bare_of(full)));
    return it != enabled_.end() && it->second.count(full) != 0;
  }
  // Whether a resource of `bare` other than `except` has carbons on.
  bool any_enabled(std::string_view bare, std::string_view except) const {
    auto it = enabled_.find(std::string(bare));
    if (it == enabled_.end()) return false;
    return it->second.size() > 1 || except.empty() || !it->second.count(std::string(except));
  }

  sz::Module& m_;
  sz::Logger log_;
  std::unordered_map<std::string, std::unordered_set<std::string>> enabled_;  // bare -> full
};

}  // namespace

STANZAD_PLUGIN_WITH(Carbons, "carbons", "1.0.0", nullptr, 0, nullptr)
