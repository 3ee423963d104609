// Accounts and salted SCRAM-SHA-1/-256 keys (RFC 5802, RFC 7677) in <data_dir>/stanzad.sqlite.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/error.hpp"
#include "xmpp/sasl.hpp"

namespace stanzad::storage {

// Thread-safe: one SQLite connection guarded by a mutex. Several AccountStores, in one process
// or several (stanzad and stanzactl), may share one data directory. host and username must be
// normalized (nameprep / nodeprep) by the caller. The password is never stored: only a random
// 16-byte salt, the iteration count, StoredKey and ServerKey per hash. Blocking: call it from a
// worker, not from a shard's event loop.
class AccountStore {
 public:
  // Creates the directory (0700) and the database (0600) if missing, and migrates the schema.
  // Throws StorageError.
  explicit AccountStore(const std::filesystem::path& data_dir);
  ~AccountStore();
  AccountStore(const AccountStore&) = delete;
  AccountStore& operator=(const AccountStore&) = delete;

  enum class Result { ok, exists, not_found };

  // iterations must be at least 1 (else std::invalid_argument). Other methods throw StorageError.
  Result create(std::string_view host, std::string_view username, std::string_view password,
                std::uint32_t iterations = 4096);
  Result set_password(std::string_view host, std::string_view username, std::string_view password,
                      std::uint32_t iterations = 4096);
  Result remove(std::string_view host, std::string_view username);
  bool exists(std::string_view host, std::string_view username);
  std::optional<xmpp::sasl::ScramCredentials> credentials(std::string_view host,
                                                          std::string_view username,
                                                          xmpp::sasl::Hash hash);
  // "user@host", sorted; every host when `host` is empty.
  std::vector<std::string> list(std::string_view host = {});

  const std::filesystem::path& file() const;  // <data_dir>/stanzad.sqlite

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace stanzad::storage
