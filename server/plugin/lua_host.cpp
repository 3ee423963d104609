// The Lua plugin host: lua/mod_*.lua plugins driven through the plugin C ABI (plugin.h).
//
// Everything here goes through sz_host_api, so a Lua plugin can do what a C++ plugin can.
// Per shard one lua_State (extra space points at its Shard); per plugin instance one
// environment table holding `module`. Dispatch reuses one event table and one stanza userdata
// per nesting depth, so calling a Lua handler allocates nothing of its own.
#include "plugin/lua_host.hpp"

extern "C" {
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
}

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

namespace stanzad::plugin::lua {

namespace {

constexpr const char* kStanzaMt = "stanzad.stanza";
constexpr const char* kAttrMt = "stanzad.stanza.attr";
constexpr const char* kStoreMt = "stanzad.store";
// Addresses used as light-userdata keys: plugin code cannot reach them by accident.
char kInstKey;
char kMethodsKey;
char kFormatKey;

struct Shard;
struct Instance;

// A stanza seen from Lua. A root owns (or borrows, for the event's stanza) the element tree;
// a child ref points into a root's tree and keeps the root userdata alive (user value 1).
// Changing the tree's structure may move elements in memory, so every structural change
// bumps the root's version and refs taken before it raise a Lua error instead of crashing.
struct StanzaUd {
  sz_stanza* s = nullptr;
  StanzaUd* root = nullptr;           // self for a root
  std::uint64_t stamp = 0;            // root->version when this ref (and its cursor) was valid
  std::uint64_t version = 0;          // root only
  bool owned = false;                 // root only: freed by __gc
  bool valid = false;                 // root only
  const char* dead = "it was freed";  // root only: why it is invalid
  std::vector<sz_stanza*> cursor;     // builder position (:tag/:up) below s; empty = s
};

struct Slot {  // one reusable event table + stanza per dispatch depth
  sz_event* ev = nullptr;
  Instance* inst = nullptr;
  StanzaUd* stanza = nullptr;
  int stanza_ref = LUA_NOREF;
  int table_ref = LUA_NOREF;
  bool dirty = false;  // the handler stored its own fields: rebuild the table
};

struct Shard {
  lua_State* L = nullptr;
  lua_State* current = nullptr;  // the running thread during module:fire (coroutines)
  sz_host_api api{};             // a copy: the stanza functions outlive any one host
  int instances = 0;
  std::uint32_t index = 0;
  std::size_t depth = 0;
  std::vector<std::unique_ptr<Slot>> slots;
};

struct LuaHandler {
  Instance* inst = nullptr;
  int fn_ref = LUA_NOREF;
};

struct LuaTimer {
  Instance* inst = nullptr;
  int fn_ref = LUA_NOREF;
  std::uint64_t id = 0;   // the host's timer id (changes when re-armed)
  std::uint64_t key = 0;  // what Lua sees
  bool running = false;
  bool stopped = false;
};

struct Instance {
  Shard* shard = nullptr;
  sz_host* host = nullptr;
  const sz_host_api* api = nullptr;
  std::string name, path;
  int module_ref = LUA_NOREF;
  int env_ref = LUA_NOREF;
  std::vector<std::unique_ptr<LuaHandler>> handlers;
  std::unordered_map<std::uint64_t, std::unique_ptr<LuaTimer>> timers;
  std::uint64_t next_timer = 0;
  // store:set_async callbacks waiting for their commit, by write id (unique in the process, so
  // that a reloaded instance of the same plugin never takes an old instance's completion).
  std::unordered_map<std::uint64_t, int> writes;
};

std::mutex g_mutex;  // guards g_shards and g_runtime_path; Lua states are per thread
std::unordered_map<std::uint32_t, Shard*> g_shards;
std::string g_runtime_path;

Shard* shard_of(lua_State* L) { return *static_cast<Shard**>(lua_getextraspace(L)); }
const sz_host_api& api_of(lua_State* L) { return shard_of(L)->api; }

sz_str to_sz(lua_State* L, int idx) {
  size_t len = 0;
  const char* s = luaL_checklstring(L, idx, &len);
  return sz_str{s, len};
}
sz_str opt_sz(lua_State* L, int idx) {
  if (lua_isnoneornil(L, idx)) return sz_str{"", 0};
  return to_sz(L, idx);
}
void push_sz(lua_State* L, sz_str v) { lua_pushlstring(L, v.data ? v.data : "", v.len); }
// Pushes the string, or nil when it is empty/absent.
void push_sz_or_nil(lua_State* L, sz_str v) {
  if (v.len == 0) {
    lua_pushnil(L);
  } else {
    push_sz(L, v);
  }
}
void push_cb(void* user, sz_str v) { push_sz(static_cast<lua_State*>(user), v); }
bool eq(const char* k, size_t len, const char* lit) {
  return std::strlen(lit) == len && std::memcmp(k, lit, len) == 0;
}

// ---- stanzas -------------------------------------------------------------------------------

StanzaUd* new_root(lua_State* L, sz_stanza* s, bool owned) {
  auto* ud = static_cast<StanzaUd*>(lua_newuserdatauv(L, sizeof(StanzaUd), 2));
  new (ud) StanzaUd();
  ud->s = s;
  ud->root = ud;
  ud->owned = owned;
  ud->valid = s != nullptr;
  luaL_setmetatable(L, kStanzaMt);
  return ud;
}

StanzaUd* check_stanza(lua_State* L, int idx) {
  auto* ud = static_cast<StanzaUd*>(luaL_checkudata(L, idx, kStanzaMt));
  StanzaUd* root = ud->root;
  if (!root->valid) luaL_error(L, "stanza used after %s", root->dead);
  if (ud != root && ud->stamp != root->version)
    luaL_error(L, "stale stanza reference: the tree changed since it was taken (get it again)");
  return ud;
}

// Pushes a child ref of element `c` in the tree of the stanza at `idx`.
void push_child(lua_State* L, int idx, sz_stanza* c) {
  idx = lua_absindex(L, idx);
  auto* parent = static_cast<StanzaUd*>(lua_touserdata(L, idx));
  auto* ud = static_cast<StanzaUd*>(lua_newuserdatauv(L, sizeof(StanzaUd), 2));
  new (ud) StanzaUd();
  ud->s = c;
  ud->root = parent->root;
  ud->stamp = parent->root->version;
  luaL_setmetatable(L, kStanzaMt);
  if (parent == parent->root) {
    lua_pushvalue(L, idx);
  } else {
    lua_getiuservalue(L, idx, 1);
  }
  lua_setiuservalue(L, -2, 1);
}

sz_stanza* cursor_of(lua_State* L, StanzaUd* ud) {
  if (ud->cursor.empty()) return ud->s;
  if (ud->stamp != ud->root->version)
    luaL_error(L, "builder position lost: the tree changed through another reference (:reset())");
  return ud->cursor.back();
}

void changed(StanzaUd* ud) {
  ud->root->version++;
  ud->stamp = ud->root->version;
}

void invalidate(StanzaUd* root, const char* why) {
  root->valid = false;
  root->dead = why;
  root->version++;
  root->cursor.clear();
}

// The element to hand to a call that takes ownership: an owned root is given up (using it
// afterwards raises an error); anything else (the event's stanza, a child) is copied.
sz_stanza* take(lua_State* L, int idx, const char* why) {
  StanzaUd* ud = check_stanza(L, idx);
  if (ud == ud->root && ud->owned) {
    sz_stanza* s = ud->s;
    ud->s = nullptr;
    invalidate(ud, why);
    return s;
  }
  return api_of(L).stanza_copy(ud->s);
}

void set_attr_from_stack(lua_State* L, sz_stanza* s, const char* k, size_t kl) {
  int t = lua_type(L, -1);
  if (t != LUA_TSTRING && t != LUA_TNUMBER)
    luaL_error(L, "attribute '%s' must be a string, not %s", k, luaL_typename(L, -1));
  size_t vl = 0;
  const char* v = lua_tolstring(L, -1, &vl);  // converts the value only, never a key
  api_of(L).stanza_set_attr(s, sz_str{k, kl}, sz_str{v, vl});
}

// Sets the attributes of table `idx` (xmlns excepted) in name order, so that output does not
// depend on Lua's hash order.
void apply_attrs(lua_State* L, int idx, sz_stanza* s) {
  if (lua_isnoneornil(L, idx)) return;
  idx = lua_absindex(L, idx);
  luaL_checktype(L, idx, LUA_TTABLE);
  struct Key {
    const char* k;
    size_t len;
  };
  constexpr int kMax = 32;
  Key keys[kMax];  // plain array: a Lua error may longjmp out of here
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) == LUA_TSTRING) {
      size_t kl = 0;
      const char* k = lua_tolstring(L, -2, &kl);  // kept alive by the table
      if (!eq(k, kl, "xmlns")) {
        if (n < kMax) {
          keys[n++] = Key{k, kl};
        } else {
          set_attr_from_stack(L, s, k, kl);
        }
      }
    }
    lua_pop(L, 1);
  }
  std::sort(keys, keys + n, [](const Key& a, const Key& b) {
    int c = std::memcmp(a.k, b.k, std::min(a.len, b.len));
    return c != 0 ? c < 0 : a.len < b.len;
  });
  for (int i = 0; i < n; ++i) {
    lua_pushlstring(L, keys[i].k, keys[i].len);
    lua_rawget(L, idx);
    set_attr_from_stack(L, s, keys[i].k, keys[i].len);
    lua_pop(L, 1);
  }
}

