// Tests for server/storage/: migrations, accounts, SCRAM keys, sharing one file between stores.
#include "storage/account_store.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <string>
#include <thread>

#include "storage/migrations.hpp"
#include "storage/sqlite.hpp"

namespace stanzad::storage {
namespace {

namespace fs = std::filesystem;
using Hash = xmpp::sasl::Hash;
using Result = AccountStore::Result;

constexpr std::uint32_t kIterations = 4096;

class AccountStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "stanzad-storage-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
    dir_ = root_ / "data";
  }
  void TearDown() override { fs::remove_all(root_); }

  int schema_version() {
    Database db(dir_ / "stanzad.sqlite");
    Statement q(db, "SELECT MAX(version) FROM schema_version");
    EXPECT_TRUE(q.step());
    return static_cast<int>(q.column_int(0));
  }

  fs::path root_, dir_;
};

TEST(Migrations, AreNumberedFromOneWithoutGaps) {
  auto all = sqlite_migrations();
  ASSERT_FALSE(all.empty());
  for (std::size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].version, static_cast<int>(i + 1));
    EXPECT_FALSE(all[i].sql.empty());
  }
  EXPECT_EQ(all[0].name, "0001_accounts");
  EXPECT_NE(all[0].sql.find("CREATE TABLE accounts"), std::string_view::npos);
}

TEST_F(AccountStoreTest, CreatesDirectoryAndMigratesFromEmpty) {
  { AccountStore store(dir_); }
  EXPECT_TRUE(fs::is_directory(dir_));
  fs::path file = dir_ / "stanzad.sqlite";
  EXPECT_TRUE(fs::exists(file));
  EXPECT_EQ(fs::status(file).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(fs::status(dir_).permissions() & fs::perms::all, fs::perms::owner_all);
  EXPECT_EQ(schema_version(), sqlite_migrations().back().version);

  Database db(file);
  Statement mode(db, "PRAGMA journal_mode");
  ASSERT_TRUE(mode.step());
  EXPECT_EQ(mode.column_text(0), "wal");
}

TEST_F(AccountStoreTest, ReopeningAppliesNothingTwice) {
  { AccountStore(dir_).create("localhost", "romeo", "pw", kIterations); }
  AccountStore again(dir_);
  EXPECT_TRUE(again.exists("localhost", "romeo"));
  Database db(dir_ / "stanzad.sqlite");
  Statement q(db, "SELECT COUNT(*) FROM schema_version");
  ASSERT_TRUE(q.step());
  EXPECT_EQ(q.column_int(0), static_cast<std::int64_t>(sqlite_migrations().size()));
}

TEST_F(AccountStoreTest, MigratesAnOlderDatabase) {
  fs::create_directories(dir_);
  {
    Database db(dir_ / "stanzad.sqlite");
    EXPECT_EQ(db.migrate(sqlite_migrations().first(0)), 0);
  }
  AccountStore store(dir_);
  EXPECT_EQ(store.create("localhost", "romeo", "pw", kIterations), Result::ok);
  EXPECT_EQ(schema_version(), sqlite_migrations().back().version);
}

TEST_F(AccountStoreTest, RefusesANewerDatabase) {
  { AccountStore store(dir_); }
  {
    Database db(dir_ / "stanzad.sqlite");
    db.exec("INSERT INTO schema_version (version, name, applied_at) VALUES (7, '0007_future', 0)");
  }
  std::string known = std::to_string(sqlite_migrations().back().version);
  try {
    AccountStore store(dir_);
    FAIL() << "opened a database from the future";
  } catch (const StorageError& e) {
    EXPECT_EQ(std::string(e.what()), (dir_ / "stanzad.sqlite").string() +
                                         ": database schema version 7 is newer than this stanzad "
                                         "(knows " +
                                         known + "); upgrade stanzad");
  }
}

TEST_F(AccountStoreTest, AFailedMigrationChangesNothing) {
  fs::create_directories(dir_);
  Database db(dir_ / "stanzad.sqlite");
  const Migration broken[] = {{1, "0001_ok", "CREATE TABLE t (x INTEGER);"},
                              {2, "0002_broken", "CREATE TABLE u (x INTEGER); SELEC 1;"}};
  EXPECT_THROW(db.migrate(broken), StorageError);
  Statement q(db, "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('t', 'u', 'schema_version')");
  ASSERT_TRUE(q.step());
  EXPECT_EQ(q.column_int(0), 0);
}

TEST_F(AccountStoreTest, NotADatabase) {
  fs::create_directories(dir_);
  std::FILE* f = std::fopen((dir_ / "stanzad.sqlite").c_str(), "w");
  std::fputs("this is not an sqlite database, but it is long enough to have a header page....", f);
  std::fclose(f);
  EXPECT_THROW(AccountStore store(dir_), StorageError);
}

TEST_F(AccountStoreTest, CreateExistsDuplicate) {
  AccountStore store(dir_);
  EXPECT_FALSE(store.exists("localhost", "romeo"));
  EXPECT_EQ(store.create("localhost", "romeo", "secret", kIterations), Result::ok);
  EXPECT_TRUE(store.exists("localhost", "romeo"));
  EXPECT_FALSE(store.exists("example.org", "romeo"));
  EXPECT_FALSE(store.exists("localhost", "juliet"));
  EXPECT_EQ(store.create("localhost", "romeo", "other", kIterations), Result::exists);
  EXPECT_EQ(store.create("example.org", "romeo", "other", kIterations), Result::ok);
}

TEST_F(AccountStoreTest, CredentialsMatchDerivedKeys) {
  AccountStore store(dir_);
  ASSERT_EQ(store.create("localhost", "romeo", "correct horse", 5000), Result::ok);
  std::string salts[2];
  int i = 0;
  for (auto hash : {Hash::sha1, Hash::sha256}) {
    auto c = store.credentials("localhost", "romeo", hash);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->hash, hash);
    EXPECT_EQ(c->salt.size(), 16u);
    EXPECT_EQ(c->iterations, 5000u);
    auto expected = xmpp::sasl::derive_credentials(hash, "correct horse", c->salt, 5000);
    EXPECT_EQ(c->stored_key, expected.stored_key);
    EXPECT_EQ(c->server_key, expected.server_key);
    EXPECT_EQ(c->stored_key.size(), hash == Hash::sha1 ? 20u : 32u);
    auto wrong = xmpp::sasl::derive_credentials(hash, "wrong horse", c->salt, 5000);
    EXPECT_NE(c->stored_key, wrong.stored_key);
    salts[i++] = c->salt;
  }
  EXPECT_NE(salts[0], salts[1]);  // one salt per hash
  EXPECT_FALSE(store.credentials("localhost", "juliet", Hash::sha256));

  // Another account with the same password gets other salts, hence other keys.
  ASSERT_EQ(store.create("localhost", "juliet", "correct horse", 5000), Result::ok);
  EXPECT_NE(store.credentials("localhost", "juliet", Hash::sha256)->salt,
            store.credentials("localhost", "romeo", Hash::sha256)->salt);
}

