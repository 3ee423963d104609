// Storage calls off the event loop: run on a net::WorkerPool worker, complete on the shard that
// asked with the result or the StorageError, whose kind names the stanza error to answer.
#pragma once

#include <exception>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "net/worker_pool.hpp"
#include "storage/error.hpp"

namespace stanzad::storage {

// What a storage call gave: a value, or the error (kind: stanza_condition(), stanza_error_type()).
template <class T>
struct Outcome {
  std::optional<T> value;
  std::optional<StorageError> error;
  bool ok() const { return !error; }
};

// Runs work() (blocking Storage calls, returning T) on a worker of `pool`, then
// done(Outcome<T>) on `shard`'s thread. WorkerPool alone hands a failure over as text only;
// this keeps the StorageError, so that a shard can answer internal-server-error or
// resource-constraint as docs/storage.md says. Any other exception is ErrorKind::internal.
template <class Work, class Done>
void submit(net::WorkerPool& pool, net::Shard& shard, Work work, Done done) {
  using T = std::invoke_result_t<Work&>;
  pool.submit(
      shard,
      [work = std::move(work)]() mutable -> Outcome<T> {
        try {
          return {work(), std::nullopt};
        } catch (const StorageError& e) {
          return {std::nullopt, e};
        } catch (const std::exception& e) {
          return {std::nullopt, StorageError(e.what())};
        }
      },
      done,
      // Only if the wrapper above could not even build its Outcome (out of memory).
      [done](const std::string& what) mutable {
        done(Outcome<T>{std::nullopt, StorageError(what)});
      });
}

}  // namespace stanzad::storage
