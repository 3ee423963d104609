// tests/plugins/wrong_abi.cpp: a plugin built for a future ABI major, which the loader refuses.
#include <stanzad/plugin.h>

static void* load(sz_host*, const sz_host_api*) { return (void*)1; }
static void unload(void*) {}

extern "C" SZ_EXPORT const sz_plugin* stanzad_plugin_v1(void) {
  static const sz_plugin d = {99,     sizeof(sz_plugin), "wrong_abi", "1.0.0", load,
                              unload, nullptr,           0,           nullptr};
  return &d;
}
