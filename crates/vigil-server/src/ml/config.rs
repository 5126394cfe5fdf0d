//! `[ml]`: the anomaly detection engine.

use serde::{Deserialize, Serialize};

/// Isolation Forest baselines per agent (and per organization), scored in the ingestion
/// pipeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MlConfig {
    /// Build feature vectors, score them and raise `ml_engine` alerts.
    pub enabled: bool,
    /// Width of a feature window, seconds (windows follow event time).
    pub window_secs: u64,
    /// A window with no later event closes this many seconds after its end.
    pub window_grace_secs: u64,
    /// How often the worker closes idle windows, seconds.
    pub flush_interval_secs: u64,
    /// How often every model is retrained from stored vectors, seconds; 0: only through
    /// `POST /api/v1/ml/models/retrain`.
    pub retrain_interval_secs: u64,
    /// Hours of vectors kept and trained on.
    pub history_hours: u64,
    /// Fewest vectors an entity needs for its own model (and the organization for its
    /// organization-wide model, used for entities without one).
    pub min_samples: usize,
    /// Most vectors (newest first) one model is trained on.
    pub max_samples: usize,
    /// Trees per forest.
    pub n_estimators: usize,
    /// Threshold rule: the fraction in (0, 0.5] of training vectors taken as anomalous (the
    /// threshold is that percentile of their scores), or `auto` (anomaly score above 0.5,
    /// the paper's rule; with a few dozen windows per baseline ordinary windows score
    /// near 0.5, hence the percentile default).
    pub contamination: String,
    /// Seed of every forest (the same vectors give the same model).
    pub seed: u64,
    /// Features an alert names as the most unusual.
    pub explain_top: usize,
    /// Also score (and keep vectors of) single flows, feature set `flow`.
    pub score_flows: bool,
    /// Most windows open at once (the oldest closes early past that).
    pub max_open_windows: usize,
}

impl Default for MlConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            window_secs: 60,
            window_grace_secs: 30,
            flush_interval_secs: 10,
            retrain_interval_secs: 3600,
            history_hours: 168,
            min_samples: 32,
            max_samples: 10_000,
            n_estimators: 100,
            contamination: vigil_ml::DEFAULT_CONTAMINATION.into(),
            seed: 0,
            explain_top: 3,
            score_flows: true,
            max_open_windows: 100_000,
        }
    }
}
