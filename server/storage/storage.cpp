// The storage API over a Backend: a pool of reading connections and one writer thread that
// group-commits queued writes (docs/storage.md).
#include "storage/storage.hpp"

#include <malloc.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <span>
#include <stdexcept>
#include <thread>

#include "storage/backend.hpp"

namespace stanzad::storage {

namespace {

namespace sasl = xmpp::sasl;

constexpr std::size_t kSaltBytes = 16;
constexpr auto kPoolWait = std::chrono::seconds(10);  // for a free reading connection
// After a failed connect, writes fail at once for this long instead of each waiting for one.
constexpr auto kReconnectPause = std::chrono::milliseconds(200);

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct KeyPair {
  sasl::ScramCredentials sha1, sha256;
};

// PBKDF2 is the slow part: it runs on the caller's thread, not the writer's.
KeyPair derive(std::string_view password, std::uint32_t iterations) {
  if (iterations == 0) throw std::invalid_argument("SCRAM iteration count must be at least 1");
  return {sasl::derive_credentials(sasl::Hash::sha1, password, sasl::random_bytes(kSaltBytes),
                                   iterations),
          sasl::derive_credentials(sasl::Hash::sha256, password, sasl::random_bytes(kSaltBytes),
                                   iterations)};
}

void bind_keys(Query& q, int first, const KeyPair& keys) {
  int i = first;
  for (const auto* c : {&keys.sha1, &keys.sha256}) {
    q.blob(i, c->salt).integer(i + 1, c->iterations);
    q.blob(i + 2, c->stored_key).blob(i + 3, c->server_key);
    i += 4;
  }
}

ArchivedMessage message_row(Query& q, std::int64_t conversation) {
  ArchivedMessage m;
  m.conversation = conversation;
  m.seq = q.integer(0);
  m.time_us = q.integer(1);
  m.sender = q.text(2);
  m.stanza_id = q.text(3);
  m.body = q.text(4);
  m.payload = q.blob(5);
  return m;
}

Media media_row(Query& q) {
  return {q.text(0), q.text(1), q.text(2), q.integer(3), q.text(4), q.integer(5), q.text(6)};
}

using Run = std::function<std::int64_t(Connection&)>;

// A queued write: an archived message (the hot path: kept as data, so that the writer can
// number and insert a batch's messages together) or any other write as a function.
struct Write {
  Run run;  // empty for a message
  ArchivedMessage message;
  Completion done;
  bool is_message() const { return !run; }
};

// Each group commit grows, then frees, megabytes on the writer thread (SQLite's page cache
// and FTS5's pending-terms hash). With glibc's defaults that memory goes back to the kernel
// (madvise, munmap) after every batch, and the TLB shootdowns cost more than the SQL: 47% of
// the writer's time in storage_bench on this VM. Keep it: trim only above 64 MiB, and serve
// blocks up to 16 MiB from the heap. Process-wide, set once; harmless for the rest of the
// server, which allocates far less.
void tune_malloc() {
  static const bool tuned = [] {
    mallopt(M_MMAP_THRESHOLD, 16 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    return true;
  }();
  (void)tuned;
}

}  // namespace

struct Storage::Impl {
  explicit Impl(std::unique_ptr<Backend> b) : backend(std::move(b)) {
    tune_malloc();
    writer = std::thread([this] { write_loop(); });
  }

  ~Impl() {
    {
      std::lock_guard lock(write_mutex);
      stopping = true;
    }
    write_cv.notify_all();
    writer.join();
  }

  std::unique_ptr<Backend> backend;

  // --- reading connections
  std::mutex pool_mutex;
  std::condition_variable pool_cv;
  std::vector<std::unique_ptr<Connection>> idle;
  unsigned opened = 0;

