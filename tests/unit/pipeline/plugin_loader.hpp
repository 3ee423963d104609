// Opens a built plugin (build/plugins/libstanzad_NAME.so) as the server does, for fake-host tests.
#pragma once

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <stanzad/plugin.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "fake_host.hpp"
#include "plugin/lua_host.hpp"

namespace stanzad::testing {

// The plugin's descriptor, or nullptr. The library stays open for the test's life.
inline const sz_plugin* open_plugin(const std::string& name) {
  std::string path = std::string(STANZAD_PLUGIN_DIR) + "/libstanzad_" + name + ".so";
  void* dl = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!dl) return nullptr;
  auto entry = reinterpret_cast<sz_entry_fn>(dlsym(dl, SZ_ENTRY_SYMBOL));
  return entry ? entry() : nullptr;
}

// Loads a Lua "spy" that logs "spy: <stanza>" for every `event`, after every other handler
// (priority -2000): what the core would go on with. One file per process: ctest runs tests as
// parallel processes, and a shared path was truncated by one while another loaded it.
inline void load_spy(FakeHost& host, const std::string& event) {
  auto path = std::filesystem::temp_directory_path() /
              ("stanzad-spy-" + std::to_string(::getpid()) + ".lua");
  std::ofstream(path) << "module:hook('" << event << "', function(event)\n"
                      << "  module:log('info', 'spy: %s', tostring(event.stanza));\n"
                      << "end, -2000);\n";
  plugin::lua::set_runtime_path(std::string(STANZAD_SOURCE_DIR) + "/lua");
  std::string error;
  ASSERT_TRUE(host.load_lua("spy", path.string(), &error)) << error;
}

}  // namespace stanzad::testing
