-- The purge (issue 9; SPEC §4). A destroyed document's tombstone says who or
-- what destroyed it (`destroyed_by`: `retention` for the purge, or the user who deleted it at
-- once) and why (`destroy_reason`: the date that passed, or the person's
-- reason). Held documents are counted for the metrics without a scan. The
-- due index gets the id as its second column: the purge and the destruction
-- list read documents by (date, id), and many share a date (a trajectory's
-- end), which the index then orders without a sort.
ALTER TABLE documents ADD COLUMN destroy_reason TEXT;
CREATE INDEX documents_held ON documents (retention_until) WHERE legal_hold = TRUE;
DROP INDEX documents_due;
CREATE INDEX documents_due ON documents (retention_until, id) WHERE state = 'active' AND legal_hold = FALSE;