sz_str attrs_xmlns(lua_State* L, int idx) {
  if (lua_isnoneornil(L, idx)) return sz_str{"", 0};
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_getfield(L, idx, "xmlns");  // left on the stack (keeps the string alive)
  if (lua_isnil(L, -1)) return sz_str{"", 0};
  size_t len = 0;
  const char* s = luaL_checklstring(L, -1, &len);
  return sz_str{s, len};
}

// xmlns argument: absent means the parent's namespace (as Prosody's util.stanza does).
sz_str child_ns(lua_State* L, int idx, StanzaUd* ud) {
  if (lua_isnoneornil(L, idx)) return api_of(L).stanza_xmlns(ud->s);
  return to_sz(L, idx);
}

bool ns_equal(sz_str a, sz_str b) {
  return a.len == b.len && (a.len == 0 || std::memcmp(a.data, b.data, a.len) == 0);
}

int st_new(lua_State* L) {  // native.stanza(name, attrs)
  lua_settop(L, 2);         // fixed slots: attrs_xmlns pushes above them
  sz_str name = to_sz(L, 1);
  sz_str ns = attrs_xmlns(L, 2);
  if (ns.len == 0) ns = sz_str{"jabber:client", 13};
  sz_stanza* s = api_of(L).stanza_new(name, ns);
  new_root(L, s, true);
  apply_attrs(L, 2, s);
  return 1;
}

int st_parse(lua_State* L) {  // native.parse(xml) -> stanza | nil, error
  sz_stanza* s = api_of(L).stanza_parse(to_sz(L, 1));
  if (!s) {
    lua_pushnil(L);
    lua_pushliteral(L, "not one well-formed XML element");
    return 2;
  }
  new_root(L, s, true);
  return 1;
}

int st_is_stanza(lua_State* L) {
  lua_pushboolean(L, luaL_testudata(L, 1, kStanzaMt) != nullptr);
  return 1;
}

int st_tag(lua_State* L) {  // :tag(name, attrs) -> self, positioned inside the new child
  lua_settop(L, 3);         // fixed slots: attrs_xmlns pushes above them
  StanzaUd* ud = check_stanza(L, 1);
  sz_str name = to_sz(L, 2);
  sz_str ns = attrs_xmlns(L, 3);
  sz_stanza* parent = cursor_of(L, ud);
  sz_stanza* c = api_of(L).stanza_add_child(parent, name, ns);
  apply_attrs(L, 3, c);
  changed(ud);
  ud->cursor.push_back(c);
  lua_settop(L, 1);
  return 1;
}

int st_text(lua_State* L) {  // :text(s) -> self
  StanzaUd* ud = check_stanza(L, 1);
  if (!lua_isnoneornil(L, 2)) {
    sz_str t = to_sz(L, 2);
    api_of(L).stanza_add_text(cursor_of(L, ud), t);
    changed(ud);
  }
  lua_settop(L, 1);
  return 1;
}

int st_text_tag(lua_State* L) {  // :text_tag(name, text, attrs) -> self
  lua_settop(L, 4);              // fixed slots: attrs_xmlns pushes above them
  StanzaUd* ud = check_stanza(L, 1);
  sz_str name = to_sz(L, 2);
  sz_str ns = attrs_xmlns(L, 4);
  sz_stanza* c = api_of(L).stanza_add_child(cursor_of(L, ud), name, ns);
  apply_attrs(L, 4, c);
  if (!lua_isnoneornil(L, 3)) api_of(L).stanza_add_text(c, to_sz(L, 3));
  changed(ud);
  lua_settop(L, 1);
  return 1;
}

int st_up(lua_State* L) {
  StanzaUd* ud = check_stanza(L, 1);
  if (!ud->cursor.empty()) ud->cursor.pop_back();
  lua_settop(L, 1);
  return 1;
}

int st_reset(lua_State* L) {
  StanzaUd* ud = check_stanza(L, 1);
  ud->cursor.clear();
  lua_settop(L, 1);
  return 1;
}

int st_add_child(lua_State* L) {  // :add_child(stanza) at the builder position -> self
  StanzaUd* ud = check_stanza(L, 1);
  sz_stanza* parent = cursor_of(L, ud);
  StanzaUd* other = check_stanza(L, 2);
  // Adding a stanza to its own tree: append a copy (taking it would detach the parent).
  sz_stanza* c = other->root == ud->root ? api_of(L).stanza_copy(other->s)
                                         : take(L, 2, "it was added to another stanza");
  api_of(L).stanza_append(parent, c);
  changed(ud);
  lua_settop(L, 1);
  return 1;
}

sz_stanza* find_child(lua_State* L, StanzaUd* ud, int name_idx, sz_str ns) {
  const sz_host_api& api = api_of(L);
  if (!lua_isnoneornil(L, name_idx)) return api.stanza_child(ud->s, to_sz(L, name_idx), ns);
  size_t n = api.stanza_child_count(ud->s);
  for (size_t i = 0; i < n; ++i) {
    sz_stanza* c = api.stanza_child_at(ud->s, i);
    if (ns_equal(api.stanza_xmlns(c), ns)) return c;
  }
  return nullptr;
}

int st_get_child(lua_State* L) {  // :get_child(name, xmlns) -> child | nil
  StanzaUd* ud = check_stanza(L, 1);
  sz_stanza* c = find_child(L, ud, 2, child_ns(L, 3, ud));
  if (!c) {
    lua_pushnil(L);
    return 1;
  }
  push_child(L, 1, c);
  return 1;
}

int st_get_child_text(lua_State* L) {  // :get_child_text(name, xmlns) -> string | nil
  StanzaUd* ud = check_stanza(L, 1);
  sz_stanza* c = find_child(L, ud, 2, child_ns(L, 3, ud));
  if (!c) {
    lua_pushnil(L);
    return 1;
  }
  api_of(L).stanza_text(c, push_cb, L);
  return 1;
}

int st_get_text(lua_State* L) {
  StanzaUd* ud = check_stanza(L, 1);
  api_of(L).stanza_text(ud->s, push_cb, L);
  return 1;
}

// Iterator state: upvalue 1 the stanza, 2 the next index, 3 name filter, 4 xmlns filter (or nil).
int children_next(lua_State* L) {
  StanzaUd* ud = check_stanza(L, lua_upvalueindex(1));
  const sz_host_api& api = api_of(L);
  lua_Integer i = lua_tointeger(L, lua_upvalueindex(2));
  size_t n = api.stanza_child_count(ud->s);
  bool filter = !lua_isnil(L, lua_upvalueindex(4));
  for (; static_cast<size_t>(i) < n; ++i) {
    sz_stanza* c = api.stanza_child_at(ud->s, static_cast<size_t>(i));
    if (filter) {
      sz_str want_ns{lua_tostring(L, lua_upvalueindex(4)), lua_rawlen(L, lua_upvalueindex(4))};
      if (!ns_equal(api.stanza_xmlns(c), want_ns)) continue;
      if (!lua_isnil(L, lua_upvalueindex(3))) {
        sz_str want{lua_tostring(L, lua_upvalueindex(3)), lua_rawlen(L, lua_upvalueindex(3))};
        if (!ns_equal(api.stanza_name(c), want)) continue;
      }
    }
    lua_pushinteger(L, i + 1);
    lua_replace(L, lua_upvalueindex(2));
    push_child(L, lua_upvalueindex(1), c);
    return 1;
  }
  lua_pushinteger(L, i);
  lua_replace(L, lua_upvalueindex(2));
  return 0;
}

int st_children(lua_State* L) {  // for child in s:children() (element children only)
  check_stanza(L, 1);
  lua_pushvalue(L, 1);
  lua_pushinteger(L, 0);
  lua_pushnil(L);
  lua_pushnil(L);
  lua_pushcclosure(L, children_next, 4);
  return 1;
}

int st_childtags(lua_State* L) {  // for tag in s:childtags(name, xmlns)
  StanzaUd* ud = check_stanza(L, 1);
  if (!lua_isnoneornil(L, 2)) luaL_checkstring(L, 2);
  sz_str ns = child_ns(L, 3, ud);
  lua_settop(L, 3);
  lua_pushvalue(L, 1);
  lua_pushinteger(L, 0);
  if (lua_isnoneornil(L, 2)) {
    lua_pushnil(L);
  } else {
    lua_pushvalue(L, 2);
  }
  push_sz(L, ns);
  lua_pushcclosure(L, children_next, 4);
  return 1;
}

