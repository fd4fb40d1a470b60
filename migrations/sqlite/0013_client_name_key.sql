-- The client lists' name filter compares folded last names (lower case,
-- accents folded, `indexer::fold`), so that "ozdemir" finds "Özdemir" on
-- both backends: SQLite's lower() folds ASCII only, and PostgreSQL's
-- depends on the database's locale. Written by the catalog with each last
-- name; rows from before this migration are filled in when the catalog
-- connects (`Catalog::fill_name_keys`).
ALTER TABLE clients ADD COLUMN last_name_key TEXT;
