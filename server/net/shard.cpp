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

void Shard::watch_idle(std::weak_ptr<void> owner, IdleCheck check) {
  idle_watches_.push_back({std::move(owner), check});
  if (idle_timer_armed_) return;
  idle_timer_armed_ = true;
  idle_timer_.expires_after(idle_sweep_period);
  idle_timer_.async_wait([this](const boost::system::error_code& ec) {
    idle_timer_armed_ = false;
    if (!ec) sweep_idle();
  });
}

void Shard::sweep_idle() {
  // Checks may add watches (and re-arm the timer): sweep a batch of its own.
  idle_sweeping_.swap(idle_watches_);
  for (auto& w : idle_sweeping_) {
    std::shared_ptr<void> owner = w.owner.lock();
    if (owner && !w.check(owner.get())) watch_idle(std::move(w.owner), w.check);
  }
  idle_sweeping_.clear();
  // A burst of connections once made these large; do not keep that for good.
  if (idle_sweeping_.capacity() > 4 * idle_watches_.size() + 1024)
    std::vector<IdleWatch>().swap(idle_sweeping_);
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
