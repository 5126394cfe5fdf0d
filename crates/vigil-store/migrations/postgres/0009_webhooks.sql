-- Outgoing webhooks (issue 16): endpoints per organization, one delivery per (endpoint,
-- event) with its retry state and lease, and the log of attempts. Keep in step with the
-- other backend's 0009_webhooks.sql.
CREATE TABLE webhook_endpoints (
    id              UUID PRIMARY KEY,
    org_id          UUID NOT NULL REFERENCES organizations(id),
    name            TEXT NOT NULL,
    url             TEXT NOT NULL,
    -- The signing secret as the server encrypted it (never in clear).
    secret          TEXT NOT NULL,
    enabled         BOOLEAN NOT NULL,
    disabled_reason TEXT,
    -- Severity rank; NULL: every severity.
    min_severity    SMALLINT,
    -- JSON arrays; empty: no condition.
    sources         TEXT  NOT NULL,
    tags            TEXT  NOT NULL,
    event_kinds     TEXT  NOT NULL,
    -- JSON array of [name, value].
    headers         TEXT  NOT NULL,
    timeout_ms      BIGINT NOT NULL,
    -- Written from [[webhooks.endpoints]] at start; the API does not change it.
    from_config     BOOLEAN NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE webhook_deliveries (
    id               UUID PRIMARY KEY,
    org_id           UUID NOT NULL,
    endpoint_id      UUID NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    event_id         UUID NOT NULL,
    alert_id         UUID NOT NULL,
    -- Outbox sequence: a delivery waits while an earlier one of its alert is unfinished.
    seq              BIGINT NOT NULL,
    kind             TEXT NOT NULL,
    payload          TEXT NOT NULL,
    -- pending, delivering, delivered, dead
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    -- The maximum age counts from here (reset by a manual redelivery).
    age_from         TIMESTAMPTZ NOT NULL,
    next_attempt_at  TIMESTAMPTZ,
    lease_until      TIMESTAMPTZ,
    leased_by        TEXT,
    last_attempt_at  TIMESTAMPTZ,
    last_status_code INTEGER,
    last_latency_ms  BIGINT,
    last_error       TEXT,
    finished_at      TIMESTAMPTZ,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(endpoint_id, status, next_attempt_at);
CREATE INDEX webhook_deliveries_alert ON webhook_deliveries(endpoint_id, alert_id, seq);
CREATE INDEX webhook_deliveries_list ON webhook_deliveries(endpoint_id, created_at, id);

CREATE TABLE webhook_attempts (
    id           BIGSERIAL PRIMARY KEY,
    delivery_id  UUID NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempted_at TIMESTAMPTZ NOT NULL,
    outcome      TEXT NOT NULL,
    status_code  INTEGER,
    latency_ms   BIGINT NOT NULL,
    error        TEXT
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts(delivery_id, id);
