-- Call distribution (issue #6): the queue log and voice messages. Additive only.
-- Kept in step with migrations/postgres/0003_acd.sql.

-- The queue log: entered, offered(seat), no_answer(seat), busy(seat), declined(seat),
-- connected(seat, wait), abandoned(wait, position), overflow(wait). `smartdesk stats`
-- computes service levels from it.
CREATE TABLE queue_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id         INTEGER NOT NULL REFERENCES calls(id),
    contractor_id   INTEGER NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('entered', 'offered', 'no_answer', 'busy',
                        'declined', 'connected', 'abandoned', 'overflow')),
    seat_id         INTEGER,
    wait_ms         INTEGER,
    position        INTEGER,
    at              TEXT NOT NULL
);
CREATE INDEX queue_events_at ON queue_events(at);
CREATE INDEX queue_events_call ON queue_events(call_id);

-- A message left by a caller who could not be served (outcome overflow): one per call.
-- A new row is the event the report outbox delivers to the contractor like a first response.
CREATE TABLE voice_messages (
    call_id         INTEGER PRIMARY KEY REFERENCES calls(id),
    path            TEXT NOT NULL,                        -- WAV file (G.711, 8 kHz mono)
    duration_ms     INTEGER NOT NULL CHECK (duration_ms >= 0),
    created_at      TEXT NOT NULL
);
CREATE INDEX voice_messages_created ON voice_messages(created_at);
