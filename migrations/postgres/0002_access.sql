-- Substitutions (a colleague covers an absent coach's caseload for a window)
-- and the caseload history (who was responsible for a client, when).

CREATE TABLE substitutions (
    id               TEXT   PRIMARY KEY,
    absent_coach_id  TEXT   NOT NULL REFERENCES users (id),
    substitute_id    TEXT   NOT NULL REFERENCES users (id),
    starts_at        BIGINT NOT NULL,
    ends_at          BIGINT NOT NULL,       -- exclusive; moved forward when ended early
    reason           TEXT   NOT NULL CHECK (reason IN ('vacation', 'sickness')),
    created_by       TEXT   NOT NULL,
    created_at       BIGINT NOT NULL,
    ended_early_by   TEXT,
    CHECK (ends_at >= starts_at),           -- equal: ended before it began
    CHECK (absent_coach_id <> substitute_id)
);
CREATE INDEX substitutions_substitute ON substitutions (substitute_id, ends_at);

CREATE TABLE caseload_history (
    id           TEXT   PRIMARY KEY,
    client_id    TEXT   NOT NULL REFERENCES clients (id),
    coach_id     TEXT   REFERENCES users (id),
    from_at      BIGINT NOT NULL,
    until_at     BIGINT,                   -- NULL: still responsible
    assigned_by  TEXT
);
CREATE INDEX caseload_history_client ON caseload_history (client_id, from_at);
