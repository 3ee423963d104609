// Shard-per-core runtime: threads and entity ownership.
#include "net/shard.hpp"

#include <spdlog/spdlog.h>

namespace stanzad::net {

namespace {
thread_local Shard* current_shard = nullptr;
}

Shard* Shard::current() { return current_shard; }

void Shard::start() {
  thread_ = std::thread([this] {
    current_shard = this;
    try {
      ctx_.run();
    } catch (const std::exception& e) {
      // Handlers catch their own errors; reaching here is a bug we must not hide.
      spdlog::critical("shard={} aborted: {}", index_, e.what());
      std::abort();
    }
    current_shard = nullptr;
  });
}

void Shard::join() {
  if (thread_.joinable()) thread_.join();
}

ShardSet::ShardSet(unsigned count) {
  if (count == 0) count = 1;
  shards_.reserve(count);
  for (unsigned i = 0; i < count; ++i) shards_.push_back(std::make_unique<Shard>(i));
}

std::uint64_t ShardSet::hash(std::string_view s) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

void ShardSet::start() {
  for (auto& s : shards_) s->start();
}

void ShardSet::stop() {
  for (auto& s : shards_) s->stop();
}

void ShardSet::join() {
  for (auto& s : shards_) s->join();
}

}  // namespace stanzad::net
