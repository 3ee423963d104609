// plugins/ping/ping.cpp: XEP-0199 XMPP Ping, answered for the server's domain.
#include <stanzad/plugin.hpp>

namespace sz = stanzad::sdk;

class Ping {
 public:
  explicit Ping(sz::Module& m) : log_(m.log()) {
    m.add_feature("urn:xmpp:ping");
    m.hook("iq-get/host/urn:xmpp:ping:ping", [this](sz::Event& ev) { return on_ping(ev); });
  }

 private:
  sz::Verdict on_ping(sz::Event& ev) {
    ++answered_;
    log_.debug("pong", "to", ev.from(), "count", answered_);
    ev.reply(sz::iq_result(ev.stanza()));
    return sz::Verdict::handled;
  }

  sz::Logger log_;
  std::uint64_t answered_ = 0;  // one instance per shard, so no lock
};

STANZAD_PLUGIN(Ping, "ping", "1.0.0")
