// Hook registry: per shard, handlers of each pipeline event sorted by priority.
#include "plugin/hooks.hpp"

#include <algorithm>
#include <utility>

namespace stanzad::plugin {

namespace {

// "stanza/in/iq" -> {"stanza/in", "iq"}; any other name -> {name, ""}.
std::pair<std::string_view, std::string_view> split_kind(std::string_view event) {
  for (std::string_view base : {std::string_view("stanza/in/"), std::string_view("stanza/out/")}) {
    if (!event.starts_with(base)) continue;
    std::string_view kind = event.substr(base.size());
    if (kind == "message" || kind == "presence" || kind == "iq")
      return {event.substr(0, base.size() - 1), kind};
  }
  return {event, {}};
}

}  // namespace

void HookRegistry::add(std::string_view name, Handler h) {
  auto [event, kind] = split_kind(name);
  h.kind = std::string(kind);
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

std::size_t HookRegistry::count(std::string_view name) const {
  auto [event, kind] = split_kind(name);
  auto* list = find(event);
  if (!list) return 0;
  if (kind.empty()) return (*list)->size();
  return std::count_if((*list)->begin(), (*list)->end(),
                       [&](const Handler& h) { return h.kind == kind; });
}

sz_verdict HookRegistry::fire(Event& ev) const {
  auto* found = find(ev.name);
  if (!found) return SZ_PASS;
  std::shared_ptr<const List> list = *found;  // keeps this run's list alive through changes
  for (const Handler& h : *list) {
    if (!h.host.empty() && h.host != ev.host) continue;
    if (!h.kind.empty() && (ev.stanza == nullptr || ev.stanza->name() != h.kind)) continue;
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
