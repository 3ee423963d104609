// The SQLite backend: one file, WAL, the writer's connection plus a pool of readers.
#include "storage/sqlite_backend.hpp"

#include <sqlite3.h>

#include <array>
#include <cerrno>
#include <optional>
#include <system_error>

#include "storage/sqlite.hpp"

namespace stanzad::storage {

std::string_view sqlite_sql(Sql s) {
  switch (s) {
    case Sql::account_insert:
      return "INSERT INTO accounts (host, username, created_at,"
             " sha1_salt, sha1_iterations, sha1_stored_key, sha1_server_key,"
             " sha256_salt, sha256_iterations, sha256_stored_key, sha256_server_key)"
             " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (host, username) DO NOTHING";
    case Sql::account_replace:
      return "INSERT OR REPLACE INTO accounts (host, username, created_at,"
             " sha1_salt, sha1_iterations, sha1_stored_key, sha1_server_key,"
             " sha256_salt, sha256_iterations, sha256_stored_key, sha256_server_key)"
             " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    case Sql::account_update:
      return "UPDATE accounts SET"
             " sha1_salt = ?, sha1_iterations = ?, sha1_stored_key = ?, sha1_server_key = ?,"
             " sha256_salt = ?, sha256_iterations = ?, sha256_stored_key = ?,"
             " sha256_server_key = ? WHERE host = ? AND username = ?";
    case Sql::account_delete:
      return "DELETE FROM accounts WHERE host = ? AND username = ?";
    case Sql::account_exists:
      return "SELECT 1 FROM accounts WHERE host = ? AND username = ?";
    case Sql::account_sha1:
      return "SELECT sha1_salt, sha1_iterations, sha1_stored_key, sha1_server_key"
             " FROM accounts WHERE host = ? AND username = ?";
    case Sql::account_sha256:
      return "SELECT sha256_salt, sha256_iterations, sha256_stored_key, sha256_server_key"
             " FROM accounts WHERE host = ? AND username = ?";
    case Sql::account_all:
      return "SELECT username, host FROM accounts";
    case Sql::account_by_host:
      return "SELECT username, host FROM accounts WHERE host = ?";
    case Sql::kv_get:
      return "SELECT doc_value FROM kv WHERE host = ? AND username = ? AND store = ? AND doc_key = "
             "?";
    case Sql::kv_put:
      return "INSERT INTO kv (host, username, store, doc_key, doc_value, updated_at)"
             " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (host, username, store, doc_key)"
             " DO UPDATE SET doc_value = excluded.doc_value, updated_at = excluded.updated_at";
    case Sql::kv_delete:
      return "DELETE FROM kv WHERE host = ? AND username = ? AND store = ? AND doc_key = ?";
    case Sql::kv_store:
      return "SELECT doc_key, doc_value FROM kv WHERE host = ? AND username = ? AND store = ?"
             " ORDER BY doc_key";
    case Sql::kv_user:
      return "SELECT store, doc_key, doc_value FROM kv WHERE host = ? AND username = ?"
             " ORDER BY store, doc_key";
    case Sql::kv_delete_user:
      return "DELETE FROM kv WHERE host = ? AND username = ?";
    case Sql::conversation_insert:
      return "INSERT INTO conversations (kind, name, created_at) VALUES (?, ?, ?)"
             " ON CONFLICT (kind, name) DO NOTHING";
    case Sql::conversation_find:
      return "SELECT id FROM conversations WHERE kind = ? AND name = ?";
    case Sql::conversation_bump:
      return "UPDATE conversations SET last_seq = last_seq + ? WHERE id = ? RETURNING last_seq";
    case Sql::conversation_last:
      return "SELECT last_seq FROM conversations WHERE id = ?";
    case Sql::participant_put:
      return "INSERT INTO participants (conversation_id, jid, role, joined_at) VALUES (?, ?, ?, ?)"
             " ON CONFLICT (conversation_id, jid) DO UPDATE SET role = excluded.role";
    case Sql::participant_delete:
      return "DELETE FROM participants WHERE conversation_id = ? AND jid = ?";
    case Sql::participant_list:
      return "SELECT jid, role FROM participants WHERE conversation_id = ? ORDER BY jid";
    case Sql::message_insert:
      return "INSERT INTO messages (conversation_id, seq, ts, sender, stanza_id, body, payload)"
             " VALUES (?, ?, ?, ?, ?, ?, ?)";
    case Sql::history_latest:
      return "SELECT seq, ts, sender, stanza_id, body, payload FROM messages"
             " WHERE conversation_id = ? ORDER BY seq DESC LIMIT ?";
    case Sql::history_before:
      return "SELECT seq, ts, sender, stanza_id, body, payload FROM messages"
             " WHERE conversation_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?";
    case Sql::history_after:
      return "SELECT seq, ts, sender, stanza_id, body, payload FROM messages"
             " WHERE conversation_id = ? AND seq > ? ORDER BY seq ASC LIMIT ?";
    case Sql::search_words:
    case Sql::search_like:
      return "SELECT seq, ts, sender, stanza_id, body, payload FROM messages"
             " WHERE conversation_id = ? AND id IN"
             " (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?)"
             " ORDER BY seq DESC LIMIT ?";
    case Sql::status_put:
      return "INSERT INTO message_status (conversation_id, seq, recipient, status, updated_at)"
             " VALUES (?, ?, ?, ?, ?) ON CONFLICT (conversation_id, seq, recipient)"
             " DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at"
             " WHERE excluded.status > message_status.status";
    case Sql::status_list:
      return "SELECT recipient, status, updated_at FROM message_status"
             " WHERE conversation_id = ? AND seq = ? ORDER BY recipient";
    case Sql::offline_insert:
      return "INSERT INTO offline (host, username, created_at, stanza) VALUES (?, ?, ?, ?)";
    case Sql::offline_list:
      return "SELECT id, created_at, stanza FROM offline WHERE host = ? AND username = ?"
             " ORDER BY id";
    case Sql::offline_delete_upto:
      return "DELETE FROM offline WHERE host = ? AND username = ? AND id <= ?";
    case Sql::offline_count:
      return "SELECT COUNT(*) FROM offline WHERE host = ? AND username = ?";
    case Sql::offline_delete_user:
      return "DELETE FROM offline WHERE host = ? AND username = ?";
    case Sql::media_put:
      return "INSERT OR REPLACE INTO media"
             " (id, owner, filename, size, content_type, created_at, path)"
             " VALUES (?, ?, ?, ?, ?, ?, ?)";
    case Sql::media_get:
      return "SELECT id, owner, filename, size, content_type, created_at, path FROM media"
             " WHERE id = ?";
    case Sql::media_delete:
      return "DELETE FROM media WHERE id = ?";
    case Sql::media_owner:
      return "SELECT id, owner, filename, size, content_type, created_at, path FROM media"
             " WHERE owner = ? ORDER BY created_at, id";
    case Sql::conversation_all:
      return "SELECT id, kind, name, last_seq FROM conversations ORDER BY id";
    case Sql::status_conversation:
      return "SELECT seq, recipient, status, updated_at FROM message_status"
             " WHERE conversation_id = ? ORDER BY seq, recipient";
    case Sql::media_all:
      return "SELECT id, owner, filename, size, content_type, created_at, path FROM media"
             " ORDER BY id";
    case Sql::count_:
      break;
  }
  return "";
}

namespace {

class SqliteQuery final : public Query {
 public:
  SqliteQuery(Database& db, std::string_view sql) : db_(db), s_(db, sql) {}
  Query& text(int i, std::string_view v) override {
    s_.bind_text(i, v);
    return *this;
  }
  Query& blob(int i, std::string_view v) override {
    s_.bind_blob(i, v);
    return *this;
  }
  Query& integer(int i, std::int64_t v) override {
    s_.bind_int(i, v);
    return *this;
  }
  bool next() override { return s_.step(); }
  std::int64_t run() override {
    s_.run();
    return db_.changes();
  }
  std::string text(int c) override { return s_.column_text(c); }
  std::string blob(int c) override { return s_.column_blob(c); }
  std::int64_t integer(int c) override { return s_.column_int(c); }
  void reset() override { s_.reset(); }

