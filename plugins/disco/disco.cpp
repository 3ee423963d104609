// plugins/disco/disco.cpp: XEP-0030 Service Discovery, generated from what every plugin declares.
#include <stanzad/plugin.hpp>

namespace sz = stanzad::sdk;

namespace {

constexpr std::string_view info_ns = "http://jabber.org/protocol/disco#info";
constexpr std::string_view items_ns = "http://jabber.org/protocol/disco#items";

const sz_option options[] = {
    {"disco_name", SZ_OPT_STRING, "stanzad", 0, 0, "the server identity's name in disco#info"},
};

using sz::jid::bare_of;

}  // namespace

class Disco {
 public:
  explicit Disco(sz::Module& m) : m_(m), name_(m.option("disco_name")) {
    m.add_identity("server", "im", name_);
    m.add_feature(info_ns);
    m.add_feature(items_ns);
    m.hook("iq-get/host/" + std::string(info_ns) + ":query",
           [this](sz::Event& ev) { return host_info(ev); });
    m.hook("iq-get/host/" + std::string(items_ns) + ":query",
           [this](sz::Event& ev) { return items(ev); });
    m.hook("iq-get/bare/" + std::string(info_ns) + ":query",
           [this](sz::Event& ev) { return account_info(ev); });
    m.hook("iq-get/bare/" + std::string(items_ns) + ":query",
           [this](sz::Event& ev) { return account_items(ev); });
  }

 private:
  sz::Verdict host_info(sz::Event& ev) {
    sz::StanzaRef query = ev.stanza().child("query", info_ns);
    if (!query.attr("node").empty()) return ev.error("item-not-found");
    sz::Stanza reply = sz::iq_result(ev.stanza());
    sz::StanzaRef out = reply.add_child("query", info_ns);
    std::string host(bare_of(ev.to()));
    for (const auto& id : m_.identities(host)) {
      // "category/type/name"
      auto a = id.find('/'), b = id.find('/', a + 1);
      sz::StanzaRef identity = out.add_child("identity");
      identity.set_attr("category", std::string_view(id).substr(0, a));
      identity.set_attr("type", std::string_view(id).substr(a + 1, b - a - 1));
      if (b + 1 < id.size()) identity.set_attr("name", std::string_view(id).substr(b + 1));
    }
    for (const auto& f : m_.features(host)) out.add_child("feature").set_attr("var", f);
    ev.reply(std::move(reply));
    return sz::Verdict::handled;
  }

  sz::Verdict items(sz::Event& ev) {
    sz::StanzaRef query = ev.stanza().child("query", items_ns);
    if (!query.attr("node").empty()) return ev.error("item-not-found");
    sz::Stanza reply = sz::iq_result(ev.stanza());
    reply.add_child("query", items_ns);
    ev.reply(std::move(reply));
    return sz::Verdict::handled;
  }

  // XEP-0030 §3.1 / RFC 6121: the server answers for an account; only its owner is told more
  // than nothing until presence subscriptions (a plugin) can vouch for others.
  sz::Verdict account_info(sz::Event& ev) {
    if (bare_of(ev.from()) != bare_of(ev.to())) return ev.error("service-unavailable");
    sz::Stanza reply = sz::iq_result(ev.stanza());
    sz::StanzaRef out = reply.add_child("query", info_ns);
    out.add_child("identity").set_attr("category", "account").set_attr("type", "registered");
    out.add_child("feature").set_attr("var", info_ns);
    ev.reply(std::move(reply));
    return sz::Verdict::handled;
  }

  sz::Verdict account_items(sz::Event& ev) {
    if (bare_of(ev.from()) != bare_of(ev.to())) return ev.error("service-unavailable");
    sz::Stanza reply = sz::iq_result(ev.stanza());
    reply.add_child("query", items_ns);
    ev.reply(std::move(reply));
    return sz::Verdict::handled;
  }

  sz::Module& m_;
  std::string name_;
};

STANZAD_PLUGIN_WITH(Disco, "disco", "1.0.0", options, 1, nullptr)
