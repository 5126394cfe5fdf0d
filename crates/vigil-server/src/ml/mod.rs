//! The ML engine in the server: feature windows built from ingested events
//! (`vigil_ml::features`, defined in `docs/ML.md`), scored against per-agent Isolation
//! Forest baselines (else the organization's), anomalies raised as `ml_engine` alerts that
//! explain themselves, and models trained from stored vectors.
//!
//! ```text
//! pipeline detect stage ── observe_batch(org, events) ──► Windows (per org, entity, set)
//!      │                                                  │ closed window / flow vector
//!      │                       models: (org, set, entity | "*") ──► Verdict ──► Detection
//!      ▼
//! store stage: events, then ml_features rows, then alerts
//! worker.rs: flush idle windows · retrain on schedule · purge old vectors
//! ```
//!
//! Vectors closed together (one ingest batch, one flush) are scored together: one batch
//! per model through the forest's block scoring (`MlEngine::score_batch`).
//!
//! Cold start: with no model for an entity nor its organization, nothing is scored as
//! anomalous (`ml_predictions_total{prediction="no_model"}` counts them) and
//! `GET /api/v1/ml/health` says `cold_start: true`.

pub mod config;
pub mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value as Json, json};
use utoipa::ToSchema;
use uuid::Uuid;
use vigil_core::{AlertInput, AlertSource, NewAlert, Severity};
use vigil_ml::{Contamination, FeatureSet, ForestParams, Matrix, Model, Sample, Verdict, Windows};
use vigil_store::{Detection, DynStore, MlStore, NewFeatureRow, NewModel, StoredModel};

pub use config::MlConfig;

use crate::metrics::{ML_PREDICTIONS, ML_TRAINING_DURATION};

/// The entity name of an organization-wide model.
pub const ORG_WIDE: &str = "*";

/// What the API shows of a model.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelInfo {
    /// `flow`, `network` or `host`.
    pub feature_set: String,
    /// Agent id or host name, or `*` for the organization-wide model.
    pub entity: String,
    pub version: i64,
    pub trained_at: DateTime<Utc>,
    /// Vectors it was trained on.
    pub sample_count: i64,
    /// Feature names, in vector order.
    pub features: Vec<String>,
    /// Anomaly scores above this are anomalous.
    pub threshold: f64,
    pub training_secs: f64,
}

impl ModelInfo {
    fn of(m: &StoredModel) -> Self {
        Self {
            feature_set: m.feature_set.clone(),
            entity: m.entity.clone(),
            version: m.version,
            trained_at: m.trained_at,
            sample_count: m.sample_count,
            features: m.features.clone(),
            threshold: m.threshold,
            training_secs: m.training_secs,
        }
    }
}

/// A model in memory.
pub struct Loaded {
    pub info: ModelInfo,
    pub model: Model,
}

/// Detections and vectors to store, from one batch or one flush.
#[derive(Default)]
pub struct MlOutput {
    pub detections: Vec<Detection>,
    pub rows: Vec<NewFeatureRow>,
}

type Key = (FeatureSet, String);

pub struct MlEngine {
    config: MlConfig,
    contamination: Contamination,
    store: Arc<dyn MlStore>,
    windows: Mutex<Windows<Uuid>>,
    models: RwLock<HashMap<Uuid, HashMap<Key, Arc<Loaded>>>>,
    training: tokio::sync::Mutex<()>,
}

/// A scored vector: the verdict and which model gave it.
pub struct Scored {
    pub verdict: Verdict,
    pub model: Arc<Loaded>,
}

impl MlEngine {
    /// Checks the configuration and loads every organization's latest models.
    pub async fn start(config: MlConfig, store: &DynStore) -> anyhow::Result<Arc<Self>> {
        let contamination: Contamination = config
            .contamination
            .parse()
            .map_err(|e| anyhow::anyhow!("ml.contamination: {e}"))?;
        if config.window_secs == 0 || config.n_estimators == 0 || config.min_samples < 2 {
            anyhow::bail!(
                "ml: window_secs and n_estimators must be at least 1, min_samples at least 2"
            );
        }
        let engine = Arc::new(Self {
            windows: Mutex::new(Windows::new(config.window_secs, config.max_open_windows)),
            contamination,
            store: store.ml_store(),
            models: RwLock::new(HashMap::new()),
            training: tokio::sync::Mutex::new(()),
            config,
        });
        for org in store.list_orgs().await? {
            engine.load(org.id).await?;
        }
        Ok(engine)
    }