 private:
  Database& db_;
  Statement s_;
};

class SqliteConnection final : public Connection {
 public:
  SqliteConnection(const std::filesystem::path& file, bool synchronous_full) : db_(file) {
    if (!synchronous_full) db_.exec("PRAGMA synchronous = NORMAL");
    db_.exec("PRAGMA cache_size = -16384");  // 16 MiB per connection
  }
  Query& query(Sql which) override {
    auto& q = queries_[static_cast<std::size_t>(which)];
    if (!q) q = std::make_unique<SqliteQuery>(db_, sqlite_sql(which));
    return *q;
  }
  // IMMEDIATE: take the write lock now, so a concurrent stanzactl waits instead of failing
  // its transaction half-way with SQLITE_BUSY. Then note the newest message id: every message
  // this transaction inserts gets a larger one (INTEGER PRIMARY KEY takes the largest + 1, and
  // no one else writes while we hold the lock), which is what commit() indexes.
  void begin() override {
    db_.exec("BEGIN IMMEDIATE");
    if (!newest_) newest_.emplace(db_, "SELECT COALESCE(MAX(id), 0) FROM messages");
    StatementUse use(*newest_);
    indexed_ = newest_->step() ? newest_->column_int(0) : 0;
  }
  // The full-text index of the transaction's messages, in one statement (schema 0003): one
  // virtual-table statement per transaction instead of one per message (a trigger), which
  // was 70% of the CPU time of archiving a message.
  void commit() override {
    if (!index_) {
      index_.emplace(db_,
                     "INSERT INTO messages_fts (rowid, body) SELECT id, body FROM messages"
                     " WHERE id > ? ORDER BY id");
    }
    {
      StatementUse use(*index_);
      index_->bind_int(1, indexed_).run();
    }
    db_.exec("COMMIT");
  }
  void rollback() noexcept override {
    sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
  }
  std::int64_t last_insert_id() override { return sqlite3_last_insert_rowid(db_.handle()); }
  bool bump_returns_seq() const override { return true; }

