-- 0002: documents, conversations with participants, archives with per-conversation sequence
-- numbers and full-text search, delivery status, offline queues, media metadata.
-- Times are Unix microseconds. Mirrors schema/sqlite/0002_messaging.sql.

CREATE TABLE kv (
  host       VARBINARY(255)  NOT NULL,
  username   VARBINARY(1023) NOT NULL,
  store      VARBINARY(255)  NOT NULL,
  doc_key    VARBINARY(1023) NOT NULL,
  doc_value  LONGBLOB        NOT NULL,
  updated_at BIGINT          NOT NULL,
  PRIMARY KEY (host, username, store, doc_key)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- kind 1: one-to-one, name "a@host b@host" sorted; kind 2: a group, name = the room JID.
-- last_seq is bumped (row-locked) in the transaction that inserts the message.
CREATE TABLE conversations (
  id         BIGINT          NOT NULL AUTO_INCREMENT,
  kind       TINYINT         NOT NULL,
  name       VARBINARY(2047) NOT NULL,
  created_at BIGINT          NOT NULL,
  last_seq   BIGINT          NOT NULL DEFAULT 0,
  PRIMARY KEY (id),
  UNIQUE KEY conversations_by_name (kind, name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE participants (
  conversation_id BIGINT          NOT NULL,
  jid             VARBINARY(2047) NOT NULL,
  role            TINYINT         NOT NULL,  -- 0 member, 1 moderator, 2 admin, 3 owner
  joined_at       BIGINT          NOT NULL,
  PRIMARY KEY (conversation_id, jid),
  KEY participants_by_jid (jid),
  CONSTRAINT participants_conversation FOREIGN KEY (conversation_id)
    REFERENCES conversations (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Clustered by (conversation, sequence): the latest page of a conversation is one range read.
CREATE TABLE messages (
  conversation_id BIGINT          NOT NULL,
  seq             BIGINT          NOT NULL,
  ts              BIGINT          NOT NULL,
  sender          VARBINARY(2047) NOT NULL,
  stanza_id       VARBINARY(1023) NOT NULL,
  body            MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL,
  payload         MEDIUMBLOB      NOT NULL,
  PRIMARY KEY (conversation_id, seq),
  KEY messages_by_time (conversation_id, ts),
  FULLTEXT KEY messages_fts (body),
  CONSTRAINT messages_conversation FOREIGN KEY (conversation_id)
    REFERENCES conversations (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- 0 sent, 1 delivered, 2 read; only ever moves forward.
CREATE TABLE message_status (
  conversation_id BIGINT          NOT NULL,
  seq             BIGINT          NOT NULL,
  recipient       VARBINARY(2047) NOT NULL,
  status          TINYINT         NOT NULL,
  updated_at      BIGINT          NOT NULL,
  PRIMARY KEY (conversation_id, seq, recipient),
  CONSTRAINT message_status_conversation FOREIGN KEY (conversation_id)
    REFERENCES conversations (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE offline (
  id         BIGINT          NOT NULL AUTO_INCREMENT,
  host       VARBINARY(255)  NOT NULL,
  username   VARBINARY(1023) NOT NULL,
  created_at BIGINT          NOT NULL,
  stanza     MEDIUMBLOB      NOT NULL,
  PRIMARY KEY (id),
  KEY offline_by_user (host, username, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE media (
  id           VARBINARY(255)  NOT NULL,
  owner        VARBINARY(2047) NOT NULL,
  filename     VARCHAR(1024)   NOT NULL,
  size         BIGINT          NOT NULL,
  content_type VARCHAR(255)    NOT NULL,
  created_at   BIGINT          NOT NULL,
  path         VARCHAR(4096)   NOT NULL,
  PRIMARY KEY (id),
  KEY media_by_owner (owner, created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
