// Routing between local sessions, RFC 6121 §8, over the shard-per-core model.
#include "xmpp/router.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "plugin/plugin_manager.hpp"
#include "xmpp/c2s_session.hpp"
#include "xmpp/namespaces.hpp"

namespace stanzad::xmpp {

Router::Router(net::ShardSet& shards, std::vector<std::string> hosts,
               std::uint32_t sessions_per_account)
    : shards_(shards),
      hosts_(std::move(hosts)),
      owned_(shards.size()),
      sessions_per_account_(sessions_per_account) {}

bool Router::is_local_host(std::string_view domain) const {
  return std::find(hosts_.begin(), hosts_.end(), domain) != hosts_.end();
}

Router::Owned& Router::here() {
  net::Shard* s = net::Shard::current();
  assert(s != nullptr);
  return owned_[s->index()];
}

Router::Resource* Router::Account::find(std::string_view resource) {
  for (auto& r : resources)
    if (r.resource == resource) return &r;
  return nullptr;
}

void Router::deliver_to(const SessionHandle& h, xml::Element stanza,
                        std::shared_ptr<Receipt> receipt) {
  h.shard->run(
      [this, w = h.session, st = std::move(stanza), receipt = std::move(receipt)]() mutable {
        if (auto s = w.lock())
          s->deliver(std::move(st), std::move(receipt));
        else
          route_again(std::move(st), std::move(receipt));
      });
}

void Router::route_again(xml::Element stanza, std::shared_ptr<Receipt> receipt) {
  const bool message = stanza.name() == "message";
  if (!message && stanza.name() != "iq") return;
  auto from = Jid::parse(stanza.attr("from"));
  auto to = Jid::parse(stanza.attr("to"));
  if (!from || !to) return;
  Routed r{std::move(stanza), std::move(*from), std::move(*to), std::move(receipt)};
  if (message)
    route(std::move(r));
  else
    bounce(r, "service-unavailable");
}

void Router::route(Routed r) {
  if (!is_local_host(r.to.domain())) {
    // TODO(#federation): s2s. Until then a remote domain is unreachable (RFC 6120 §10.4.3).
    bounce(r, "remote-server-not-found");
    return;
  }
  if (r.to.node().empty()) {
    route_to_host(std::move(r));
    return;
  }
  net::Shard& owner = shards_.owner_of(r.to.bare_view());
  owner.run([this, r = std::move(r)]() mutable { deliver_local(std::move(r)); });
}

void Router::bounce(const Routed& r, std::string_view condition, std::string_view text,
                    std::string_view type, const std::vector<xml::Element>& payload) {
  if (!may_bounce(r.stanza) || r.from.empty()) return;
  Routed reply{make_error_reply(r.stanza, condition, text), r.to, r.from};
  if (!type.empty() || !payload.empty()) {
    if (xml::Element* error = reply.stanza.child("error", ns::client)) {
      if (!type.empty()) error->set_attr("type", std::string(type));
      for (const auto& el : payload) error->add_child(el);
    }
  }
  // An error from the server about an address keeps that address as its `from`.
  route(std::move(reply));
}

bool Router::fire(Routed& r, std::string_view kind) {
  if (!pipeline_) return false;
  plugin::HookRegistry& hooks = pipeline_->here();
  plugin::Event ev;
  ev.stanza = &r.stanza;
  ev.from = &r.from;
  ev.to = &r.to;
  ev.host = r.to.domain();
  const std::string& name = r.stanza.name();
  sz_verdict v = SZ_PASS;
  if (name == "iq") {
    std::string_view type = r.stanza.attr("type");
    const xml::Element* payload = r.stanza.first_child();
    if ((type == "get" || type == "set") && payload) {
      // iq-get/host/urn:xmpp:ping:ping — built in a reused buffer: no allocation per stanza.
      thread_local std::string event;
      event.assign("iq-").append(type).append("/").append(kind).append("/");
      event.append(payload->xmlns()).append(":").append(payload->name());
      ev.name = event;
      v = hooks.fire(ev);
    }
  }
  if (v == SZ_PASS) {
    thread_local std::string event;
    event.assign(name).append("/").append(kind);
    ev.name = event;
    v = hooks.fire(ev);
  }
  if (v == SZ_PASS) return false;
  if (v == SZ_ERROR) bounce(r, ev.error_condition, ev.error_text, ev.error_type, ev.error_payload);
  return true;
}

void Router::route_to_host(Routed r) {
  // RFC 6120 §10.3: the server answers for its domain, through host-addressed handlers
  // (plugins); what none of them takes is refused.
  if (fire(r, "host")) return;
  const xml::Element& st = r.stanza;
  if (st.name() == "iq") {
    std::string_view type = st.attr("type");
    if (type == "get" || type == "set") bounce(r, "service-unavailable");
  }
  // Messages and presence to the bare domain have no recipient in the core: dropped,
  // as RFC 6121 §8.5.1 allows for entities that do not exist.
}

void Router::deliver_local(Routed r) {
  Owned& owned = here();
  auto it = owned.accounts.find(r.to.bare_view());
  Account* account = it == owned.accounts.end() ? nullptr : &it->second;
  const std::string_view kind = r.stanza.name();
  const std::string_view type = r.stanza.attr("type");
  if (fire(r, r.to.is_bare() ? "bare" : "full")) return;

  if (!r.to.is_bare()) {
    Resource* res = account ? account->find(r.to.resource()) : nullptr;
    if (kind == "iq") {
      if (res) {
        deliver_to(res->handle, std::move(r.stanza), std::move(r.receipt));
      } else if (type == "get" || type == "set") {
        bounce(r, "service-unavailable");  // §8.5.3.2.1
      }
      return;
    }
    if (kind == "message") {
      if (res) {
        deliver_to(res->handle, std::move(r.stanza), std::move(r.receipt));
        return;
      }
      if (type == "groupchat") {
        bounce(r, "service-unavailable");  // §8.5.3.2.1
        return;
      }
      if (type == "error") return;
      deliver_to_bare(std::move(r), account);  // chat/normal/headline: as if to the bare JID
      return;
    }
    // presence to a full JID
    if (type.empty() || type == "unavailable") {
      if (res) deliver_to(res->handle, std::move(r.stanza));  // else silently ignored
      return;
    }
    if (type == "probe" || type == "error") {
      if (res) deliver_to(res->handle, std::move(r.stanza));
      return;
    }
    deliver_to_bare(std::move(r), account);  // subscription states act on the bare JID
    return;
  }
  deliver_to_bare(std::move(r), account);
}

void Router::deliver_to_bare(Routed r, Account* account) {
  const std::string_view kind = r.stanza.name();
  const std::string_view type = r.stanza.attr("type");

  if (kind == "iq") {
    // §8.5.2: an iq to the bare JID is handled by the server on the account's behalf.
    // Handlers (roster, vCard…) come with the plugin pipeline.
    if (type == "get" || type == "set") bounce(r, "service-unavailable");
    return;
  }

  std::vector<Resource*> targets;
  if (account) {
    if (kind == "message") {
      // §8.5.2.1.1: the available resources of highest non-negative priority; headline
      // goes to every non-negative one.
      int best = -1;
      for (auto& res : account->resources)
        if (res.available && res.priority >= 0) best = std::max(best, res.priority);
      for (auto& res : account->resources)
        if (res.available && res.priority >= 0 && (type == "headline" || res.priority == best))
          targets.push_back(&res);
    } else {
      // presence: every available resource (§8.5.2.1.1).
      if (type == "probe") return;  // answered by the presence plugin, not the core
      for (auto& res : account->resources)
        if (res.available) targets.push_back(&res);
    }
  }

  if (targets.empty()) {
    if (kind == "message") {
      // §8.5.2.2: no available resource. The offline store is a plugin (message/offline);
      // without one, the sender learns the message was not delivered.
      if (type == "error" || type == "headline") return;
      if (pipeline_) {
        // The offline store (a plugin) may take it; otherwise the sender learns.
        plugin::Event ev;
        ev.name = "message/offline";
        ev.stanza = &r.stanza;
        ev.from = &r.from;
        ev.to = &r.to;
        ev.host = r.to.domain();
        ev.receipt = &r.receipt;
        sz_verdict v = pipeline_->fire(ev);
        if (v == SZ_HANDLED) return;
        if (v == SZ_ERROR) {
          bounce(r, ev.error_condition, ev.error_text, ev.error_type, ev.error_payload);
          return;
        }
      }
      bounce(r, "service-unavailable");
    }
    return;  // presence for nobody is dropped (§8.5.2.2.2)
  }
  for (std::size_t i = 0; i + 1 < targets.size(); ++i)
    deliver_to(targets[i]->handle, r.stanza, r.receipt);
  deliver_to(targets.back()->handle, std::move(r.stanza), std::move(r.receipt));
}

void Router::bind(const Jid& full, SessionHandle handle, std::function<void(bool)> done) {
  net::Shard& owner = shards_.owner_of(full.bare_view());
  owner.run([this, full, handle = std::move(handle), done = std::move(done)]() mutable {
    Account& account = here().accounts[full.bare_str()];
    if (Resource* old = account.find(full.resource())) {
      // RFC 6120 §7.7.2.2: the newer session wins; the older one is told why it ends.
      spdlog::info("c2s replacing session jid={} old={} new={}", full.str(), old->handle.id,
                   handle.id);
      // The replaced resource goes unavailable first: contacts saw it online, and the new
      // session has sent no presence yet.
      if (old->available) went_unavailable(account, *old, full);
      Account& again = here().accounts[full.bare_str()];
      old = again.find(full.resource());
      assert(old != nullptr);
      SessionHandle previous = std::exchange(old->handle, handle);
      old->available = false;
      old->priority = 0;
      old->presence.reset();
      // Posted, never inline: closing unbinds, and this very entry must not change under us
      // (the old session's unbind no longer matches it: the entry is the new session's now).
      boost::asio::post(previous.shard->context(), [w = previous.session]() {
        if (auto s = w.lock()) s->close_with_stream_error("conflict", "replaced by a new session");
      });
    } else {
      if (sessions_per_account_ != 0 && account.resources.size() >= sessions_per_account_) {
        // RFC 6120 §7.6.2.1: the account has all the sessions it may have.
        handle.shard->run([done = std::move(done)] { done(false); });
        return;
      }
      account.resources.push_back(Resource{full.resource(), handle, false, 0, std::nullopt, {}});
    }
    handle.shard->run([done = std::move(done)] { done(true); });
  });
}

void Router::close_account(const Jid& bare, std::string condition, std::string text) {
  net::Shard& owner = shards_.owner_of(bare.bare_view());
  owner.run([this, bare, condition = std::move(condition), text = std::move(text)] {
    auto& accounts = here().accounts;
    auto it = accounts.find(bare.bare_view());
    if (it == accounts.end()) return;
    // Posted, never inline: each close unbinds from the list being walked here.
    for (const auto& res : it->second.resources) {
      boost::asio::post(res.handle.shard->context(), [w = res.handle.session, condition, text] {
        if (auto s = w.lock()) s->close_with_stream_error(condition, text);
      });
    }
  });
}

void Router::rebind(const Jid& full, std::uint64_t old_id, SessionHandle to, net::Shard& back,
                    std::function<void(bool)> done) {
  net::Shard& owner = shards_.owner_of(full.bare_view());
  owner.run([this, full, old_id, to = std::move(to), &back, done = std::move(done)]() mutable {
    bool found = false;
    auto& accounts = here().accounts;
    auto it = accounts.find(full.bare_view());
    if (it != accounts.end()) {
      Resource* res = it->second.find(full.resource());
      if (res && res->handle.id == old_id) {
        res->handle = std::move(to);
        found = true;
      }
    }
    back.run([done = std::move(done), found] { done(found); });
  });
}

void Router::unbind(const Jid& full, std::uint64_t session_id) {
  net::Shard& owner = shards_.owner_of(full.bare_view());
  owner.run([this, full, session_id] {
    Owned& owned = here();
    auto it = owned.accounts.find(full.bare_view());
    if (it == owned.accounts.end()) return;
    Account& account = it->second;
    auto res = std::find_if(account.resources.begin(), account.resources.end(),
                            [&](const Resource& r) { return r.handle.id == session_id; });
    if (res == account.resources.end()) return;  // already replaced
    // The session ended without unavailable presence: plugins (presence to contacts) learn
    // it while the resource is still listed, unavailable, with its properties.
    if (res->available) went_unavailable(account, *res, full);
    // Handlers ran: look the account and the resource up again.
    it = owned.accounts.find(full.bare_view());
    if (it == owned.accounts.end()) return;
    auto& resources = it->second.resources;
    res = std::find_if(resources.begin(), resources.end(),
                       [&](const Resource& r) { return r.handle.id == session_id; });
    if (res != resources.end()) resources.erase(res);
    if (resources.empty()) owned.accounts.erase(it);
  });
}

void Router::went_unavailable(Account& account, Resource& res, const Jid& full) {
  res.available = false;
  res.priority = 0;
  res.presence.reset();
  xml::Element unavailable("presence", std::string(ns::client));
  unavailable.set_attr("type", "unavailable");
  unavailable.set_attr("from", full.str());
  Routed r{std::move(unavailable), full, full.bare()};
  // RFC 6121 §4.5.2: the account's other resources learn this one is gone.
  for (auto& other : account.resources) {
    if (!other.available) continue;
    xml::Element copy = r.stanza;
    copy.set_attr("to", full.bare_str() + "/" + other.resource);
    deliver_to(other.handle, std::move(copy));
  }
  fire_account_presence(r, false);
}

void Router::broadcast_own_presence(Routed r, std::uint64_t session_id) {
  net::Shard& owner = shards_.owner_of(r.from.bare_view());
  owner.run([this, r = std::move(r), session_id]() mutable {
    Owned& owned = here();
    auto it = owned.accounts.find(r.from.bare_view());
    if (it == owned.accounts.end()) return;
    Account& account = it->second;
    Resource* self = account.find(r.from.resource());
    if (!self || self->handle.id != session_id) return;

    const bool available = r.stanza.attr("type").empty();
    const bool was_available = self->available;
    const bool initial = available && !was_available;
    int priority = 0;
    if (available) {
      std::string p = r.stanza.child_text("priority", ns::client);
      if (!p.empty()) {
        try {
          priority = std::clamp(std::stoi(p), -128, 127);
        } catch (const std::exception&) {
          priority = 0;
        }
      }
    }
    self->available = available;
    self->priority = priority;
    if (available) {
      self->presence = r.stanza;
    } else {
      self->presence.reset();
    }

    // §4.2.2 / §4.4.2: to every available resource of the account, this one included.
    for (auto& res : account.resources) {
      if (!res.available && res.handle.id != session_id) continue;
      xml::Element copy = r.stanza;
      copy.set_attr("to", r.from.bare_str() + "/" + res.resource);
      deliver_to(res.handle, std::move(copy));
    }
    if (initial) {
      // A resource coming online learns which of its siblings are online.
      for (auto& res : account.resources) {
        if (res.handle.id == session_id || !res.available || !res.presence) continue;
        xml::Element copy = *res.presence;
        copy.set_attr("to", r.from.str());
        deliver_to(self->handle, std::move(copy));
      }
    }
    if (available || was_available) fire_account_presence(r, initial);
  });
}

void Router::fire_account_presence(Routed& r, bool initial) {
  if (!pipeline_) return;
  plugin::Event ev;
  ev.stanza = &r.stanza;
  ev.from = &r.from;
  ev.session = &r.from;
  ev.host = r.from.domain();
  ev.name = "account/presence";
  pipeline_->fire(ev);
  if (initial) {
    ev.name = "account/available";
    pipeline_->fire(ev);
  }
}

int Router::sessions(std::string_view bare, const std::function<void(const SessionView&)>& fn) {
  if (!shards_.owner_of(bare).is_current()) return -1;
  auto& accounts = here().accounts;
  auto it = accounts.find(std::string(bare));
  if (it == accounts.end()) return 0;
  // A copy of the views: fn may send, and sending never edits the account inline (posted).
  int n = 0;
  for (const auto& res : it->second.resources) {
    fn(SessionView{res.resource, res.available, res.priority,
                   res.presence ? &*res.presence : nullptr, &res.properties});
    ++n;
  }
  return n;
}

void Router::set_property(const Jid& full, std::string key, std::optional<std::string> value) {
  net::Shard& owner = shards_.owner_of(full.bare_view());
  owner.run([this, full, key = std::move(key), value = std::move(value)]() mutable {
    auto& accounts = here().accounts;
    auto it = accounts.find(full.bare_view());
    if (it == accounts.end()) return;
    Resource* res = it->second.find(full.resource());
    if (!res) return;
    auto& props = res->properties;
    auto p =
        std::find_if(props.begin(), props.end(), [&](const auto& kv) { return kv.first == key; });
    if (!value) {
      if (p != props.end()) props.erase(p);
    } else if (p != props.end()) {
      p->second = std::move(*value);
    } else {
      props.emplace_back(std::move(key), std::move(*value));
    }
  });
}

}  // namespace stanzad::xmpp
