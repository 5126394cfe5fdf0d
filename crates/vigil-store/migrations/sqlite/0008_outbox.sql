-- The transactional outbox: one row per alert change others must hear about, written in the
-- same transaction as the change, dispatched to the sinks (webhooks, live stream, Redis) at
-- least once. `seq` is the stream's resume cursor; `event_id` is the event's stable id.
-- Keep in step with the other backend's 0008_outbox.sql.
CREATE TABLE outbox (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id      BLOB NOT NULL UNIQUE,
    org_id        BLOB NOT NULL,
    alert_id      BLOB NOT NULL,
    kind          TEXT NOT NULL,
    occurred_at   TEXT NOT NULL,
    -- The AlertEvent as JSON text (its `seq` is filled in from the column when read).
    payload       TEXT NOT NULL,
    dispatched_at TEXT,
    -- A dispatcher's lease: rows claimed by another owner until then are skipped.
    claimed_until TEXT,
    claimed_by    TEXT
);
-- Undispatched rows, oldest first (the dispatcher's claim).
CREATE INDEX outbox_pending ON outbox(seq) WHERE dispatched_at IS NULL;
-- Stream resume per organization.
CREATE INDEX outbox_org_seq ON outbox(org_id, seq);
-- Pruning dispatched rows by age.
CREATE INDEX outbox_dispatched ON outbox(dispatched_at) WHERE dispatched_at IS NOT NULL;

-- Who works on an alert (`PATCH /alerts/{id}/assignee`).
ALTER TABLE alerts ADD COLUMN assignee TEXT;
