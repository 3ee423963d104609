// The Lua plugin host: runs lua/mod_*.lua plugins on top of the plugin C ABI (plugin.h).
//
// One lua_State per shard, created lazily and touched only by that shard's thread; each
// plugin instance gets its own environment table holding `module`. See docs/plugins-lua.md.
#pragma once

#include <stanzad/plugin.h>

#include <string>

namespace stanzad::plugin::lua {
// Loads the Lua plugin file `path` (named `name`, e.g. "time" for lua/mod_time.lua) as one
// instance on the calling shard: one lua_State per shard (create lazily, keyed by
// api->shard_index(host); each shard thread only touches its own), each plugin instance gets its
// own environment table with `module` in it. Registers hooks etc. through `api` with `host`.
// Returns an opaque state, or nullptr with `error` set to one line naming file:line on a syntax or
// runtime error at load time.
void* load(sz_host* host, const sz_host_api* api, const std::string& name, const std::string& path,
           std::string& error);
// Unloads one instance: drops its handlers' references, timers' callbacks, environment. (The
// manager removes the registered C handlers from the registry itself before calling this, and
// cancels timers.)
void unload(void* state);
// Directory holding lua/stanzad/*.lua runtime modules (require "stanzad.errors"), set once at
// start-up.
void set_runtime_path(const std::string& dir);
}  // namespace stanzad::plugin::lua
