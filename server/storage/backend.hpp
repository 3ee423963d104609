// What a storage backend provides to Storage: connections running the same named statements,
// each backend in its own SQL dialect. Internal to server/storage/.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "storage/error.hpp"

namespace stanzad::storage {

// Every statement Storage runs; each backend gives its text (sqlite_backend.cpp, mysql.cpp).
enum class Sql {
  account_insert,
  account_replace,
  account_update,
  account_delete,
  account_exists,
  account_sha1,
  account_sha256,
  account_all,
  account_by_host,
  kv_get,
  kv_put,
  kv_delete,
  kv_store,
  kv_user,
  kv_delete_user,
  conversation_insert,
  conversation_find,
  conversation_bump,
  conversation_last,
  participant_put,
  participant_delete,
  participant_list,
  message_insert,
  history_latest,
  history_before,
  history_after,
  search_words,
  search_like,
  status_put,
  status_list,
  offline_insert,
  offline_list,
  offline_delete_upto,
  offline_count,
  offline_delete_user,
  media_put,
  media_get,
  media_delete,
  media_owner,
  conversation_all,
  status_conversation,
  media_all,
  count_
};

// One prepared statement on one connection; parameters 1-based, columns 0-based.
class Query {
 public:
  virtual ~Query() = default;
  virtual Query& text(int index, std::string_view value) = 0;
  virtual Query& blob(int index, std::string_view value) = 0;
  virtual Query& integer(int index, std::int64_t value) = 0;
  virtual bool next() = 0;         // executes on the first call; true while a row is ready
  virtual std::int64_t run() = 0;  // executes a statement without rows; the rows changed
  virtual std::string text(int column) = 0;
  virtual std::string blob(int column) = 0;
  virtual std::int64_t integer(int column) = 0;
  virtual void reset() = 0;  // ready to bind again
};

class Connection {
 public:
  virtual ~Connection() = default;
  virtual Query& query(Sql which) = 0;  // prepared on first use, kept
  virtual void begin() = 0;
  virtual void commit() = 0;
  virtual void rollback() noexcept = 0;
  virtual std::int64_t last_insert_id() = 0;
  // Sql::conversation_bump (parameters: the increment, the id) returns the new last_seq as a
  // row (UPDATE … RETURNING); otherwise Sql::conversation_last reads it.
  virtual bool bump_returns_seq() const { return false; }
  // An INSERT of `rows` messages (Sql::message_insert's 7 parameters per row, one row after the
  // other), for rows a power of two up to max_insert_rows(); prepared on first use, kept.
  virtual Query& message_insert(std::size_t rows) {
    (void)rows;  // max_insert_rows() is 1
    return query(Sql::message_insert);
  }
  virtual std::size_t max_insert_rows() const { return 1; }
  // Lost its server: thrown away instead of going back to the pool.
  virtual bool broken() const { return false; }
};

// Resets a query whatever way the scope that used it ends.
class Use {
 public:
  Use(Connection& c, Sql which) : q_(c.query(which)) {}
  ~Use() { q_.reset(); }
  Use(const Use&) = delete;
  Use& operator=(const Use&) = delete;
  Query* operator->() { return &q_; }
  Query& operator*() { return q_; }

 private:
  Query& q_;
};

class Backend {
 public:
  virtual ~Backend() = default;
  // A new connection (throws StorageError, ErrorKind::unavailable when the server is away).
  virtual std::unique_ptr<Connection> connect() = 0;
  virtual std::string describe() const = 0;
  virtual int schema_version() const = 0;
  // The statement to use for a full-text query of these words, and its parameter.
  virtual std::pair<Sql, std::string> search_query(std::string_view words) const = 0;
  virtual unsigned pool_size() const = 0;
  virtual std::size_t queue_limit() const = 0;
  virtual std::size_t batch_limit() const = 0;
};

}  // namespace stanzad::storage
