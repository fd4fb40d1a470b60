-- The purge (issue 9; SPEC §4). A destroyed document's tombstone says who or
-- what destroyed it (`destroyed_by`: `purge`, or the user who deleted it at
-- once) and why (`destroy_reason`: the date that passed, or the person's
-- reason). Held documents are counted for the metrics without a scan.
ALTER TABLE documents ADD COLUMN destroy_reason TEXT;
CREATE INDEX documents_held ON documents (retention_until) WHERE legal_hold = TRUE;