    pub fn config(&self) -> &MlConfig {
        &self.config
    }

    pub fn store(&self) -> &Arc<dyn MlStore> {
        &self.store
    }

    /// Replaces the cached models of `org` by the stored latest versions.
    pub async fn load(&self, org: Uuid) -> anyhow::Result<usize> {
        let mut map = HashMap::new();
        for m in self.store.latest_models(org).await? {
            let Ok(set) = m.feature_set.parse::<FeatureSet>() else {
                continue;
            };
            match Model::from_bytes(&m.model) {
                Ok(model) if model.forest.n_features == set.dimension() => {
                    map.insert(
                        (set, m.entity.clone()),
                        Arc::new(Loaded {
                            info: ModelInfo::of(&m),
                            model,
                        }),
                    );
                }
                Ok(_) => {
                    tracing::warn!(%org, set = %set, entity = m.entity, "stored model has another dimension; skipped")
                }
                Err(e) => {
                    tracing::warn!(error = %e, %org, entity = m.entity, "stored model unreadable; skipped")
                }
            }
        }
        let n = map.len();
        self.models_mut().insert(org, map);
        Ok(n)
    }

    fn models_mut(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<Uuid, HashMap<Key, Arc<Loaded>>>> {
        self.models.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Every model of `org` in memory.
    pub fn models(&self, org: Uuid) -> Vec<ModelInfo> {
        let guard = self.models.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<ModelInfo> = guard
            .get(&org)
            .map(|m| m.values().map(|l| l.info.clone()).collect())
            .unwrap_or_default();
        out.sort_by(|a, b| (&a.feature_set, &a.entity).cmp(&(&b.feature_set, &b.entity)));
        out
    }

    /// Windows open now (all organizations).
    pub fn open_windows(&self) -> usize {
        self.windows.lock().map(|w| w.open_count()).unwrap_or(0)
    }

    /// The model for `entity`'s vectors of `set`: its own, else the organization's.
    pub fn model_for(
        &self,
        org: Uuid,
        set: FeatureSet,
        entity: Option<&str>,
    ) -> Option<Arc<Loaded>> {
        let guard = self.models.read().unwrap_or_else(|p| p.into_inner());
        let m = guard.get(&org)?;
        entity
            .and_then(|e| m.get(&(set, e.to_owned())))
            .or_else(|| m.get(&(set, ORG_WIDE.to_owned())))
            .cloned()
    }

    /// Scores one vector (already checked to have `set`'s dimension and finite values);
    /// None when there is no model yet.
    pub fn score(
        &self,
        org: Uuid,
        set: FeatureSet,
        entity: Option<&str>,
        values: &[f64],
    ) -> Option<Scored> {
        let Some(model) = self.model_for(org, set, entity) else {
            metrics::counter!(ML_PREDICTIONS, "model" => set.as_str(), "prediction" => "no_model")
                .increment(1);
            return None;
        };
        let verdict = model
            .model
            .verdict(values, self.config.explain_top.max(1))
            .ok()?;
        count_prediction(set, &verdict);
        Some(Scored { verdict, model })
    }

    /// Scores one organization's vectors in batches: the vectors that meet the same model
    /// are scored together by one `Model::verdicts` call (the forest's block scoring, the
    /// same floats as one at a time). Per vector as [`score`](Self::score): None when no
    /// model applies or the vector does not fit it.
    pub fn score_batch(&self, org: Uuid, samples: &[&Sample]) -> Vec<Option<Scored>> {
        let mut out: Vec<Option<Scored>> = samples.iter().map(|_| None).collect();
        // The models met, in order, each with the vectors it scores.
        let mut groups: Vec<(Arc<Loaded>, Vec<usize>)> = Vec::new();
        let mut group_of: HashMap<*const Loaded, usize> = HashMap::new();
        for (i, s) in samples.iter().enumerate() {
            let Some(model) = self.model_for(org, s.set, Some(&s.entity)) else {
                metrics::counter!(ML_PREDICTIONS, "model" => s.set.as_str(), "prediction" => "no_model")
                    .increment(1);
                continue;
            };
            if vigil_ml::forest::check_vector(model.model.forest.n_features, &s.values).is_err() {
                continue;
            }
            let g = *group_of.entry(Arc::as_ptr(&model)).or_insert_with(|| {
                groups.push((model.clone(), Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push(i);
        }
        let top = self.config.explain_top.max(1);
        for (model, rows) in groups {
            let d = model.model.forest.n_features;
            let mut data = Vec::with_capacity(rows.len() * d);
            for &i in &rows {
                data.extend_from_slice(&samples[i].values);
            }
            let verdicts = Matrix::new(d, data).and_then(|x| model.model.verdicts(&x, top));
            let verdicts = match verdicts {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, %org, "ml vectors could not be scored");
                    continue;
                }
            };
            for (i, verdict) in rows.into_iter().zip(verdicts) {
                count_prediction(samples[i].set, &verdict);
                out[i] = Some(Scored {
                    verdict,
                    model: model.clone(),
                });
            }
        }
        out
    }

    /// Scores closed windows and flow vectors in one batch; returns the alerts to raise
    /// and the vectors to store, in the order of `closed`.
    fn handle_all(&self, org: Uuid, closed: Vec<(Sample, Option<&Json>)>) -> MlOutput {
        let mut out = MlOutput::default();
        let closed: Vec<(Sample, Option<&Json>)> = closed
            .into_iter()
            .filter(|(s, _)| s.set != FeatureSet::Flow || self.config.score_flows)
            .collect();
        let samples: Vec<&Sample> = closed.iter().map(|(s, _)| s).collect();
        let scored = self.score_batch(org, &samples);
        for ((sample, doc), scored) in closed.into_iter().zip(scored) {
            if let Some(s) = scored
                && s.verdict.anomalous
                && let Some(d) = self.detection(&sample, &s, doc)
            {
                out.detections.push(d);
            }
            out.rows.push(NewFeatureRow {
                feature_set: sample.set.as_str().to_owned(),
                entity: sample.entity,
                window_start: sample.start,
                values: sample.values,
            });
        }
        out
    }

    /// Feeds a batch of one organization's events; returns the alerts to raise and the
    /// vectors to store.
    pub fn observe_batch(&self, org: Uuid, docs: &[Json]) -> MlOutput {
        if !self.config.enabled {
            return MlOutput::default();
        }
        let mut closed = Vec::new();
        {
            let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
            for doc in docs {
                for (_, s) in w.observe(&org, doc) {
                    let flow_doc = (s.set == FeatureSet::Flow).then_some(doc);
                    closed.push((s, flow_doc));
                }
            }
        }
        self.handle_all(org, closed)
    }

    /// Closes windows that ended before `before`, per organization.
    pub fn flush(&self, before: DateTime<Utc>) -> HashMap<Uuid, MlOutput> {
        let closed = {
            let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
            w.flush(before)
        };
        let mut by_org: HashMap<Uuid, Vec<(Sample, Option<&Json>)>> = HashMap::new();
        for (org, s) in closed {
            by_org.entry(org).or_default().push((s, None));
        }
        by_org
            .into_iter()
            .map(|(org, closed)| (org, self.handle_all(org, closed)))
            .collect()
    }

    /// Stores what one batch or flush produced: vectors, then alerts.
    pub async fn record(
        &self,
        store: &DynStore,
        org: Uuid,
        out: MlOutput,
        dedup_window: chrono::Duration,
    ) {
        if let Err(e) = self.store.append_features(org, out.rows).await {
            tracing::error!(error = %e, %org, "ml feature vectors could not be stored");
        }
        if !out.detections.is_empty() {
            let n = out.detections.len();
            let severities: Vec<&'static str> = out
                .detections
                .iter()
                .map(|d| d.alert.severity.as_str())
                .collect();
            match store
                .record_detections(org, out.detections, dedup_window)
                .await
            {
                Ok(outcomes) => {
                    let mut created = 0;
                    for (o, severity) in outcomes.iter().zip(severities) {
                        if matches!(o, vigil_store::DetectionOutcome::Created(_)) {
                            created += 1;
                            metrics::counter!(crate::metrics::ALERTS_CREATED, "source" => "ml_engine", "severity" => severity)
                                .increment(1);
                        }
                    }
                    tracing::info!(%org, detections = n, created, "ml anomalies recorded");
                }
                Err(e) => tracing::error!(error = %e, %org, "ml alerts could not be stored"),
            }
        }
    }

    /// The worker's flush: close idle windows and store the results (alerts fold into
    /// an open one within `dedup_window`).
    pub async fn flush_and_record(
        &self,
        store: &DynStore,
        before: DateTime<Utc>,
        dedup_window: chrono::Duration,
    ) {
        for (org, out) in self.flush(before) {
            self.record(store, org, out, dedup_window).await;
        }
    }

    fn detection(&self, sample: &Sample, s: &Scored, doc: Option<&Json>) -> Option<Detection> {
        let v = &s.verdict;
        let info = &s.model.info;
        let unusual: Vec<String> = v
            .unusual
            .iter()
            .map(|d| {
                format!(
                    "{} = {} (baseline median {})",
                    d.feature,
                    fmt(d.value),
                    fmt(d.baseline_median)
                )
            })
            .collect();
        let what = match sample.set {
            FeatureSet::Flow => "network flow",
            FeatureSet::Network => "network activity",
            FeatureSet::Host => "host metrics",
        };
        let title = format!(
            "Anomalous {what} on {}: {}",
            sample.entity,
            v.unusual
                .iter()
                .map(|d| d.feature.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let description = format!(
            "Isolation Forest anomaly score {:.3} is over the threshold {:.3} of the {} model for {} \
             (version {}, trained {} on {} vectors). Most unusual versus the baseline: {}.",
            v.score,
            v.threshold,
            sample.set,
            if info.entity == ORG_WIDE {
                "the organization"
            } else {
                info.entity.as_str()
            },
            info.version,
            info.trained_at.format("%Y-%m-%d %H:%M UTC"),
            info.sample_count,
            unusual.join("; ")
        );
        let features: serde_json::Map<String, Json> = sample
            .set
            .feature_names()
            .iter()
            .zip(&sample.values)
            .map(|(n, v)| ((*n).to_owned(), json!(v)))
            .collect();
        let window_end = sample.start
            + chrono::Duration::seconds(i64::try_from(self.config.window_secs).unwrap_or(60));
        let mut metadata = json!({
            "ml": {
                "score": v.score,
                "threshold": v.threshold,
                "feature_set": sample.set.as_str(),
                "entity": sample.entity,
                "model": {"entity": info.entity, "version": info.version, "trained_at": info.trained_at,
                          "sample_count": info.sample_count},
                "unusual": v.unusual,
                "features": features,
            },
            "host": sample.entity,
        });
        if sample.set == FeatureSet::Flow {
            metadata["event"] = doc.cloned().unwrap_or(Json::Null);
        } else {
            metadata["ml"]["window"] = json!({"start": sample.start, "end": window_end});
        }
        let severity = if v.score >= 0.7 {
            Severity::High
        } else {
            Severity::Medium
        };
        let input = AlertInput {
            alert_id: Some(format!("ML-{}", Uuid::now_v7().simple())),
            title: title.chars().take(200).collect(),
            description: description.chars().take(4000).collect(),
            severity,
            source: Some(AlertSource::MlEngine),
            event_type: Some("anomaly".into()),
            timestamp: Some(sample.start),
            metadata: Some(metadata),
            confidence_score: Some(v.score.clamp(0.0, 1.0)),
            agent_id: doc
                .and_then(|d| vigil_core::event::get_str(d, "agent.id"))
                .map(str::to_owned),
            tags: vec!["ml".into(), format!("ml.{}", sample.set)],
            ..Default::default()
        };
        match NewAlert::parse(input, vigil_core::now()) {
            Ok(alert) => Some(Detection {
                alert,
                dedup_key: Some(format!("ml_engine|{}|{}", sample.set, sample.entity)),
                seen: sample.start,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "ml anomaly could not become an alert");
                None
            }
        }
    }

    /// Trains every model of `org` with enough vectors: one per entity and one
    /// organization-wide per feature set. Returns the models saved.
    pub async fn retrain(&self, org: Uuid) -> anyhow::Result<Vec<ModelInfo>> {
        let _one_at_a_time = self.training.lock().await;
        let since = vigil_core::now()
            - chrono::Duration::hours(i64::try_from(self.config.history_hours).unwrap_or(168));
        let limit = i64::try_from(self.config.max_samples).unwrap_or(i64::MAX);
        let mut saved = Vec::new();
        for set in FeatureSet::ALL {
            if set == FeatureSet::Flow && !self.config.score_flows {
                continue;
            }
            let entities = self
                .store
                .feature_entities(org, set.as_str(), since)
                .await?;
            let total: i64 = entities.iter().map(|(_, n)| n).sum();
            let mut targets: Vec<Option<String>> = entities
                .into_iter()
                .filter(|(_, n)| *n >= self.config.min_samples as i64)
                .map(|(e, _)| Some(e))
                .collect();
            if total >= self.config.min_samples as i64 {
                targets.push(None);
            }
            for entity in targets {
                let rows = self
                    .store
                    .feature_rows(org, set.as_str(), entity.as_deref(), since, limit)
                    .await?;
                let name = entity.unwrap_or_else(|| ORG_WIDE.to_owned());
                if let Some(info) = self.train_one(org, set, name, rows).await? {
                    saved.push(info);
                }
            }
        }
        self.load(org).await?;
        Ok(saved)
    }

    async fn train_one(
        &self,
        org: Uuid,
        set: FeatureSet,
        entity: String,
        rows: Vec<NewFeatureRow>,
    ) -> anyhow::Result<Option<ModelInfo>> {
        let d = set.dimension();
        let values: Vec<Vec<f64>> = rows
            .into_iter()
            .map(|r| r.values)
            .filter(|v| vigil_ml::forest::check_vector(d, v).is_ok())
            .collect();
        if values.len() < self.config.min_samples {
            return Ok(None);
        }
        let params = ForestParams {
            n_estimators: self.config.n_estimators,
            contamination: self.contamination,
            seed: self.config.seed,
            ..Default::default()
        };
        let names: Vec<String> = set
            .feature_names()
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let started = Instant::now();
        let model = tokio::task::spawn_blocking(move || {
            let x = Matrix::from_rows(d, &values)?;
            Model::train(names, &x, &params)
        })
        .await??;
        let secs = started.elapsed().as_secs_f64();
        metrics::histogram!(ML_TRAINING_DURATION, "model" => set.as_str()).record(secs);
        let stored = self
            .store
            .save_model(
                org,
                NewModel {
                    feature_set: set.as_str().to_owned(),
                    entity,
                    trained_at: vigil_core::now(),
                    sample_count: model.sample_count as i64,
                    features: model.feature_names.clone(),
                    threshold: model.threshold(),
                    training_secs: secs,
                    model: model.to_bytes(),
                },
            )
            .await?;
        tracing::info!(%org, set = %set, entity = stored.entity, version = stored.version,
            samples = stored.sample_count, secs, "ml model trained");
        Ok(Some(ModelInfo::of(&stored)))
    }
}

fn count_prediction(set: FeatureSet, verdict: &Verdict) {
    let prediction = if verdict.anomalous {
        "anomaly"
    } else {
        "normal"
    };
    metrics::counter!(ML_PREDICTIONS, "model" => set.as_str(), "prediction" => prediction)
        .increment(1);
}

fn fmt(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}
