-- Lock-out per submitted user name (existing or not, so a lock-out does not
-- reveal which names exist), and the sweeper's claim on interrupted uploads.

CREATE TABLE login_attempts (
    name_key      TEXT    PRIMARY KEY,      -- keyed hash of the submitted name; the name itself is never stored
    failures      BIGINT  NOT NULL,         -- failures in a row
    locked_until  BIGINT,
    updated_at    BIGINT  NOT NULL
);

-- Set by the sweeper before it deletes an interrupted upload's object; a
-- claimed row can no longer be activated.
ALTER TABLE documents ADD COLUMN claimed_at BIGINT;
