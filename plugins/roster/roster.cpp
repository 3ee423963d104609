// plugins/roster/roster.cpp: RFC 6121 rosters (§2, versioning §2.6), presence subscriptions
// (§3, pre-approval §3.4), presence broadcast and probes (§4), and XEP-0012 last activity.
//
// Every read and write of an account's roster runs on the account's owner shard: roster iqs,
// inbound presence and the account/ events arrive there, and outbound subscription presence
// (stanza/in, on the session's shard) is posted there first. So one account's roster changes
// one at a time, and no lock is needed.
#include <chrono>
#include <cstdint>
#include <ctime>
#include <map>
#include <optional>
#include <stanzad/plugin.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace sz = stanzad::sdk;

namespace {

constexpr std::string_view roster_ns = "jabber:iq:roster";
constexpr std::string_view last_ns = "jabber:iq:last";
constexpr std::string_view delay_ns = "urn:xmpp:delay";
constexpr std::string_view store = "roster";
constexpr std::string_view key_items = "items";               // the roster document (see load/save)
constexpr std::string_view key_last = "last";                 // "<unix seconds>\n<status text>"
constexpr std::string_view interested = "roster:interested";  // session property

const sz_option options[] = {
    {"roster_max_items", SZ_OPT_INTEGER, "1000", 1, 100000,
     "most contacts (with pending requests) an account may have; more are refused"},
    {"roster_max_text_bytes", SZ_OPT_INTEGER, "1023", 1, 65535,
     "longest item name or group name, in bytes; longer ones get not-acceptable"},
};

using sz::jid::bare_of;
using sz::jid::domain_of;

bool is_ascii(std::string_view s) {
  for (unsigned char c : s)
    if (c >= 0x80) return false;
  return true;
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// XEP-0082 date-time, UTC.
std::string iso8601(std::int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// One contact as stored. `listed` is false for a contact known only by a pending inbound
// request: RFC 6121 §3.1.3 keeps the request but creates no roster item for it.
struct Item {
  std::string name;
  std::vector<std::string> groups;
  bool to = false, from = false;  // the subscription state (§2.1.2.5)
  bool ask = false;               // pending out: our subscribe awaits an answer (§3.1.2)
  bool pending_in = false;        // their subscribe awaits ours (§3.1.3)
  bool approved = false;          // pre-approved (§3.4)
  bool listed = true;
  std::string request;  // the pending inbound subscribe, XML, redelivered at initial presence
};

struct Roster {
  std::uint64_t ver = 0;  // bumped by every change a client sees (§2.6)
  std::map<std::string, Item> items;
  std::size_t listed() const {
    std::size_t n = 0;
    for (const auto& [jid, item] : items) n += item.listed;
    return n;
  }
};

std::string_view subscription_of(const Item& item) {
  if (item.to && item.from) return "both";
  if (item.to) return "to";
  if (item.from) return "from";
  return "none";
}

// <item/> as clients see it (§2.1.2); `remove` for the push of a removal (§2.5.2).
sz::Stanza item_element(const std::string& jid, const Item* item) {
  sz::Stanza el("item", roster_ns);
  el.set_attr("jid", jid);
  if (!item) {
    el.set_attr("subscription", "remove");
    return el;
  }
  if (!item->name.empty()) el.set_attr("name", item->name);
  el.set_attr("subscription", subscription_of(*item));
  if (item->ask) el.set_attr("ask", "subscribe");
  if (item->approved) el.set_attr("approved", "true");
  for (const auto& g : item->groups) el.text_tag("group", g);
  return el;
}

}  // namespace

class RosterPlugin {
 public:
  explicit RosterPlugin(sz::Module& m)
      : m_(m),
        log_(m.log()),
        max_items_(static_cast<std::size_t>(m.option_integer("roster_max_items"))),
        max_text_(static_cast<std::size_t>(m.option_integer("roster_max_text_bytes"))),
        started_(std::chrono::steady_clock::now()) {
    if (!m.has_sessions() || !sz::jid::has_prep())
      throw std::runtime_error("roster needs a server with SDK 1.4");
    m.add_feature(roster_ns);
    m.add_feature(last_ns);
    m.add_stream_feature("<ver xmlns='urn:xmpp:features:rosterver'/>");
    m.add_stream_feature("<sub xmlns='urn:xmpp:features:pre-approval'/>");
    m.hook("iq-get/bare/jabber:iq:roster:query", [this](sz::Event& ev) { return get(ev); });
    m.hook("iq-set/bare/jabber:iq:roster:query", [this](sz::Event& ev) { return set(ev); });
    m.hook("stanza/in/presence", [this](sz::Event& ev) { return outbound_presence(ev); });
    m.hook("presence/bare", [this](sz::Event& ev) { return inbound_presence(ev); });
    m.hook("presence/full", [this](sz::Event& ev) { return inbound_presence(ev); });
    m.hook("account/presence", [this](sz::Event& ev) { return broadcast(ev); });
    m.hook("account/available", [this](sz::Event& ev) { return initial(ev); });
    m.hook("iq-get/bare/jabber:iq:last:query", [this](sz::Event& ev) { return last(ev); });
    m.hook("iq-get/host/jabber:iq:last:query", [this](sz::Event& ev) { return uptime(ev); });
    m.hook("user/deleted", [this](sz::Event& ev) { return deleted(ev); });
  }

  // Outbound subscription presence, on the user's owner shard (§3.1.2, §3.1.5, §3.2.2, §3.3.2,
  // §3.4.1). `xml` is the stanza as the client sent it, `from` stamped.
  void outbound(const std::string& from_full, const std::string& contact, const std::string& xml) {
    std::string user(bare_of(from_full));
    sz::Stanza st = sz::Stanza::parse(xml);
    std::string type(st.type());
    st.set_attr("from", user);  // §3.1.2: stamped with the bare JID
    st.set_attr("to", contact);
    Roster r = load(user);
    auto it = r.items.find(contact);
    Item* item = it == r.items.end() ? nullptr : &it->second;

    if (type == "subscribe") {
      if (!item) {
        if (r.items.size() >= max_items_) {
          refuse_presence(from_full, contact);
          return;
        }
        item = &r.items[contact];
      }
      bool changed = !item->listed || (!item->to && !item->ask);
      item->listed = true;
      if (!item->to) item->ask = true;
      if (changed) commit(user, r, contact);
      m_.send(std::move(st));
    } else if (type == "subscribed") {
      if (item && item->from) return;  // already approved: nothing to say again
      if (item && item->pending_in) {
        item->from = true;
        item->pending_in = false;
        item->approved = false;
        item->request.clear();
        item->listed = true;  // §3.1.5: the approved contact becomes an item, "from"
        commit(user, r, contact);
        m_.send(std::move(st));
        send_current_presence(user, contact);  // §3.1.5
        return;
      }
      // §3.4.1: pre-approval of a contact that has not asked (yet).
      if (!item) {
        if (r.items.size() >= max_items_) {
          refuse_presence(from_full, contact);
          return;
        }
        item = &r.items[contact];
      }
      item->listed = true;
      item->approved = true;
      commit(user, r, contact);
    } else if (type == "unsubscribe") {
      if (item && (item->to || item->ask)) {
        item->to = false;
        item->ask = false;
        commit(user, r, contact);
      }
      m_.send(std::move(st));  // §3.3.2: routed in every case
    } else if (type == "unsubscribed") {
      if (item) {
        bool was_from = item->from;
        bool visible = item->listed && (item->from || item->approved);
        item->from = false;
        item->approved = false;
        item->pending_in = false;
        item->request.clear();
        if (!item->listed) {
          r.items.erase(it);
          save(user, r);
        } else if (visible) {
          commit(user, r, contact);
        } else {
          save(user, r);
        }
        m_.send(std::move(st));
        if (was_from) send_unavailable(user, contact);  // §3.2.2
        return;
      }
      m_.send(std::move(st));  // a denial of a request we never stored: the contact clears ask
    }
  }

 private:
  // ---- storage -------------------------------------------------------------------------------

  // Rosters of accounts with an available resource are kept in memory on their owner shard
  // (every write goes through save(), on that shard, so the copy stays exact): broadcasts and
  // probes read no storage, and user/deleted still knows the contacts after storage dropped them.
  Roster load(const std::string& user) {
    auto cached = cache_.find(user);
    if (cached != cache_.end()) return cached->second;
    return read(user);
  }

  Roster read(const std::string& user) {
    Roster r;
    std::optional<std::string> text = m_.kv_get(user, store, key_items);
    if (!text) return r;
    try {
      sz::Stanza doc = sz::Stanza::parse(*text);
      r.ver = std::stoull(std::string(doc.attr("ver")));
      for (sz::StanzaRef el : doc.children()) {
        if (el.name() != "item") continue;
        Item item;
        item.name = el.attr("name");
        std::string_view sub = el.attr("subscription");
        item.to = sub == "to" || sub == "both";
        item.from = sub == "from" || sub == "both";
        item.ask = el.has_attr("ask");
        item.pending_in = el.has_attr("pending-in");
        item.approved = el.has_attr("approved");
        item.listed = !el.has_attr("hidden");
        for (sz::StanzaRef c : el.children()) {
          if (c.name() == "group") item.groups.push_back(c.text());
          if (c.name() == "presence") item.request = c.to_string();
        }
        std::string jid(el.attr("jid"));
        // Saved before SDK 1.4, a non-ASCII JID may be as the client wrote it ("Ärger@…"; ASCII
        // was lowercased already): prepare it, or it never matches the contact's stanzas. The
        // scan keeps the usual all-ASCII roster from paying for preparation at every read.
        if (!is_ascii(jid))
          if (auto prepared = sz::jid::prep_bare(jid)) jid = std::move(*prepared);
        r.items.emplace(std::move(jid), std::move(item));  // a duplicate keeps the first
      }
    } catch (const std::exception& ex) {
      log_.warn("stored roster unreadable", "jid", user, "error", ex.what());
    }
    return r;
  }

  void save(const std::string& user, const Roster& r) {
    sz::Stanza doc("roster", "urn:stanzad:roster");
    doc.set_attr("ver", std::to_string(r.ver));
    for (const auto& [jid, item] : r.items) {
      sz::StanzaRef el = doc.add_child("item");
      el.set_attr("jid", jid);
      if (!item.name.empty()) el.set_attr("name", item.name);
      el.set_attr("subscription", subscription_of(item));
      if (item.ask) el.set_attr("ask", "1");
      if (item.pending_in) el.set_attr("pending-in", "1");
      if (item.approved) el.set_attr("approved", "1");
      if (!item.listed) el.set_attr("hidden", "1");
      for (const auto& g : item.groups) el.text_tag("group", g);
      if (!item.request.empty()) {
        try {
          el.append(sz::Stanza::parse(item.request));
        } catch (const std::invalid_argument&) {
        }
      }
    }
    m_.kv_set(user, store, key_items, doc.to_string());
    auto cached = cache_.find(user);
    if (cached != cache_.end()) cached->second = r;
  }

  // A change clients see: new version, stored, pushed (§2.1.6) to every interested resource.
  void commit(const std::string& user, Roster& r, const std::string& jid) {
    ++r.ver;
    save(user, r);
    auto it = r.items.find(jid);
    push(user, r.ver, jid, it == r.items.end() || !it->second.listed ? nullptr : &it->second);
  }

  void push(const std::string& user, std::uint64_t ver, const std::string& jid, const Item* item) {
    std::vector<std::string> targets;
    m_.sessions(user, [&](const sz::Session& s) {
      if (s.property(interested)) targets.emplace_back(s.jid());
    });
    for (const auto& to : targets) {
      sz::Stanza iq("iq");
      iq.set_attr("type", "set");
      iq.set_attr("id", "roster-push-" + std::to_string(++pushes_));
      iq.set_attr("from", user);
      iq.set_attr("to", to);
      sz::StanzaRef query = iq.add_child("query", roster_ns);
      query.set_attr("ver", std::to_string(ver));
      query.append(item_element(jid, item));
      m_.send(std::move(iq));
    }
  }

  // ---- roster iqs (§2.2, §2.3, §2.5) -------------------------------------------------------

  sz::Verdict get(sz::Event& ev) {
    std::string user(bare_of(ev.to()));
    if (bare_of(ev.from()) != user) return ev.error("forbidden", {}, "auth");
    if (ev.from().find('/') != std::string_view::npos) m_.set_session(ev.from(), interested, "1");
    Roster r = load(user);
    sz::StanzaRef query = ev.stanza().child("query", roster_ns);
    sz::Stanza reply = sz::iq_result(ev.stanza());
    std::string ver = std::to_string(r.ver);
    // §2.6.3: an unchanged roster is answered by an empty result.
    if (!(query.has_attr("ver") && query.attr("ver") == ver)) {
      sz::StanzaRef out = reply.add_child("query", roster_ns);
      out.set_attr("ver", ver);
      for (const auto& [jid, item] : r.items)
        if (item.listed) out.append(item_element(jid, &item));
    }
    ev.reply(std::move(reply));
    return sz::Verdict::handled;
  }

  sz::Verdict set(sz::Event& ev) {
    std::string user(bare_of(ev.to()));
    if (bare_of(ev.from()) != user) return ev.error("forbidden", {}, "auth");  // §2.3.3
    sz::StanzaRef query = ev.stanza().child("query", roster_ns);
    std::vector<sz::StanzaRef> children = query.children();
    // §2.3.3: exactly one item.
    if (children.size() != 1 || children[0].name() != "item" || children[0].xmlns() != roster_ns)
      return ev.error("bad-request", "a roster set carries exactly one item", "modify");
    sz::StanzaRef el = children[0];
    // Prepared as the core prepares the addresses it stamps (SDK 1.4), so the item matches the
    // contact's presence and a subscription to it.
    std::optional<std::string> jid = sz::jid::prep_bare(el.attr("jid"));
    if (!jid) return ev.error("jid-malformed", "the item's jid is not a JID", "modify");
    if (*jid == user) return ev.error("not-allowed", "an account is not its own contact", "cancel");
    Roster r = load(user);
    auto it = r.items.find(*jid);

    // §2.1.2.5: in a set, the server ignores every subscription value but "remove".
    if (el.attr("subscription") == "remove") {
      if (it == r.items.end() || !it->second.listed)
        return ev.error("item-not-found", {}, "cancel");
      Item old = it->second;
      r.items.erase(it);
      commit(user, r, *jid);
      ev.reply(sz::iq_result(ev.stanza()));
      // §2.5.2: the contact learns the subscriptions are gone.
      if (old.to || old.ask) send_presence(user, *jid, "unsubscribe");
      if (old.from || old.pending_in) {
        send_presence(user, *jid, "unsubscribed");
        if (old.from) send_unavailable(user, *jid);
      }
      return sz::Verdict::handled;
    }

    // §2.3.3: names and groups within limits, no empty or repeated group.
    if (el.attr("name").size() > max_text_)
      return ev.error("not-acceptable", "name longer than " + std::to_string(max_text_) + " bytes",
                      "modify");
    std::vector<std::string> groups;
    for (sz::StanzaRef c : el.children()) {
      if (c.name() != "group") continue;
      std::string g = c.text();
      if (g.empty()) return ev.error("not-acceptable", "empty group name", "modify");
      if (g.size() > max_text_)
        return ev.error("not-acceptable",
                        "group longer than " + std::to_string(max_text_) + " bytes", "modify");
      for (const auto& seen : groups)
        if (seen == g) return ev.error("bad-request", "group named twice", "modify");
      groups.push_back(std::move(g));
    }
    if (it == r.items.end() && r.items.size() >= max_items_)
      return ev.error("policy-violation",
                      "roster full: at most " + std::to_string(max_items_) + " contacts", "modify");
    Item& item = r.items[*jid];
    item.listed = true;
    item.name = el.attr("name");
    item.groups = std::move(groups);
    commit(user, r, *jid);
    ev.reply(sz::iq_result(ev.stanza()));
    return sz::Verdict::handled;
  }

  // ---- subscriptions (§3) --------------------------------------------------------------------

  static bool subscription_type(std::string_view type) {
    return type == "subscribe" || type == "subscribed" || type == "unsubscribe" ||
           type == "unsubscribed";
  }

  // stanza/in, on the session's shard: subscription presence goes to the owner shard first.
  sz::Verdict outbound_presence(sz::Event& ev) {
    sz::StanzaRef st = ev.stanza();
    if (!st || st.name() != "presence" || !subscription_type(st.type())) return sz::Verdict::pass;
    if (ev.to().empty()) return sz::Verdict::pass;  // the core drops it
    std::string contact(bare_of(ev.to()));          // the core prepared `to` (or bounced it)
    std::string from(ev.from());
    if (contact == bare_of(from)) return sz::Verdict::handled;  // one's own presence is given
    std::string xml = st.to_string();
    m_.post<RosterPlugin>(m_.owner_shard(from), [from, contact, xml](RosterPlugin& self) {
      self.outbound(from, contact, xml);
    });
    return sz::Verdict::handled;
  }

  sz::Verdict inbound_presence(sz::Event& ev) {
    sz::StanzaRef st = ev.stanza();
    std::string_view type = st.type();
    if (type == "probe") return probe(ev);
    if (!subscription_type(type)) return sz::Verdict::pass;
    std::string user(bare_of(ev.to()));
    std::string contact(bare_of(ev.from()));
    if (contact.empty() || contact == user) return sz::Verdict::handled;
    if (!m_.user_exists(user)) {
      // §3.1.3: no such account; the sender's server clears its pending request.
      if (type == "subscribe") send_presence(user, contact, "unsubscribed");
      return sz::Verdict::handled;
    }
    st.set_attr("from", contact);  // delivered from the bare JID
    Roster r = load(user);
    auto it = r.items.find(contact);
    Item* item = it == r.items.end() ? nullptr : &it->second;

    if (type == "subscribe") {  // §3.1.3
      if (item && item->from) {
        send_presence(user, contact, "subscribed");  // already approved: answered for the user
        return sz::Verdict::handled;
      }
      if (item && item->approved) {  // §3.4.2: pre-approved
        item->from = true;
        item->approved = false;
        commit(user, r, contact);
        send_presence(user, contact, "subscribed");
        send_current_presence(user, contact);
        return sz::Verdict::handled;
      }
      if (!item) {
        if (r.items.size() >= max_items_) {
          log_.info("subscription request dropped: roster full", "jid", user, "from", contact);
          return sz::Verdict::handled;
        }
        item = &r.items[contact];
        item->listed = false;
      }
      item->pending_in = true;
      item->request = st.to_string();
      save(user, r);
      return sz::Verdict::pass;  // the core delivers it to every available resource
    }
    if (type == "subscribed") {                              // §3.1.6
      if (!item || !item->ask) return sz::Verdict::handled;  // unrequested: ignored
      item->ask = false;
      item->to = true;
      commit(user, r, contact);
      return sz::Verdict::pass;
    }
    if (type == "unsubscribe") {  // §3.3.3
      if (!item || (!item->from && !item->pending_in)) return sz::Verdict::handled;
      bool was_from = item->from;
      item->from = false;
      item->pending_in = false;
      item->request.clear();
      if (!item->listed) {
        r.items.erase(it);
        save(user, r);
      } else if (was_from) {
        commit(user, r, contact);
      } else {
        save(user, r);
      }
      if (was_from) send_unavailable(user, contact);
      return sz::Verdict::pass;
    }
    // unsubscribed, §3.2.3
    if (!item || (!item->to && !item->ask)) return sz::Verdict::handled;
    item->to = false;
    item->ask = false;
    commit(user, r, contact);
    return sz::Verdict::pass;
  }

  void send_presence(const std::string& from, const std::string& to, std::string_view type) {
    sz::Stanza p("presence");
    p.set_attr("from", from);
    p.set_attr("to", to);
    p.set_attr("type", type);
    m_.send(std::move(p));
  }

  // The error a refused outbound subscription presence bounces to the session that sent it.
  void refuse_presence(const std::string& to, const std::string& contact) {
    sz::Stanza p("presence");
    p.set_attr("type", "error");
    p.set_attr("from", contact);
    p.set_attr("to", to);
    sz::StanzaRef error = p.add_child("error");
    error.set_attr("type", "modify");
    error.add_child("policy-violation", "urn:ietf:params:xml:ns:xmpp-stanzas");
    error.add_child("text", "urn:ietf:params:xml:ns:xmpp-stanzas")
        .add_text("roster full: at most " + std::to_string(max_items_) + " contacts");
    m_.send(std::move(p));
  }

  // The last presence of each available resource of `user`, to `to` (§3.1.5, §4.3.2).
  // @return how many resources are available.
  int send_current_presence(const std::string& user, const std::string& to) {
    std::vector<sz::Stanza> out;
    m_.sessions(user, [&](const sz::Session& s) {
      if (!s.available() || !s.presence()) return;
      sz::Stanza copy = sz::Stanza::copy_of(s.presence());
      copy.set_attr("from", s.jid());
      copy.set_attr("to", to);
      out.push_back(std::move(copy));
    });
    for (auto& p : out) m_.send(std::move(p));
    return static_cast<int>(out.size());
  }

  // Unavailable from each available resource of `user` (§3.2.2, §3.3.3).
  void send_unavailable(const std::string& user, const std::string& to) {
    std::vector<std::string> from;
    m_.sessions(user, [&](const sz::Session& s) {
      if (s.available()) from.emplace_back(s.jid());
    });
    for (const auto& f : from) {
      sz::Stanza p("presence");
      p.set_attr("type", "unavailable");
      p.set_attr("from", f);
      p.set_attr("to", to);
      m_.send(std::move(p));
    }
  }

  // ---- broadcast and probes (§4) -------------------------------------------------------------

  // account/presence: every broadcast, available or unavailable (including the unavailable the
  // core makes when a session ends), goes to the contacts subscribed to the user (§4.2.2, §4.4.2,
  // §4.5.2).
  sz::Verdict broadcast(sz::Event& ev) {
    std::string full(ev.from());
    std::string user(bare_of(full));
    sz::StanzaRef st = ev.stanza();
    bool available = !st.has_attr("type");
    bool last_gone = !available && !others_available(user, full);
    if (available && !cache_.count(user)) cache_.emplace(user, read(user));
    Roster r = load(user);
    if (last_gone) {
      record_last_seen(user, st);
      cache_.erase(user);
    }
    for (const auto& [jid, item] : r.items) {
      if (!item.from) continue;
      sz::Stanza copy = sz::Stanza::copy_of(st);
      copy.set_attr("from", full);
      copy.set_attr("to", jid);
      m_.send(std::move(copy));
    }
    return sz::Verdict::pass;
  }

  // account/available: initial presence probes the contacts the user is subscribed to (§4.2.2)
  // and receives the subscription requests still waiting for an answer (§3.1.3).
  sz::Verdict initial(sz::Event& ev) {
    std::string full(ev.from());
    std::string user(bare_of(full));
    Roster r = load(user);
    for (const auto& [jid, item] : r.items) {
      if (item.to) {
        sz::Stanza probe("presence");
        probe.set_attr("type", "probe");
        probe.set_attr("from", full);  // the answers go to the resource that came online
        probe.set_attr("to", jid);
        m_.send(std::move(probe));
      }
      if (item.pending_in && !item.request.empty()) {
        try {
          sz::Stanza request = sz::Stanza::parse(item.request);
          request.set_attr("from", jid);
          request.set_attr("to", full);
          m_.send(std::move(request));
        } catch (const std::invalid_argument&) {
        }
      }
    }
    return sz::Verdict::pass;
  }

  // presence/bare type=probe (§4.3.2).
  sz::Verdict probe(sz::Event& ev) {
    std::string user(bare_of(ev.to()));
    std::string prober(ev.from());
    std::string contact(bare_of(prober));
    if (contact.empty()) return sz::Verdict::handled;
    if (!m_.user_exists(user)) {
      send_presence(user, contact, "unsubscribed");
      return sz::Verdict::handled;
    }
    bool subscribed = contact == user;
    if (!subscribed) {
      Roster r = load(user);
      auto it = r.items.find(contact);
      subscribed = it != r.items.end() && it->second.from;
    }
    if (!subscribed) {
      // Not revealed; the prober's server learns it has no subscription (as Prosody does).
      send_presence(user, contact, "unsubscribed");
      return sz::Verdict::handled;
    }
    if (send_current_presence(user, prober) > 0) return sz::Verdict::handled;
    // Nobody online: the last unavailable presence, with when it happened (XEP-0203).
    sz::Stanza p("presence");
    p.set_attr("type", "unavailable");
    p.set_attr("from", user);
    p.set_attr("to", prober);
    if (auto seen = last_seen(user)) {
      if (!seen->second.empty()) p.text_tag("status", seen->second);
      sz::StanzaRef delay = p.add_child("delay", delay_ns);
      delay.set_attr("from", domain_of(user));
      delay.set_attr("stamp", iso8601(seen->first));
    }
    m_.send(std::move(p));
    return sz::Verdict::handled;
  }

  // ---- last activity (XEP-0012) --------------------------------------------------------------

  // When the last available resource goes, remember when and its status (XEP-0012 §4).
  bool others_available(const std::string& user, const std::string& full) {
    bool any = false;
    m_.sessions(user, [&](const sz::Session& s) { any |= s.available() && s.jid() != full; });
    return any;
  }

  void record_last_seen(const std::string& user, sz::StanzaRef st) {
    // A deleted account's sessions end after its data went: write nothing back for it.
    if (!m_.user_exists(user)) return;
    std::string value = std::to_string(unix_now()) + "\n" + st.child_text("status");
    if (!m_.has_async_kv()) {
      m_.kv_set(user, store, key_last, value);
      return;
    }
    // Every logout writes this: waiting for its commit (an fsync) held the shard up, and one
    // transaction per logout cost most of a login's CPU with this plugin. Queued instead, it
    // shares a group commit; kept here until then so that probes and iq:last read it back.
    std::uint64_t seq = ++last_writes_;
    last_pending_[user] = {seq, value};
    m_.kv_set_async<RosterPlugin>(user, store, key_last, value,
                                  [user, seq](RosterPlugin& self, bool ok) {
                                    auto it = self.last_pending_.find(user);
                                    if (it != self.last_pending_.end() && it->second.first == seq)
                                      self.last_pending_.erase(it);
                                    if (!ok)
                                      self.log_.warn("last activity not stored", "jid", user);
                                  });
  }

  std::optional<std::pair<std::int64_t, std::string>> last_seen(const std::string& user) {
    auto pending = last_pending_.find(user);
    std::optional<std::string> v = pending != last_pending_.end()
                                       ? std::optional<std::string>(pending->second.second)
                                       : m_.kv_get(user, store, key_last);
    if (!v) return std::nullopt;
    auto nl = v->find('\n');
    try {
      std::int64_t t = std::stoll(v->substr(0, nl));
      return std::make_pair(t, nl == std::string::npos ? std::string() : v->substr(nl + 1));
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }

  // XEP-0012 §4: an account's last activity, to itself and to contacts subscribed to it.
  sz::Verdict last(sz::Event& ev) {
    std::string user(bare_of(ev.to()));
    std::string asker(bare_of(ev.from()));
    if (asker != user) {
      if (!m_.user_exists(user)) return ev.error("service-unavailable", {}, "cancel");
      Roster r = load(user);
      auto it = r.items.find(asker);
      if (it == r.items.end() || !it->second.from) return ev.error("forbidden", {}, "auth");
    }
    int online = 0;
    m_.sessions(user, [&](const sz::Session& s) { online += s.available(); });
    sz::Stanza reply = sz::iq_result(ev.stanza());
    sz::StanzaRef query = reply.add_child("query", last_ns);
    if (online > 0) {
      query.set_attr("seconds", "0");  // online now (Prosody answers the same)
    } else if (auto seen = last_seen(user)) {
      query.set_attr("seconds",
                     std::to_string(std::max<std::int64_t>(0, unix_now() - seen->first)));
      if (!seen->second.empty()) query.add_text(seen->second);
    } else {
      return ev.error("item-not-found", "no last activity recorded", "cancel");
    }
    ev.reply(std::move(reply));
    return sz::Verdict::handled;
  }

  // XEP-0012 §5: the server's uptime (since this plugin loaded, i.e. start-up unless reloaded).
  sz::Verdict uptime(sz::Event& ev) {
    auto up = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() -
                                                               started_)
                  .count();
    sz::Stanza reply = sz::iq_result(ev.stanza());
    reply.add_child("query", last_ns).set_attr("seconds", std::to_string(up));
    ev.reply(std::move(reply));
    return sz::Verdict::handled;
  }

  // Storage already removed every document of the account; this makes sure of ours. If the
  // account is online its roster is still in memory: the contacts learn that the subscriptions
  // are gone and see it go (as Prosody does); an offline account's contacts learn it from the
  // `unsubscribed` that answers their next probe.
  sz::Verdict deleted(sz::Event& ev) {
    std::string user(bare_of(ev.from()));
    auto cached = cache_.find(user);
    if (cached != cache_.end()) {
      Roster r = std::move(cached->second);
      cache_.erase(cached);
      for (const auto& [jid, item] : r.items) {
        if (item.from) send_unavailable(user, jid);
        if (item.from || item.pending_in) send_presence(user, jid, "unsubscribed");
        if (item.to || item.ask) send_presence(user, jid, "unsubscribe");
      }
    }
    last_pending_.erase(user);  // its write is committed before the removal (queued first)
    m_.kv_delete(user, store, key_items);
    m_.kv_delete(user, store, key_last);
    return sz::Verdict::pass;
  }

  sz::Module& m_;
  sz::Logger log_;
  std::size_t max_items_;
  std::size_t max_text_;
  std::chrono::steady_clock::time_point started_;
  std::uint64_t pushes_ = 0;
  std::map<std::string, Roster> cache_;  // accounts with an available resource (see load)
  // Last activity written with kv_set_async and not yet committed: (write number, value).
  std::map<std::string, std::pair<std::uint64_t, std::string>> last_pending_;
  std::uint64_t last_writes_ = 0;
};

STANZAD_PLUGIN_WITH(RosterPlugin, "roster", "1.0.0", options, 2, nullptr)
