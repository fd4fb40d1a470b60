-- Kluis catalog, PostgreSQL flavour. Keep in step with migrations/sqlite/.
-- Portable types on purpose (one query text for both databases):
--   ids are UUID strings, times are BIGINT microseconds since the Unix epoch (UTC),
--   secrets are BYTEAs sealed by the keyring, booleans are BOOLEAN.

CREATE TABLE key_versions (
    version      BIGINT PRIMARY KEY,
    check_value  TEXT    NOT NULL,          -- see Keyring::check_value; reveals nothing about the key
    state        TEXT    NOT NULL CHECK (state IN ('active', 'retired')),
    created_at   BIGINT  NOT NULL,
    retired_at   BIGINT
);

CREATE TABLE users (
    id               TEXT    PRIMARY KEY,
    username         TEXT    NOT NULL UNIQUE,
    display_name     TEXT    NOT NULL,
    role             TEXT    NOT NULL CHECK (role IN ('management', 'office', 'administration', 'coach', 'freelance_coach')),
    password_hash    TEXT    NOT NULL,      -- Argon2id PHC string
    totp_secret      BYTEA    NOT NULL,      -- sealed field "totp"
    totp_key_version BIGINT NOT NULL REFERENCES key_versions (version),
    totp_last_step   BIGINT,                -- last accepted time step: codes are accepted once
    active           BOOLEAN NOT NULL DEFAULT TRUE,
    failed_attempts  BIGINT NOT NULL DEFAULT 0,
    locked_until     BIGINT,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL
);

CREATE TABLE sessions (
    token_hash    TEXT   PRIMARY KEY,       -- SHA-256 of the bearer token; the token itself is never stored
    user_id       TEXT   NOT NULL REFERENCES users (id),
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL           -- absolute expiry; idle expiry is last_seen_at + idle timeout
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE clients (
    id               TEXT    PRIMARY KEY,
    first_name       TEXT    NOT NULL,
    initials         TEXT    NOT NULL,
    last_name        TEXT    NOT NULL,
    birth_date       TEXT    NOT NULL,      -- YYYY-MM-DD
    bsn_sealed       BYTEA,                  -- sealed field "bsn"; never a key, never indexed
    bsn_key_version  BIGINT REFERENCES key_versions (version),
    email            TEXT,
    phone            TEXT,
    address          TEXT,
    postcode         TEXT,
    city             TEXT,
    commissioner     TEXT    NOT NULL CHECK (commissioner IN ('uwv', 'municipality', 'employer', 'private')),
    coach_id         TEXT    REFERENCES users (id),
    status           TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'closed')),
    ended_at         BIGINT,
    restricted       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL
);
CREATE INDEX clients_coach ON clients (coach_id);

CREATE TABLE documents (
    id               TEXT    PRIMARY KEY,
    client_id        TEXT    NOT NULL REFERENCES clients (id),
    doc_type         TEXT    NOT NULL,
    title            TEXT,
    filename         TEXT    NOT NULL,
    content_type     TEXT    NOT NULL,
    size             BIGINT,                -- plaintext bytes; set when the upload completes
    sha256           TEXT,                  -- of the plaintext, hex; set when the upload completes
    object_name      TEXT    NOT NULL UNIQUE,  -- random, reveals nothing
    wrapped_key      BYTEA,                  -- NULL once destroyed (crypto-shredding)
    key_version      BIGINT REFERENCES key_versions (version),
    state            TEXT    NOT NULL CHECK (state IN ('pending', 'active', 'destroyed')),
    uploaded_by      TEXT,
    uploaded_at      BIGINT  NOT NULL,
    retention_until  BIGINT,
    legal_hold       BOOLEAN NOT NULL DEFAULT FALSE,
    destroyed_at     BIGINT,
    destroyed_by     TEXT,                  -- a user id, or 'retention'
    CHECK (state = 'destroyed' OR (wrapped_key IS NOT NULL AND key_version IS NOT NULL))
);
CREATE INDEX documents_client ON documents (client_id);
CREATE INDEX documents_key_version ON documents (key_version);
CREATE INDEX documents_state ON documents (state);

CREATE TABLE download_tokens (
    token_hash   TEXT   PRIMARY KEY,        -- SHA-256 of the token; the token itself is never stored
    document_id  TEXT   NOT NULL REFERENCES documents (id),
    user_id      TEXT   NOT NULL REFERENCES users (id),
    role         TEXT   NOT NULL,
    purpose      TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    used_at      BIGINT,
    voided_at    BIGINT                    -- set when the holder was deactivated
);
CREATE INDEX download_tokens_user ON download_tokens (user_id);

-- The audit chain: append-only, each event carries the hash of its predecessor.
CREATE TABLE audit_events (
    seq           BIGINT PRIMARY KEY,
    at            BIGINT NOT NULL,
    actor_id      TEXT,
    actor_role    TEXT,
    action        TEXT   NOT NULL,
    outcome       TEXT   NOT NULL,
    reason        TEXT,
    purpose       TEXT,
    client_id     TEXT,
    document_id   TEXT,
    on_behalf_of  TEXT,
    request_id    TEXT,
    details       TEXT   NOT NULL,          -- canonical JSON object of further facts
    prev_hash     TEXT   NOT NULL,
    hash          TEXT   NOT NULL
);
CREATE INDEX audit_events_client ON audit_events (client_id);
CREATE INDEX audit_events_document ON audit_events (document_id);
CREATE INDEX audit_events_actor ON audit_events (actor_id);

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- One row: the head of the chain. Appenders lock it first (UPDATE), which
-- serialises appends on both databases.
CREATE TABLE audit_head (
    id    BIGINT PRIMARY KEY CHECK (id = 1),
    seq   BIGINT  NOT NULL,
    hash  TEXT    NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