  struct Lease {
    Impl& impl;
    std::unique_ptr<Connection> conn;
    bool reused = false;
    ~Lease() {
      std::lock_guard lock(impl.pool_mutex);
      if (conn && !conn->broken()) {
        impl.idle.push_back(std::move(conn));
      } else {
        --impl.opened;
      }
      impl.pool_cv.notify_one();
    }
  };

  std::unique_ptr<Lease> lease() {
    std::unique_lock lock(pool_mutex);
    if (!pool_cv.wait_for(lock, kPoolWait,
                          [&] { return !idle.empty() || opened < backend->pool_size(); })) {
      throw StorageError(backend->describe() + ": every connection is busy", ErrorKind::overloaded);
    }
    std::unique_ptr<Lease> l(new Lease{*this, nullptr});
    if (!idle.empty()) {
      l->conn = std::move(idle.back());
      idle.pop_back();
      l->reused = true;
      return l;
    }
    ++opened;  // the Lease gives it back even if connect() throws
    lock.unlock();
    l->conn = backend->connect();
    return l;
  }

  // Reads are idempotent: one that failed on a pooled connection that had lost its server
  // (MariaDB restarted while it sat idle) is tried once more on a new one.
  template <class F>
  auto read(F f) {
    for (int attempt = 0;; ++attempt) {
      auto l = lease();
      try {
        return f(*l->conn);
      } catch (const StorageError& e) {
        if (!(l->conn->broken() && l->reused && attempt == 0)) throw;
      }
    }
  }

  // --- the writer
  std::mutex write_mutex;
  std::condition_variable write_cv;
  std::deque<Write> queue;
  bool stopping = false;
  std::thread writer;
  std::unique_ptr<Connection> wconn;  // the writer thread's alone
  std::chrono::steady_clock::time_point reconnect_at{};

  void submit(Run run, Completion done) { submit(Write{std::move(run), {}, std::move(done)}); }

  void submit(Write w) {
    std::optional<StorageError> refused;
    {
      std::lock_guard lock(write_mutex);
      if (stopping) {
        refused.emplace(backend->describe() + ": storage is shutting down", ErrorKind::unavailable);
      } else if (queue.size() >= backend->queue_limit()) {
        refused.emplace(backend->describe() + ": " + std::to_string(queue.size()) +
                            " writes are waiting to commit",
                        ErrorKind::overloaded);
      } else {
        queue.push_back(std::move(w));
      }
    }
    if (refused) {
      w.done(WriteResult{0, std::move(refused)});
    } else {
      write_cv.notify_one();
    }
  }

  std::int64_t write(Run run) { return wait(Write{std::move(run), {}, {}}); }

  // Queues `w` and blocks until its transaction committed (or failed).
  std::int64_t wait(Write w) {
    std::promise<WriteResult> promise;
    auto future = promise.get_future();
    w.done = [&promise](WriteResult r) { promise.set_value(std::move(r)); };
    submit(std::move(w));
    WriteResult r = future.get();
    if (r.error) throw *r.error;
    return r.value;
  }

  void write_loop() {
    std::vector<Write> batch;
    for (;;) {
      {
        std::unique_lock lock(write_mutex);
        write_cv.wait(lock, [&] { return stopping || !queue.empty(); });
        if (queue.empty()) return;  // stopping, and everything queued has been written
        std::size_t n = std::min(queue.size(), backend->batch_limit());
        for (std::size_t i = 0; i < n; ++i) {
          batch.push_back(std::move(queue.front()));
          queue.pop_front();
        }
      }
      commit(batch);
      batch.clear();
    }
  }

  static void fail_all(std::vector<Write>& batch, std::size_t from, const StorageError& e) {
    for (std::size_t i = from; i < batch.size(); ++i) batch[i].done(WriteResult{0, e});
  }

