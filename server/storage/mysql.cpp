// MySQL/MariaDB through Connector/C++ 1.1; see mysql.hpp and schema/mysql/README.md.
#include "storage/mysql.hpp"

#include <cppconn/driver.h>
#include <cppconn/exception.h>
#include <cppconn/prepared_statement.h>
#include <cppconn/resultset.h>
#include <cppconn/statement.h>
#include <mysql_connection.h>
#include <mysql_driver.h>

#include <array>
#include <bit>
#include <chrono>
#include <mutex>
#include <sstream>
#include <vector>

#include "storage/migrations.hpp"
#include "storage/sqlite_backend.hpp"

namespace stanzad::storage {

namespace {

std::string_view mysql_sql(Sql s) {
  switch (s) {
    case Sql::account_insert:
      return "INSERT IGNORE INTO accounts (host, username, created_at,"
             " sha1_salt, sha1_iterations, sha1_stored_key, sha1_server_key,"
             " sha256_salt, sha256_iterations, sha256_stored_key, sha256_server_key)"
             " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    case Sql::account_replace:
      return "REPLACE INTO accounts (host, username, created_at,"
             " sha1_salt, sha1_iterations, sha1_stored_key, sha1_server_key,"
             " sha256_salt, sha256_iterations, sha256_stored_key, sha256_server_key)"
             " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    case Sql::kv_put:
      return "INSERT INTO kv (host, username, store, doc_key, doc_value, updated_at)"
             " VALUES (?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE"
             " doc_value = VALUES(doc_value), updated_at = VALUES(updated_at)";
    case Sql::conversation_insert:
      return "INSERT IGNORE INTO conversations (kind, name, created_at) VALUES (?, ?, ?)";
    case Sql::conversation_bump:
      return "UPDATE conversations SET last_seq = last_seq + ? WHERE id = ?";
    case Sql::participant_put:
      return "INSERT INTO participants (conversation_id, jid, role, joined_at) VALUES (?, ?, ?, ?)"
             " ON DUPLICATE KEY UPDATE role = VALUES(role)";
    case Sql::search_words:
      return "SELECT seq, ts, sender, stanza_id, body, payload FROM messages"
             " WHERE conversation_id = ? AND MATCH (body) AGAINST (? IN BOOLEAN MODE)"
             " ORDER BY seq DESC LIMIT ?";
    case Sql::search_like:
      return "SELECT seq, ts, sender, stanza_id, body, payload FROM messages"
             " WHERE conversation_id = ? AND body LIKE ? ORDER BY seq DESC LIMIT ?";
    case Sql::status_put:
      // Assignments run left to right: updated_at compares against the old status.
      return "INSERT INTO message_status (conversation_id, seq, recipient, status, updated_at)"
             " VALUES (?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE"
             " updated_at = IF(VALUES(status) > status, VALUES(updated_at), updated_at),"
             " status = GREATEST(status, VALUES(status))";
    case Sql::media_put:
      return "REPLACE INTO media (id, owner, filename, size, content_type, created_at, path)"
             " VALUES (?, ?, ?, ?, ?, ?, ?)";
    default:
      return sqlite_sql(s);
  }
}

// Client-side errors (2xxx: cannot connect, server gone away, lost connection) and the server
// shutting down or killing the connection: the connection is gone and the database
// unavailable. Lock timeouts and deadlocks are transient: overloaded.
ErrorKind classify(const sql::SQLException& e, bool& broken) {
  int code = e.getErrorCode();
  const std::string& state = e.getSQLState();
  broken = code == 0 || (code >= 2000 && code < 3000) || code == 1053 || code == 1927 ||
           code == 1152 || code == 1156 || code == 1158 || code == 1159 || code == 1160 ||
           code == 1161 || code == 4031 || state.rfind("08", 0) == 0;
  if (broken) return ErrorKind::unavailable;
  if (code == 1040 || code == 1203 || code == 1205 || code == 1213) return ErrorKind::overloaded;
  return ErrorKind::internal;
}

sql::mysql::MySQL_Driver* driver() {
  // get_driver_instance() is not thread-safe the first time.
  static std::once_flag once;
  static sql::mysql::MySQL_Driver* d = nullptr;
  std::call_once(once, [] { d = sql::mysql::get_mysql_driver_instance(); });
  return d;
}

class MysqlConnection;

class MysqlQuery final : public Query {
 public:
  MysqlQuery(MysqlConnection& c, sql::PreparedStatement* ps) : conn_(c), ps_(ps) {}
  Query& text(int i, std::string_view v) override;
  Query& blob(int i, std::string_view v) override;
  Query& integer(int i, std::int64_t v) override;
  bool next() override;
  std::int64_t run() override;
  std::string text(int c) override;
  std::string blob(int c) override { return text(c); }
  std::int64_t integer(int c) override;
  void reset() override;

