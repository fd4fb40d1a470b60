-- The web UI lists clients a page at a time, by name, per trajectory
-- status (issue 12): an index in that order, so a page reads its rows
-- and no more.
CREATE INDEX clients_by_name ON clients (status, last_name, first_name, id);
