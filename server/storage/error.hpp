// The one exception storage throws: the database could not be opened, migrated, read or written.
#pragma once

#include <stdexcept>

namespace stanzad::storage {

struct StorageError : std::runtime_error {
  using runtime_error::runtime_error;
};

}  // namespace stanzad::storage