  bool ensure_connection(std::vector<Write>& batch, std::size_t from) {
    if (wconn && !wconn->broken()) return true;
    wconn.reset();
    auto now = std::chrono::steady_clock::now();
    if (now < reconnect_at) {
      fail_all(batch, from,
               StorageError(backend->describe() + ": database unavailable (reconnecting)",
                            ErrorKind::unavailable));
      return false;
    }
    try {
      wconn = backend->connect();
      return true;
    } catch (const StorageError& e) {
      reconnect_at = now + kReconnectPause;
      fail_all(batch, from, e);
      return false;
    }
  }

  // One transaction for the whole batch; completions fire after COMMIT. A write that fails by
  // itself (a constraint) rolls the batch back, and each write then runs alone, so that only
  // it fails. A connection lost before COMMIT is retried once on a new connection.
  void commit(std::vector<Write>& batch) {
    std::vector<std::int64_t> values(batch.size());
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (!ensure_connection(batch, 0)) return;
      bool committing = false;
      try {
        wconn->begin();
        run_all(*wconn, batch, 0, batch.size(), values);
        committing = true;
        wconn->commit();
        for (std::size_t i = 0; i < batch.size(); ++i) batch[i].done(WriteResult{values[i], {}});
        return;
      } catch (const StorageError& e) {
        if (!wconn->broken()) {
          wconn->rollback();
          // Only a write's own failure (a constraint) is worth replaying the others alone; a
          // busy database or a full disk would fail each of them again, slowly.
          if (batch.size() == 1 || e.kind != ErrorKind::internal) return fail_all(batch, 0, e);
          return one_by_one(batch);
        }
        wconn.reset();
        if (committing || attempt == 1) return fail_all(batch, 0, e);
      }
    }
  }

  void one_by_one(std::vector<Write>& batch) {
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (!ensure_connection(batch, i)) return;
      try {
        wconn->begin();
        std::int64_t value = 0;
        run_all(*wconn, batch, i, i + 1, {&value, 1});
        wconn->commit();
        batch[i].done(WriteResult{value, {}});
      } catch (const StorageError& e) {
        if (wconn->broken()) {
          wconn.reset();
        } else {
          wconn->rollback();
        }
        batch[i].done(WriteResult{0, e});
      }
    }
  }

  // Runs batch[from, to) in order inside the open transaction; values[i - from] receives what
  // write i returns. Consecutive messages are archived together (archive_all).
  static void run_all(Connection& c, std::vector<Write>& batch, std::size_t from, std::size_t to,
                      std::span<std::int64_t> values) {
    for (std::size_t i = from; i < to;) {
      if (!batch[i].is_message()) {
        values[i - from] = batch[i].run(c);
        ++i;
        continue;
      }
      std::size_t end = i;
      while (end < to && batch[end].is_message()) ++end;
      archive_all(c, std::span(batch).subspan(i, end - i), values.subspan(i - from, end - i));
      i = end;
    }
  }

  // Appends messages, in order. Each conversation's counter is bumped once by the number of its
  // messages here (in conversation id order, so that MySQL nodes lock rows in one order), which
  // hands out the same gap-free numbers as one bump per message would, in the same transaction;
  // then the rows go in, several per statement where the backend gains from it (MySQL: one
  // round trip for many rows).
  static void archive_all(Connection& c, std::span<Write> writes, std::span<std::int64_t> seqs) {
    std::vector<std::pair<std::int64_t, std::size_t>> order;  // (conversation, index)
    order.reserve(writes.size());
    for (std::size_t i = 0; i < writes.size(); ++i)
      order.emplace_back(writes[i].message.conversation, i);
    std::sort(order.begin(), order.end());
    for (std::size_t i = 0; i < order.size();) {
      std::size_t end = i;
      while (end < order.size() && order[end].first == order[i].first) ++end;
      std::int64_t last = bump(c, order[i].first, static_cast<std::int64_t>(end - i));
      for (std::size_t k = i; k < end; ++k)
        seqs[order[k].second] = last - static_cast<std::int64_t>(end - k) + 1;
      i = end;
    }
    const std::int64_t now = now_us();
    const std::size_t max_rows = c.max_insert_rows();
    for (std::size_t i = 0; i < writes.size();) {
      std::size_t rows = std::min(max_rows, writes.size() - i);
      if (rows > 1) rows = std::bit_floor(rows);  // few distinct statements: 1, 2, 4, 8…
      Query& q = c.message_insert(rows);
      struct Reset {
        Query& q;
        ~Reset() { q.reset(); }
      } reset{q};
      for (std::size_t r = 0; r < rows; ++r, ++i) {
        const ArchivedMessage& m = writes[i].message;
        int p = static_cast<int>(r) * 7;
        q.integer(p + 1, m.conversation).integer(p + 2, seqs[i]);
        q.integer(p + 3, m.time_us ? m.time_us : now);
        q.text(p + 4, m.sender).text(p + 5, m.stanza_id).text(p + 6, m.body).blob(p + 7, m.payload);
      }
      q.run();
    }
  }