int st_copy(lua_State* L) {
  StanzaUd* ud = check_stanza(L, 1);
  new_root(L, api_of(L).stanza_copy(ud->s), true);
  return 1;
}

int st_set_attr(lua_State* L) {  // :set_attr(name, value|nil) -> self
  StanzaUd* ud = check_stanza(L, 1);
  sz_str name = to_sz(L, 2);
  if (lua_isnoneornil(L, 3)) {
    api_of(L).stanza_remove_attr(ud->s, name);
  } else {
    api_of(L).stanza_set_attr(ud->s, name, to_sz(L, 3));
  }
  lua_settop(L, 1);
  return 1;
}

int st_remove_attr(lua_State* L) {
  StanzaUd* ud = check_stanza(L, 1);
  api_of(L).stanza_remove_attr(ud->s, to_sz(L, 2));
  lua_settop(L, 1);
  return 1;
}

int st_remove_children(lua_State* L) {  // :remove_children(name, xmlns) -> self
  StanzaUd* ud = check_stanza(L, 1);
  sz_str name = to_sz(L, 2);
  sz_str ns = child_ns(L, 3, ud);
  while (api_of(L).stanza_remove_child(ud->s, name, ns) == 1) {
  }
  changed(ud);
  ud->cursor.clear();
  lua_settop(L, 1);
  return 1;
}

int st_clear(lua_State* L) {  // removes every child node -> self
  StanzaUd* ud = check_stanza(L, 1);
  api_of(L).stanza_clear(ud->s);
  changed(ud);
  ud->cursor.clear();
  lua_settop(L, 1);
  return 1;
}

int st_tostring(lua_State* L) {
  StanzaUd* ud = check_stanza(L, 1);
  api_of(L).stanza_serialize(ud->s, push_cb, L);
  return 1;
}

int st_gc(lua_State* L) {
  auto* ud = static_cast<StanzaUd*>(lua_touserdata(L, 1));
  if (ud->root == ud && ud->owned && ud->s) api_of(L).stanza_free(ud->s);
  ud->s = nullptr;
  ud->~StanzaUd();
  return 0;
}

