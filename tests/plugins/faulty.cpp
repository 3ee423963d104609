// tests/plugins/faulty.cpp: a plugin that misbehaves on purpose, for the pipeline's error paths.
//
// A message to the server with body "throw" makes its handler throw (the boundary must answer
// internal-server-error and the server must keep serving); "refuse" returns an error verdict.
#include <stanzad/plugin.hpp>
#include <stdexcept>

namespace sz = stanzad::sdk;

class Faulty {
 public:
  explicit Faulty(sz::Module& m) {
    m.hook("iq-get/host/urn:example:faulty:query", [](sz::Event& ev) -> sz::Verdict {
      std::string what = ev.stanza().child("query", "urn:example:faulty").attr("do").data();
      if (what.starts_with("throw")) throw std::runtime_error("faulty plugin threw on purpose");
      if (what.starts_with("refuse")) return ev.error("not-allowed", "refused on purpose");
      ev.reply(sz::iq_result(ev.stanza()));
      return sz::Verdict::handled;
    });
  }
};

STANZAD_PLUGIN(Faulty, "faulty", "1.0.0")