 private:
  MysqlConnection& conn_;
  std::unique_ptr<sql::PreparedStatement> ps_;
  std::unique_ptr<sql::ResultSet> rs_;
  std::vector<std::unique_ptr<std::istringstream>> blobs_;  // live until execution
};

class MysqlConnection final : public Connection {
 public:
  MysqlConnection(std::unique_ptr<sql::Connection> c, std::string where)
      : c_(std::move(c)), where_(std::move(where)) {}

  // Runs f, turning Connector exceptions into StorageError and noting a lost connection.
  template <class F>
  auto guard(F f) -> decltype(f()) {
    try {
      return f();
    } catch (const sql::SQLException& e) {
      bool lost = false;
      ErrorKind kind = classify(e, lost);
      if (lost) broken_ = true;
      throw StorageError(
          where_ + ": " + e.what() + " (error " + std::to_string(e.getErrorCode()) + ")", kind);
    }
  }

  Query& query(Sql which) override {
    auto& q = queries_[static_cast<std::size_t>(which)];
    if (!q) q = prepare(std::string(mysql_sql(which)));
    return *q;
  }
  // Multi-row INSERTs: one round trip for up to kMaxInsertRows archived messages instead of one
  // each (their blobs go ahead as long data, so the statement itself stays small).
  Query& message_insert(std::size_t rows) override {
    if (rows <= 1) return query(Sql::message_insert);
    auto& q = inserts_.at(static_cast<std::size_t>(std::countr_zero(rows)));
    if (!q) {
      std::string text(mysql_sql(Sql::message_insert));
      std::string values = text.substr(text.rfind(" ("));  // " (?, ?, ?, ?, ?, ?, ?)"
      for (std::size_t r = 1; r < rows; ++r) text += "," + values;
      q = prepare(text);
    }
    return *q;
  }
  std::size_t max_insert_rows() const override { return kMaxInsertRows; }
  // Transaction control goes through plain statements: Connector/C++ 1.1's commit(), rollback()
  // and setAutoCommit() drop the client library's return code, so a COMMIT that failed because
  // the server died looked like one that succeeded (an acknowledged write lost; found by the
  // fault test). Statement::execute throws. The session stays in autocommit mode between them.
  void begin() override { control("START TRANSACTION"); }
  void commit() override { control("COMMIT"); }
  void rollback() noexcept override {
    try {
      control("ROLLBACK");
    } catch (const StorageError&) {
      broken_ = true;  // could not even roll back: start afresh
    }
  }
  std::int64_t last_insert_id() override {
    return guard([&] {
      std::unique_ptr<sql::Statement> s(c_->createStatement());
      std::unique_ptr<sql::ResultSet> rs(s->executeQuery("SELECT LAST_INSERT_ID()"));
      return rs->next() ? static_cast<std::int64_t>(rs->getInt64(1)) : std::int64_t{0};
    });
  }
  bool broken() const override { return broken_; }

  void exec(const std::string& text) {
    guard([&] {
      std::unique_ptr<sql::Statement> s(c_->createStatement());
      s->execute(text);
    });
  }
  void control(const char* text) {
    guard([&] {
      if (!control_) control_.reset(c_->createStatement());
      control_->execute(text);
    });
  }
  sql::Connection& raw() { return *c_; }
  static constexpr std::size_t kMaxInsertRows = 32;
  const std::string& where() const { return where_; }

 private:
  std::unique_ptr<sql::Connection> c_;
  std::string where_;
  bool broken_ = false;
  std::unique_ptr<sql::Statement> control_;
  std::array<std::unique_ptr<MysqlQuery>, static_cast<std::size_t>(Sql::count_)> queries_;
  std::array<std::unique_ptr<MysqlQuery>, std::bit_width(kMaxInsertRows)> inserts_;  // by log2