  // Adds `count` to a conversation's last_seq; returns the new value.
  static std::int64_t bump(Connection& c, std::int64_t conversation, std::int64_t count) {
    auto missing = [&] { return StorageError("no conversation " + std::to_string(conversation)); };
    if (c.bump_returns_seq()) {
      Use q(c, Sql::conversation_bump);
      q->integer(1, count).integer(2, conversation);
      if (!q->next()) throw missing();
      return q->integer(0);
    }
    {
      Use q(c, Sql::conversation_bump);
      q->integer(1, count).integer(2, conversation);
      if (q->run() == 0) throw missing();
    }
    Use q(c, Sql::conversation_last);  // our own update: the row is locked until COMMIT
    q->integer(1, conversation);
    if (!q->next()) throw missing();
    return q->integer(0);
  }

  // --- write bodies shared by the synchronous and asynchronous forms

  static std::int64_t put_in(Connection& c, const std::string& host, const std::string& user,
                             const std::string& store, const std::string& key,
                             const std::string& value) {
    Use q(c, Sql::kv_put);
    q->text(1, host).text(2, user).text(3, store).text(4, key).blob(5, value).integer(6, now_us());
    q->run();
    return 0;
  }

  static std::int64_t status_in(Connection& c, std::int64_t conversation, std::int64_t seq,
                                const std::string& recipient, Delivery d,
                                std::int64_t updated_us = 0) {
    Use q(c, Sql::status_put);
    q->integer(1, conversation).integer(2, seq).text(3, recipient);
    q->integer(4, static_cast<int>(d)).integer(5, updated_us ? updated_us : now_us());
    q->run();
    return 0;
  }

  static std::int64_t offline_in(Connection& c, const std::string& host, const std::string& user,
                                 const std::string& stanza) {
    Use q(c, Sql::offline_insert);
    q->text(1, host).text(2, user).integer(3, now_us()).blob(4, stanza);
    q->run();
    return c.last_insert_id();
  }

  static std::vector<OfflineMessage> offline_list(Connection& c, const std::string& host,
                                                  const std::string& user) {
    std::vector<OfflineMessage> out;
    Use q(c, Sql::offline_list);
    q->text(1, host).text(2, user);
    while (q->next()) out.push_back({q->integer(0), q->integer(1), q->blob(2)});
    return out;
  }
};

Storage::Storage(std::unique_ptr<Backend> backend)
    : impl_(std::make_unique<Impl>(std::move(backend))) {}

Storage::~Storage() = default;

std::string Storage::describe() const { return impl_->backend->describe(); }
int Storage::schema_version() const { return impl_->backend->schema_version(); }

// --- accounts

Storage::Result Storage::create(std::string_view host, std::string_view username,
                                std::string_view password, std::uint32_t iterations) {
  KeyPair keys = derive(password, iterations);
  std::int64_t created = now_us() / 1000000;
  auto changed = impl_->write([&](Connection& c) {
    Use q(c, Sql::account_insert);
    q->text(1, host).text(2, username).integer(3, created);
    bind_keys(*q, 4, keys);
    return q->run();
  });
  return changed == 0 ? Result::exists : Result::ok;
}

