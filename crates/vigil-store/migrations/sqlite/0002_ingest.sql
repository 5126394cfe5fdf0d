-- Ingestion: agent enrollment and credentials, API keys, ingest batches, events, alert
-- deduplication. Keep in step with ../postgres/0002_ingest.sql.
ALTER TABLE agents ADD COLUMN credential_hash BLOB;
ALTER TABLE agents ADD COLUMN revoked_at TEXT;
ALTER TABLE agents ADD COLUMN last_metrics TEXT;
CREATE UNIQUE INDEX agents_credential ON agents(credential_hash);

-- One-time tokens an admin creates; an agent trades one for its own credential.
CREATE TABLE enrollment_tokens (
    id          BLOB PRIMARY KEY,
    org_id      BLOB NOT NULL REFERENCES organizations(id),
    token_hash  BLOB NOT NULL UNIQUE,
    description TEXT,
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT,
    agent_id    BLOB
);
CREATE INDEX enrollment_tokens_org ON enrollment_tokens(org_id, created_at);

CREATE TABLE api_keys (
    id          BLOB PRIMARY KEY,
    org_id      BLOB NOT NULL REFERENCES organizations(id),
    name        TEXT NOT NULL,
    key_hash    BLOB NOT NULL UNIQUE,
    scopes      TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT,
    last_used_at TEXT
);
CREATE INDEX api_keys_org ON api_keys(org_id, created_at);

-- Batch ids seen, so a re-sent batch is stored once. Purged with the events.
CREATE TABLE ingest_batches (
    org_id      BLOB NOT NULL,
    batch_id    BLOB NOT NULL,
    received_at TEXT NOT NULL,
    event_count INTEGER NOT NULL,
    PRIMARY KEY (org_id, batch_id)
);
CREATE INDEX ingest_batches_received ON ingest_batches(received_at);

CREATE TABLE events (
    id          BLOB PRIMARY KEY,
    org_id      BLOB NOT NULL REFERENCES organizations(id),
    timestamp   TEXT NOT NULL,
    ingested_at TEXT NOT NULL,
    host        TEXT,
    dataset     TEXT,
    channel     TEXT NOT NULL,
    message     TEXT,
    doc         TEXT NOT NULL
);
CREATE INDEX events_org_time ON events(org_id, timestamp, id);
CREATE INDEX events_org_host ON events(org_id, host, timestamp, id);
CREATE INDEX events_org_dataset ON events(org_id, dataset, timestamp, id);

ALTER TABLE alerts ADD COLUMN dedup_key TEXT;
ALTER TABLE alerts ADD COLUMN event_count INTEGER NOT NULL DEFAULT 1;
ALTER TABLE alerts ADD COLUMN last_seen TEXT;
CREATE INDEX alerts_dedup ON alerts(org_id, dedup_key, created_at) WHERE dedup_key IS NOT NULL;
