-- Ingestion: agent enrollment and credentials, API keys, ingest batches, events, alert
-- deduplication. Keep in step with ../sqlite/0002_ingest.sql.
ALTER TABLE agents ADD COLUMN credential_hash BYTEA;
ALTER TABLE agents ADD COLUMN revoked_at TIMESTAMPTZ;
ALTER TABLE agents ADD COLUMN last_metrics JSONB;
CREATE UNIQUE INDEX agents_credential ON agents(credential_hash);

CREATE TABLE enrollment_tokens (
    id          UUID PRIMARY KEY,
    org_id      UUID NOT NULL REFERENCES organizations(id),
    token_hash  BYTEA NOT NULL UNIQUE,
    description TEXT,
    created_by  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ,
    agent_id    UUID
);
CREATE INDEX enrollment_tokens_org ON enrollment_tokens(org_id, created_at);

CREATE TABLE api_keys (
    id          UUID PRIMARY KEY,
    org_id      UUID NOT NULL REFERENCES organizations(id),
    name        TEXT NOT NULL,
    key_hash    BYTEA NOT NULL UNIQUE,
    scopes      TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ
);
CREATE INDEX api_keys_org ON api_keys(org_id, created_at);

CREATE TABLE ingest_batches (
    org_id      UUID NOT NULL,
    batch_id    UUID NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    event_count INTEGER NOT NULL,
    PRIMARY KEY (org_id, batch_id)
);
CREATE INDEX ingest_batches_received ON ingest_batches(received_at);

CREATE TABLE events (
    id          UUID PRIMARY KEY,
    org_id      UUID NOT NULL REFERENCES organizations(id),
    timestamp   TIMESTAMPTZ NOT NULL,
    ingested_at TIMESTAMPTZ NOT NULL,
    host        TEXT,
    dataset     TEXT,
    channel     TEXT NOT NULL,
    message     TEXT,
    doc         JSONB NOT NULL
);
CREATE INDEX events_org_time ON events(org_id, timestamp, id);
CREATE INDEX events_org_host ON events(org_id, host, timestamp, id);
CREATE INDEX events_org_dataset ON events(org_id, dataset, timestamp, id);

ALTER TABLE alerts ADD COLUMN dedup_key TEXT;
ALTER TABLE alerts ADD COLUMN event_count BIGINT NOT NULL DEFAULT 1;
ALTER TABLE alerts ADD COLUMN last_seen TIMESTAMPTZ;
CREATE INDEX alerts_dedup ON alerts(org_id, dedup_key, created_at) WHERE dedup_key IS NOT NULL;