Storage::Result Storage::set_password(std::string_view host, std::string_view username,
                                      std::string_view password, std::uint32_t iterations) {
  KeyPair keys = derive(password, iterations);
  auto changed = impl_->write([&](Connection& c) {
    Use q(c, Sql::account_update);
    bind_keys(*q, 1, keys);
    q->text(9, host).text(10, username);
    return q->run();
  });
  return changed == 0 ? Result::not_found : Result::ok;
}

void Storage::put_credentials(std::string_view host, std::string_view username,
                              const sasl::ScramCredentials& sha1,
                              const sasl::ScramCredentials& sha256) {
  KeyPair keys{sha1, sha256};
  std::int64_t created = now_us() / 1000000;
  impl_->write([&](Connection& c) {
    Use q(c, Sql::account_replace);
    q->text(1, host).text(2, username).integer(3, created);
    bind_keys(*q, 4, keys);
    return q->run();
  });
}

Storage::Result Storage::remove(std::string_view host, std::string_view username) {
  auto changed = impl_->write([&](Connection& c) {
    std::int64_t n;
    {
      Use q(c, Sql::account_delete);
      q->text(1, host).text(2, username);
      n = q->run();
    }
    for (Sql s : {Sql::kv_delete_user, Sql::offline_delete_user}) {
      Use q(c, s);
      q->text(1, host).text(2, username);
      q->run();
    }
    return n;
  });
  return changed == 0 ? Result::not_found : Result::ok;
}

bool Storage::exists(std::string_view host, std::string_view username) {
  return impl_->read([&](Connection& c) {
    Use q(c, Sql::account_exists);
    q->text(1, host).text(2, username);
    return q->next();
  });
}

std::optional<sasl::ScramCredentials> Storage::credentials(std::string_view host,
                                                           std::string_view username,
                                                           sasl::Hash hash) {
  return impl_->read([&](Connection& c) -> std::optional<sasl::ScramCredentials> {
    Use q(c, hash == sasl::Hash::sha1 ? Sql::account_sha1 : Sql::account_sha256);
    q->text(1, host).text(2, username);
    if (!q->next()) return std::nullopt;
    return sasl::ScramCredentials{hash, q->blob(0), static_cast<std::uint32_t>(q->integer(1)),
                                  q->blob(2), q->blob(3)};
  });
}

std::vector<std::string> Storage::list(std::string_view host) {
  auto jids = impl_->read([&](Connection& c) {
    std::vector<std::string> out;
    Use q(c, host.empty() ? Sql::account_all : Sql::account_by_host);
    if (!host.empty()) q->text(1, host);
    while (q->next()) out.push_back(q->text(0) + "@" + q->text(1));
    return out;
  });
  std::sort(jids.begin(), jids.end());
  return jids;
}

// --- documents

std::optional<std::string> Storage::get(std::string_view host, std::string_view user,
                                        std::string_view store, std::string_view key) {
  return impl_->read([&](Connection& c) -> std::optional<std::string> {
    Use q(c, Sql::kv_get);
    q->text(1, host).text(2, user).text(3, store).text(4, key);
    if (!q->next()) return std::nullopt;
    return q->blob(0);
  });
}

void Storage::put(std::string_view host, std::string_view user, std::string_view store,
                  std::string_view key, std::string_view value) {
  impl_->write([&](Connection& c) {
    return Impl::put_in(c, std::string(host), std::string(user), std::string(store),
                        std::string(key), std::string(value));
  });
}

void Storage::put_async(std::string_view host, std::string_view user, std::string_view store,
                        std::string_view key, std::string_view value, Completion done) {
  impl_->submit(
      [h = std::string(host), u = std::string(user), s = std::string(store), k = std::string(key),
       v = std::string(value)](Connection& c) { return Impl::put_in(c, h, u, s, k, v); },
      std::move(done));
}

