// <storage> in the configuration (server/config/config.cpp) and storage::open().
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "config/config.hpp"
#include "storage/storage.hpp"

namespace stanzad::config {
namespace {

namespace fs = std::filesystem;

std::string doc(const std::string& storage) {
  return "<stanzad>\n<host name='localhost'/>\n<c2s/>\n" + storage + "\n</stanzad>\n";
}

std::string error_of(const std::string& text) {
  try {
    parse(text, "/etc/stanzad/stanzad.xml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(StorageConfig, DefaultsToSqliteInTheDataDirectory) {
  Config c = parse(doc(""), "/etc/stanzad/stanzad.xml");
  EXPECT_EQ(c.storage.backend, Storage::Backend::sqlite);
  EXPECT_TRUE(c.storage.file.empty());
  EXPECT_TRUE(c.storage.synchronous_full);
  EXPECT_EQ(c.storage.pool_size, 4u);
}

TEST(StorageConfig, ReadsMysqlOptions) {
  ::setenv("STANZAD_TEST_DB_PASSWORD", "from env", 1);
  Config c = parse(doc("<storage backend='mysql' host='db.internal' port='3307' database='chat'"
                       " user='xmpp' password-env='STANZAD_TEST_DB_PASSWORD' pool-size='16'"
                       " connect-timeout='2' timeout='30' queue-limit='500' batch-limit='64'/>"),
                   "/etc/stanzad/stanzad.xml");
  const Storage& s = c.storage;
  EXPECT_EQ(s.backend, Storage::Backend::mysql);
  EXPECT_EQ(s.host, "db.internal");
  EXPECT_EQ(s.port, 3307);
  EXPECT_EQ(s.database, "chat");
  EXPECT_EQ(s.user, "xmpp");
  EXPECT_EQ(s.password, "from env");
  EXPECT_EQ(s.pool_size, 16u);
  EXPECT_EQ(s.connect_timeout.count(), 2);
  EXPECT_EQ(s.timeout.count(), 30);
  EXPECT_EQ(s.queue_limit, 500u);
  EXPECT_EQ(s.batch_limit, 64u);
}

TEST(StorageConfig, PasswordFromAFileRelativeToTheConfiguration) {
  std::string pattern = (fs::temp_directory_path() / "stanzad-cfg-XXXXXX").string();
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  fs::path dir = pattern;
  std::ofstream(dir / "db-password") << "s3cret\n";
  Config c =
      parse(doc("<storage backend='mysql' password-file='db-password'/>"), dir / "stanzad.xml");
  EXPECT_EQ(c.storage.password, "s3cret");
  fs::remove_all(dir);
}

TEST(StorageConfig, ErrorsNameFileLineAndOption) {
  const std::string f = "/etc/stanzad/stanzad.xml:4: option ";
  EXPECT_EQ(error_of(doc("<storage backend='postgres'/>")),
            f + "'storage/backend': 'postgres' is not a storage backend (sqlite, mysql)");
  EXPECT_EQ(error_of(doc("<storage host='db'/>")),
            f + "'storage/host': applies only to backend=\"mysql\"");
  EXPECT_EQ(error_of(doc("<storage backend='mysql' file='x.sqlite'/>")),
            f + "'storage/file': applies only to backend=\"sqlite\"");
  EXPECT_EQ(error_of(doc("<storage backend='mysql' password='a' password-env='B'/>")),
            f + "'storage/password-env': give at most one of password, password-file, "
                "password-env");
  EXPECT_EQ(error_of(doc("<storage backend='mysql' password-env='STANZAD_TEST_UNSET_VAR'/>")),
            f + "'storage/password-env': environment variable 'STANZAD_TEST_UNSET_VAR' is not set");
  EXPECT_EQ(error_of(doc("<storage backend='mysql' password-file='/nonexistent/pw'/>")),
            f + "'storage/password-file': /nonexistent/pw: cannot open: No such file or directory");
  EXPECT_EQ(error_of(doc("<storage backend='mysql' port='0'/>")),
            f + "'storage/port': '0' is not a port number");
  EXPECT_EQ(error_of(doc("<storage pool-size='0'/>")),
            f + "'storage/pool-size': '0' is too small (at least 1)");
  EXPECT_EQ(error_of(doc("<storage synchronous='off'/>")),
            f + "'storage/synchronous': 'off' is not full or normal");
  EXPECT_EQ(error_of(doc("<storage backend='mysql' database='a`b'/>")),
            f + "'storage/database': 'a`b' is not a valid database name");
  EXPECT_EQ(error_of(doc("<storage/><storage/>")), f + "'storage': may appear only once");
  EXPECT_EQ(
      error_of(doc("<storage colour='red'/>")).rfind(f + "'storage/colour': unknown attribute", 0),
      0u);
}

TEST(StorageConfig, OpenUsesTheConfiguredSqliteFile) {
  std::string pattern = (fs::temp_directory_path() / "stanzad-cfg-XXXXXX").string();
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  fs::path dir = pattern;
  Config c = parse(doc("<storage file='db/chat.sqlite' synchronous='normal'/>"), dir / "s.xml");
  {
    auto s = storage::open(c);
    EXPECT_EQ(s->describe(), "sqlite " + (dir / "db/chat.sqlite").string());
    EXPECT_EQ(s->create("localhost", "romeo", "pw"), storage::Storage::Result::ok);
  }
  EXPECT_TRUE(fs::exists(dir / "db/chat.sqlite"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace stanzad::config
