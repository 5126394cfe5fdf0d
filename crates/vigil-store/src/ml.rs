//! The ML engine's state: feature vectors per (organization, feature set, entity) and the
//! models trained from them, versioned. Its own trait like [`crate::EventStore`]; the SQL
//! implementation is `common_ml.rs`, compiled for each backend. Every call takes the org.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::Result;

/// A feature vector to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFeatureRow {
    pub feature_set: String,
    /// The agent id or host name the vector describes.
    pub entity: String,
    pub window_start: DateTime<Utc>,
    pub values: Vec<f64>,
}

/// A model to store; its version is assigned on save.
#[derive(Debug, Clone)]
pub struct NewModel {
    pub feature_set: String,
    /// The entity, or `*` for the organization-wide model.
    pub entity: String,
    pub trained_at: DateTime<Utc>,
    pub sample_count: i64,
    pub features: Vec<String>,
    pub threshold: f64,
    pub training_secs: f64,
    /// The encoded model (`vigil_ml::Model::to_bytes`).
    pub model: Vec<u8>,
}

/// A stored model.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredModel {
    pub feature_set: String,
    pub entity: String,
    /// 1 for the first model of this feature set and entity, then counting up.
    pub version: i64,
    pub trained_at: DateTime<Utc>,
    pub sample_count: i64,
    pub features: Vec<String>,
    pub threshold: f64,
    pub training_secs: f64,
    pub model: Vec<u8>,
}

/// Models kept per (org, feature set, entity): older versions are deleted on save.
pub const MODEL_VERSIONS_KEPT: i64 = 5;

/// Where feature vectors and models are kept.
#[async_trait::async_trait]
pub trait MlStore: Send + Sync + 'static {
    async fn append_features(&self, org: Uuid, rows: Vec<NewFeatureRow>) -> Result<()>;
    /// Entities with vectors of `feature_set` since `since`, and how many each.
    async fn feature_entities(
        &self,
        org: Uuid,
        feature_set: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, i64)>>;
    /// The newest `limit` vectors of `feature_set` since `since` (of one entity, or all).
    async fn feature_rows(
        &self,
        org: Uuid,
        feature_set: &str,
        entity: Option<&str>,
        since: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<NewFeatureRow>>;
    /// Saves a model as the next version of its feature set and entity.
    async fn save_model(&self, org: Uuid, model: NewModel) -> Result<StoredModel>;
    /// The newest version of every model of the organization.
    async fn latest_models(&self, org: Uuid) -> Result<Vec<StoredModel>>;
    /// Deletes vectors whose window started before `before`; returns how many.
    async fn purge_features(&self, before: DateTime<Utc>) -> Result<u64>;
}
