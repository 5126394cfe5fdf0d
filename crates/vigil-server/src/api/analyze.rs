//! `POST /api/v1/analyze` (and the original `POST /api/analyze`): the AI-assisted analysis
//! of recent events; `GET /api/v1/ai/health`: whether the model and Loki are usable.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vigil_core::Role;

use crate::ai::analyze::{AnalysisReport, AnalyzeRequest};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::RawBody;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(analyze))
        .routes(routes!(ai_health))
}

/// Analyses the last `timeframe` minutes of events (default 5) from the local store or
/// Loki: deterministic counts and findings always, plus the model's analysis when a model
/// is configured (`deterministic_only` says whether it is there). Model output is a
/// suggestion; nothing is executed.
#[utoipa::path(post, path = "/analyze", tag = "ai", security(("bearer" = [])),
    request_body = AnalyzeRequest,
    responses((status = 200, body = AnalysisReport), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 502, body = ErrorBody)))]
pub async fn analyze(
    State(state): State<AppState>,
    user: AuthUser,
    RawBody(body): RawBody,
) -> ApiResult<axum::Json<AnalysisReport>> {
    user.require(Role::Analyst)?;
    // An empty body means all defaults (the original `POST /api/analyze` took none).
    let req: AnalyzeRequest = if body.iter().all(u8::is_ascii_whitespace) {
        AnalyzeRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("invalid_json", format!("request body: {e}")))?
    };
    crate::ai::analyze::check(&req).map_err(|m| ApiError::bad_request("invalid_request", m))?;
    let report =
        crate::ai::analyze::run(&state.ai, &state.store, &state.events, user.org_id, &req).await?;
    Ok(axum::Json(report))
}

/// Model and Loki availability.
#[derive(Serialize, ToSchema)]
pub struct AiHealth {
    pub model_configured: bool,
    #[schema(value_type = Option<Object>)]
    pub model: Option<vigil_integrations::llm::LlmHealth>,
    pub loki_configured: bool,
}

/// Whether a model is configured, reachable and has the configured model.
#[utoipa::path(get, path = "/ai/health", tag = "ai", security(("bearer" = [])),
    responses((status = 200, body = AiHealth), (status = 401, body = ErrorBody)))]
async fn ai_health(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<axum::Json<AiHealth>> {
    user.require(Role::Viewer)?;
    let model = match &state.ai.llm {
        Some(l) => Some(l.health().await),
        None => None,
    };
    Ok(axum::Json(AiHealth {
        model_configured: model.is_some(),
        model,
        loki_configured: state.ai.loki.is_some(),
    }))
}
