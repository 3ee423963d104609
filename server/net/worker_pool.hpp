// A small pool for blocking work (SQL, password hashing); results complete on the asking shard.
#pragma once

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <exception>
#include <type_traits>
#include <utility>

#include "net/shard.hpp"

namespace stanzad::net {

class WorkerPool {
 public:
  explicit WorkerPool(unsigned threads) : pool_(threads == 0 ? 1 : threads) {}
  ~WorkerPool() { stop(); }

  // Runs work() on a worker, then done(result) on `shard`. If work throws, done is not
  // called; failed(what) is, on the shard.
  template <class Work, class Done, class Failed>
  void submit(Shard& shard, Work work, Done done, Failed failed) {
    boost::asio::post(pool_, [&shard, work = std::move(work), done = std::move(done),
                              failed = std::move(failed)]() mutable {
      using R = std::invoke_result_t<Work&>;
      try {
        R result = work();
        boost::asio::post(shard.context(),
                          [done = std::move(done), result = std::move(result)]() mutable {
                            done(std::move(result));
                          });
      } catch (const std::exception& e) {
        boost::asio::post(
            shard.context(),
            [failed = std::move(failed), what = std::string(e.what())]() mutable { failed(what); });
      }
    });
  }

  void stop() {
    pool_.stop();
    pool_.join();
  }

 private:
  boost::asio::thread_pool pool_;
};

}  // namespace stanzad::net
