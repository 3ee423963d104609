// Shard-per-core runtime: one io_context per thread, entities owned by hash(bare JID) % N.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>
#include <thread>
#include <vector>

namespace stanzad::net {

class Shard {
 public:
  explicit Shard(unsigned index) : index_(index) {}
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  unsigned index() const { return index_; }
  boost::asio::io_context& context() { return ctx_; }

  // The shard whose thread is running, or nullptr outside shard threads.
  static Shard* current();
  bool is_current() const { return current() == this; }

  // Runs fn on this shard: inline when already on it, queued otherwise. Either way,
  // calls from one thread to one shard keep their order.
  template <class F>
  void run(F&& fn) {
    if (is_current()) {
      fn();
    } else {
      boost::asio::post(ctx_, std::forward<F>(fn));
    }
  }

  void start();
  void stop() { ctx_.stop(); }
  void join();

  // Connections that may have gone quiet (an idle session frees its parser). On this shard's
  // thread only: check(owner) runs about every idle_sweep_period until it returns true, or
  // until owner is gone. One timer per shard serves every watch, so a quiet connection needs
  // no timer of its own and a busy one costs one call per period.
  static constexpr std::chrono::milliseconds idle_sweep_period{1000};
  using IdleCheck = bool (*)(void* owner);
  void watch_idle(std::weak_ptr<void> owner, IdleCheck check);

 private:
  void sweep_idle();

  struct IdleWatch {
    std::weak_ptr<void> owner;
    IdleCheck check;
  };

  unsigned index_;
  boost::asio::io_context ctx_{1};
  std::vector<IdleWatch> idle_watches_;
  std::vector<IdleWatch> idle_sweeping_;
  boost::asio::steady_timer idle_timer_{ctx_};
  bool idle_timer_armed_ = false;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_{
      ctx_.get_executor()};
  std::thread thread_;
};

class ShardSet {
 public:
  explicit ShardSet(unsigned count);

  unsigned size() const { return static_cast<unsigned>(shards_.size()); }
  Shard& at(unsigned i) { return *shards_[i]; }
  // The shard that owns an entity (a bare JID or a group). Stable across builds and
  // nodes: FNV-1a, not std::hash.
  Shard& owner_of(std::string_view bare_jid) { return *shards_[hash(bare_jid) % shards_.size()]; }
  static std::uint64_t hash(std::string_view s);

  void start();
  void stop();
  void join();

 private:
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace stanzad::net
