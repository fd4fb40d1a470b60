-- Retention (issue 9; SPEC §4): a policy per document type, a destruction
-- date per document, legal holds with their reason, and the purge's queue of
-- objects to delete.
--
-- A document's clock starts at upload (`clock = 'upload'`) or when its
-- client's trajectory ends (`trajectory_end`); until then a trajectory-bound
-- document has no date. `retention_source` says where the date came from: the
-- policy (recomputed when the policy or the trajectory changes) or a person
-- (`manual`, with `retention_reason`; never recomputed).
--
-- Periods are days. The defaults of SPEC §4: two years after the trajectory
-- for the dossier types (731 days: two calendar years, a leap day included,
-- so never a day short), 30 days after upload for an identity copy.
CREATE TABLE retention_policies (
    doc_type     TEXT    PRIMARY KEY,
    clock        TEXT    NOT NULL CHECK (clock IN ('upload', 'trajectory_end')),
    period_days  INTEGER NOT NULL CHECK (period_days BETWEEN 1 AND 36600),
    updated_at   BIGINT  NOT NULL,
    updated_by   TEXT    REFERENCES users (id)     -- NULL: the default
);
INSERT INTO retention_policies (doc_type, clock, period_days, updated_at) VALUES
    ('consent', 'trajectory_end', 731, 0),
    ('intake', 'trajectory_end', 731, 0),
    ('assignment', 'trajectory_end', 731, 0),
    ('work_plan', 'trajectory_end', 731, 0),
    ('fml', 'trajectory_end', 731, 0),
    ('labour_expert_report', 'trajectory_end', 731, 0),
    ('psych_report', 'trajectory_end', 731, 0),
    ('progress_report', 'trajectory_end', 731, 0),
    ('correspondence', 'trajectory_end', 731, 0),
    ('id_copy', 'upload', 30, 0);

ALTER TABLE documents ADD COLUMN retention_source TEXT NOT NULL DEFAULT 'policy'
    CHECK (retention_source IN ('policy', 'manual'));
ALTER TABLE documents ADD COLUMN retention_reason TEXT;
ALTER TABLE documents ADD COLUMN hold_reason TEXT;
ALTER TABLE documents ADD COLUMN held_by TEXT;
ALTER TABLE documents ADD COLUMN held_at BIGINT;
-- Set when the purge has deleted the destroyed document's object.
ALTER TABLE documents ADD COLUMN object_deleted_at BIGINT;

-- Dates set at upload before this migration were set by a person.
UPDATE documents SET retention_source = 'manual', retention_reason = 'set at upload (before reasons were recorded)'
WHERE retention_until IS NOT NULL AND state <> 'destroyed';
-- Every other live document gets its policy date, where its clock has started.
UPDATE documents SET retention_until = (
    SELECT CASE p.clock
        WHEN 'upload' THEN documents.uploaded_at + p.period_days * 86400000000
        ELSE (SELECT c.ended_at FROM clients c WHERE c.id = documents.client_id) + p.period_days * 86400000000
    END
    FROM retention_policies p WHERE p.doc_type = documents.doc_type)
WHERE retention_until IS NULL AND state <> 'destroyed';

-- What the purge looks for: live, unheld documents by date. A pass that
-- finds nothing reads one index entry.
CREATE INDEX documents_due ON documents (retention_until) WHERE state = 'active' AND legal_hold = FALSE;

-- Objects of destroyed documents, to delete from the store. Filled in the
-- transaction that destroys the key; drained separately (a delete is
-- idempotent), so a dead store never holds a destruction back.
CREATE TABLE object_deletions (
    object_name      TEXT    PRIMARY KEY,
    document_id      TEXT    NOT NULL REFERENCES documents (id),
    queued_at        BIGINT  NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT  NOT NULL,
    last_error       TEXT
);
CREATE INDEX object_deletions_next ON object_deletions (next_attempt_at);
