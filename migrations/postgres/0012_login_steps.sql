-- The first step of a sign-in in two pages (the web UI, issue 12): the
-- name and the password sealed under the master key, kept here, never sent
-- to the browser, which holds only a random handle (stored as its SHA-256).
-- A step is used once (deleted when the code is checked) and lives five
-- minutes; the sweeper removes what was abandoned.
CREATE TABLE login_steps (
    handle_hash TEXT PRIMARY KEY,
    id TEXT NOT NULL,
    username TEXT NOT NULL,
    password_sealed BYTEA NOT NULL,
    password_key_version INTEGER NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX login_steps_expiry ON login_steps (expires_at);
