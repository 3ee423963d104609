// Routing between local sessions, RFC 6121 §8, over the shard-per-core model.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "net/shard.hpp"
#include "xml/element.hpp"
#include "xmpp/jid.hpp"
#include "xmpp/stanza.hpp"

namespace stanzad::plugin {
class Pipeline;
}

namespace stanzad::xmpp {

class C2SSession;

// How the owner shard reaches a session that lives on another (or the same) shard.
struct SessionHandle {
  std::uint64_t id = 0;
  net::Shard* shard = nullptr;
  std::weak_ptr<C2SSession> session;
};

class Router {
 public:
  Router(net::ShardSet& shards, std::vector<std::string> hosts,
         std::uint32_t sessions_per_account = 0);

  // The plugin pipeline; set once before shards run.
  void set_pipeline(plugin::Pipeline* pipeline) { pipeline_ = pipeline; }

  bool is_local_host(std::string_view domain) const;

  // Routes a stanza whose `from` was stamped by the core. Callable on any shard; the
  // work moves to the owner shard of the target entity.
  void route(Routed r);

  // Returns an error to the sender of `r` (nothing if §8.3.1 forbids it).
  // `payload`: application-specific elements after the condition (RFC 6120 §8.3.2).
  void bounce(const Routed& r, std::string_view condition, std::string_view text = {},
              std::string_view type = {}, const std::vector<xml::Element>& payload = {});

  // Binds a full JID (RFC 6120 §7). On the owner shard; an older session with the same
  // full JID gets a `conflict` stream error. `done(bound)` runs on the session's shard;
  // false when the account already has as many sessions as allowed.
  void bind(const Jid& full, SessionHandle handle, std::function<void(bool)> done);
  // XEP-0198 resumption: points the binding of `full` held by session `old_id` at `to`.
  // done(found) runs on `back` afterwards.
  void rebind(const Jid& full, std::uint64_t old_id, SessionHandle to, net::Shard& back,
              std::function<void(bool)> done);
  // Forgets a session; broadcasts its unavailable presence to the account's other
  // resources if it was available.
  void unbind(const Jid& full, std::uint64_t session_id);
  // A presence broadcast from a session (RFC 6121 §4.2, §4.5): updates availability and
  // priority and delivers the presence to every available resource of the account.
  void broadcast_own_presence(Routed r, std::uint64_t session_id);

  // Closes every session of an account with a stream error (account deleted, password
  // changed…). Callable on any shard.
  void close_account(const Jid& bare, std::string condition, std::string text);

  // Delivers to a session on its shard; routed again (route_again) if the session is gone.
  // `receipt` (may be null) is held until the session wrote the stanza.
  void deliver_to(const SessionHandle& h, xml::Element stanza,
                  std::shared_ptr<Receipt> receipt = {});

  // A stanza a session could not take (it had left when it arrived, or its client never
  // acknowledged it): a message is routed again by its addresses (another resource, the
  // offline store, or back to its sender as an error) with `receipt` still held; an iq
  // request is answered service-unavailable; presence and iq results are stale and dropped.
  void route_again(xml::Element stanza, std::shared_ptr<Receipt> receipt = {});

  // Plugins' per-session properties (sz_host_api::session_set), small and few.
  using Properties = std::vector<std::pair<std::string, std::string>>;
  struct SessionView {
    std::string_view resource;
    bool available;
    int priority;
    const xml::Element* presence;  // last available presence, or null
    const Properties* properties;
  };
  // The shard index owning an entity (its bare JID).
  unsigned owner_index(std::string_view bare) { return shards_.owner_of(bare).index(); }
  // Calls fn for each bound resource of a local account, in binding order. Only on the
  // account's owner shard: returns -1 elsewhere, otherwise the count.
  int sessions(std::string_view bare, const std::function<void(const SessionView&)>& fn);
  // Sets (value) or clears (nullopt) a property of a bound resource; on the owner shard (at
  // once when called there, posted otherwise). Nothing if the resource is not bound.
  void set_property(const Jid& full, std::string key, std::optional<std::string> value);

 private:
  struct Resource {
    std::string resource;
    SessionHandle handle;
    bool available = false;
    int priority = 0;
    std::optional<xml::Element> presence;  // last broadcast presence, for new resources
    Properties properties;
  };
  struct Account {
    std::vector<Resource> resources;
    Resource* find(std::string_view resource);
  };
  struct BareHash {
    using is_transparent = void;  // find(std::string_view): no key copy per stanza
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  struct Owned {
    std::unordered_map<std::string, Account, BareHash, std::equal_to<>> accounts;  // by bare JID
  };

  Owned& here();
  // Runs the handlers of `event` (and, for iq get/set, of the iq-<type>/<kind>/<ns>:<el>
  // event first) on the current shard. True when a handler took or refused the stanza.
  bool fire(Routed& r, std::string_view kind);
  void deliver_local(Routed r);
  void deliver_to_bare(Routed r, Account* account);
  void route_to_host(Routed r);
  // account/presence (and account/available when `initial`) for plugins, on the owner shard.
  void fire_account_presence(Routed& r, bool initial);
  // An available resource went away without unavailable presence (its session ended, or a new
  // session took its resource): its siblings and the plugins (account/presence) learn it, while
  // it is still listed. Handlers may run: look the account up again afterwards.
  void went_unavailable(Account& account, Resource& res, const Jid& full);

  net::ShardSet& shards_;
  std::vector<std::string> hosts_;
  std::vector<Owned> owned_;
  std::uint32_t sessions_per_account_;    // 0: no limit
  plugin::Pipeline* pipeline_ = nullptr;  // indexed by shard; touched only by that shard's thread
};

}  // namespace stanzad::xmpp
