//! `/api/v1/ml/*`: the anomaly detection engine — health, models, scoring, retraining.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vigil_core::Role;
use vigil_ml::FeatureSet;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiJson;
use crate::ml::ModelInfo;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(predict))
        .routes(routes!(list_models))
        .routes(routes!(retrain))
}

/// The engine's state for the caller's organization.
#[derive(Serialize, ToSchema)]
pub struct MlHealth {
    /// `ok`, `cold_start` (no model yet: nothing is scored as anomalous) or `disabled`.
    pub status: String,
    pub enabled: bool,
    /// True while the organization has no model: no anomaly alerts are raised.
    pub cold_start: bool,
    pub models_loaded: usize,
    pub models: Vec<ModelInfo>,
    /// Feature windows open now (all organizations).
    pub open_windows: usize,
    pub window_secs: u64,
    pub feature_sets: Vec<FeatureSetInfo>,
}

/// A feature set and its features, in vector order (`docs/ML.md`).
#[derive(Serialize, ToSchema)]
pub struct FeatureSetInfo {
    pub name: String,
    pub features: Vec<String>,
}

/// Models loaded, versions, and whether the engine is in cold start.
#[utoipa::path(get, path = "/ml/health", tag = "ml", security(("bearer" = [])),
    responses((status = 200, body = MlHealth), (status = 401, body = ErrorBody)))]
async fn health(State(state): State<AppState>, user: AuthUser) -> ApiResult<axum::Json<MlHealth>> {
    user.require(Role::Viewer)?;
    let models = state.ml.models(user.org_id);
    let enabled = state.ml.config().enabled;
    let cold_start = models.is_empty();
    Ok(axum::Json(MlHealth {
        status: match (enabled, cold_start) {
            (false, _) => "disabled",
            (true, true) => "cold_start",
            (true, false) => "ok",
        }
        .into(),
        enabled,
        cold_start,
        models_loaded: models.len(),
        models,
        open_windows: state.ml.open_windows(),
        window_secs: state.ml.config().window_secs,
        feature_sets: FeatureSet::ALL
            .iter()
            .map(|s| FeatureSetInfo {
                name: s.as_str().into(),
                features: s.feature_names().iter().map(|f| (*f).to_owned()).collect(),
            })
            .collect(),
    }))
}

/// What to score: a feature vector of a feature set, or a `network.flow` event.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    /// `flow`, `network` or `host` (with `features`; a flow `event` implies `flow`).
    pub feature_set: Option<String>,
    /// Agent id or host name whose model to use (else the organization's); for an event,
    /// its own `agent.id` / `host.name` by default.
    pub entity: Option<String>,
    /// The vector, in the feature set's order (`GET /ml/health` lists the names).
    pub features: Option<Vec<f64>>,
    /// A `network.flow` event (`docs/EVENTS.md`), scored as a `flow` vector.
    #[schema(value_type = Option<Object>)]
    pub event: Option<Json>,
}

/// A feature compared with the model's baseline.
#[derive(Serialize, ToSchema)]
pub struct UnusualFeature {
    pub feature: String,
    pub value: f64,
    pub baseline_median: f64,
    /// Robust z-score against the baseline.
    pub deviation: f64,
}

/// The verdict, or `cold_start` when no model exists yet.
#[derive(Serialize, ToSchema)]
pub struct PredictResponse {
    /// True when no model exists for the entity nor the organization: nothing was scored.
    pub cold_start: bool,
    pub feature_set: String,
    pub entity: Option<String>,
    /// The model used.
    pub model: Option<ModelInfo>,
    /// Anomaly score in (0, 1].
    pub score: Option<f64>,
    pub threshold: Option<f64>,
    pub anomalous: bool,
    /// `anomaly`, `normal` or `no_model`.
    pub prediction: String,
    pub unusual: Vec<UnusualFeature>,
    pub features: Vec<f64>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_features", message)
}