// stanza.name, stanza.attr, then methods (upvalue 1).
int st_index(lua_State* L) {
  if (lua_type(L, 2) == LUA_TSTRING) {
    size_t len = 0;
    const char* k = lua_tolstring(L, 2, &len);
    if (eq(k, len, "name")) {
      StanzaUd* ud = check_stanza(L, 1);
      push_sz(L, api_of(L).stanza_name(ud->s));
      return 1;
    }
    if (eq(k, len, "attr")) {
      check_stanza(L, 1);
      if (lua_getiuservalue(L, 1, 2) == LUA_TUSERDATA) return 1;
      lua_pop(L, 1);
      lua_newuserdatauv(L, 0, 1);  // the proxy, cached in user value 2
      luaL_setmetatable(L, kAttrMt);
      lua_pushvalue(L, 1);
      lua_setiuservalue(L, -2, 1);
      lua_pushvalue(L, -1);
      lua_setiuservalue(L, 1, 2);
      return 1;
    }
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

int attr_index(lua_State* L) {
  lua_getiuservalue(L, 1, 1);
  StanzaUd* ud = check_stanza(L, -1);
  size_t len = 0;
  const char* k = luaL_checklstring(L, 2, &len);
  if (eq(k, len, "xmlns")) {
    push_sz(L, api_of(L).stanza_xmlns(ud->s));
    return 1;
  }
  sz_str v = api_of(L).stanza_attr(ud->s, sz_str{k, len});
  if (!v.data) {
    lua_pushnil(L);
    return 1;
  }
  push_sz(L, v);
  return 1;
}

int attr_newindex(lua_State* L) {
  lua_getiuservalue(L, 1, 1);
  StanzaUd* ud = check_stanza(L, -1);
  size_t len = 0;
  const char* k = luaL_checklstring(L, 2, &len);
  if (eq(k, len, "xmlns")) return luaL_error(L, "an element's xmlns cannot be changed");
  if (lua_isnil(L, 3)) {
    api_of(L).stanza_remove_attr(ud->s, sz_str{k, len});
  } else {
    api_of(L).stanza_set_attr(ud->s, sz_str{k, len}, to_sz(L, 3));
  }
  return 0;
}

void register_stanza(lua_State* L) {
  static const luaL_Reg methods[] = {
      {"tag", st_tag},
      {"text", st_text},
      {"text_tag", st_text_tag},
      {"up", st_up},
      {"reset", st_reset},
      {"add_child", st_add_child},
      {"get_child", st_get_child},
      {"get_child_text", st_get_child_text},
      {"get_text", st_get_text},
      {"children", st_children},
      {"childtags", st_childtags},
      {"copy", st_copy},
      {"set_attr", st_set_attr},
      {"remove_attr", st_remove_attr},
      {"remove_children", st_remove_children},
      {"clear", st_clear},
      {nullptr, nullptr},
  };
  luaL_newmetatable(L, kStanzaMt);
  luaL_newlib(L, methods);
  lua_pushcclosure(L, st_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, st_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushcfunction(L, st_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushliteral(L, "stanza");
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);

  luaL_newmetatable(L, kAttrMt);
  lua_pushcfunction(L, attr_index);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, attr_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pop(L, 1);
}

int open_native(lua_State* L) {  // require "stanzad.native": the core of stanzad.stanza
  static const luaL_Reg fns[] = {
      {"stanza", st_new},
      {"parse", st_parse},
      {"is_stanza", st_is_stanza},
      {nullptr, nullptr},
  };
  luaL_newlib(L, fns);
  return 1;
}

// ---- require "stanzad.jid" (ABI 1.4 jid_prep) -------------------------------------------------

// jid.prep(s) / jid.prep_bare(s) -> the JID prepared as the core prepares addresses, or nil when
// s is not a JID (or not a string: item.attr.jid may be absent).
int jid_prep_common(lua_State* L, bool bare) {
  const sz_host_api& api = shard_of(L)->api;
  if (!SZ_HAS(&api, jid_prep_bare)) return luaL_error(L, "this server cannot prepare JIDs");
  if (lua_type(L, 1) != LUA_TSTRING) {
    lua_pushnil(L);
    return 1;
  }
  std::size_t n = 0;
  const char* in = lua_tolstring(L, 1, &n);
  auto fn = bare ? api.jid_prep_bare : api.jid_prep;
  char buf[SZ_JID_MAX_BYTES];
  std::size_t len = 0;
  int r = fn(sz_str{in, n}, buf, sizeof buf, &len);
  if (r == SZ_JID_OK) {
    lua_pushlstring(L, buf, len);
  } else if (r == SZ_JID_TOO_SMALL) {  // not with today's limits; a host may allow more one day
    std::string big(len, '\0');
    if (fn(sz_str{in, n}, big.data(), big.size(), &len) == SZ_JID_OK) {
      lua_pushlstring(L, big.data(), len);
    } else {
      lua_pushnil(L);
    }
  } else {
    lua_pushnil(L);
  }
  return 1;
}

int jid_prep(lua_State* L) { return jid_prep_common(L, false); }
int jid_prep_bare(lua_State* L) { return jid_prep_common(L, true); }

int open_jid(lua_State* L) {
  static const luaL_Reg fns[] = {
      {"prep", jid_prep},
      {"prep_bare", jid_prep_bare},
      {nullptr, nullptr},
  };
  luaL_newlib(L, fns);
  return 1;
}

// ---- errors and logging ----------------------------------------------------------------------

int msgh(lua_State* L) {
  if (lua_type(L, 1) == LUA_TTABLE) return 1;  // an error object from stanzad.errors
  const char* msg = lua_tostring(L, 1);
  if (!msg) msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  luaL_traceback(L, L, msg, 1);
  return 1;
}

void log_line(Instance* inst, sz_log_level level, std::string_view line) {
  inst->api->log(inst->host, level, line.data(), line.size());
}

std::string first_line(const char* msg) {
  std::string s = msg ? msg : "(no message)";
  auto nl = s.find('\n');
  if (nl != std::string::npos) s.resize(nl);
  return s;
}

// Logs a failed call whose error (message with traceback) is on top of the stack.
void log_failure(Instance* inst, lua_State* L, const char* what, std::string_view where) {
  const char* msg = lua_tostring(L, -1);
  std::string line = std::string("lua ") + what + " failed plugin=" + inst->name + " " +
                     std::string(where) + ": " + first_line(msg);
  log_line(inst, SZ_LOG_ERROR, line);
  if (msg) log_line(inst, SZ_LOG_DEBUG, msg);
}

// If the value at idx is an error object (a table with a string `condition`), sets it on the
// event and returns true.
bool set_error_object(lua_State* L, int idx, sz_event* ev, const sz_host_api* api) {
  if (lua_type(L, idx) != LUA_TTABLE) return false;
  idx = lua_absindex(L, idx);
  if (lua_getfield(L, idx, "condition") != LUA_TSTRING) {
    lua_pop(L, 1);
    return false;
  }
  lua_getfield(L, idx, "type");
  lua_getfield(L, idx, "text");
  auto field = [&](int i) {
    size_t len = 0;
    const char* s = lua_type(L, i) == LUA_TSTRING ? lua_tolstring(L, i, &len) : nullptr;
    return sz_str{s ? s : "", len};
  };
  api->event_set_error(ev, field(-3), field(-2), field(-1));
  lua_pop(L, 3);
  // `payload`: a stanza (or a list of them) added inside <error/> after the condition.
  auto add_payload = [&](int i) {
    auto* ud = static_cast<StanzaUd*>(luaL_testudata(L, i, kStanzaMt));
    if (ud && ud->root->valid && ud->s) api->event_set_error_payload(ev, api->stanza_copy(ud->s));
  };
  int t = lua_getfield(L, idx, "payload");
  if (t == LUA_TUSERDATA) {
    add_payload(-1);
  } else if (t == LUA_TTABLE) {
    for (lua_Integer i = 1; lua_rawgeti(L, -1, i) != LUA_TNIL; ++i) {
      add_payload(-1);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return true;
}

// ---- events --------------------------------------------------------------------------------

int event_index(lua_State* L) {
  auto* slot = static_cast<Slot*>(lua_touserdata(L, lua_upvalueindex(1)));
  if (!slot->ev) return luaL_error(L, "event used after its handler returned");
  if (lua_type(L, 2) != LUA_TSTRING) return 0;
  size_t len = 0;
  const char* k = lua_tolstring(L, 2, &len);
  const sz_host_api* api = slot->inst->api;
  if (eq(k, len, "stanza")) {
    if (!slot->stanza->valid) return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, slot->stanza_ref);
  } else if (eq(k, len, "name")) {
    push_sz(L, api->event_name(slot->ev));
  } else if (eq(k, len, "from")) {
    push_sz_or_nil(L, api->event_from(slot->ev));
  } else if (eq(k, len, "to")) {
    push_sz_or_nil(L, api->event_to(slot->ev));
  } else if (eq(k, len, "session_jid")) {
    push_sz_or_nil(L, api->event_session_jid(slot->ev));
  } else if (eq(k, len, "remote_address")) {
    push_sz_or_nil(L, api->event_remote_address(slot->ev));
  } else {
    return 0;
  }
  return 1;
}

int event_newindex(lua_State* L) {
  auto* slot = static_cast<Slot*>(lua_touserdata(L, lua_upvalueindex(1)));
  slot->dirty = true;
  lua_rawset(L, 1);
  return 0;
}

int event_reply(lua_State* L) {  // event:reply(stanza): the stanza is taken (or copied)
  auto* slot = static_cast<Slot*>(lua_touserdata(L, lua_upvalueindex(1)));
  if (!slot->ev) return luaL_error(L, "event used after its handler returned");
  sz_stanza* s = take(L, 2, "it was sent");
  slot->inst->api->event_reply(slot->ev, s);
  return 0;
}

// event:write(stanza): written to the event's session at once, before the stanza being
// processed, skipping stanza/out (taken or copied). Returns false without a session.
int event_write(lua_State* L) {
  auto* slot = static_cast<Slot*>(lua_touserdata(L, lua_upvalueindex(1)));
  if (!slot->ev) return luaL_error(L, "event used after its handler returned");
  sz_stanza* s = take(L, 2, "it was written");
  lua_pushboolean(L, slot->inst->api->event_session_write(slot->ev, s) == 0);
  return 1;
}

// Argument `idx` as XML text: a string as it is, a stanza serialized.
std::string xml_arg(lua_State* L, int idx) {
  if (lua_type(L, idx) == LUA_TSTRING) return lua_tostring(L, idx);
  StanzaUd* ud = check_stanza(L, idx);
  std::string xml;
  api_of(L).stanza_serialize(
      ud->s, [](void* u, sz_str v) { static_cast<std::string*>(u)->assign(v.data, v.len); }, &xml);
  return xml;
}

// event:offline_push_async(user, stanza|xml) (SDK 1.5), in a message/offline handler: queued
// into the next group commit; the sender's acknowledgement waits for it, the shard does not.
// Raises an error if the storage refused it at once.
int event_offline_push_async(lua_State* L) {
  auto* slot = static_cast<Slot*>(lua_touserdata(L, lua_upvalueindex(1)));
  if (!slot->ev) return luaL_error(L, "event used after its handler returned");
  const sz_host_api* api = slot->inst->api;
  if (!SZ_HAS(api, offline_push_async)) return luaL_error(L, "this server has no SDK 1.5");
  size_t len = 0;
  const char* user = luaL_checklstring(L, 2, &len);
  std::string xml = xml_arg(L, 3);
  if (api->offline_push_async(slot->inst->host, slot->ev, sz_str{user, len},
                              sz_str{xml.data(), xml.size()}) != 0)
    return luaL_error(L, "storage error queueing for %s", user);
  return 0;
}

void make_event_table(lua_State* L, Slot* slot) {
  lua_createtable(L, 0, 3);
  lua_pushlightuserdata(L, slot);
  lua_pushcclosure(L, event_reply, 1);
  lua_setfield(L, -2, "reply");
  lua_pushlightuserdata(L, slot);
  lua_pushcclosure(L, event_write, 1);
  lua_setfield(L, -2, "write");
  lua_pushlightuserdata(L, slot);
  lua_pushcclosure(L, event_offline_push_async, 1);
  lua_setfield(L, -2, "offline_push_async");
  lua_createtable(L, 0, 2);
  lua_pushlightuserdata(L, slot);
  lua_pushcclosure(L, event_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushlightuserdata(L, slot);
  lua_pushcclosure(L, event_newindex, 1);
  lua_setfield(L, -2, "__newindex");
  lua_setmetatable(L, -2);
  slot->table_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  slot->dirty = false;
}

Slot* slot_at(Shard* sh, lua_State* L, std::size_t depth) {
  while (sh->slots.size() <= depth) {
    auto slot = std::make_unique<Slot>();
    slot->stanza = new_root(L, nullptr, false);
    slot->stanza->dead = "its handler returned (event.stanza is valid only during the handler)";
    slot->stanza_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    make_event_table(L, slot.get());
    sh->slots.push_back(std::move(slot));
  }
  return sh->slots[depth].get();
}

sz_verdict on_event(sz_event* ev, void* user) {
  auto* h = static_cast<LuaHandler*>(user);
  Instance* inst = h->inst;
  Shard* sh = inst->shard;
  lua_State* L = sh->current ? sh->current : sh->L;
  int top = lua_gettop(L);
  if (!lua_checkstack(L, 8)) {
    inst->api->event_set_error(ev, sz_str{"internal-server-error", 21}, sz_str{"cancel", 6},
                               sz_str{"", 0});
    return SZ_ERROR;
  }
  Slot* slot = slot_at(sh, L, sh->depth++);
  slot->ev = ev;
  slot->inst = inst;
  StanzaUd* st = slot->stanza;
  st->s = inst->api->event_stanza(ev);
  st->valid = st->s != nullptr;
  st->cursor.clear();
  st->stamp = st->version;

  lua_pushcfunction(L, msgh);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->fn_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, slot->table_ref);
  int rc = lua_pcall(L, 1, 1, top + 1);

  slot->ev = nullptr;
  st->s = nullptr;
  invalidate(st, "its handler returned (event.stanza is valid only during the handler)");
  if (slot->dirty) {
    luaL_unref(L, LUA_REGISTRYINDEX, slot->table_ref);
    make_event_table(L, slot);
  }
  sh->depth--;

  sz_verdict verdict = SZ_PASS;
  if (rc != LUA_OK) {
    if (!set_error_object(L, -1, ev, inst->api)) {
      sz_str name = inst->api->event_name(ev);
      log_failure(inst, L, "handler", "event=" + std::string(name.data ? name.data : "", name.len));
      inst->api->event_set_error(ev, sz_str{"internal-server-error", 21}, sz_str{"cancel", 6},
                                 sz_str{"", 0});
    }
    verdict = SZ_ERROR;
  } else if (lua_isnil(L, -1) || (lua_isboolean(L, -1) && !lua_toboolean(L, -1))) {
    verdict = SZ_PASS;
  } else if (set_error_object(L, -1, ev, inst->api)) {
    verdict = SZ_ERROR;
  } else {
    verdict = SZ_HANDLED;  // true, or any other value (as Prosody: non-nil stops the chain)
  }
  lua_settop(L, top);
  return verdict;
}

// ---- module --------------------------------------------------------------------------------

Instance* self_inst(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_rawgetp(L, 1, &kInstKey);
  auto* inst = static_cast<Instance*>(lua_touserdata(L, -1));
  lua_pop(L, 1);
  if (!inst) luaL_error(L, "not a loaded module (call module:method(), not module.method())");
  return inst;
}

int m_hook(lua_State* L) {  // module:hook(event, fn, priority)
  Instance* inst = self_inst(L);
  const char* event = luaL_checkstring(L, 2);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  lua_Integer prio = luaL_optinteger(L, 4, SZ_PRIORITY_NORMAL);
  auto h = std::make_unique<LuaHandler>();
  h->inst = inst;
  lua_pushvalue(L, 3);
  h->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  LuaHandler* raw = h.get();
  inst->handlers.push_back(std::move(h));
  if (inst->api->hook(inst->host, event, static_cast<int32_t>(prio), on_event, raw) != 0) {
    luaL_unref(L, LUA_REGISTRYINDEX, raw->fn_ref);
    inst->handlers.pop_back();
    return luaL_error(L, "invalid event name '%s'", event);
  }
  return 0;
}

int m_log(lua_State* L) {  // module:log(level, fmt, ...)
  Instance* inst = self_inst(L);
  size_t ll = 0;
  const char* level = luaL_checklstring(L, 2, &ll);
  sz_log_level lv = SZ_LOG_INFO;
  if (eq(level, ll, "debug")) {
    lv = SZ_LOG_DEBUG;
  } else if (eq(level, ll, "info")) {
    lv = SZ_LOG_INFO;
  } else if (eq(level, ll, "warn") || eq(level, ll, "warning")) {
    lv = SZ_LOG_WARN;
  } else if (eq(level, ll, "error")) {
    lv = SZ_LOG_ERROR;
  } else {
    return luaL_error(L, "unknown log level '%s' (debug, info, warn, error)", level);
  }
  int n = lua_gettop(L);
  if (n > 3) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &kFormatKey);
    for (int i = 3; i <= n; ++i) lua_pushvalue(L, i);
    lua_call(L, n - 2, 1);
  } else {
    luaL_checkstring(L, 3);
    lua_pushvalue(L, 3);
  }
  size_t len = 0;
  const char* msg = lua_tolstring(L, -1, &len);
  inst->api->log(inst->host, lv, msg, len);
  return 0;
}

int m_send(lua_State* L) {  // module:send(stanza): taken if owned, else copied
  Instance* inst = self_inst(L);
  sz_stanza* s = take(L, 2, "it was sent");
  inst->api->send(inst->host, s);
  return 0;
}

int m_add_feature(lua_State* L) {
  Instance* inst = self_inst(L);
  inst->api->add_feature(inst->host, to_sz(L, 2));
  return 0;
}

// module:add_stream_feature(xml_or_stanza, after_auth = true)
int m_add_stream_feature(lua_State* L) {
  Instance* inst = self_inst(L);
  if (!SZ_HAS(inst->api, add_stream_feature))
    return luaL_error(L, "this server has no stream features for plugins (ABI < 1.1)");
  lua_settop(L, 3);
  std::size_t len = 0;
  const char* xml = luaL_tolstring(L, 2, &len);  // a stanza's __tostring is its XML
  bool after_auth = lua_isnil(L, 3) || lua_toboolean(L, 3);
  inst->api->add_stream_feature(inst->host, sz_str{xml, len},
                                after_auth ? SZ_STAGE_POST_AUTH : SZ_STAGE_PRE_AUTH);
  return 0;
}

int m_add_identity(lua_State* L) {  // module:add_identity(category, type, name)
  Instance* inst = self_inst(L);
  inst->api->add_identity(inst->host, to_sz(L, 2), to_sz(L, 3), opt_sz(L, 4));
  return 0;
}

struct ListCollect {
  lua_State* L;
  lua_Integer n;
};

void list_cb(void* user, sz_str v) {
  auto* c = static_cast<ListCollect*>(user);
  push_sz(c->L, v);
  lua_rawseti(c->L, -2, ++c->n);
}

void identity_cb(void* user, sz_str v) {  // "category/type/name" -> {category=, type=, name=}
  auto* c = static_cast<ListCollect*>(user);
  std::string_view s(v.data ? v.data : "", v.len);
  auto a = s.find('/');
  auto b = a == std::string_view::npos ? a : s.find('/', a + 1);
  lua_createtable(c->L, 0, 3);
  lua_pushlstring(c->L, s.data(), std::min(a, s.size()));
  lua_setfield(c->L, -2, "category");
  if (a != std::string_view::npos) {
    std::string_view type = s.substr(a + 1, b == std::string_view::npos ? b : b - a - 1);
    lua_pushlstring(c->L, type.data(), type.size());
    lua_setfield(c->L, -2, "type");
  }
  if (b != std::string_view::npos && b + 1 < s.size()) {
    lua_pushlstring(c->L, s.data() + b + 1, s.size() - b - 1);
    lua_setfield(c->L, -2, "name");
  }
  lua_rawseti(c->L, -2, ++c->n);
}

sz_str host_arg(lua_State* L, Instance* inst, int idx) {
  if (!lua_isnoneornil(L, idx)) return to_sz(L, idx);
  return inst->api->host_name(inst->host);
}

int m_features(lua_State* L) {  // module:features(host) -> { var, ... }
  Instance* inst = self_inst(L);
  sz_str host = host_arg(L, inst, 2);
  lua_newtable(L);
  ListCollect c{L, 0};
  inst->api->each_feature(inst->host, host, list_cb, &c);
  return 1;
}

int m_identities(lua_State* L) {  // module:identities(host) -> { {category, type, name}, ... }
  Instance* inst = self_inst(L);
  sz_str host = host_arg(L, inst, 2);
  lua_newtable(L);
  ListCollect c{L, 0};
  inst->api->each_identity(inst->host, host, identity_cb, &c);
  return 1;
}

int m_is_local_host(lua_State* L) {
  Instance* inst = self_inst(L);
  lua_pushboolean(L, inst->api->is_local_host(inst->host, to_sz(L, 2)) != 0);
  return 1;
}

// Pushes the configured value (string), or returns false when unset.
bool raw_option(lua_State* L, Instance* inst) {
  sz_str v = inst->api->get_option(inst->host, to_sz(L, 2));
  if (!v.data) return false;
  push_sz(L, v);
  return true;
}

bool parse_boolean(lua_State* L, int idx, const char* name) {
  size_t len = 0;
  const char* v = lua_tolstring(L, idx, &len);
  if (eq(v, len, "true") || eq(v, len, "yes") || eq(v, len, "on") || eq(v, len, "1")) return true;
  if (eq(v, len, "false") || eq(v, len, "no") || eq(v, len, "off") || eq(v, len, "0")) return false;
  luaL_error(L, "option %s='%s' is not a boolean (true/false)", name, v);
  return false;
}

void check_number_option(lua_State* L, const char* name, bool integer) {
  // The configured string is on top; replaces it with the number (and checks bounds 4, 5).
  const char* v = lua_tostring(L, -1);
  if (lua_stringtonumber(L, v) == 0) luaL_error(L, "option %s='%s' is not a number", name, v);
  if (integer) {
    if (!lua_isinteger(L, -1)) {
      lua_Number d = lua_tonumber(L, -1);
      lua_Integer i = 0;
      if (!lua_numbertointeger(d, &i) || static_cast<lua_Number>(i) != d)
        luaL_error(L, "option %s='%s' is not an integer", name, v);
      lua_pop(L, 1);
      lua_pushinteger(L, i);
    }
  }
  lua_remove(L, -2);
  int value = lua_gettop(L);
  if (!lua_isnoneornil(L, 4) && lua_compare(L, value, 4, LUA_OPLT)) {
    const char* min = luaL_tolstring(L, 4, nullptr);
    luaL_error(L, "option %s=%s is below the minimum %s", name, luaL_tolstring(L, value, nullptr),
               min);
  }
  if (!lua_isnoneornil(L, 5) && lua_compare(L, 5, value, LUA_OPLT)) {
    const char* max = luaL_tolstring(L, 5, nullptr);
    luaL_error(L, "option %s=%s is above the maximum %s", name, luaL_tolstring(L, value, nullptr),
               max);
  }
  lua_settop(L, value);
}

int m_get_option(lua_State* L) {  // module:get_option(name, default): typed like the default
  Instance* inst = self_inst(L);
  const char* name = luaL_checkstring(L, 2);
  if (!raw_option(L, inst)) {
    lua_settop(L, 3);
    return 1;
  }
  switch (lua_type(L, 3)) {
    case LUA_TNUMBER:
      check_number_option(L, name, lua_isinteger(L, 3));
      break;
    case LUA_TBOOLEAN:
      lua_pushboolean(L, parse_boolean(L, -1, name));
      break;
    default:
      break;
  }
  return 1;
}

int m_get_option_string(lua_State* L) {
  Instance* inst = self_inst(L);
  luaL_checkstring(L, 2);
  if (!lua_isnoneornil(L, 3)) luaL_checkstring(L, 3);
  if (!raw_option(L, inst)) lua_settop(L, 3);
  return 1;
}

int get_number_option(lua_State* L, bool integer) {  // (name, default, min, max)
  Instance* inst = self_inst(L);
  const char* name = luaL_checkstring(L, 2);
  if (!lua_isnoneornil(L, 3)) {
    if (integer) {
      luaL_checkinteger(L, 3);
    } else {
      luaL_checknumber(L, 3);
    }
  }
  if (!raw_option(L, inst)) {
    lua_settop(L, 3);
    return 1;
  }
  check_number_option(L, name, integer);
  return 1;
}

int m_get_option_integer(lua_State* L) { return get_number_option(L, true); }
int m_get_option_number(lua_State* L) { return get_number_option(L, false); }

int m_get_option_boolean(lua_State* L) {
  Instance* inst = self_inst(L);
  const char* name = luaL_checkstring(L, 2);
  if (!raw_option(L, inst)) {
    lua_settop(L, 3);
    return 1;
  }
  lua_pushboolean(L, parse_boolean(L, -1, name));
  return 1;
}

// module:open_store(name) -> store with :get(user, key) and :set(user, key, value|nil).
// The store userdata keeps the module table (user value 1) and the store name (2).
Instance* store_inst(lua_State* L) {
  luaL_checkudata(L, 1, kStoreMt);
  lua_getiuservalue(L, 1, 1);
  lua_rawgetp(L, -1, &kInstKey);
  auto* inst = static_cast<Instance*>(lua_touserdata(L, -1));
  lua_pop(L, 2);
  if (!inst) luaL_error(L, "store used after its module was unloaded");
  return inst;
}

sz_str store_name(lua_State* L) {
  lua_getiuservalue(L, 1, 2);
  size_t len = 0;
  const char* s = lua_tolstring(L, -1, &len);
  lua_pop(L, 1);  // still referenced by the user value
  return sz_str{s, len};
}

int store_get(lua_State* L) {
  Instance* inst = store_inst(L);
  sz_str user = to_sz(L, 2), key = to_sz(L, 3), store = store_name(L);
  lua_settop(L, 3);
  int r = inst->api->kv_get(inst->host, user, store, key, push_cb, L);
  if (r < 0) {
    return luaL_error(L, "storage error store=%s key=%s", lua_pushlstring(L, store.data, store.len),
                      lua_tostring(L, 3));
  }
  if (r == 0) {
    lua_settop(L, 3);
    lua_pushnil(L);
  }
  return 1;
}

int store_set(lua_State* L) {
  Instance* inst = store_inst(L);
  sz_str user = to_sz(L, 2), key = to_sz(L, 3), store = store_name(L);
  sz_str value{nullptr, 0};
  if (!lua_isnoneornil(L, 4)) value = to_sz(L, 4);
  if (inst->api->kv_set(inst->host, user, store, key, value) != 0) {
    return luaL_error(L, "storage error store=%s key=%s", lua_pushlstring(L, store.data, store.len),
                      lua_tostring(L, 3));
  }
  return 0;
}

// store:set_async(user, key, value|nil [, fn(ok)]): store:set without waiting for the commit
// (kv_set_async, ABI 1.3): the write joins the next group commit and fn runs afterwards on this
// shard, unless the module was unloaded meanwhile. store:get may return the old value until then.
struct AsyncWrite {
  std::uint64_t id;
  const sz_host_api* api;
};
std::atomic<std::uint64_t> g_next_write{0};

int store_set_async(lua_State* L) {
  Instance* inst = store_inst(L);
  sz_str user = to_sz(L, 2), key = to_sz(L, 3), store = store_name(L);
  sz_str value{nullptr, 0};
  if (!lua_isnoneornil(L, 4)) value = to_sz(L, 4);
  if (!lua_isnoneornil(L, 5)) luaL_checktype(L, 5, LUA_TFUNCTION);
  sz_done_fn done = nullptr;
  AsyncWrite* w = nullptr;
  if (!lua_isnoneornil(L, 5)) {
    w = new AsyncWrite{++g_next_write, inst->api};
    lua_pushvalue(L, 5);
    inst->writes.emplace(w->id, luaL_ref(L, LUA_REGISTRYINDEX));
    done = [](sz_host* here, void* user, int ok) {
      std::unique_ptr<AsyncWrite> w(static_cast<AsyncWrite*>(user));
      if (here == nullptr) return;  // unloaded: destroy() dropped the callback
      auto* inst = static_cast<Instance*>(w->api->instance_state(here));
      auto it = inst->writes.find(w->id);
      if (it == inst->writes.end()) return;  // a reloaded instance: not its write
      int fn_ref = it->second;
      inst->writes.erase(it);
      lua_State* L = inst->shard->L;
      int top = lua_gettop(L);
      lua_pushcfunction(L, msgh);
      lua_rawgeti(L, LUA_REGISTRYINDEX, fn_ref);
      luaL_unref(L, LUA_REGISTRYINDEX, fn_ref);
      lua_pushboolean(L, ok);
      if (lua_pcall(L, 1, 0, top + 1) != LUA_OK) log_failure(inst, L, "set_async callback", "");
      lua_settop(L, top);
    };
  }
  if (inst->api->kv_set_async(inst->host, user, store, key, value, done, w) != 0) {
    if (w) {
      luaL_unref(L, LUA_REGISTRYINDEX, inst->writes[w->id]);
      inst->writes.erase(w->id);
      delete w;
    }
    return luaL_error(L, "storage error store=%s key=%s", lua_pushlstring(L, store.data, store.len),
                      lua_tostring(L, 3));
  }
  return 0;
}

int store_keys(lua_State* L) {  // store:keys(user) -> { key, ... } in key order
  Instance* inst = store_inst(L);
  sz_str user = to_sz(L, 2), store = store_name(L);
  lua_settop(L, 2);
  lua_newtable(L);
  struct Acc {
    lua_State* L;
    lua_Integer n = 0;
  } acc{L};
  int r = inst->api->kv_keys(
      inst->host, user, store,
      [](void* u, sz_str key) {
        auto* a = static_cast<Acc*>(u);
        push_sz(a->L, key);
        lua_rawseti(a->L, -2, ++a->n);
      },
      &acc);
  if (r < 0)
    return luaL_error(L, "storage error listing store=%s",
                      lua_pushlstring(L, store.data, store.len));
  return 1;
}

int m_open_store(lua_State* L) {
  self_inst(L);
  luaL_checkstring(L, 2);
  lua_newuserdatauv(L, 0, 2);
  luaL_setmetatable(L, kStoreMt);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, -2, 2);
  return 1;
}

void on_timer(void* user);

void arm(LuaTimer* t, double seconds) {
  if (!(seconds > 0)) seconds = 0;
  auto ms = static_cast<std::uint64_t>(seconds * 1000.0 + 0.5);
  t->id = t->inst->api->timer_add(t->inst->host, ms, on_timer, t);
}

void drop_timer(Instance* inst, LuaTimer* t) {
  luaL_unref(inst->shard->L, LUA_REGISTRYINDEX, t->fn_ref);
  inst->timers.erase(t->key);
}

void on_timer(void* user) {
  auto* t = static_cast<LuaTimer*>(user);
  Instance* inst = t->inst;
  lua_State* L = inst->shard->L;
  int top = lua_gettop(L);
  lua_pushcfunction(L, msgh);
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->fn_ref);
  t->running = true;
  int rc = lua_pcall(L, 0, 1, top + 1);
  t->running = false;
  bool again = false;
  double seconds = 0;
  if (rc != LUA_OK) {
    log_failure(inst, L, "timer", "");
  } else if (lua_type(L, -1) == LUA_TNUMBER) {
    again = true;
    seconds = lua_tonumber(L, -1);
  }
  lua_settop(L, top);
  if (again && !t->stopped) {
    arm(t, seconds);
  } else {
    drop_timer(inst, t);
  }
}

