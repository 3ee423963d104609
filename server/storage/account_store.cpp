// Accounts and SCRAM keys in SQLite (schema/sqlite/0001_accounts.sql); see account_store.hpp.
#include "storage/account_store.hpp"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <system_error>

#include "storage/sqlite.hpp"

namespace stanzad::storage {

namespace {

namespace sasl = xmpp::sasl;

constexpr std::size_t kSaltBytes = 16;

std::filesystem::path prepare_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  if (std::filesystem::create_directories(dir, ec)) {
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all, ec);
  }
  if (ec) throw StorageError(dir.string() + ": cannot create data directory: " + ec.message());
  return dir / "stanzad.sqlite";
}

struct KeyPair {
  sasl::ScramCredentials sha1, sha256;
};

// PBKDF2 is the slow part: it runs before the lock is taken.
KeyPair derive(std::string_view password, std::uint32_t iterations) {
  if (iterations == 0) throw std::invalid_argument("SCRAM iteration count must be at least 1");
  return {sasl::derive_credentials(sasl::Hash::sha1, password, sasl::random_bytes(kSaltBytes),
                                   iterations),
          sasl::derive_credentials(sasl::Hash::sha256, password, sasl::random_bytes(kSaltBytes),
                                   iterations)};
}

void bind_keys(Statement& s, int first, const KeyPair& keys) {
  int i = first;
  for (const auto* c : {&keys.sha1, &keys.sha256}) {
    s.bind_blob(i, c->salt).bind_int(i + 1, c->iterations);
    s.bind_blob(i + 2, c->stored_key).bind_blob(i + 3, c->server_key);
    i += 4;
  }
}

}  // namespace

struct AccountStore::Impl {
  explicit Impl(const std::filesystem::path& data_dir)
      : db(prepare_dir(data_dir)),
        version(db.migrate(sqlite_migrations())),
        insert(db,
               "INSERT INTO accounts (host, username, created_at,"
               " sha1_salt, sha1_iterations, sha1_stored_key, sha1_server_key,"
               " sha256_salt, sha256_iterations, sha256_stored_key, sha256_server_key)"
               " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
               " ON CONFLICT (host, username) DO NOTHING"),
        update(
            db,
            "UPDATE accounts SET"
            " sha1_salt = ?, sha1_iterations = ?, sha1_stored_key = ?, sha1_server_key = ?,"
            " sha256_salt = ?, sha256_iterations = ?, sha256_stored_key = ?, sha256_server_key = ?"
            " WHERE host = ? AND username = ?"),
        erase(db, "DELETE FROM accounts WHERE host = ? AND username = ?"),
        find(db, "SELECT 1 FROM accounts WHERE host = ? AND username = ?"),
        sha1(db,
             "SELECT sha1_salt, sha1_iterations, sha1_stored_key, sha1_server_key"
             " FROM accounts WHERE host = ? AND username = ?"),
        sha256(db,
               "SELECT sha256_salt, sha256_iterations, sha256_stored_key, sha256_server_key"
               " FROM accounts WHERE host = ? AND username = ?"),
        all(db, "SELECT username, host FROM accounts"),
        by_host(db, "SELECT username, host FROM accounts WHERE host = ?") {}

  std::mutex mutex;  // guards everything below: one connection, one user at a time
  Database db;
  int version;
  Statement insert, update, erase, find, sha1, sha256, all, by_host;
};

AccountStore::AccountStore(const std::filesystem::path& data_dir)
    : impl_(std::make_unique<Impl>(data_dir)) {}

AccountStore::~AccountStore() = default;

const std::filesystem::path& AccountStore::file() const { return impl_->db.file(); }

AccountStore::Result AccountStore::create(std::string_view host, std::string_view username,
                                          std::string_view password, std::uint32_t iterations) {
  KeyPair keys = derive(password, iterations);
  auto now = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  std::lock_guard lock(impl_->mutex);
  Statement& s = impl_->insert;
  StatementUse use(s);
  s.bind_text(1, host).bind_text(2, username).bind_int(3, now);
  bind_keys(s, 4, keys);
  s.run();
  return impl_->db.changes() == 0 ? Result::exists : Result::ok;
}

AccountStore::Result AccountStore::set_password(std::string_view host, std::string_view username,
                                                std::string_view password,
                                                std::uint32_t iterations) {
  KeyPair keys = derive(password, iterations);
  std::lock_guard lock(impl_->mutex);
  Statement& s = impl_->update;
  StatementUse use(s);
  bind_keys(s, 1, keys);
  s.bind_text(9, host).bind_text(10, username);
  s.run();
  return impl_->db.changes() == 0 ? Result::not_found : Result::ok;
}

AccountStore::Result AccountStore::remove(std::string_view host, std::string_view username) {
  std::lock_guard lock(impl_->mutex);
  Statement& s = impl_->erase;
  StatementUse use(s);
  s.bind_text(1, host).bind_text(2, username);
  s.run();
  return impl_->db.changes() == 0 ? Result::not_found : Result::ok;
}

bool AccountStore::exists(std::string_view host, std::string_view username) {
  std::lock_guard lock(impl_->mutex);
  Statement& s = impl_->find;
  StatementUse use(s);
  s.bind_text(1, host).bind_text(2, username);
  return s.step();
}

std::optional<sasl::ScramCredentials> AccountStore::credentials(std::string_view host,
                                                                std::string_view username,
                                                                sasl::Hash hash) {
  std::lock_guard lock(impl_->mutex);
  Statement& s = hash == sasl::Hash::sha1 ? impl_->sha1 : impl_->sha256;
  StatementUse use(s);
  s.bind_text(1, host).bind_text(2, username);
  if (!s.step()) return std::nullopt;
  return sasl::ScramCredentials{hash, s.column_blob(0), static_cast<std::uint32_t>(s.column_int(1)),
                                s.column_blob(2), s.column_blob(3)};
}

std::vector<std::string> AccountStore::list(std::string_view host) {
  std::vector<std::string> jids;
  {
    std::lock_guard lock(impl_->mutex);
    Statement& s = host.empty() ? impl_->all : impl_->by_host;
    StatementUse use(s);
    if (!host.empty()) s.bind_text(1, host);
    while (s.step()) jids.push_back(s.column_text(0) + "@" + s.column_text(1));
  }
  std::sort(jids.begin(), jids.end());
  return jids;
}

}  // namespace stanzad::storage
