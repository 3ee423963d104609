// Hook registry: per shard, handlers of each pipeline event sorted by priority.
#include "plugin/hooks.hpp"

#include <algorithm>

namespace stanzad::plugin {

void HookRegistry::add(std::string_view event, Handler h) {
  h.seq = ++seq_;
  auto it = events_.find(event);
  auto list = it == events_.end() ? std::make_shared<List>() : std::make_shared<List>(*it->second);
  auto pos = std::find_if(list->begin(), list->end(),
                          [&](const Handler& other) { return other.priority < h.priority; });
  list->insert(pos, std::move(h));
  if (it == events_.end()) {
    events_.emplace(std::string(event), std::move(list));
  } else {
    it->second = std::move(list);
  }
}

void HookRegistry::remove_owner(std::uint64_t owner) {
  for (auto it = events_.begin(); it != events_.end();) {
    const List& old = *it->second;
    if (std::none_of(old.begin(), old.end(), [&](const Handler& h) { return h.owner == owner; })) {
      ++it;
      continue;
    }
    auto list = std::make_shared<List>();
    for (const auto& h : old)
      if (h.owner != owner) list->push_back(h);
    if (list->empty()) {
      it = events_.erase(it);
    } else {
      it->second = std::move(list);
      ++it;
    }
  }
}

const std::shared_ptr<const HookRegistry::List>* HookRegistry::find(std::string_view event) const {
  auto it = events_.find(event);
  return it == events_.end() ? nullptr : &it->second;
}

std::size_t HookRegistry::count(std::string_view event) const {
  auto* list = find(event);
  return list ? (*list)->size() : 0;
}

sz_verdict HookRegistry::fire(Event& ev) const {
  auto* found = find(ev.name);
  if (!found) return SZ_PASS;
  std::shared_ptr<const List> list = *found;  // keeps this run's list alive through changes
  for (const Handler& h : *list) {
    if (!h.host.empty() && h.host != ev.host) continue;
    sz_verdict v = h.fn(to_c(&ev), h.user);
    if (v != SZ_PASS) {
      if (v == SZ_ERROR && ev.error_condition.empty()) ev.error_condition = "internal-server-error";
      return v == SZ_HANDLED ? SZ_HANDLED : SZ_ERROR;
    }
  }
  return SZ_PASS;
}

bool valid_event_name(std::string_view name) {
  if (name.empty() || name.front() == '/' || name.back() == '/') return false;
  // iq-get/<kind>/<namespace>:<element>: the namespace may hold any URI character.
  if (name.starts_with("iq-get/") || name.starts_with("iq-set/") ||
      name.starts_with("iq-result/") || name.starts_with("iq-error/")) {
    return name.find(':') != std::string_view::npos || name.find('/', 7) != std::string_view::npos;
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '/' || c == '-' ||
              c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

}  // namespace stanzad::plugin
