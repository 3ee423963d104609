// Schema migrations embedded at build time from schema/<backend>/NNNN_name.sql.
#pragma once

#include <span>
#include <string_view>

namespace stanzad::storage {

struct Migration {
  int version;            // NNNN, from 1 without gaps
  std::string_view name;  // file name without .sql, e.g. "0001_accounts"
  std::string_view sql;   // the whole file; may hold several statements
};

// schema/sqlite/*.sql in version order (generated sqlite_migrations.cpp).
std::span<const Migration> sqlite_migrations();
// schema/mysql/*.sql in version order (generated mysql_migrations.cpp).
std::span<const Migration> mysql_migrations();

}  // namespace stanzad::storage
