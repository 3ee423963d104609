// A thin RAII layer over one SQLite connection: pragmas, prepared statements, migrations.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

#include "storage/error.hpp"
#include "storage/migrations.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace stanzad::storage {

class Database;

// A statement prepared once and reused; not thread-safe (its Database's owner serializes use).
class Statement {
 public:
  Statement(Database& db, std::string_view sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Parameters are 1-based, as in SQLite. Bound text and blobs are copied.
  Statement& bind_text(int index, std::string_view text);
  Statement& bind_blob(int index, std::string_view bytes);
  Statement& bind_int(int index, std::int64_t value);

  bool step();  // true: a row is ready; false: done. Throws StorageError.
  void run();   // steps to the end, for statements that return no rows

  std::string column_text(int index) const;  // 0-based, as in SQLite
  std::string column_blob(int index) const;
  std::int64_t column_int(int index) const;

  void reset();  // ready for the next use; also clears bindings

 private:
  Database& db_;
  sqlite3_stmt* stmt_ = nullptr;
};

// Resets a statement when the scope that used it ends, whatever way it ends.
class StatementUse {
 public:
  explicit StatementUse(Statement& s) : s_(s) {}
  ~StatementUse() { s_.reset(); }
  StatementUse(const StatementUse&) = delete;
  StatementUse& operator=(const StatementUse&) = delete;

 private:
  Statement& s_;
};

class Database {
 public:
  // Opens (creating it 0600 if missing) with WAL, synchronous=FULL, foreign keys and a busy
  // timeout, so several processes (stanzad, stanzactl) can share the file. Throws StorageError.
  explicit Database(const std::filesystem::path& file);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Brings the schema to the newest of `migrations` in one transaction; refuses a database
  // whose version is newer than the newest migration. Returns the version now in force.
  int migrate(std::span<const Migration> migrations);

  void exec(std::string_view sql);  // one or more statements, no results
  int changes() const;              // rows changed by the last INSERT, UPDATE or DELETE

  const std::filesystem::path& file() const { return file_; }
  sqlite3* handle() const { return db_; }
  [[noreturn]] void fail(std::string_view what) const;  // throws StorageError with errmsg

 private:
  std::filesystem::path file_;
  sqlite3* db_ = nullptr;
};

}  // namespace stanzad::storage
