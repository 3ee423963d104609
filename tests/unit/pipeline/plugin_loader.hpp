// Opens a built plugin (build/plugins/libstanzad_NAME.so) as the server does, for fake-host tests.
#pragma once

#include <dlfcn.h>
#include <stanzad/plugin.h>

#include <string>

namespace stanzad::testing {

// The plugin's descriptor, or nullptr. The library stays open for the test's life.
inline const sz_plugin* open_plugin(const std::string& name) {
  std::string path = std::string(STANZAD_PLUGIN_DIR) + "/libstanzad_" + name + ".so";
  void* dl = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!dl) return nullptr;
  auto entry = reinterpret_cast<sz_entry_fn>(dlsym(dl, SZ_ENTRY_SYMBOL));
  return entry ? entry() : nullptr;
}

}  // namespace stanzad::testing
