// The SQLite backend (the default): one file in the data directory, WAL, group commit.
#pragma once

#include <filesystem>

#include "storage/backend.hpp"

namespace stanzad::storage {

class SqliteBackend final : public Backend {
 public:
  struct Options {
    bool synchronous_full = true;  // fsync the WAL at every commit
    unsigned pool_size = 4;
    std::size_t queue_limit = 100000;
    std::size_t batch_limit = 2000;
  };
  // Creates the directory (0700) and file (0600) if missing; migrates. Throws StorageError.
  SqliteBackend(const std::filesystem::path& file, const Options& options);

  std::unique_ptr<Connection> connect() override;
  std::string describe() const override;
  int schema_version() const override { return version_; }
  std::pair<Sql, std::string> search_query(std::string_view words) const override;
  unsigned pool_size() const override { return options_.pool_size; }
  std::size_t queue_limit() const override { return options_.queue_limit; }
  std::size_t batch_limit() const override { return options_.batch_limit; }
  const std::filesystem::path& file() const { return file_; }

 private:
  std::filesystem::path file_;
  Options options_;
  int version_ = 0;
};

}  // namespace stanzad::storage

namespace stanzad::storage {
// The statements in SQLite's dialect; the MySQL backend reuses those that are portable.
std::string_view sqlite_sql(Sql which);
}  // namespace stanzad::storage
