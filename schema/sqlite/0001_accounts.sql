-- 0001: accounts and their salted SCRAM keys (RFC 5802, RFC 7677); never a password.
-- Migrations are applied in order, each once, inside one transaction (server/storage/sqlite.cpp).
-- Never edit a migration that has shipped: add the next number instead.

CREATE TABLE accounts (
  host              TEXT    NOT NULL,  -- nameprep'd domain, one of the configured hosts
  username          TEXT    NOT NULL,  -- nodeprep'd local part
  created_at        INTEGER NOT NULL,  -- Unix time, seconds
  sha1_salt         BLOB    NOT NULL,
  sha1_iterations   INTEGER NOT NULL,
  sha1_stored_key   BLOB    NOT NULL,  -- H(HMAC(SaltedPassword, "Client Key"))
  sha1_server_key   BLOB    NOT NULL,  -- HMAC(SaltedPassword, "Server Key")
  sha256_salt       BLOB    NOT NULL,
  sha256_iterations INTEGER NOT NULL,
  sha256_stored_key BLOB    NOT NULL,
  sha256_server_key BLOB    NOT NULL,
  PRIMARY KEY (host, username)
) WITHOUT ROWID;
