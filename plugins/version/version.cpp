// plugins/version/version.cpp: XEP-0092 Software Version of the server.
#include <sys/utsname.h>

#include <stanzad/plugin.hpp>

namespace sz = stanzad::sdk;

namespace {

const sz_option options[] = {
    {"version_hide_os", SZ_OPT_BOOLEAN, "false", 0, 0,
     "leave the operating system out of the answer"},
};

}  // namespace

class Version {
 public:
  explicit Version(sz::Module& m) {
    if (!m.option_boolean("version_hide_os")) {
      utsname u{};
      if (uname(&u) == 0) os_ = std::string(u.sysname) + " " + u.release;
    }
    m.add_feature("jabber:iq:version");
    m.hook("iq-get/host/jabber:iq:version:query", [this](sz::Event& ev) {
      sz::Stanza reply = sz::iq_result(ev.stanza());
      sz::StanzaRef query = reply.add_child("query", "jabber:iq:version");
      query.text_tag("name", "stanzad").text_tag("version", STANZAD_PLUGIN_VERSION);
      if (!os_.empty()) query.text_tag("os", os_);
      ev.reply(std::move(reply));
      return sz::Verdict::handled;
    });
  }

 private:
  std::string os_;
};

STANZAD_PLUGIN_WITH(Version, "version", STANZAD_PLUGIN_VERSION, options, 1, nullptr)
