-- `/ready` proves the database takes a write by upserting this one row (a read can succeed
-- while every write fails). Keep in step with the other backend's 0006_ready_probe.sql.
CREATE TABLE ready_probe (
    id INTEGER PRIMARY KEY,
    -- Unix seconds of the last probe.
    checked_at BIGINT NOT NULL
);