/// Scores one vector or flow with the right model (the entity's, else the organization's).
#[utoipa::path(post, path = "/ml/predict", tag = "ml", security(("bearer" = [])), request_body = PredictRequest,
    responses((status = 200, body = PredictResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn predict(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<PredictRequest>,
) -> ApiResult<axum::Json<PredictResponse>> {
    user.require(Role::Viewer)?;
    let (set, entity, features) = match (req.event, req.features) {
        (Some(_), Some(_)) => return Err(bad("give either `features` or `event`, not both")),
        (None, None) => {
            return Err(bad(
                "give `features` (with `feature_set`) or a flow `event`",
            ));
        }
        (Some(event), None) => {
            if req.feature_set.as_deref().is_some_and(|s| s != "flow") {
                return Err(bad("an event is scored with the `flow` feature set"));
            }
            let v = vigil_ml::features::flow_features(&event)
                .ok_or_else(|| bad("`event` must be a network.flow event (event.dataset)"))?;
            let entity = req
                .entity
                .or_else(|| vigil_ml::features::entity(&event).map(str::to_owned));
            (FeatureSet::Flow, entity, v)
        }
        (None, Some(v)) => {
            let name = req
                .feature_set
                .ok_or_else(|| bad("`feature_set` is required with `features`"))?;
            let set: FeatureSet = name
                .parse()
                .map_err(|e: vigil_ml::Error| bad(e.to_string()))?;
            (set, req.entity, v)
        }
    };
    vigil_ml::forest::check_vector(set.dimension(), &features).map_err(|e| {
        bad(format!(
            "{e}; the {set} feature set is [{}]",
            set.feature_names().join(", ")
        ))
    })?;
    let scored = state
        .ml
        .score(user.org_id, set, entity.as_deref(), &features);
    Ok(axum::Json(match scored {
        None => PredictResponse {
            cold_start: true,
            feature_set: set.as_str().into(),
            entity,
            model: None,
            score: None,
            threshold: None,
            anomalous: false,
            prediction: "no_model".into(),
            unusual: Vec::new(),
            features,
        },
        Some(s) => PredictResponse {
            cold_start: false,
            feature_set: set.as_str().into(),
            entity,
            model: Some(s.model.info.clone()),
            score: Some(s.verdict.score),
            threshold: Some(s.verdict.threshold),
            anomalous: s.verdict.anomalous,
            prediction: if s.verdict.anomalous {
                "anomaly"
            } else {
                "normal"
            }
            .into(),
            unusual: s
                .verdict
                .unusual
                .into_iter()
                .map(|d| UnusualFeature {
                    feature: d.feature,
                    value: d.value,
                    baseline_median: d.baseline_median,
                    deviation: d.deviation,
                })
                .collect(),
            features,
        },
    }))
}

/// The organization's models (newest version of each).
#[derive(Serialize, ToSchema)]
pub struct ModelList {
    pub items: Vec<ModelInfo>,
}

/// Models of the caller's organization: version, training time, sample count, features.
#[utoipa::path(get, path = "/ml/models", tag = "ml", security(("bearer" = [])),
    responses((status = 200, body = ModelList), (status = 401, body = ErrorBody)))]
async fn list_models(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<axum::Json<ModelList>> {
    user.require(Role::Viewer)?;
    Ok(axum::Json(ModelList {
        items: state.ml.models(user.org_id),
    }))
}

/// What a retrain did.
#[derive(Serialize, ToSchema)]
pub struct RetrainResponse {
    /// Models trained now.
    pub trained: Vec<ModelInfo>,
    /// Every model of the organization after the retrain.
    pub models: Vec<ModelInfo>,
    /// True when there were too few vectors for any model (`ml.min_samples`).
    pub cold_start: bool,
}

/// Retrains the organization's models from its stored feature vectors now.
#[utoipa::path(post, path = "/ml/models/retrain", tag = "ml", security(("bearer" = [])),
    responses((status = 200, body = RetrainResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn retrain(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<axum::Json<RetrainResponse>> {
    user.require(Role::Admin)?;
    if !state.ml.config().enabled {
        return Err(ApiError::conflict("the ML engine is disabled (ml.enabled)"));
    }
    let trained = state
        .ml
        .retrain(user.org_id)
        .await
        .map_err(ApiError::internal)?;
    let models = state.ml.models(user.org_id);
    Ok(axum::Json(RetrainResponse {
        cold_start: models.is_empty(),
        trained,
        models,
    }))
}
