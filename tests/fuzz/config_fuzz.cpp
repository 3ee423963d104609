// tests/fuzz/config_fuzz.cpp: config::parse (docs/configuration.md) either returns a valid
// Config or throws config::ConfigError, whatever the document.
//
// Input: the text of a configuration file. Relative paths in it resolve against the working
// directory (the file is named "fuzz.xml"); password-file may name a real file, which is read.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/config.hpp"
#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  stanzad::config::Config c;
  try {
    c = stanzad::config::parse(text, "fuzz.xml");
  } catch (const stanzad::config::ConfigError& e) {
    // The message names the file: "fuzz.xml:LINE: ..." or "fuzz.xml: ...".
    STANZAD_FUZZ_CHECK(std::string_view(e.what()).find("fuzz.xml") != std::string_view::npos);
    return 0;
  }
  // Anything else thrown escapes, and libFuzzer (or the replay driver) reports it as a crash.
  STANZAD_FUZZ_CHECK(!c.hosts.empty());
  STANZAD_FUZZ_CHECK(c.data_dir.is_absolute());
  STANZAD_FUZZ_CHECK(c.certificate.empty() == c.private_key.empty());
  for (const auto& l : c.listeners) STANZAD_FUZZ_CHECK(l.port != 0);
  return 0;
}
