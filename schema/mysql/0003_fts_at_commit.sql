-- 0003: nothing to change on MySQL, whose InnoDB FULLTEXT index is maintained by the server;
-- this keeps the numbers one for one with schema/sqlite/0003_fts_at_commit.sql (there, the
-- full-text index is written once per transaction instead of by a trigger per message).
DO 0;