  std::unique_ptr<MysqlQuery> prepare(const std::string& text) {
    return guard([&] {
      return std::make_unique<MysqlQuery>(*this, c_->prepareStatement(sql::SQLString(text)));
    });
  }
};

Query& MysqlQuery::text(int i, std::string_view v) {
  conn_.guard([&] { ps_->setString(i, sql::SQLString(std::string(v))); });
  return *this;
}
Query& MysqlQuery::blob(int i, std::string_view v) {
  blobs_.push_back(std::make_unique<std::istringstream>(std::string(v)));
  conn_.guard([&] { ps_->setBlob(i, blobs_.back().get()); });
  return *this;
}
Query& MysqlQuery::integer(int i, std::int64_t v) {
  conn_.guard([&] { ps_->setInt64(i, v); });
  return *this;
}
bool MysqlQuery::next() {
  return conn_.guard([&] {
    if (!rs_) rs_.reset(ps_->executeQuery());
    return rs_->next();
  });
}
std::int64_t MysqlQuery::run() {
  return conn_.guard([&] { return static_cast<std::int64_t>(ps_->executeUpdate()); });
}
std::string MysqlQuery::text(int c) {
  return conn_.guard([&] { return rs_->getString(c + 1).asStdString(); });
}
std::int64_t MysqlQuery::integer(int c) {
  return conn_.guard([&] { return static_cast<std::int64_t>(rs_->getInt64(c + 1)); });
}
void MysqlQuery::reset() {
  try {
    rs_.reset();
    ps_->clearParameters();
  } catch (const sql::SQLException&) {
  }
  blobs_.clear();
}

std::vector<std::string> split_statements(std::string_view sql) {
  std::vector<std::string> out;
  std::string current;
  std::istringstream in{std::string(sql)};
  for (std::string line; std::getline(in, line);) {
    auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line.compare(first, 2, "--") == 0) continue;
    current += line;
    current += '\n';
    auto last = line.find_last_not_of(" \t\r");
    if (line[last] == ';') {
      current.erase(current.find_last_of(';'));
      out.push_back(std::move(current));
      current.clear();
    }
  }
  if (current.find_first_not_of(" \t\r\n") != std::string::npos) out.push_back(current);
  return out;
}

std::unique_ptr<MysqlConnection> open_connection(const MysqlBackend::Options& o,
                                                 const std::string& where, bool with_schema) {
  sql::ConnectOptionsMap opts;
  if (!o.socket.empty()) {
    opts["hostName"] = sql::SQLString("unix://" + o.socket.string());
  } else {
    opts["hostName"] = sql::SQLString("tcp://" + o.host + ":" + std::to_string(o.port));
  }
  opts["userName"] = sql::SQLString(o.user);
  opts["password"] = sql::SQLString(o.password);
  if (with_schema) opts["schema"] = sql::SQLString(o.database);
  opts["OPT_CONNECT_TIMEOUT"] = static_cast<int>(o.connect_timeout.count());
  opts["OPT_READ_TIMEOUT"] = static_cast<int>(o.timeout.count());
  opts["OPT_WRITE_TIMEOUT"] = static_cast<int>(o.timeout.count());
  opts["OPT_RECONNECT"] = false;  // a silent reconnect would lose the transaction's state
  opts["OPT_CHARSET_NAME"] = sql::SQLString("utf8mb4");
  try {
    std::unique_ptr<sql::Connection> c(driver()->connect(opts));
    auto conn = std::make_unique<MysqlConnection>(std::move(c), where);
    // Strict: refuse rather than truncate. READ COMMITTED: readers see every commit at once.
    conn->exec("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'");
    conn->exec("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED");
    return conn;
  } catch (const sql::SQLException& e) {
    bool lost = false;
    ErrorKind kind = classify(e, lost);
    if (e.getErrorCode() == 1045) kind = ErrorKind::internal;  // access denied: configuration
    throw StorageError(where + ": cannot connect: " + e.what() + " (error " +
                           std::to_string(e.getErrorCode()) + ")",
                       lost ? ErrorKind::unavailable : kind);
  }
}

}  // namespace

