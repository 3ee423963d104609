// AccountStore: a Storage on <data_dir>/stanzad.sqlite; see account_store.hpp.
#include "storage/account_store.hpp"

#include "storage/sqlite_backend.hpp"

namespace stanzad::storage {

AccountStore::AccountStore(const std::filesystem::path& data_dir)
    : Storage(
          std::make_unique<SqliteBackend>(data_dir / "stanzad.sqlite", SqliteBackend::Options{})),
      file_(data_dir / "stanzad.sqlite") {}

}  // namespace stanzad::storage
