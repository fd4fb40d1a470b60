-- The language a user chose for the web UI (issue 12): `nl`, `en`, or
-- none (then the browser's language decides).
ALTER TABLE users ADD COLUMN language TEXT;
