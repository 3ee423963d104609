// Shard-per-core runtime: one io_context per thread, entities owned by hash(bare JID) % N.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
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

 private:
  unsigned index_;
  boost::asio::io_context ctx_{1};
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