bool Storage::erase(std::string_view host, std::string_view user, std::string_view store,
                    std::string_view key) {
  return impl_->write([&](Connection& c) {
    Use q(c, Sql::kv_delete);
    q->text(1, host).text(2, user).text(3, store).text(4, key);
    return q->run();
  }) != 0;
}

void Storage::erase_async(std::string_view host, std::string_view user, std::string_view store,
                          std::string_view key, Completion done) {
  impl_->submit(
      [h = std::string(host), u = std::string(user), s = std::string(store),
       k = std::string(key)](Connection& c) {
        Use q(c, Sql::kv_delete);
        q->text(1, h).text(2, u).text(3, s).text(4, k);
        return q->run();
      },
      std::move(done));
}

std::vector<std::pair<std::string, std::string>> Storage::items(std::string_view host,
                                                                std::string_view user,
                                                                std::string_view store) {
  return impl_->read([&](Connection& c) {
    std::vector<std::pair<std::string, std::string>> out;
    Use q(c, Sql::kv_store);
    q->text(1, host).text(2, user).text(3, store);
    while (q->next()) out.emplace_back(q->text(0), q->blob(1));
    return out;
  });
}

std::vector<Document> Storage::documents(std::string_view host, std::string_view user) {
  return impl_->read([&](Connection& c) {
    std::vector<Document> out;
    Use q(c, Sql::kv_user);
    q->text(1, host).text(2, user);
    while (q->next()) out.push_back({q->text(0), q->text(1), q->blob(2)});
    return out;
  });
}

// --- conversations

std::string Storage::direct_name(std::string_view a, std::string_view b) {
  if (b < a) std::swap(a, b);
  return std::string(a) + " " + std::string(b);  // a space never occurs in a JID
}

std::optional<std::int64_t> Storage::find_conversation(ConversationKind kind,
                                                       std::string_view name) {
  return impl_->read([&](Connection& c) -> std::optional<std::int64_t> {
    Use q(c, Sql::conversation_find);
    q->integer(1, static_cast<int>(kind)).text(2, name);
    if (!q->next()) return std::nullopt;
    return q->integer(0);
  });
}

std::int64_t Storage::conversation(ConversationKind kind, std::string_view name) {
  if (auto id = find_conversation(kind, name)) return *id;
  return impl_->write([&](Connection& c) {
    {
      Use q(c, Sql::conversation_insert);
      q->integer(1, static_cast<int>(kind)).text(2, name).integer(3, now_us());
      q->run();
    }
    Use q(c, Sql::conversation_find);
    q->integer(1, static_cast<int>(kind)).text(2, name);
    if (!q->next()) throw StorageError("conversation vanished after insert");
    return q->integer(0);
  });
}

void Storage::set_participant(std::int64_t conversation, std::string_view jid, Role role) {
  impl_->write([&](Connection& c) {
    Use q(c, Sql::participant_put);
    q->integer(1, conversation).text(2, jid).integer(3, static_cast<int>(role));
    q->integer(4, now_us());
    return q->run();
  });
}

bool Storage::remove_participant(std::int64_t conversation, std::string_view jid) {
  return impl_->write([&](Connection& c) {
    Use q(c, Sql::participant_delete);
    q->integer(1, conversation).text(2, jid);
    return q->run();
  }) != 0;
}

std::vector<Participant> Storage::participants(std::int64_t conversation) {
  return impl_->read([&](Connection& c) {
    std::vector<Participant> out;
    Use q(c, Sql::participant_list);
    q->integer(1, conversation);
    while (q->next()) out.push_back({q->text(0), static_cast<Role>(q->integer(1))});
    return out;
  });
}