MysqlBackend::MysqlBackend(Options options) : options_(std::move(options)) {
  const std::string where = describe();
  std::unique_ptr<MysqlConnection> conn;
  try {
    conn = open_connection(options_, where, true);
  } catch (const StorageError& e) {
    if (std::string_view(e.what()).find("(error 1049)") == std::string_view::npos) throw;
    // Unknown database: create it, if this user may.
    auto bare = open_connection(options_, where, false);
    bare->exec("CREATE DATABASE IF NOT EXISTS `" + options_.database +
               "` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci");
    conn = open_connection(options_, where, true);
  }

  // Several nodes may start at once: one migrates, the others wait, then find nothing to do.
  conn->exec("DO GET_LOCK('stanzad_migrate', 60)");
  try {
    conn->exec(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INT NOT NULL PRIMARY KEY,"
        " name VARCHAR(255) NOT NULL,"
        " applied_at BIGINT NOT NULL) ENGINE = InnoDB");
    int current = 0;
    conn->guard([&] {
      std::unique_ptr<sql::Statement> s(conn->raw().createStatement());
      std::unique_ptr<sql::ResultSet> rs(
          s->executeQuery("SELECT COALESCE(MAX(version), 0) FROM schema_version"));
      if (rs->next()) current = rs->getInt(1);
    });
    auto migrations = mysql_migrations();
    const int known = migrations.empty() ? 0 : migrations.back().version;
    if (current > known) {
      throw StorageError(where + ": database schema version " + std::to_string(current) +
                             " is newer than this stanzad (knows " + std::to_string(known) +
                             "); upgrade stanzad",
                         ErrorKind::schema);
    }
    auto now = std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
    for (const Migration& m : migrations) {
      if (m.version <= current) continue;
      for (const auto& statement : split_statements(m.sql)) {
        try {
          conn->exec(statement);
        } catch (const StorageError& e) {
          throw StorageError(std::string(e.what()) + " (in migration " + std::string(m.name) +
                                 "; MySQL cannot roll DDL back: repair by hand)",
                             ErrorKind::schema);
        }
      }
      conn->guard([&] {
        std::unique_ptr<sql::PreparedStatement> record(conn->raw().prepareStatement(
            "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)"));
        record->setInt(1, m.version);
        record->setString(2, std::string(m.name));
        record->setInt64(3, now);
        record->executeUpdate();
      });
      current = m.version;
    }
    version_ = current;
  } catch (...) {
    try {
      conn->exec("DO RELEASE_LOCK('stanzad_migrate')");
    } catch (...) {
    }
    throw;
  }
  conn->exec("DO RELEASE_LOCK('stanzad_migrate')");
}

std::unique_ptr<Connection> MysqlBackend::connect() {
  return open_connection(options_, describe(), true);
}

std::string MysqlBackend::describe() const {
  std::string at = options_.socket.empty() ? options_.host + ":" + std::to_string(options_.port)
                                           : options_.socket.string();
  return "mysql " + options_.user + "@" + at + "/" + options_.database;
}

// InnoDB FULLTEXT indexes words of 3 or more characters (innodb_ft_min_token_size) and skips
// stop words; a shorter word is found with LIKE instead (a scan of the conversation).
std::pair<Sql, std::string> MysqlBackend::search_query(std::string_view words) const {
  std::vector<std::string> list;
  std::size_t i = 0;
  bool short_word = false;
  while (i < words.size()) {
    while (i < words.size() && std::isspace(static_cast<unsigned char>(words[i]))) ++i;
    std::size_t start = i;
    while (i < words.size() && !std::isspace(static_cast<unsigned char>(words[i]))) ++i;
    if (i == start) break;
    std::string w;
    for (char c : words.substr(start, i - start)) {
      if (c != '"') w += c;
    }
    if (w.empty()) continue;
    std::size_t chars = 0;
    for (unsigned char c : w) chars += (c & 0xC0) != 0x80;
    if (chars < 3) short_word = true;
    list.push_back(std::move(w));
  }
  if (list.empty()) return {Sql::search_words, ""};
  if (short_word) {
    std::string like = "%";
    for (std::size_t k = 0; k < list.size(); ++k) {
      if (k) like += "%";
      for (char c : list[k]) {
        if (c == '%' || c == '_' || c == '\\') like += '\\';
        like += c;
      }
    }
    return {Sql::search_like, like + "%"};
  }
  std::string boolean;
  for (const auto& w : list) boolean += (boolean.empty() ? "+\"" : " +\"") + w + "\"";
  return {Sql::search_words, boolean};
}

}  // namespace stanzad::storage
