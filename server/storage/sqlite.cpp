// SQLite connection, statements and migrations: see sqlite.hpp and schema/sqlite/README.md.
#include "storage/sqlite.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>

namespace stanzad::storage {

namespace {

constexpr int kBusyTimeoutMs = 5000;  // stanzactl and stanzad share the file; writes are short

}  // namespace

Statement::Statement(Database& db, std::string_view sql) : db_(db) {
  if (sqlite3_prepare_v3(db.handle(), sql.data(), static_cast<int>(sql.size()),
                         SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) != SQLITE_OK) {
    db.fail("cannot prepare '" + std::string(sql) + "'");
  }
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement& Statement::bind_text(int index, std::string_view text) {
  if (sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8) !=
      SQLITE_OK) {
    db_.fail("cannot bind");
  }
  return *this;
}

Statement& Statement::bind_blob(int index, std::string_view bytes) {
  // A zero-length blob must not bind as NULL: give SQLite a non-null pointer.
  const char* data = bytes.empty() ? "" : bytes.data();
  if (sqlite3_bind_blob64(stmt_, index, data, bytes.size(), SQLITE_TRANSIENT) != SQLITE_OK) {
    db_.fail("cannot bind");
  }
  return *this;
}

Statement& Statement::bind_int(int index, std::int64_t value) {
  if (sqlite3_bind_int64(stmt_, index, value) != SQLITE_OK) db_.fail("cannot bind");
  return *this;
}

bool Statement::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  db_.fail("cannot run '" + std::string(sqlite3_sql(stmt_)) + "'");
}

void Statement::run() {
  while (step()) {
  }
}

std::string Statement::column_text(int index) const {
  auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, index));
  return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, index))) : "";
}

std::string Statement::column_blob(int index) const {
  auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, index));
  return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, index))) : "";
}

std::int64_t Statement::column_int(int index) const { return sqlite3_column_int64(stmt_, index); }

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

Database::Database(const std::filesystem::path& file) : file_(file) {
  // Create the file ourselves so that it (and the -wal and -shm files SQLite derives from it)
  // is readable by the owner only: it holds SCRAM keys, enough for an offline password attack.
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    ::close(fd);
  } else if (errno != EEXIST) {
    throw StorageError(file.string() + ": cannot create: " + std::strerror(errno));
  }
  int rc =
      sqlite3_open_v2(file.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    throw StorageError(file.string() + ": cannot open: " + msg);
  }
  try {
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, kBusyTimeoutMs);
    exec("PRAGMA journal_mode = WAL");
    // FULL: an account that stanzactl reported created survives a power cut. Per-message
    // durability (group commit) is for the storage API to decide.
    exec("PRAGMA synchronous = FULL");
    exec("PRAGMA foreign_keys = ON");
  } catch (...) {
    sqlite3_close(db_);
    throw;
  }
}

Database::~Database() { sqlite3_close(db_); }

void Database::fail(std::string_view what) const {
  ErrorKind kind = ErrorKind::internal;
  switch (sqlite3_errcode(db_) & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      kind = ErrorKind::overloaded;
      break;
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
      kind = ErrorKind::unavailable;
      break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      kind = ErrorKind::schema;
      break;
    default:
      break;
  }
  throw StorageError(file_.string() + ": " + std::string(what) + ": " + sqlite3_errmsg(db_), kind);
}

void Database::exec(std::string_view sql) {
  std::string text(sql);  // sqlite3_exec wants a terminated string
  char* error = nullptr;
  if (sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    std::string msg = error ? error : sqlite3_errmsg(db_);
    sqlite3_free(error);
    throw StorageError(file_.string() + ": " + msg);
  }
}

int Database::changes() const { return sqlite3_changes(db_); }

int Database::migrate(std::span<const Migration> migrations) {
  const int known = migrations.empty() ? 0 : migrations.back().version;
  // IMMEDIATE takes the write lock now, so two processes opening a fresh file at once do not
  // both try to apply the same migration.
  exec("BEGIN IMMEDIATE");
  try {
    exec(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY,"
        " name TEXT NOT NULL,"
        " applied_at INTEGER NOT NULL)");
    int current = 0;
    {
      Statement q(*this, "SELECT COALESCE(MAX(version), 0) FROM schema_version");
      if (q.step()) current = static_cast<int>(q.column_int(0));
    }
    if (current > known) {
      throw StorageError(file_.string() + ": database schema version " + std::to_string(current) +
                             " is newer than this stanzad (knows " + std::to_string(known) +
                             "); upgrade stanzad",
                         ErrorKind::schema);
    }
    auto now = std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
    for (const Migration& m : migrations) {
      if (m.version <= current) continue;
      try {
        exec(m.sql);
      } catch (const StorageError& e) {
        throw StorageError(std::string(e.what()) + " (in migration " + std::string(m.name) + ")");
      }
      Statement record(*this,
                       "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)");
      record.bind_int(1, m.version).bind_text(2, m.name).bind_int(3, now).run();
      current = m.version;
    }
    exec("COMMIT");
    return current;
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

}  // namespace stanzad::storage
