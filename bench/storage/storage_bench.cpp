// Storage benchmarks (Google Benchmark; built, not run by ctest): archived messages per second
// with group commit vs one transaction per message, on SQLite and MariaDB, and the latest-50
// query on a conversation of 1,000,000 messages. See docs/performance.md, "Storage".
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "storage/mysql.hpp"
#include "storage/sqlite_backend.hpp"
#include "storage/storage.hpp"

namespace {

namespace fs = std::filesystem;
using namespace stanzad::storage;

fs::path temp_dir() {
  std::string pattern = (fs::temp_directory_path() / "stanzad-bench-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) std::abort();
  return pattern;
}

std::unique_ptr<Storage> sqlite(const fs::path& dir, std::size_t batch_limit,
                                bool synchronous_full = true) {
  SqliteBackend::Options o;
  o.synchronous_full = synchronous_full;
  o.batch_limit = batch_limit;
  o.queue_limit = 10'000'000;
  return std::make_unique<Storage>(std::make_unique<SqliteBackend>(dir / "stanzad.sqlite", o));
}

// STANZAD_BENCH_MYSQL_PORT: a MariaDB with user stanzad / stanzad-test (tests/storage/mariadb.sh).
std::unique_ptr<Storage> mysql(std::size_t batch_limit, const std::string& database) {
  const char* port = std::getenv("STANZAD_BENCH_MYSQL_PORT");
  if (port == nullptr) return nullptr;
  MysqlBackend::Options o;
  o.port = static_cast<std::uint16_t>(std::atoi(port));
  o.user = "stanzad";
  o.password = "stanzad-test";
  o.database = database;
  o.batch_limit = batch_limit;
  o.queue_limit = 10'000'000;
  return std::make_unique<Storage>(std::make_unique<MysqlBackend>(o));
}

ArchivedMessage message(std::int64_t conversation, std::int64_t i) {
  ArchivedMessage m;
  m.conversation = conversation;
  m.sender = "romeo@localhost/balcony";
  m.stanza_id = "id" + std::to_string(i);
  // Ten words from a vocabulary of 2,000, as chat has: a realistic load for the full-text index.
  static const std::vector<std::string> words = [] {
    std::vector<std::string> w;
    for (std::uint64_t j = 0; j < 2000; ++j)
      w.push_back("w" + std::to_string(j * 2654435761u % 99991));
    return w;
  }();
  for (std::int64_t k = 0; k < 10; ++k) {
    if (k) m.body += ' ';
    m.body += words[static_cast<std::size_t>((i * 7 + k * 13) % 2000)];
  }
  m.payload = "<message to='juliet@localhost' type='chat' id='" + m.stanza_id + "'><body>" +
              m.body + "</body></message>";
  return m;
}

// Queues `n` messages (as a busy server would), waits until every completion fired.
void archive_n(Storage& s, std::int64_t conversation, std::int64_t n, std::int64_t first) {
  std::mutex mutex;
  std::condition_variable cv;
  std::int64_t done = 0, failed = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    s.archive_async(message(conversation, first + i), [&](WriteResult r) {
      std::lock_guard lock(mutex);
      ++done;
      failed += !r.ok();
      if (done == n) cv.notify_one();
    });
  }
  std::unique_lock lock(mutex);
  cv.wait(lock, [&] { return done == n; });
  if (failed) std::abort();
}

void run_archive(benchmark::State& state, Storage* s) {
  if (s == nullptr) {
    state.SkipWithError("set STANZAD_BENCH_MYSQL_PORT (tests/storage/mariadb.sh start DIR PORT)");
    return;
  }
  auto c = s->conversation(ConversationKind::group, "bench@groups.localhost");
  const std::int64_t per_iteration = state.range(0);
  std::int64_t total = 0;
  // Process CPU time (every thread): on a shared, busy machine msgs per CPU-second is steadier
  // than the wall-clock rate.
  std::clock_t cpu_start = std::clock();
  for (auto _ : state) {
    archive_n(*s, c, per_iteration, total);
    total += per_iteration;
  }
  double cpu = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
  state.SetItemsProcessed(total);
  state.counters["msgs_per_cpu_s"] = cpu > 0 ? static_cast<double>(total) / cpu : 0;
}

void BM_ArchiveSqliteGroupCommit(benchmark::State& state) {
  auto dir = temp_dir();
  {
    auto s = sqlite(dir, static_cast<std::size_t>(state.range(1)));
    run_archive(state, s.get());
  }
  fs::remove_all(dir);
}
BENCHMARK(BM_ArchiveSqliteGroupCommit)
    ->Args({20000, 2000})
    ->Args({20000, 10000})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// <storage synchronous="normal">: no fsync at COMMIT (durable against a crash of stanzad, not
// of the machine), for comparison.
void BM_ArchiveSqliteGroupCommitSyncNormal(benchmark::State& state) {
  auto dir = temp_dir();
  {
    auto s = sqlite(dir, static_cast<std::size_t>(state.range(1)), false);
    run_archive(state, s.get());
  }
  fs::remove_all(dir);
}
BENCHMARK(BM_ArchiveSqliteGroupCommitSyncNormal)
    ->Args({20000, 2000})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_ArchiveSqliteOneTransactionEach(benchmark::State& state) {
  auto dir = temp_dir();
  {
    auto s = sqlite(dir, 1);
    run_archive(state, s.get());
  }
  fs::remove_all(dir);
}
BENCHMARK(BM_ArchiveSqliteOneTransactionEach)
    ->Arg(500)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_ArchiveMariadbGroupCommit(benchmark::State& state) {
  auto s = mysql(2000, "bench_group_" + std::to_string(::getpid()));
  run_archive(state, s.get());
}
BENCHMARK(BM_ArchiveMariadbGroupCommit)->Arg(5000)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_ArchiveMariadbOneTransactionEach(benchmark::State& state) {
  auto s = mysql(1, "bench_each_" + std::to_string(::getpid()));
  run_archive(state, s.get());
}
BENCHMARK(BM_ArchiveMariadbOneTransactionEach)
    ->Arg(500)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// history(): the newest 50 of a conversation holding range(0) messages (filled once).
void latest50(benchmark::State& state, Storage* s, std::int64_t conversation) {
  for (auto _ : state) {
    auto page = s->history(conversation, Page{std::nullopt, std::nullopt, 50});
    if (page.size() != 50) std::abort();
    benchmark::DoNotOptimize(page);
  }
}

void BM_Latest50Sqlite(benchmark::State& state) {
  auto dir = temp_dir();
  {
    auto s = sqlite(dir, 5000);
    auto c = s->conversation(ConversationKind::group, "big@groups.localhost");
    auto other = s->conversation(ConversationKind::group, "other@groups.localhost");
    archive_n(*s, c, state.range(0), 0);
    archive_n(*s, other, 1000, 0);  // newer rows of another conversation
    latest50(state, s.get(), c);
  }
  fs::remove_all(dir);
}
BENCHMARK(BM_Latest50Sqlite)->Arg(1'000'000)->Unit(benchmark::kMicrosecond)->Iterations(2000);

void BM_Latest50Mariadb(benchmark::State& state) {
  auto s = mysql(5000, "bench_latest_" + std::to_string(::getpid()));
  if (!s) {
    state.SkipWithError("set STANZAD_BENCH_MYSQL_PORT");
    return;
  }
  auto c = s->conversation(ConversationKind::group, "big@groups.localhost");
  archive_n(*s, c, state.range(0), 0);
  latest50(state, s.get(), c);
}
BENCHMARK(BM_Latest50Mariadb)->Arg(100'000)->Unit(benchmark::kMicrosecond)->Iterations(2000);

}  // namespace

BENCHMARK_MAIN();
