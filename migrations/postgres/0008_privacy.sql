-- Data-subject rights (issue 10; SPEC §6 "Privacy rights and accountability").
-- Keep in step with migrations/sqlite/0008_privacy.sql.
--
-- The request register: every request a client makes under the GDPR, with
-- the two clocks it runs on: `due_at` (received + 14 days, the agency's
-- promise) and `deadline_at` (received + one calendar month, art. 12(3)),
-- an extension (at most two further months, with its reason), who handles
-- it and how it was answered. Identity is recorded as the method used to
-- check it, never as the ID document itself.
CREATE TABLE privacy_requests (
    id                TEXT   PRIMARY KEY,
    client_id         TEXT   NOT NULL REFERENCES clients (id),
    kind              TEXT   NOT NULL CHECK (kind IN ('access', 'rectification', 'erasure', 'restriction',
                                                      'objection', 'portability', 'withdraw_consent')),
    received_at       BIGINT NOT NULL,
    channel           TEXT   NOT NULL CHECK (channel IN ('letter', 'email', 'phone', 'in_person', 'via_coach')),
    identity_check    TEXT   NOT NULL CHECK (identity_check IN ('id_document', 'in_person', 'known_contact',
                                                                'authorised_representative')),
    description       TEXT,
    handler_id        TEXT   REFERENCES users (id),
    due_at            BIGINT NOT NULL,
    deadline_at       BIGINT NOT NULL,
    extended_until    BIGINT,
    extension_reason  TEXT,
    decision          TEXT   CHECK (decision IN ('granted', 'partially_granted', 'refused', 'withdrawn')),
    outcome           TEXT,
    answered_at       BIGINT,
    answered_by       TEXT,
    created_by        TEXT   NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    CHECK ((decision IS NULL) = (answered_at IS NULL))
);
CREATE INDEX privacy_requests_client ON privacy_requests (client_id, received_at);
CREATE INDEX privacy_requests_open ON privacy_requests (due_at) WHERE answered_at IS NULL;

-- The consent register (the agency's form "machtiging persoonsgegevens"):
-- one row per consent given, closed by its withdrawal. The current consent
-- of a scope is the newest row not withdrawn; `clients.survey_consent` holds
-- it for the satisfaction survey, written in the same transaction, so that
-- the policy decides on the client row alone.
CREATE TABLE consents (
    id                 TEXT   PRIMARY KEY,
    client_id          TEXT   NOT NULL REFERENCES clients (id),
    scope              TEXT   NOT NULL CHECK (scope IN ('guidance', 'satisfaction_survey')),
    channels           TEXT   NOT NULL,     -- JSON list of 'email', 'phone' (the survey's), else []
    given_at           BIGINT NOT NULL,     -- as signed on the form
    evidence_id        TEXT   REFERENCES documents (id),   -- the signed form: a `consent` document
    recorded_by        TEXT   NOT NULL,
    recorded_at        BIGINT NOT NULL,
    withdrawn_at       BIGINT,
    withdrawn_by       TEXT,
    withdrawal_reason  TEXT,
    request_id         TEXT   REFERENCES privacy_requests (id)
);
CREATE INDEX consents_client ON consents (client_id, scope, recorded_at);
ALTER TABLE clients ADD COLUMN survey_consent BOOLEAN NOT NULL DEFAULT FALSE;

-- Disclosures: what was sent to which third party, on which legal basis
-- (GDPR art. 6). They are the recipients to notify after a correction or an
-- erasure (art. 19). `document_id` NULL: the client's data or whole dossier.
CREATE TABLE disclosures (
    id              TEXT   PRIMARY KEY,
    client_id       TEXT   NOT NULL REFERENCES clients (id),
    document_id     TEXT   REFERENCES documents (id),
    recipient_kind  TEXT   NOT NULL CHECK (recipient_kind IN ('uwv', 'municipality', 'employer', 'insurer',
                                                              'occupational_physician', 'other')),
    recipient       TEXT   NOT NULL,
    legal_basis     TEXT   NOT NULL CHECK (legal_basis IN ('consent', 'contract', 'legal_obligation',
                                                           'vital_interests', 'public_task', 'legitimate_interests')),
    basis_note      TEXT,
    disclosed_at    BIGINT NOT NULL,
    recorded_by     TEXT   NOT NULL,
    recorded_at     BIGINT NOT NULL
);
CREATE INDEX disclosures_client ON disclosures (client_id, disclosed_at);

-- Corrections of a client's data (art. 16): old and new value per field,
-- who, why, and the recipients to notify as they were at that moment. A BSN
-- appears only masked. The values are personal data: an erasure clears
-- them, keeping which fields were corrected when.
CREATE TABLE client_corrections (
    id            TEXT   PRIMARY KEY,
    client_id     TEXT   NOT NULL REFERENCES clients (id),
    request_id    TEXT   REFERENCES privacy_requests (id),
    corrected_by  TEXT   NOT NULL,
    corrected_at  BIGINT NOT NULL,
    reason        TEXT   NOT NULL,
    changes       TEXT   NOT NULL,          -- JSON [{field, old, new}]
    recipients    TEXT   NOT NULL           -- JSON [{recipient, recipient_kind, disclosures}]
);
CREATE INDEX client_corrections_client ON client_corrections (client_id, corrected_at);

-- A document corrected by a newer version points at the one it replaces;
-- view-only documents (raw psychological test material) are listed in an
-- export but never copied into it.
ALTER TABLE documents ADD COLUMN supersedes TEXT REFERENCES documents (id);
CREATE INDEX documents_supersedes ON documents (supersedes) WHERE supersedes IS NOT NULL;
ALTER TABLE documents ADD COLUMN view_only BOOLEAN NOT NULL DEFAULT FALSE;

-- Erasure (art. 17): the destruction certificate (what, when, who, method;
-- never content) and the recipients to notify. The client row stays, its
-- personal fields cleared, as the anchor of tombstones and certificate.
CREATE TABLE erasures (
    id           TEXT   PRIMARY KEY,
    client_id    TEXT   NOT NULL REFERENCES clients (id),
    request_id   TEXT   REFERENCES privacy_requests (id),
    erased_by    TEXT   NOT NULL,
    erased_at    BIGINT NOT NULL,
    reason       TEXT   NOT NULL,
    certificate  TEXT   NOT NULL            -- JSON, see service::privacy::ErasureCertificate
);
CREATE INDEX erasures_client ON erasures (client_id);
ALTER TABLE clients ADD COLUMN erased_at BIGINT;

-- A retention period the law imposes (not only the agency's policy): an
-- erasure request cannot destroy such a document before its date.
ALTER TABLE retention_policies ADD COLUMN statutory BOOLEAN NOT NULL DEFAULT FALSE;
