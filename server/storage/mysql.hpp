// The MySQL/MariaDB backend, through MySQL Connector/C++ 1.1: prepared statements only,
// connections opened on demand and replaced when the server goes away.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>

#include "storage/backend.hpp"

namespace stanzad::storage {

class MysqlBackend final : public Backend {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    std::uint16_t port = 3306;
    std::filesystem::path socket;  // used instead of host:port when set
    std::string database = "stanzad";
    std::string user = "stanzad";
    std::string password;
    std::chrono::seconds connect_timeout{5};
    std::chrono::seconds timeout{10};
    unsigned pool_size = 4;
    std::size_t queue_limit = 100000;
    std::size_t batch_limit = 2000;
  };
  // Connects, creates the database if missing (and permitted), migrates. Throws StorageError
  // (ErrorKind::unavailable when the server cannot be reached).
  explicit MysqlBackend(Options options);

  std::unique_ptr<Connection> connect() override;
  std::string describe() const override;
  int schema_version() const override { return version_; }
  std::pair<Sql, std::string> search_query(std::string_view words) const override;
  unsigned pool_size() const override { return options_.pool_size; }
  std::size_t queue_limit() const override { return options_.queue_limit; }
  std::size_t batch_limit() const override { return options_.batch_limit; }

 private:
  Options options_;
  int version_ = 0;
};

}  // namespace stanzad::storage