std::vector<ConversationInfo> Storage::conversations() {
  return impl_->read([&](Connection& c) {
    std::vector<ConversationInfo> out;
    Use q(c, Sql::conversation_all);
    while (q->next()) {
      out.push_back(
          {q->integer(0), static_cast<ConversationKind>(q->integer(1)), q->text(2), q->integer(3)});
    }
    return out;
  });
}

// --- archive

std::int64_t Storage::archive(const ArchivedMessage& message) {
  return impl_->wait(Write{{}, message, {}});
}

void Storage::archive_async(ArchivedMessage message, Completion done) {
  impl_->submit(Write{{}, std::move(message), std::move(done)});
}

std::vector<ArchivedMessage> Storage::history(std::int64_t conversation, const Page& page) {
  return impl_->read([&](Connection& c) {
    std::vector<ArchivedMessage> out;
    Sql which = page.after    ? Sql::history_after
                : page.before ? Sql::history_before
                              : Sql::history_latest;
    Use q(c, which);
    q->integer(1, conversation);
    int next = 2;
    if (page.after) q->integer(next++, *page.after);
    if (!page.after && page.before) q->integer(next++, *page.before);
    q->integer(next, static_cast<std::int64_t>(page.limit));
    while (q->next()) out.push_back(message_row(*q, conversation));
    if (which != Sql::history_after) std::reverse(out.begin(), out.end());
    return out;
  });
}

std::vector<ArchivedMessage> Storage::search(std::int64_t conversation, std::string_view words,
                                             std::size_t limit) {
  auto [which, param] = impl_->backend->search_query(words);
  if (param.empty()) return {};
  return impl_->read([&, which = which, param = param](Connection& c) {
    std::vector<ArchivedMessage> out;
    Use q(c, which);
    q->integer(1, conversation).text(2, param).integer(3, static_cast<std::int64_t>(limit));
    while (q->next()) out.push_back(message_row(*q, conversation));
    std::reverse(out.begin(), out.end());
    return out;
  });
}

std::int64_t Storage::last_seq(std::int64_t conversation) {
  return impl_->read([&](Connection& c) -> std::int64_t {
    Use q(c, Sql::conversation_last);
    q->integer(1, conversation);
    return q->next() ? q->integer(0) : 0;
  });
}

// --- delivery status

void Storage::set_status(std::int64_t conversation, std::int64_t seq, std::string_view recipient,
                         Delivery delivery, std::int64_t updated_us) {
  impl_->write([&](Connection& c) {
    return Impl::status_in(c, conversation, seq, std::string(recipient), delivery, updated_us);
  });
}

std::vector<std::pair<std::int64_t, Status>> Storage::statuses(std::int64_t conversation) {
  return impl_->read([&](Connection& c) {
    std::vector<std::pair<std::int64_t, Status>> out;
    Use q(c, Sql::status_conversation);
    q->integer(1, conversation);
    while (q->next()) {
      out.emplace_back(q->integer(0),
                       Status{q->text(1), static_cast<Delivery>(q->integer(2)), q->integer(3)});
    }
    return out;
  });
}

void Storage::set_status_async(std::int64_t conversation, std::int64_t seq,
                               std::string_view recipient, Delivery delivery, Completion done) {
  impl_->submit([=, r = std::string(recipient)](
                    Connection& c) { return Impl::status_in(c, conversation, seq, r, delivery); },
                std::move(done));
}

std::vector<Status> Storage::status(std::int64_t conversation, std::int64_t seq) {
  return impl_->read([&](Connection& c) {
    std::vector<Status> out;
    Use q(c, Sql::status_list);
    q->integer(1, conversation).integer(2, seq);
    while (q->next()) {
      out.push_back({q->text(0), static_cast<Delivery>(q->integer(1)), q->integer(2)});
    }
    return out;
  });
}

// --- offline

std::int64_t Storage::offline_push(std::string_view host, std::string_view user,
                                   std::string_view stanza) {
  return impl_->write([&](Connection& c) {
    return Impl::offline_in(c, std::string(host), std::string(user), std::string(stanza));
  });
}

