-- Accountability (issue 11; SPEC §6 breaches). Keep in step with
-- migrations/postgres/0009_accountability.sql.
--
-- The breach register: the facts GDPR art. 33(5) asks to document, with the
-- 72-hour clock from detection (`notify_deadline` = detected + 72 h, computed
-- when read) and every update as the investigation goes on.
CREATE TABLE breaches (
    id                             TEXT   PRIMARY KEY,
    detected_at                    BIGINT NOT NULL,
    nature                         TEXT   NOT NULL,
    categories                     TEXT   NOT NULL,   -- JSON list of data categories
    data_subjects_estimate         BIGINT NOT NULL CHECK (data_subjects_estimate >= 0),
    records_estimate               BIGINT NOT NULL CHECK (records_estimate >= 0),
    consequences                   TEXT   NOT NULL,
    measures                       TEXT   NOT NULL,
    authority_notified_at          BIGINT,
    authority_not_notified_reason  TEXT,
    data_subjects_informed         BOOLEAN NOT NULL DEFAULT 0,
    data_subjects_informed_at      BIGINT,
    registered_by                  TEXT   NOT NULL,
    registered_at                  BIGINT NOT NULL,
    updated_at                     BIGINT NOT NULL,
    CHECK (authority_notified_at IS NULL OR authority_not_notified_reason IS NULL)
);
CREATE INDEX breaches_detected ON breaches (detected_at);

-- What changed in a breach entry, when, by whom: the register's history.
CREATE TABLE breach_updates (
    id         TEXT   PRIMARY KEY,
    breach_id  TEXT   NOT NULL REFERENCES breaches (id),
    at         BIGINT NOT NULL,
    by_user    TEXT   NOT NULL,
    changes    TEXT   NOT NULL,                 -- JSON {field: {from, to}}
    note       TEXT
);
CREATE INDEX breach_updates_breach ON breach_updates (breach_id, at);

-- An incident's reach is read from the audit log by time window.
CREATE INDEX audit_events_at ON audit_events (at);

-- Reviews of the audit log: who looked at which period, when, and what they
-- found; an unreviewed stretch older than KLUIS_AUDIT_REVIEW_DAYS shows in
-- /readyz and the metrics.
CREATE TABLE audit_reviews (
    id            TEXT   PRIMARY KEY,
    reviewer      TEXT   NOT NULL,
    reviewed_at   BIGINT NOT NULL,
    period_from   BIGINT NOT NULL,
    period_until  BIGINT NOT NULL,
    findings      TEXT   NOT NULL,              -- JSON {kind: count} as the report showed them
    remarks       TEXT,
    CHECK (period_until > period_from)
);
CREATE INDEX audit_reviews_until ON audit_reviews (period_until);
