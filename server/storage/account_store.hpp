// Accounts and salted SCRAM-SHA-1/-256 keys (RFC 5802, RFC 7677) in <data_dir>/stanzad.sqlite.
// Kept for code written before storage::Storage: it is a Storage on the SQLite backend.
#pragma once

#include <filesystem>

#include "storage/storage.hpp"

namespace stanzad::storage {

// DEPRECATED: use storage::open(config) and storage::Storage, which has the same account
// methods and also serves MySQL. Opens <data_dir>/stanzad.sqlite (creating the directory
// 0700 and the file 0600) and migrates it. Throws StorageError.
class AccountStore : public Storage {
 public:
  explicit AccountStore(const std::filesystem::path& data_dir);
  const std::filesystem::path& file() const { return file_; }  // <data_dir>/stanzad.sqlite

 private:
  std::filesystem::path file_;
};

}  // namespace stanzad::storage