void Storage::offline_push_async(std::string_view host, std::string_view user,
                                 std::string_view stanza, Completion done) {
  impl_->submit([h = std::string(host), u = std::string(user),
                 s = std::string(stanza)](Connection& c) { return Impl::offline_in(c, h, u, s); },
                std::move(done));
}

std::vector<OfflineMessage> Storage::offline_pop_all(std::string_view host, std::string_view user) {
  std::vector<OfflineMessage> out;
  impl_->write([&](Connection& c) -> std::int64_t {
    out = Impl::offline_list(c, std::string(host), std::string(user));
    if (out.empty()) return 0;
    Use q(c, Sql::offline_delete_upto);
    q->text(1, host).text(2, user).integer(3, out.back().id);
    return q->run();
  });
  return out;
}

std::vector<OfflineMessage> Storage::offline_peek_queued(std::string_view host,
                                                         std::string_view user) {
  std::vector<OfflineMessage> out;
  impl_->write([&](Connection& c) -> std::int64_t {
    out = Impl::offline_list(c, std::string(host), std::string(user));
    return 0;
  });
  return out;
}

void Storage::offline_delete_upto_async(std::string_view host, std::string_view user,
                                        std::int64_t id, Completion done) {
  impl_->submit(
      [h = std::string(host), u = std::string(user), id](Connection& c) -> std::int64_t {
        Use q(c, Sql::offline_delete_upto);
        q->text(1, h).text(2, u).integer(3, id);
        return q->run();
      },
      std::move(done));
}

std::vector<OfflineMessage> Storage::offline_peek(std::string_view host, std::string_view user) {
  return impl_->read(
      [&](Connection& c) { return Impl::offline_list(c, std::string(host), std::string(user)); });
}

std::size_t Storage::offline_count(std::string_view host, std::string_view user) {
  return impl_->read([&](Connection& c) -> std::size_t {
    Use q(c, Sql::offline_count);
    q->text(1, host).text(2, user);
    return q->next() ? static_cast<std::size_t>(q->integer(0)) : 0;
  });
}

std::size_t Storage::offline_clear(std::string_view host, std::string_view user) {
  return static_cast<std::size_t>(impl_->write([&](Connection& c) {
    Use q(c, Sql::offline_delete_user);
    q->text(1, host).text(2, user);
    return q->run();
  }));
}

// --- media

void Storage::media_put(const Media& m) {
  impl_->write([&](Connection& c) {
    Use q(c, Sql::media_put);
    q->text(1, m.id).text(2, m.owner).text(3, m.filename).integer(4, m.size);
    q->text(5, m.content_type).integer(6, m.created_us ? m.created_us : now_us()).text(7, m.path);
    return q->run();
  });
}

std::optional<Media> Storage::media_get(std::string_view id) {
  return impl_->read([&](Connection& c) -> std::optional<Media> {
    Use q(c, Sql::media_get);
    q->text(1, id);
    if (!q->next()) return std::nullopt;
    return media_row(*q);
  });
}

bool Storage::media_remove(std::string_view id) {
  return impl_->write([&](Connection& c) {
    Use q(c, Sql::media_delete);
    q->text(1, id);
    return q->run();
  }) != 0;
}

std::vector<Media> Storage::media_all() {
  return impl_->read([&](Connection& c) {
    std::vector<Media> out;
    Use q(c, Sql::media_all);
    while (q->next()) out.push_back(media_row(*q));
    return out;
  });
}

std::vector<Media> Storage::media_of(std::string_view owner) {
  return impl_->read([&](Connection& c) {
    std::vector<Media> out;
    Use q(c, Sql::media_owner);
    q->text(1, owner);
    while (q->next()) out.push_back(media_row(*q));
    return out;
  });
}

}  // namespace stanzad::storage
