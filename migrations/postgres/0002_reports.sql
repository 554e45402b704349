-- Reports to contractors (issue #7): channels can be retired without losing the history of
-- what was sent to them; each outbox row names the channel it delivers to.
-- Kept in step with migrations/sqlite/0002_reports.sql.

ALTER TABLE report_channels ADD COLUMN removed_at TIMESTAMPTZ;
ALTER TABLE outbox ADD COLUMN channel_id BIGINT REFERENCES report_channels(id);
-- 'record' (a first-response record) or 'message' (a message left on overflow).
ALTER TABLE outbox ADD COLUMN report_kind TEXT NOT NULL DEFAULT 'record';
CREATE INDEX outbox_record ON outbox(record_id);

-- Earlier calls from the same number for the same contractor (console).
CREATE INDEX calls_contractor_caller ON calls(contractor_id, caller, started_at);

-- One first record per call (a double-clicked submit cannot write two); later versions
-- are corrections (supersedes set), each version corrected at most once (0001's UNIQUE).
CREATE UNIQUE INDEX first_responses_first ON first_responses(call_id) WHERE supersedes IS NULL;
