// Hook registry: per shard, handlers of each pipeline event sorted by priority.
#pragma once

#include <stanzad/plugin.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "plugin/event.hpp"

namespace stanzad::plugin {

// How a handler is called: a C function pointer with its user data. Lua handlers use the
// same shape (the Lua host registers through the C ABI).
struct Handler {
  std::int32_t priority = 0;
  std::uint64_t seq = 0;    // registration order, for ties
  std::uint64_t owner = 0;  // plugin instance id, for removal at unload
  std::string host;         // empty: every host; else only events for this virtual host
  sz_handler fn = nullptr;
  void* user = nullptr;
  std::string kind;  // set by add() from "stanza/in/<kind>": only stanzas of this name
};

class HookRegistry {
 public:
  // Inserts by priority (higher first), ties in registration order. "stanza/in/iq" (also
  // message, presence; and stanza/out/...) joins the stanza/in chain, called for iq only.
  void add(std::string_view event, Handler h);
  // Removes every handler of an owner.
  void remove_owner(std::uint64_t owner);
  // Runs the handlers of ev.name in order until one does not pass. Handlers added or removed
  // during the run take effect from the next event (copy-on-write lists).
  sz_verdict fire(Event& ev) const;
  bool has(std::string_view event) const { return count(event) != 0; }
  std::size_t count(std::string_view event) const;

 private:
  using List = std::vector<Handler>;
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  const std::shared_ptr<const List>* find(std::string_view event) const;

  std::unordered_map<std::string, std::shared_ptr<const List>, Hash, std::equal_to<>> events_;
  std::uint64_t seq_ = 0;
};

// Whether `name` is a well-formed event name (lowercase words separated by '/', the
// namespace part of iq events excepted).
bool valid_event_name(std::string_view name);

}  // namespace stanzad::plugin
