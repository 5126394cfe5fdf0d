-- ML engine: feature vectors per entity (agent or host) and trained models. Keep in step
-- with ../sqlite/0003_ml.sql.
CREATE TABLE ml_features (
    id           BIGSERIAL PRIMARY KEY,
    org_id       UUID NOT NULL REFERENCES organizations(id),
    feature_set  TEXT NOT NULL,
    entity       TEXT NOT NULL,
    window_start TIMESTAMPTZ NOT NULL,
    vals         TEXT NOT NULL
);
CREATE INDEX ml_features_entity ON ml_features(org_id, feature_set, entity, window_start);
CREATE INDEX ml_features_time ON ml_features(org_id, window_start);

CREATE TABLE ml_models (
    org_id        UUID NOT NULL REFERENCES organizations(id),
    feature_set   TEXT NOT NULL,
    entity        TEXT NOT NULL,
    version       BIGINT NOT NULL,
    trained_at    TIMESTAMPTZ NOT NULL,
    sample_count  BIGINT NOT NULL,
    features      TEXT NOT NULL,
    threshold     DOUBLE PRECISION NOT NULL,
    training_secs DOUBLE PRECISION NOT NULL,
    model         BYTEA NOT NULL,
    PRIMARY KEY (org_id, feature_set, entity, version)
);
