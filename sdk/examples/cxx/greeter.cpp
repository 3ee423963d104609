// sdk/examples/cxx/greeter.cpp: a worked example of a C++ plugin (docs/plugins.md).
//
// Greets every user whose session comes online with a message from the server, and answers
// a message sent to the server whose body is "stats" with how many it greeted on this shard,
// and "sessions" with the sender's bound resources.
// Shows: options with validation, a life-cycle hook, a stanza hook, building and sending
// stanzas, replying, logging, per-shard state without locks, and (ABI 1.2) moving work to the
// shard that owns an account to list its sessions, with a property set on each greeted one.
#include <stanzad/plugin.hpp>
#include <string>

namespace sz = stanzad::sdk;

namespace {

// Declared options are validated by the server before load: an unknown name, a
// non-integer or an out-of-range value refuses the plugin with file, line and option.
const sz_option options[] = {
    {"greeter_text", SZ_OPT_STRING, "Welcome to stanzad!", 0, 0, "the greeting's body"},
    {"greeter_delay_ms", SZ_OPT_INTEGER, "0", 0, 60000, "how long to wait before greeting"},
};
const char* const dependencies[] = {"disco", nullptr};

}  // namespace

class Greeter {
 public:
  explicit Greeter(sz::Module& m)
      : m_(m), text_(m.option("greeter_text")), delay_ms_(m.option_integer("greeter_delay_ms")) {
    m.add_feature("urn:example:greeter");
    m.hook("session/bound", [this](sz::Event& ev) { return greet(ev); });
    m.hook("message/host", [this](sz::Event& ev) { return stats(ev); });
  }

 private:
  sz::Verdict greet(sz::Event& ev) {
    std::string to(ev.session_jid());
    std::string host = to.substr(to.find('@') + 1, to.find('/') - to.find('@') - 1);
    auto send = [this, to, host] {
      sz::Stanza msg("message");
      msg.set_attr("from", host).set_attr("to", to).set_attr("type", "chat");
      msg.text_tag("body", text_);
      m_.send(std::move(msg));
      ++greeted_;
      if (m_.has_sessions()) m_.set_session(to, "greeter:greeted", "yes");
    };
    if (delay_ms_ > 0) {
      m_.after(static_cast<std::uint64_t>(delay_ms_), send);
    } else {
      send();
    }
    return sz::Verdict::pass;  // an observer: others see the event too
  }

  sz::Verdict stats(sz::Event& ev) {
    if (ev.stanza().child_text("body") == "sessions") return sessions(ev);
    if (ev.stanza().child_text("body") != "stats") return sz::Verdict::pass;
    sz::Stanza reply("message");
    reply.set_attr("type", "chat");
    reply.text_tag(
        "body", "greeted " + std::to_string(greeted_) + " on shard " + std::to_string(m_.shard()));
    ev.reply(std::move(reply));
    return sz::Verdict::handled;
  }

  // message/host runs on the shard that received the message; the sender's sessions are
  // known on the shard owning the account: the answer is built there.
  sz::Verdict sessions(sz::Event& ev) {
    if (!m_.has_sessions()) return sz::Verdict::pass;
    std::string from(ev.from()), host(ev.to());
    std::string bare = from.substr(0, from.find('/'));
    m_.post<Greeter>(m_.owner_shard(bare), [from, host, bare](Greeter& g) {
      std::string text;
      g.m_.sessions(bare, [&](const sz::Session& s) {
        text += std::string(s.jid()) + (s.available() ? " available" : " unavailable") +
                (s.property("greeter:greeted") ? " greeted" : "") + "\n";
      });
      sz::Stanza reply("message");
      reply.set_attr("from", host).set_attr("to", from).set_attr("type", "chat");
      reply.text_tag("body", text);
      g.m_.send(std::move(reply));
    });
    return sz::Verdict::handled;
  }

  sz::Module& m_;
  std::string text_;
  std::int64_t delay_ms_;
  std::uint64_t greeted_ = 0;
};

STANZAD_PLUGIN_WITH(Greeter, "greeter", "1.0.0", options, 2, dependencies)
