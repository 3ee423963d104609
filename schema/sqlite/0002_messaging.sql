-- 0002: documents, conversations with participants, archives with per-conversation sequence
-- numbers and full-text search, delivery status, offline queues, media metadata.
-- Times are Unix microseconds. Mirrors schema/mysql/0002_messaging.sql.

-- Per-user documents (roster, vCard, private XML, PEP, push…), opaque to storage.
CREATE TABLE kv (
  host       TEXT    NOT NULL,
  username   TEXT    NOT NULL,
  store      TEXT    NOT NULL,
  doc_key    TEXT    NOT NULL,
  doc_value  BLOB    NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (host, username, store, doc_key)
) WITHOUT ROWID;

-- A one-to-one chat (kind 1, name "a@host b@host" sorted) or a group (kind 2, the room JID).
-- last_seq is the sequence number of its newest message: bumped in the transaction that
-- inserts the message, so numbers are gap-free and in commit order.
CREATE TABLE conversations (
  id         INTEGER PRIMARY KEY,
  kind       INTEGER NOT NULL,
  name       TEXT    NOT NULL,
  created_at INTEGER NOT NULL,
  last_seq   INTEGER NOT NULL DEFAULT 0,
  UNIQUE (kind, name)
);

-- Role: 0 member, 1 moderator, 2 admin, 3 owner.
CREATE TABLE participants (
  conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
  jid             TEXT    NOT NULL,
  role            INTEGER NOT NULL,
  joined_at       INTEGER NOT NULL,
  PRIMARY KEY (conversation_id, jid)
) WITHOUT ROWID;
CREATE INDEX participants_by_jid ON participants (jid);

CREATE TABLE messages (
  id              INTEGER PRIMARY KEY,  -- the full-text index's rowid
  conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
  seq             INTEGER NOT NULL,
  ts              INTEGER NOT NULL,
  sender          TEXT    NOT NULL,
  stanza_id       TEXT    NOT NULL,
  body            TEXT    NOT NULL,  -- plain text, indexed below
  payload         BLOB    NOT NULL   -- the stanza as XML
);
CREATE UNIQUE INDEX messages_by_seq ON messages (conversation_id, seq);
CREATE INDEX messages_by_time ON messages (conversation_id, ts);

-- detail = none, columnsize = 0: an index of which messages hold a word, no positions or
-- lengths (no phrase queries, no ranking; search() needs neither): about a third cheaper to
-- write, which is most of the cost of archiving a message.
CREATE VIRTUAL TABLE messages_fts USING fts5 (
  body, content = 'messages', content_rowid = 'id', detail = none, columnsize = 0
);
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
  INSERT INTO messages_fts (rowid, body) VALUES (new.id, new.body);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
  INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;

-- Per-recipient delivery: 0 sent, 1 delivered, 2 read; only ever moves forward.
CREATE TABLE message_status (
  conversation_id INTEGER NOT NULL,
  seq             INTEGER NOT NULL,
  recipient       TEXT    NOT NULL,
  status          INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL,
  PRIMARY KEY (conversation_id, seq, recipient),
  FOREIGN KEY (conversation_id) REFERENCES conversations (id) ON DELETE CASCADE
) WITHOUT ROWID;

-- Messages for an account with no session, delivered (and deleted) in id order.
CREATE TABLE offline (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  host       TEXT    NOT NULL,
  username   TEXT    NOT NULL,
  created_at INTEGER NOT NULL,
  stanza     BLOB    NOT NULL
);
CREATE INDEX offline_by_user ON offline (host, username, id);

-- Uploaded files (XEP-0363): the metadata; the bytes are in the file at `path`.
CREATE TABLE media (
  id           TEXT    PRIMARY KEY,
  owner        TEXT    NOT NULL,  -- bare JID of the uploader
  filename     TEXT    NOT NULL,
  size         INTEGER NOT NULL,
  content_type TEXT    NOT NULL,
  created_at   INTEGER NOT NULL,
  path         TEXT    NOT NULL
) WITHOUT ROWID;
CREATE INDEX media_by_owner ON media (owner, created_at);
