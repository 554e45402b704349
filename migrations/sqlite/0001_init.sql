-- smartdesk ledger, SQLite flavour. Timestamps are UTC RFC 3339 text (sqlx chrono
-- encoding); dates are YYYY-MM-DD. Kept in step with migrations/postgres/0001_init.sql.

CREATE TABLE contractors (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT NOT NULL CHECK (length(name) > 0),
    greeting        TEXT NOT NULL CHECK (length(greeting) > 0),
    plan            TEXT NOT NULL,
    hearing         INTEGER NOT NULL DEFAULT 0 CHECK (hearing IN (0, 1)),
    hearing_items   TEXT NOT NULL DEFAULT '[]',          -- JSON array of questions
    start_date      TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'suspended', 'ended')),
    created_at      TEXT NOT NULL
);

-- Where reports go (email, webhook, slack). Several per contractor.
CREATE TABLE report_channels (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    contractor_id   INTEGER NOT NULL REFERENCES contractors(id),
    kind            TEXT NOT NULL CHECK (kind IN ('email', 'webhook', 'slack')),
    target          TEXT NOT NULL,
    secret          TEXT,
    created_at      TEXT NOT NULL
);
CREATE INDEX report_channels_contractor ON report_channels(contractor_id);

CREATE TABLE plan_changes (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    contractor_id   INTEGER NOT NULL REFERENCES contractors(id),
    plan            TEXT NOT NULL,
    hearing         INTEGER NOT NULL CHECK (hearing IN (0, 1)),
    received_on     TEXT NOT NULL,
    effective_on    TEXT NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX plan_changes_contractor ON plan_changes(contractor_id, effective_on);

CREATE TABLE cancellations (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    contractor_id   INTEGER NOT NULL UNIQUE REFERENCES contractors(id),
    received_on     TEXT NOT NULL,
    end_month       TEXT,                                 -- as named by the contractor, YYYY-MM
    effective_end   TEXT NOT NULL,                        -- last day of the contract
    fee_waived      INTEGER NOT NULL CHECK (fee_waived IN (0, 1)),
    created_at      TEXT NOT NULL
);

CREATE TABLE suspensions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    contractor_id   INTEGER NOT NULL REFERENCES contractors(id),
    reason          TEXT NOT NULL,
    received_on     TEXT NOT NULL,
    effective_from  TEXT NOT NULL,                        -- instant, UTC
    ended_at        TEXT,
    created_at      TEXT NOT NULL
);
CREATE INDEX suspensions_contractor ON suspensions(contractor_id);
-- at most one open suspension per contractor
CREATE UNIQUE INDEX suspensions_open ON suspensions(contractor_id) WHERE ended_at IS NULL;

CREATE TABLE assigned_numbers (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    number          TEXT NOT NULL CHECK (number LIKE '+81%'),   -- E.164
    contractor_id   INTEGER NOT NULL REFERENCES contractors(id),
    assigned_at     TEXT NOT NULL,
    released_at     TEXT
);
-- A number belongs to at most one contractor at a time; history is kept.
CREATE UNIQUE INDEX assigned_numbers_live ON assigned_numbers(number) WHERE released_at IS NULL;
CREATE INDEX assigned_numbers_contractor ON assigned_numbers(contractor_id);

CREATE TABLE seats (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT NOT NULL UNIQUE,
    realm           TEXT NOT NULL,
    ha1_md5         TEXT NOT NULL,                        -- RFC 2617 H(user:realm:password)
    ha1_sha256      TEXT NOT NULL,                        -- RFC 8760
    web_password    TEXT,                                 -- argon2 PHC string
    skills          TEXT NOT NULL DEFAULT '[]',
    created_at      TEXT NOT NULL
);

