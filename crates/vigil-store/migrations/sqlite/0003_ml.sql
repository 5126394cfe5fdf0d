-- ML engine: feature vectors per entity (agent or host) and trained models. Keep in step
-- with ../postgres/0003_ml.sql.
CREATE TABLE ml_features (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id       BLOB NOT NULL REFERENCES organizations(id),
    feature_set  TEXT NOT NULL,
    entity       TEXT NOT NULL,
    window_start TEXT NOT NULL,
    vals         TEXT NOT NULL
);
CREATE INDEX ml_features_entity ON ml_features(org_id, feature_set, entity, window_start);
CREATE INDEX ml_features_time ON ml_features(org_id, window_start);

CREATE TABLE ml_models (
    org_id        BLOB NOT NULL REFERENCES organizations(id),
    feature_set   TEXT NOT NULL,
    entity        TEXT NOT NULL,
    version       INTEGER NOT NULL,
    trained_at    TEXT NOT NULL,
    sample_count  INTEGER NOT NULL,
    features      TEXT NOT NULL,
    threshold     REAL NOT NULL,
    training_secs REAL NOT NULL,
    model         BLOB NOT NULL,
    PRIMARY KEY (org_id, feature_set, entity, version)
);
