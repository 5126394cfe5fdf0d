-- Vigil foundation schema (SQLite). Keep in step with ../postgres/0001_foundation.sql:
-- same tables, columns and indexes; only the column types differ.
CREATE TABLE organizations (
    id          BLOB PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);

CREATE TABLE users (
    id                  BLOB PRIMARY KEY,
    org_id              BLOB NOT NULL REFERENCES organizations(id),
    username            TEXT NOT NULL UNIQUE,
    email               TEXT,
    password_hash       TEXT NOT NULL,
    role                TEXT NOT NULL CHECK (role IN ('viewer', 'analyst', 'admin')),
    disabled            BOOLEAN NOT NULL DEFAULT FALSE,
    created_at          TEXT NOT NULL,
    last_login_at       TEXT
);
CREATE INDEX users_org ON users(org_id);

-- A login session; refresh tokens of one session form a rotation family.
CREATE TABLE sessions (
    id          BLOB PRIMARY KEY,
    user_id     BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    revoked_at  TEXT,
    revoke_reason TEXT
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE refresh_tokens (
    token_hash  BLOB PRIMARY KEY,
    session_id  BLOB NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT
);
CREATE INDEX refresh_tokens_session ON refresh_tokens(session_id);

CREATE TABLE agents (
    id          BLOB PRIMARY KEY,
    org_id      BLOB NOT NULL REFERENCES organizations(id),
    hostname    TEXT NOT NULL,
    ip          TEXT,
    os          TEXT,
    version     TEXT,
    status      TEXT NOT NULL CHECK (status IN ('online', 'offline', 'stale')),
    last_seen   TEXT,
    created_at  TEXT NOT NULL
);
CREATE INDEX agents_org ON agents(org_id, hostname);

CREATE TABLE alerts (
    id                  BLOB PRIMARY KEY,
    org_id              BLOB NOT NULL REFERENCES organizations(id),
    alert_id            TEXT NOT NULL,
    title               TEXT NOT NULL,
    description         TEXT NOT NULL,
    severity            SMALLINT NOT NULL CHECK (severity BETWEEN 1 AND 4),
    status              TEXT NOT NULL CHECK (status IN ('open', 'in_progress', 'closed', 'false_positive')),
    source              TEXT NOT NULL CHECK (source IN ('agent', 'ml_engine', 'user', 'rule', 'intel')),
    event_type          TEXT NOT NULL,
    timestamp           TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    metadata            TEXT NOT NULL,
    attack_technique_id TEXT,
    -- The technique without sub-technique (T1059 for T1059.001), so a filter on a parent
    -- technique is an ordered index range.
    technique_base      TEXT,
    confidence_score    REAL,
    agent_id            TEXT,
    tags                TEXT NOT NULL,
    observables         TEXT NOT NULL,
    resolution_notes    TEXT,
    acknowledged_by     TEXT,
    acknowledged_at     TEXT,
    closed_by           TEXT,
    closed_at           TEXT,
    UNIQUE (org_id, alert_id)
);
CREATE INDEX alerts_org_ts ON alerts(org_id, timestamp, id);
CREATE INDEX alerts_org_created ON alerts(org_id, created_at, id);
CREATE INDEX alerts_org_updated ON alerts(org_id, updated_at, id);
CREATE INDEX alerts_org_sev_ts ON alerts(org_id, severity, timestamp, id);
CREATE INDEX alerts_org_status_ts ON alerts(org_id, status, timestamp, id);
-- Counts of status + severity filters (the most common dashboard query) stay index-only.
CREATE INDEX alerts_org_status_sev ON alerts(org_id, status, severity);
CREATE INDEX alerts_org_source_ts ON alerts(org_id, source, timestamp, id);
CREATE INDEX alerts_org_agent_ts ON alerts(org_id, agent_id, timestamp, id);
CREATE INDEX alerts_org_technique ON alerts(org_id, attack_technique_id, timestamp, id);
CREATE INDEX alerts_org_technique_base ON alerts(org_id, technique_base, timestamp, id);

CREATE TABLE alert_tags (
    alert_id    BLOB NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
    org_id      BLOB NOT NULL,
    tag         TEXT NOT NULL,
    -- Copy of the alert's timestamp: tag listings walk this index in time order.
    timestamp   TEXT NOT NULL,
    PRIMARY KEY (alert_id, tag)
);
CREATE INDEX alert_tags_org_tag_ts ON alert_tags(org_id, tag, timestamp, alert_id);

CREATE TABLE alert_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id    BLOB NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
    org_id      BLOB NOT NULL,
    changed_by  TEXT NOT NULL,
    changed_at  TEXT NOT NULL,
    field       TEXT NOT NULL,
    old_value   TEXT,
    new_value   TEXT
);
CREATE INDEX alert_history_alert ON alert_history(alert_id, id);

CREATE TABLE actions (
    id          BLOB PRIMARY KEY,
    org_id      BLOB NOT NULL REFERENCES organizations(id),
    alert_id    BLOB REFERENCES alerts(id) ON DELETE SET NULL,
    action_type TEXT NOT NULL,
    parameters  TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    result      TEXT,
    created_by  TEXT,
    created_at  TEXT NOT NULL,
    completed_at TEXT
);
CREATE INDEX actions_org_created ON actions(org_id, created_at);
