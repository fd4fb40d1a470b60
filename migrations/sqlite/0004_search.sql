-- The search change log (issue 8). Every change to a document or client that
-- search shows is logged here by a trigger, in the transaction of the change,
-- so no code path can forget it. Each node's index applies the log in order
-- and keeps its position in its own commits; it re-reads the current rows, so
-- a row says only *what* changed, never the new values.
--
-- SQLite has one writer at a time, so `seq` order is commit order and a
-- reader's snapshot never holds a later row without the earlier ones. `xid`
-- is always 0 here (PostgreSQL fills it with the writing transaction's id).
CREATE TABLE search_log (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    xid          BIGINT  NOT NULL DEFAULT 0,
    document_id  TEXT,                   -- this document changed
    client_id    TEXT,                   -- or every document of this client
    at           BIGINT  NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER))
);

-- One row: which log this is (a cursor from another database is refused) and
-- how far it has been pruned (a cursor below that has missed rows: rebuild).
CREATE TABLE search_log_state (
    id          BIGINT PRIMARY KEY CHECK (id = 1),
    log_id      TEXT   NOT NULL,
    pruned_xid  BIGINT NOT NULL DEFAULT 0,
    pruned_seq  BIGINT NOT NULL DEFAULT 0
);
INSERT INTO search_log_state (id, log_id) VALUES (1, lower(hex(randomblob(16))));

CREATE TRIGGER search_log_document_insert AFTER INSERT ON documents WHEN NEW.state <> 'pending'
BEGIN INSERT INTO search_log (document_id) VALUES (NEW.id); END;

CREATE TRIGGER search_log_document_update AFTER UPDATE ON documents
WHEN OLD.state IS NOT NEW.state OR OLD.client_id IS NOT NEW.client_id OR OLD.doc_type IS NOT NEW.doc_type
  OR OLD.title IS NOT NEW.title OR OLD.filename IS NOT NEW.filename OR OLD.uploaded_by IS NOT NEW.uploaded_by
  OR OLD.uploaded_at IS NOT NEW.uploaded_at OR OLD.retention_until IS NOT NEW.retention_until
BEGIN INSERT INTO search_log (document_id) VALUES (NEW.id); END;

CREATE TRIGGER search_log_document_delete AFTER DELETE ON documents WHEN OLD.state <> 'pending'
BEGIN INSERT INTO search_log (document_id) VALUES (OLD.id); END;

CREATE TRIGGER search_log_client_update AFTER UPDATE ON clients
WHEN OLD.first_name IS NOT NEW.first_name OR OLD.last_name IS NOT NEW.last_name OR OLD.status IS NOT NEW.status
  OR OLD.coach_id IS NOT NEW.coach_id
BEGIN INSERT INTO search_log (client_id) VALUES (NEW.id); END;
