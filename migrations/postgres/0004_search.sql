-- The search change log (issue 8). Every change to a document or client that
-- search shows is logged here by a trigger, in the transaction of the change,
-- so no code path can forget it. Each node's index applies the log in order
-- and keeps its position in its own commits; it re-reads the current rows, so
-- a row says only *what* changed, never the new values.
--
-- Sequence values commit out of order on PostgreSQL: a reader that moved
-- past a `seq` still in flight would lose it for good. So every row carries
-- its transaction's id (`xid`), and readers take only rows whose xid lies
-- below the oldest transaction still running (`pg_snapshot_xmin`): no
-- transaction can still add a row there. They read in (xid, seq) order.
CREATE TABLE search_log (
    seq          BIGSERIAL PRIMARY KEY,
    xid          BIGINT  NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    document_id  TEXT,                   -- this document changed
    client_id    TEXT,                   -- or every document of this client
    at           BIGINT  NOT NULL DEFAULT ((extract(epoch FROM clock_timestamp()) * 1000000)::bigint)
);
CREATE INDEX search_log_order ON search_log (xid, seq);

-- One row: which log this is (a cursor from another database is refused) and
-- how far it has been pruned (a cursor below that has missed rows: rebuild).
CREATE TABLE search_log_state (
    id          BIGINT PRIMARY KEY CHECK (id = 1),
    log_id      TEXT   NOT NULL,
    pruned_xid  BIGINT NOT NULL DEFAULT 0,
    pruned_seq  BIGINT NOT NULL DEFAULT 0
);
INSERT INTO search_log_state (id, log_id) VALUES (1, replace(gen_random_uuid()::text, '-', ''));

-- Logs the change and wakes the nodes (NOTIFY is delivered at COMMIT, once
-- per transaction; a node also polls, since a dropped connection loses them).
CREATE FUNCTION search_log_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'clients' THEN
        INSERT INTO search_log (client_id) VALUES (NEW.id);
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO search_log (document_id) VALUES (OLD.id);
    ELSE
        INSERT INTO search_log (document_id) VALUES (NEW.id);
    END IF;
    PERFORM pg_notify('kluis_search', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER search_log_document_insert AFTER INSERT ON documents
    FOR EACH ROW WHEN (NEW.state <> 'pending') EXECUTE FUNCTION search_log_change();
CREATE TRIGGER search_log_document_update AFTER UPDATE ON documents
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.client_id IS DISTINCT FROM NEW.client_id
        OR OLD.doc_type IS DISTINCT FROM NEW.doc_type OR OLD.title IS DISTINCT FROM NEW.title
        OR OLD.filename IS DISTINCT FROM NEW.filename OR OLD.uploaded_by IS DISTINCT FROM NEW.uploaded_by
        OR OLD.uploaded_at IS DISTINCT FROM NEW.uploaded_at OR OLD.retention_until IS DISTINCT FROM NEW.retention_until)
    EXECUTE FUNCTION search_log_change();
CREATE TRIGGER search_log_document_delete AFTER DELETE ON documents
    FOR EACH ROW WHEN (OLD.state <> 'pending') EXECUTE FUNCTION search_log_change();
CREATE TRIGGER search_log_client_update AFTER UPDATE ON clients
    FOR EACH ROW WHEN (OLD.first_name IS DISTINCT FROM NEW.first_name OR OLD.last_name IS DISTINCT FROM NEW.last_name
        OR OLD.status IS DISTINCT FROM NEW.status OR OLD.coach_id IS DISTINCT FROM NEW.coach_id)
    EXECUTE FUNCTION search_log_change();