int m_add_timer(lua_State* L) {  // module:add_timer(seconds, fn) -> handle for stop_timer
  Instance* inst = self_inst(L);
  lua_Number seconds = luaL_checknumber(L, 2);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  auto t = std::make_unique<LuaTimer>();
  t->inst = inst;
  t->key = ++inst->next_timer;
  lua_pushvalue(L, 3);
  t->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  LuaTimer* raw = t.get();
  inst->timers.emplace(raw->key, std::move(t));
  arm(raw, seconds);
  lua_pushinteger(L, static_cast<lua_Integer>(raw->key));
  return 1;
}

int m_stop_timer(lua_State* L) {  // module:stop_timer(handle)
  Instance* inst = self_inst(L);
  auto it = inst->timers.find(static_cast<std::uint64_t>(luaL_checkinteger(L, 2)));
  if (it == inst->timers.end()) return 0;
  LuaTimer* t = it->second.get();
  if (t->running) {
    t->stopped = true;  // on_timer drops it when the callback returns
  } else {
    inst->api->timer_cancel(inst->host, t->id);
    drop_timer(inst, t);
  }
  return 0;
}

int m_fire(lua_State* L) {  // module:fire(event, stanza|nil) -> "pass" | "handled" | "error"
  Instance* inst = self_inst(L);
  const char* event = luaL_checkstring(L, 2);
  StanzaUd* ud = lua_isnoneornil(L, 3) ? nullptr : check_stanza(L, 3);
  Shard* sh = inst->shard;
  lua_State* saved = sh->current;
  sh->current = L;
  sz_verdict v = inst->api->fire(inst->host, event, ud ? ud->s : nullptr);
  sh->current = saved;
  if (ud) changed(ud);  // handlers may have changed the tree
  lua_pushstring(L, v == SZ_PASS ? "pass" : v == SZ_HANDLED ? "handled" : "error");
  return 1;
}