 private:
  Database db_;
  std::array<std::unique_ptr<SqliteQuery>, static_cast<std::size_t>(Sql::count_)> queries_;
  std::optional<Statement> newest_, index_;
  std::int64_t indexed_ = 0;  // the newest message id when the transaction began
};

std::filesystem::path prepare(const std::filesystem::path& file) {
  std::error_code ec;
  auto dir = file.parent_path();
  if (!dir.empty() && std::filesystem::create_directories(dir, ec)) {
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all, ec);
  }
  if (ec) throw StorageError(dir.string() + ": cannot create data directory: " + ec.message());
  return file;
}

}  // namespace

SqliteBackend::SqliteBackend(const std::filesystem::path& file, const Options& options)
    : file_(prepare(file)), options_(options) {
  // Memory statistics take a global mutex on every allocation; nothing here reads them.
  // Fails harmlessly (SQLITE_MISUSE) once SQLite is already initialized.
  static const int configured = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  (void)configured;
  Database db(file_);
  version_ = db.migrate(sqlite_migrations());
}

std::unique_ptr<Connection> SqliteBackend::connect() {
  return std::make_unique<SqliteConnection>(file_, options_.synchronous_full);
}

std::string SqliteBackend::describe() const { return "sqlite " + file_.string(); }

namespace {

// A code point that FTS5's unicode61 tokenizer treats as a separator, for the ranges that
// matter in chat: ASCII punctuation and spaces, Latin-1 punctuation, general punctuation
// (’ “ … –), CJK punctuation. Others are taken as part of a word.
bool separator(char32_t c) {
  if (c < 0x80) return !std::isalnum(static_cast<unsigned char>(c));
  return (c >= 0xA0 && c <= 0xBF) || c == 0xD7 || c == 0xF7 || (c >= 0x2000 && c <= 0x206F) ||
         (c >= 0x3000 && c <= 0x303F) || (c >= 0xFE30 && c <= 0xFE4F) ||
         (c >= 0xFF00 && c <= 0xFF0F);
}

}  // namespace

// FTS5: the words split as the tokenizer splits them, each as a quoted one-token string (so
// that no input is query syntax, and no phrase query reaches an index without positions),
// all required.
std::pair<Sql, std::string> SqliteBackend::search_query(std::string_view words) const {
  std::string out, token;
  auto flush = [&] {
    if (token.empty()) return;
    if (!out.empty()) out += ' ';
    out += '"' + token + '"';  // a token holds no '"': it is a separator
    token.clear();
  };
  for (std::size_t i = 0; i < words.size();) {
    auto b = static_cast<unsigned char>(words[i]);
    std::size_t len = b < 0x80           ? 1
                      : (b >> 5) == 0x6  ? 2
                      : (b >> 4) == 0xE  ? 3
                      : (b >> 3) == 0x1E ? 4
                                         : 1;
    if (i + len > words.size()) len = 1;
    char32_t c = len == 1 ? b : b & (0x7F >> len);
    for (std::size_t k = 1; k < len; ++k)
      c = (c << 6) | (static_cast<unsigned char>(words[i + k]) & 0x3F);
    if (separator(c)) {
      flush();
    } else {
      token.append(words.substr(i, len));
    }
    i += len;
  }
  flush();
  return {Sql::search_words, out};
}

}  // namespace stanzad::storage
