// Shared by the storage tests: a fresh Storage on either backend.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "storage/mysql.hpp"
#include "storage/sqlite_backend.hpp"
#include "storage/storage.hpp"

namespace stanzad::storage::testing {

namespace fs = std::filesystem;

inline fs::path temp_dir() {
  std::string pattern = (fs::temp_directory_path() / "stanzad-storage-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return pattern;
}

// The MariaDB the ctest fixture started (tests/storage/mariadb.sh); no server is a failure,
// never a skip.
inline MysqlBackend::Options mysql_options(std::string database = {}) {
  const char* port = std::getenv("STANZAD_TEST_MYSQL_PORT");
  if (port == nullptr) {
    ADD_FAILURE() << "STANZAD_TEST_MYSQL_PORT is not set: run the MySQL tests through ctest "
                     "(fixture mariadb, tests/storage/mariadb.sh)";
    throw std::runtime_error("no MariaDB for the MySQL tests");
  }
  static std::atomic<int> counter{0};
  MysqlBackend::Options o;
  o.host = "127.0.0.1";
  o.port = static_cast<std::uint16_t>(std::atoi(port));
  o.user = "stanzad";
  o.password = "stanzad-test";
  o.database = database.empty()
                   ? "t" + std::to_string(::getpid()) + "_" + std::to_string(counter.fetch_add(1))
                   : database;
  o.connect_timeout = std::chrono::seconds(3);
  o.timeout = std::chrono::seconds(10);
  return o;
}

// backend: "sqlite" or "mysql". `dir` receives the SQLite file.
inline std::unique_ptr<Storage> make_storage(const std::string& backend, const fs::path& dir) {
  if (backend == "mysql") {
    return std::make_unique<Storage>(std::make_unique<MysqlBackend>(mysql_options()));
  }
  return std::make_unique<Storage>(
      std::make_unique<SqliteBackend>(dir / "stanzad.sqlite", SqliteBackend::Options{}));
}

}  // namespace stanzad::storage::testing
