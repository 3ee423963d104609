-- 0003: the full-text index is written once per transaction, not by a trigger per message.
-- Storage's SQLite connection indexes every message its transaction inserted with one
-- INSERT … SELECT just before COMMIT (server/storage/sqlite_backend.cpp), so the index is
-- still exact at every commit. A trigger cost 2.5 times as much CPU per archived message:
-- each row paid a virtual-table statement of its own (savepoint, pending-terms bookkeeping).
-- Messages must therefore be inserted through stanzad's storage layer (stanzad, stanzactl).
-- The delete trigger stays: deletions are rare and may come from ON DELETE CASCADE.
DROP TRIGGER messages_fts_insert;