TEST_F(AccountStoreTest, NoPasswordIsStored) {
  {
    AccountStore store(dir_);
    ASSERT_EQ(store.create("localhost", "romeo", "correct horse", kIterations), Result::ok);
    ASSERT_EQ(store.set_password("localhost", "romeo", "battery staple", kIterations), Result::ok);
  }
  for (const char* suffix : {"", "-wal"}) {
    std::FILE* f = std::fopen((dir_ / (std::string("stanzad.sqlite") + suffix)).c_str(), "rb");
    if (!f) continue;
    std::string bytes;
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) bytes.append(buf, n);
    std::fclose(f);
    EXPECT_EQ(bytes.find("correct horse"), std::string::npos) << suffix;
    EXPECT_EQ(bytes.find("battery staple"), std::string::npos) << suffix;
  }
}

TEST_F(AccountStoreTest, SetPasswordChangesKeys) {
  AccountStore store(dir_);
  EXPECT_EQ(store.set_password("localhost", "romeo", "x", kIterations), Result::not_found);
  ASSERT_EQ(store.create("localhost", "romeo", "old", kIterations), Result::ok);
  auto before = *store.credentials("localhost", "romeo", Hash::sha256);
  ASSERT_EQ(store.set_password("localhost", "romeo", "new", 8192), Result::ok);
  for (auto hash : {Hash::sha1, Hash::sha256}) {
    auto after = *store.credentials("localhost", "romeo", hash);
    EXPECT_EQ(after.iterations, 8192u);
    EXPECT_EQ(after.stored_key,
              xmpp::sasl::derive_credentials(hash, "new", after.salt, 8192).stored_key);
    EXPECT_NE(after.stored_key,
              xmpp::sasl::derive_credentials(hash, "old", after.salt, 8192).stored_key);
  }
  EXPECT_NE(store.credentials("localhost", "romeo", Hash::sha256)->salt, before.salt);
}