// ---- accounts, sessions, shards, offline queues (ABI 1.2) ----------------------------------

int m_owner_shard(lua_State* L) {  // module:owner_shard(jid) -> 0-based shard index
  Instance* inst = self_inst(L);
  lua_pushinteger(L, inst->api->owner_shard(inst->host, to_sz(L, 2)));
  return 1;
}

// module:post(shard, event, stanza|nil): fires this plugin's own event `event` (named like
// module:fire's) on another shard, with a copy of the stanza. Lua states are per shard, so
// functions cannot travel; an event and a stanza can.
struct PostedEvent {
  std::string event;
  sz_stanza* stanza;
  const sz_host_api* api;
};

int m_post(lua_State* L) {
  Instance* inst = self_inst(L);
  lua_Integer shard = luaL_checkinteger(L, 2);
  const char* event = luaL_checkstring(L, 3);
  StanzaUd* ud = lua_isnoneornil(L, 4) ? nullptr : check_stanza(L, 4);
  if (shard < 0 || shard >= static_cast<lua_Integer>(inst->api->shard_count(inst->host)))
    return luaL_error(L, "no shard %d", static_cast<int>(shard));
  auto* p = new PostedEvent{event, ud ? inst->api->stanza_copy(ud->s) : nullptr, inst->api};
  inst->api->post(
      inst->host, static_cast<uint32_t>(shard),
      [](sz_host* here, void* user) {
        std::unique_ptr<PostedEvent> pe(static_cast<PostedEvent*>(user));
        if (here) pe->api->fire(here, pe->event.c_str(), pe->stanza);
        if (pe->stanza) pe->api->stanza_free(pe->stanza);
      },
      p);
  return 0;
}

