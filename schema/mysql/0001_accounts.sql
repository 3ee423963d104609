-- 0001: accounts and their salted SCRAM keys (RFC 5802, RFC 7677); never a password.
-- Mirrors schema/sqlite/0001_accounts.sql. Identifiers are VARBINARY: compared byte for byte,
-- as SQLite does, since the server normalizes them (nameprep / nodeprep) before storage.

CREATE TABLE accounts (
  host              VARBINARY(255)  NOT NULL,
  username          VARBINARY(1023) NOT NULL,
  created_at        BIGINT          NOT NULL,  -- Unix time, seconds
  sha1_salt         VARBINARY(255)  NOT NULL,
  sha1_iterations   INT UNSIGNED    NOT NULL,
  sha1_stored_key   VARBINARY(64)   NOT NULL,
  sha1_server_key   VARBINARY(64)   NOT NULL,
  sha256_salt       VARBINARY(255)  NOT NULL,
  sha256_iterations INT UNSIGNED    NOT NULL,
  sha256_stored_key VARBINARY(64)   NOT NULL,
  sha256_server_key VARBINARY(64)   NOT NULL,
  PRIMARY KEY (host, username)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