-- Seat registrations (RFC 3261 §10.3 bindings) survive restarts, kill -9 included (issue #4 §3).
-- Written behind the registrar's in-memory table; reloaded at start. One row per
-- (canonical AOR, contact URI as the phone wrote it).
CREATE TABLE registrations (
    seat_id         INTEGER NOT NULL REFERENCES seats(id),
    aor             TEXT NOT NULL,                        -- sip:<seat>@<domain>
    contact         TEXT NOT NULL,
    source          TEXT NOT NULL,                        -- ip:port the REGISTER came from
    transport       TEXT NOT NULL CHECK (transport IN ('udp', 'tcp')),
    call_id         TEXT NOT NULL,
    cseq            INTEGER NOT NULL,
    expires_at      TEXT NOT NULL,
    q               INTEGER,                              -- contact q in thousandths
    params          TEXT NOT NULL DEFAULT '',             -- other contact params verbatim
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (aor, contact)
);
CREATE INDEX registrations_expires ON registrations(expires_at);

-- One row per inbound call. The unique key makes a duplicate INVITE unable to count twice.
CREATE TABLE calls (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    trunk           TEXT NOT NULL,
    sip_call_id     TEXT NOT NULL,
    from_tag        TEXT NOT NULL DEFAULT '',
    contractor_id   INTEGER REFERENCES contractors(id),
    number          TEXT NOT NULL,
    caller          TEXT,                                 -- E.164 or raw; NULL when withheld
    caller_withheld INTEGER NOT NULL DEFAULT 0 CHECK (caller_withheld IN (0, 1)),
    outcome         TEXT,                                 -- NULL while in progress
    billable        INTEGER NOT NULL CHECK (billable IN (0, 1)),
    seat_id         INTEGER REFERENCES seats(id),
    started_at      TEXT NOT NULL,
    answered_at     TEXT,
    ended_at        TEXT,
    UNIQUE (trunk, sip_call_id, from_tag)
);
CREATE INDEX calls_contractor_started ON calls(contractor_id, started_at);
CREATE INDEX calls_started ON calls(started_at);

CREATE TABLE call_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id         INTEGER NOT NULL REFERENCES calls(id),
    at              TEXT NOT NULL,
    kind            TEXT NOT NULL,
    seat_id         INTEGER REFERENCES seats(id),
    detail          TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX call_events_call ON call_events(call_id);
CREATE INDEX call_events_at ON call_events(at);

-- First-response records: immutable; a correction is a new row pointing at the old one.
CREATE TABLE first_responses (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id         INTEGER NOT NULL REFERENCES calls(id),
    contractor_id   INTEGER NOT NULL REFERENCES contractors(id),
    seat_id         INTEGER REFERENCES seats(id),
    version         INTEGER NOT NULL DEFAULT 1,
    supersedes      INTEGER UNIQUE REFERENCES first_responses(id),
    caller_name     TEXT NOT NULL DEFAULT '',
    callback_number TEXT,
    callback_wanted INTEGER NOT NULL CHECK (callback_wanted IN (0, 1)),
    purpose         TEXT NOT NULL DEFAULT '',
    category        TEXT NOT NULL,
    hearing_answers TEXT NOT NULL DEFAULT '{}',
    written_by      TEXT NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX first_responses_call ON first_responses(call_id);
CREATE INDEX first_responses_contractor ON first_responses(contractor_id, created_at);
CREATE TRIGGER first_responses_no_update BEFORE UPDATE ON first_responses
BEGIN SELECT RAISE(ABORT, 'first-response records are immutable; write a correction'); END;
CREATE TRIGGER first_responses_no_delete BEFORE DELETE ON first_responses
BEGIN SELECT RAISE(ABORT, 'first-response records are immutable'); END;

-- Durable outbox for reports to contractors.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    contractor_id   INTEGER NOT NULL REFERENCES contractors(id),
    record_id       INTEGER REFERENCES first_responses(id),
    call_id         INTEGER REFERENCES calls(id),
    channel_kind    TEXT NOT NULL,
    target          TEXT NOT NULL,
    payload         TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    delivered_at    TEXT
);
CREATE INDEX outbox_due ON outbox(state, next_attempt_at);