// module:sessions(bare_jid) -> { { jid =, available =, priority =, presence = stanza|nil,
// properties = { key = value } }, ... } on the account's owner shard; nil, why elsewhere.
int m_sessions(lua_State* L) {
  Instance* inst = self_inst(L);
  sz_str jid = to_sz(L, 2);
  lua_settop(L, 2);
  lua_newtable(L);
  struct Acc {
    lua_State* L;
    Instance* inst;
    lua_Integer n = 0;
  } acc{L, inst};
  int r = inst->api->account_sessions(
      inst->host, jid,
      [](void* u, const sz_session* s) {
        auto* a = static_cast<Acc*>(u);
        lua_State* L = a->L;
        const sz_host_api* api = a->inst->api;
        lua_createtable(L, 0, 5);
        push_sz(L, api->session_jid(s));
        lua_setfield(L, -2, "jid");
        lua_pushboolean(L, api->session_available(s));
        lua_setfield(L, -2, "available");
        lua_pushinteger(L, api->session_priority(s));
        lua_setfield(L, -2, "priority");
        if (const sz_stanza* p = api->session_presence(s)) {
          new_root(L, api->stanza_copy(p), true);
          lua_setfield(L, -2, "presence");
        }
        lua_newtable(L);
        sz_str key, value;
        for (size_t i = 0; api->session_property_at(s, i, &key, &value); ++i) {
          push_sz(L, key);
          push_sz(L, value);
          lua_rawset(L, -3);
        }
        lua_setfield(L, -2, "properties");
        lua_rawseti(L, -2, ++a->n);
      },
      &acc);
  if (r < 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "not on the account's owner shard (see module:owner_shard)");
    return 2;
  }
  return 1;
}

int m_set_session(lua_State* L) {  // module:set_session(full_jid, key, value|nil)
  Instance* inst = self_inst(L);
  sz_str jid = to_sz(L, 2), key = to_sz(L, 3);
  sz_str value{nullptr, 0};
  if (!lua_isnoneornil(L, 4)) value = to_sz(L, 4);
  inst->api->session_set(inst->host, jid, key, value);
  return 0;
}

int m_user_exists(lua_State* L) {  // module:user_exists(bare_jid) -> boolean
  Instance* inst = self_inst(L);
  int r = inst->api->user_exists(inst->host, to_sz(L, 2));
  if (r < 0) return luaL_error(L, "storage error looking up %s", lua_tostring(L, 2));
  lua_pushboolean(L, r);
  return 1;
}

int m_offline_push(lua_State* L) {  // module:offline_push(user, stanza|xml) -> queue length
  Instance* inst = self_inst(L);
  sz_str user = to_sz(L, 2);
  std::string xml = xml_arg(L, 3);
  int64_t n = inst->api->offline_push(inst->host, user, sz_str{xml.data(), xml.size()});
  if (n < 0) return luaL_error(L, "storage error queueing for %s", lua_tostring(L, 2));
  lua_pushinteger(L, n);
  return 1;
}

int m_offline_count(lua_State* L) {  // module:offline_count(user) -> integer
  Instance* inst = self_inst(L);
  int64_t n = inst->api->offline_count(inst->host, to_sz(L, 2));
  if (n < 0) return luaL_error(L, "storage error counting for %s", lua_tostring(L, 2));
  lua_pushinteger(L, n);
  return 1;
}

// module:offline_deliver(user, full_jid) -> count (SDK 1.5): the queue routed to full_jid; each
// message leaves the store once written to a stream (or stored again, or refused).
int m_offline_deliver(lua_State* L) {
  Instance* inst = self_inst(L);
  if (!SZ_HAS(inst->api, offline_deliver)) return luaL_error(L, "this server has no SDK 1.5");
  int64_t n = inst->api->offline_deliver(inst->host, to_sz(L, 2), to_sz(L, 3));
  if (n < 0) return luaL_error(L, "storage error delivering to %s", lua_tostring(L, 3));
  lua_pushinteger(L, n);
  return 1;
}

