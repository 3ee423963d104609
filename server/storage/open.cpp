// storage::open(): the backend named by <storage> in the configuration.
#include "config/config.hpp"
#include "storage/mysql.hpp"
#include "storage/sqlite_backend.hpp"
#include "storage/storage.hpp"

namespace stanzad::storage {

std::unique_ptr<Storage> open(const config::Config& config) {
  const config::Storage& s = config.storage;
  if (s.backend == config::Storage::Backend::mysql) {
    MysqlBackend::Options o;
    o.host = s.host;
    o.port = s.port;
    o.socket = s.socket;
    o.database = s.database;
    o.user = s.user;
    o.password = s.password;
    o.connect_timeout = s.connect_timeout;
    o.timeout = s.timeout;
    o.pool_size = s.pool_size;
    o.queue_limit = s.queue_limit;
    o.batch_limit = s.batch_limit;
    return std::make_unique<Storage>(std::make_unique<MysqlBackend>(std::move(o)));
  }
  SqliteBackend::Options o;
  o.synchronous_full = s.synchronous_full;
  o.pool_size = s.pool_size;
  o.queue_limit = s.queue_limit;
  o.batch_limit = s.batch_limit;
  auto file = s.file.empty() ? config.data_dir / "stanzad.sqlite" : s.file;
  return std::make_unique<Storage>(std::make_unique<SqliteBackend>(file, o));
}

}  // namespace stanzad::storage