TEST_F(AccountStoreTest, Remove) {
  AccountStore store(dir_);
  EXPECT_EQ(store.remove("localhost", "romeo"), Result::not_found);
  ASSERT_EQ(store.create("localhost", "romeo", "pw", kIterations), Result::ok);
  ASSERT_EQ(store.create("localhost", "juliet", "pw", kIterations), Result::ok);
  EXPECT_EQ(store.remove("localhost", "romeo"), Result::ok);
  EXPECT_FALSE(store.exists("localhost", "romeo"));
  EXPECT_FALSE(store.credentials("localhost", "romeo", Hash::sha1));
  EXPECT_TRUE(store.exists("localhost", "juliet"));
  EXPECT_EQ(store.remove("localhost", "romeo"), Result::not_found);
  EXPECT_EQ(store.create("localhost", "romeo", "pw", kIterations), Result::ok);
}

TEST_F(AccountStoreTest, ListIsSortedAndFiltersByHost) {
  AccountStore store(dir_);
  EXPECT_TRUE(store.list().empty());
  for (auto [user, host] : {std::pair{"romeo", "localhost"},
                            {"juliet", "localhost"},
                            {"benvolio", "example.org"},
                            {"a", "z.example"}}) {
    ASSERT_EQ(store.create(host, user, "pw", kIterations), Result::ok);
  }
  EXPECT_EQ(store.list(), (std::vector<std::string>{"a@z.example", "benvolio@example.org",
                                                    "juliet@localhost", "romeo@localhost"}));
  EXPECT_EQ(store.list("localhost"),
            (std::vector<std::string>{"juliet@localhost", "romeo@localhost"}));
  EXPECT_TRUE(store.list("nowhere.example").empty());
}

TEST_F(AccountStoreTest, ZeroIterationsIsRefused) {
  AccountStore store(dir_);
  EXPECT_THROW(store.create("localhost", "romeo", "pw", 0), std::invalid_argument);
  EXPECT_FALSE(store.exists("localhost", "romeo"));
}

// The server and stanzactl each open the file: each sees the other's writes at once.
TEST_F(AccountStoreTest, TwoStoresOnOneDirectorySeeEachOthersWrites) {
  AccountStore server(dir_);
  AccountStore ctl(dir_);
  ASSERT_EQ(ctl.create("localhost", "romeo", "pw", kIterations), Result::ok);
  EXPECT_TRUE(server.exists("localhost", "romeo"));
  EXPECT_EQ(server.create("localhost", "romeo", "pw", kIterations), Result::exists);
  ASSERT_EQ(server.set_password("localhost", "romeo", "new", kIterations), Result::ok);
  auto c = ctl.credentials("localhost", "romeo", Hash::sha256);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->stored_key,
            xmpp::sasl::derive_credentials(Hash::sha256, "new", c->salt, kIterations).stored_key);
  ASSERT_EQ(ctl.remove("localhost", "romeo"), Result::ok);
  EXPECT_FALSE(server.exists("localhost", "romeo"));
  EXPECT_TRUE(server.list().empty());
}

TEST_F(AccountStoreTest, ConcurrentWritersFromThreadsAndConnections) {
  AccountStore a(dir_);
  AccountStore b(dir_);
  constexpr int kPerThread = 10;
  auto work = [](AccountStore& store, std::string prefix) {
    for (int i = 0; i < kPerThread; ++i) {
      EXPECT_EQ(store.create("localhost", prefix + std::to_string(i), "pw", kIterations),
                Result::ok);
    }
  };
  std::thread t1(work, std::ref(a), "a");
  std::thread t2(work, std::ref(a), "b");
  std::thread t3(work, std::ref(b), "c");
  t1.join();
  t2.join();
  t3.join();
  EXPECT_EQ(b.list("localhost").size(), 3u * kPerThread);
}

}  // namespace
}  // namespace stanzad::storage
