-- AI triage results: a model's validated analysis of an alert and its suggestions, each
-- accepted or dismissed by an analyst. Keep in step with the other backend's 0004_ai.sql.
CREATE TABLE alert_triage (
    id             BLOB PRIMARY KEY,
    org_id         BLOB NOT NULL REFERENCES organizations(id),
    alert_id       BLOB NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
    provider       TEXT NOT NULL,
    model          TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    analysis       TEXT NOT NULL,
    suggestions    TEXT NOT NULL
);
CREATE INDEX alert_triage_alert ON alert_triage(org_id, alert_id, created_at);
