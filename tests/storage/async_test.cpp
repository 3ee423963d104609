// Storage calls on a worker pool complete on the shard that asked, with the StorageError kind
// that names the stanza error (storage/async.hpp).
#include "storage/async.hpp"

#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "storage_common.hpp"

namespace stanzad::storage {
namespace {

TEST(StorageSqlite, WorkerPoolCallsCompleteOnTheAskingShard) {
  auto dir = testing::temp_dir();
  {
    Storage s(std::make_unique<SqliteBackend>(dir / "stanzad.sqlite", SqliteBackend::Options{}));
    ASSERT_EQ(s.create("localhost", "juliet", "secret", 1), Storage::Result::ok);
    net::Shard asking(1), other(0);
    other.start();
    asking.start();
    net::WorkerPool pool(2);

    std::promise<std::pair<bool, bool>> found;  // (on the asking shard, value)
    submit(
        pool, asking, [&] { return s.exists("localhost", "juliet"); },
        [&](Outcome<bool> r) {
          found.set_value({asking.is_current() && !other.is_current(), r.ok() && *r.value});
        });
    EXPECT_EQ(found.get_future().get(), std::make_pair(true, true));

    // A failed call arrives as its StorageError, still on the asking shard.
    std::promise<std::pair<bool, Outcome<std::int64_t>>> failed;
    submit(
        pool, asking,
        [&] {
          ArchivedMessage m;
          m.conversation = 424242;  // no such conversation
          return s.archive(m);
        },
        [&](Outcome<std::int64_t> r) {
          failed.set_value({asking.is_current(), std::move(r)});
        });
    auto [on_shard, outcome] = failed.get_future().get();
    EXPECT_TRUE(on_shard);
    ASSERT_FALSE(outcome.ok());
    EXPECT_EQ(outcome.error->kind, ErrorKind::internal);
    EXPECT_EQ(stanza_condition(outcome.error->kind), "internal-server-error");
    EXPECT_EQ(stanza_error_type(outcome.error->kind), "cancel");

    pool.stop();
    for (auto* shard : {&asking, &other}) {
      shard->stop();
      shard->join();
    }
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace stanzad::storage
