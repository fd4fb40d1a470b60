-- A coach's search scope (issue 8): every search of a coach reads the active
-- clients of their caseload and of the colleagues they stand in for, with
-- what the policy decides on. This index answers that read alone (an
-- index-only scan); it replaces the index on the coach only.
CREATE INDEX clients_reach ON clients (coach_id, status) INCLUDE (id, restricted);
DROP INDEX clients_coach;