// module:offline_take(user) -> { stanza, ... } oldest first; the queue is then empty.
int m_offline_take(lua_State* L) {
  Instance* inst = self_inst(L);
  sz_str user = to_sz(L, 2);
  std::vector<std::string> all;
  int r = inst->api->offline_take(
      inst->host, user,
      [](void* u, sz_str v) {
        static_cast<std::vector<std::string>*>(u)->emplace_back(v.data, v.len);
      },
      &all);
  if (r < 0) return luaL_error(L, "storage error taking for %s", lua_tostring(L, 2));
  lua_createtable(L, static_cast<int>(all.size()), 0);
  lua_Integer n = 0;
  for (const auto& xml : all) {
    sz_stanza* st = inst->api->stanza_parse(sz_str{xml.data(), xml.size()});
    if (!st) continue;
    new_root(L, st, true);
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

// module:user_create(bare_jid, password) -> true | false, "exists" | false, "invalid" (not a
// valid local account JID); raises on a storage error.
int m_user_create(lua_State* L) {
  Instance* inst = self_inst(L);
  int r = inst->api->user_create(inst->host, to_sz(L, 2), to_sz(L, 3));
  if (r == -1) return luaL_error(L, "could not create account %s", lua_tostring(L, 2));
  lua_pushboolean(L, r == 1);
  if (r == 1) return 1;
  lua_pushstring(L, r == 0 ? "exists" : "invalid");
  return 2;
}

// module:user_remove(bare_jid) -> true (removed) | false (no such account); raises on error.
int m_user_remove(lua_State* L) {
  Instance* inst = self_inst(L);
  int r = inst->api->user_remove(inst->host, to_sz(L, 2));
  if (r < 0) return luaL_error(L, "could not remove account %s", lua_tostring(L, 2));
  lua_pushboolean(L, r == 1);
  return 1;
}

// module:user_set_password(bare_jid, password) -> true | false (no such account).
int m_user_set_password(lua_State* L) {
  Instance* inst = self_inst(L);
  int r = inst->api->user_set_password(inst->host, to_sz(L, 2), to_sz(L, 3));
  if (r < 0) return luaL_error(L, "could not change the password of %s", lua_tostring(L, 2));
  lua_pushboolean(L, r == 1);
  return 1;
}

void register_module(lua_State* L) {
  static const luaL_Reg methods[] = {
      {"hook", m_hook},
      {"log", m_log},
      {"send", m_send},
      {"add_feature", m_add_feature},
      {"add_stream_feature", m_add_stream_feature},
      {"add_identity", m_add_identity},
      {"features", m_features},
      {"identities", m_identities},
      {"is_local_host", m_is_local_host},
      {"get_option", m_get_option},
      {"get_option_string", m_get_option_string},
      {"get_option_integer", m_get_option_integer},
      {"get_option_number", m_get_option_number},
      {"get_option_boolean", m_get_option_boolean},
      {"open_store", m_open_store},
      {"add_timer", m_add_timer},
      {"stop_timer", m_stop_timer},
      {"fire", m_fire},
      {"owner_shard", m_owner_shard},
      {"post", m_post},
      {"sessions", m_sessions},
      {"set_session", m_set_session},
      {"user_exists", m_user_exists},
      {"offline_push", m_offline_push},
      {"offline_count", m_offline_count},
      {"offline_take", m_offline_take},
      {"offline_deliver", m_offline_deliver},
      {"user_create", m_user_create},
      {"user_remove", m_user_remove},
      {"user_set_password", m_user_set_password},
      {nullptr, nullptr},
  };
  lua_createtable(L, 0, 1);  // the metatable of module tables
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &kMethodsKey);

  static const luaL_Reg store_methods[] = {
      {"get", store_get},   {"set", store_set}, {"set_async", store_set_async},
      {"keys", store_keys}, {nullptr, nullptr},
  };
  luaL_newmetatable(L, kStoreMt);
  luaL_newlib(L, store_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

// ---- states and instances -------------------------------------------------------------------

std::string runtime_dir() {
  std::lock_guard lock(g_mutex);
  std::string dir = g_runtime_path;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  // Accept both lua/ and lua/stanzad/: require "stanzad.errors" resolves below the former.
  if (dir.ends_with("/stanzad")) dir.resize(dir.size() - 8);
  return dir;
}

Shard* new_shard(std::uint32_t index, const sz_host_api* api) {
  auto* sh = new Shard();
  sh->index = index;
  std::memcpy(&sh->api, api, std::min<std::size_t>(api->size, sizeof(sz_host_api)));
  lua_State* L = luaL_newstate();
  if (!L) {
    delete sh;
    return nullptr;
  }
  sh->L = L;
  *static_cast<Shard**>(lua_getextraspace(L)) = sh;
  luaL_openlibs(L);
  register_stanza(L);
  register_module(L);
  lua_getglobal(L, "string");
  lua_getfield(L, -1, "format");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &kFormatKey);
  lua_pop(L, 1);

  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, open_native);
  lua_setfield(L, -2, "stanzad.native");
  lua_pushcfunction(L, open_jid);
  lua_setfield(L, -2, "stanzad.jid");
  lua_pop(L, 1);
  std::string dir = runtime_dir();
  if (!dir.empty()) {
    lua_getfield(L, -1, "path");
    std::string path = dir + "/?.lua;" + dir + "/?/init.lua;" + lua_tostring(L, -1);
    lua_pop(L, 1);
    lua_pushstring(L, path.c_str());
    lua_setfield(L, -2, "path");
  }
  lua_pop(L, 1);
  return sh;
}

Shard* acquire_shard(std::uint32_t index, const sz_host_api* api) {
  {
    std::lock_guard lock(g_mutex);
    auto it = g_shards.find(index);
    if (it != g_shards.end()) {
      it->second->instances++;
      return it->second;
    }
  }
  Shard* sh = new_shard(index, api);
  if (!sh) return nullptr;
  std::lock_guard lock(g_mutex);
  sh->instances = 1;
  g_shards[index] = sh;
  return sh;
}

void release_shard(Shard* sh) {
  {
    std::lock_guard lock(g_mutex);
    if (--sh->instances > 0) return;
    g_shards.erase(sh->index);
  }
  lua_close(sh->L);
  delete sh;
}

// Drops every Lua reference of an instance and the instance itself.
void destroy(Instance* inst, bool cancel_timers) {
  lua_State* L = inst->shard->L;
  for (auto& h : inst->handlers) luaL_unref(L, LUA_REGISTRYINDEX, h->fn_ref);
  for (auto& [key, t] : inst->timers) {
    if (cancel_timers) inst->api->timer_cancel(inst->host, t->id);
    luaL_unref(L, LUA_REGISTRYINDEX, t->fn_ref);
  }
  for (auto& [id, fn_ref] : inst->writes) luaL_unref(L, LUA_REGISTRYINDEX, fn_ref);
  if (inst->module_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, inst->module_ref);
    lua_pushnil(L);
    lua_rawsetp(L, -2, &kInstKey);
    lua_pop(L, 1);
  }
  luaL_unref(L, LUA_REGISTRYINDEX, inst->module_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, inst->env_ref);
  Shard* sh = inst->shard;
  delete inst;
  lua_gc(L, LUA_GCCOLLECT);
  release_shard(sh);
}

}  // namespace

void set_runtime_path(const std::string& dir) {
  std::lock_guard lock(g_mutex);
  g_runtime_path = dir;
}

void* load(sz_host* host, const sz_host_api* api, const std::string& name, const std::string& path,
           std::string& error) {
  Shard* sh = acquire_shard(api->shard_index(host), api);
  if (!sh) {
    error = path + ": cannot create a Lua state (out of memory)";
    return nullptr;
  }
  auto* inst = new Instance();
  inst->shard = sh;
  inst->host = host;
  inst->api = api;
  inst->name = name;
  inst->path = path;
  lua_State* L = sh->L;
  int top = lua_gettop(L);

  // module = setmetatable({name=, host=, priority=, shard=}, {__index = methods})
  lua_createtable(L, 0, 6);
  lua_pushlightuserdata(L, inst);
  lua_rawsetp(L, -2, &kInstKey);
  lua_pushstring(L, name.c_str());
  lua_setfield(L, -2, "name");
  lua_pushstring(L, path.c_str());
  lua_setfield(L, -2, "path");
  push_sz_or_nil(L, api->host_name(host));
  lua_setfield(L, -2, "host");
  lua_pushinteger(L, api->shard_index(host));
  lua_setfield(L, -2, "shard");
  lua_pushinteger(L, api->shard_count(host));
  lua_setfield(L, -2, "shards");
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, SZ_PRIORITY_GUARD);
  lua_setfield(L, -2, "guard");
  lua_pushinteger(L, SZ_PRIORITY_ENRICH);
  lua_setfield(L, -2, "enrich");
  lua_pushinteger(L, SZ_PRIORITY_NORMAL);
  lua_setfield(L, -2, "normal");
  lua_pushinteger(L, SZ_PRIORITY_DELIVER);
  lua_setfield(L, -2, "deliver");
  lua_setfield(L, -2, "priority");
  lua_rawgetp(L, LUA_REGISTRYINDEX, &kMethodsKey);
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  inst->module_ref = luaL_ref(L, LUA_REGISTRYINDEX);

  // env = setmetatable({module = module}, {__index = _G})
  lua_createtable(L, 0, 2);
  lua_insert(L, -2);
  lua_setfield(L, -2, "module");
  lua_createtable(L, 0, 1);
  lua_pushglobaltable(L);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  inst->env_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  int env = lua_gettop(L);

  lua_pushcfunction(L, msgh);
  int rc = luaL_loadfilex(L, path.c_str(), "t");
  if (rc == LUA_OK) {
    lua_pushvalue(L, env);
    lua_setupvalue(L, -2, 1);  // _ENV
    rc = lua_pcall(L, 0, 0, env + 1);
  }
  if (rc != LUA_OK) {
    const char* msg = lua_tostring(L, -1);
    if (!msg && lua_type(L, -1) == LUA_TTABLE) {
      lua_getfield(L, -1, "condition");
      msg = lua_tostring(L, -1);
    }
    error = first_line(msg);
    if (error.find(':') == std::string::npos || error.rfind(path, 0) != 0) {
      if (error.find(".lua:") == std::string::npos) error = path + ": " + error;
    }
    lua_settop(L, top);
    destroy(inst, true);
    return nullptr;
  }
  lua_settop(L, top);
  return inst;
}

void unload(void* state) {
  if (state) destroy(static_cast<Instance*>(state), true);
}

}  // namespace stanzad::plugin::lua
