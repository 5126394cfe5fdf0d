//! Alert triage by the model: `POST /alerts/{id}/triage` asks for one and stores it,
//! `GET /alerts/{id}/triage` lists them, and an analyst accepts or dismisses each
//! suggestion. Suggestions never change the alert: applying one is a separate, explicit
//! call to the alert endpoints.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use vigil_core::{AlertTriage, Role, SuggestionStatus};

use crate::ai::AiError;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(triage, list_triage))
        .routes(routes!(decide))
}

/// Asks the model to triage the alert and stores the result (model name, prompt version,
/// time) with the alert. 503 `model_not_configured` without a model; 502 `model_error`
/// when the model fails or answers outside the schema twice.
#[utoipa::path(post, path = "/alerts/{id}/triage", tag = "ai", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Alert id")),
    responses((status = 201, body = AlertTriage), (status = 404, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 502, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn triage(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<(StatusCode, axum::Json<AlertTriage>)> {
    user.require(Role::Analyst)?;
    let t =
        crate::ai::triage::triage_alert(&state.ai, &state.store, user.org_id, id, &user.username)
            .await
            .map_err(|e| match e {
                AiError::Store(vigil_store::Error::NotFound) => ApiError::not_found("alert"),
                e => e.into(),
            })?;
    Ok((StatusCode::CREATED, axum::Json(t)))
}

/// The alert's stored triages, newest first.
#[utoipa::path(get, path = "/alerts/{id}/triage", tag = "ai", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Alert id")),
    responses((status = 200, body = Vec<AlertTriage>), (status = 404, body = ErrorBody)))]
async fn list_triage(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<axum::Json<Vec<AlertTriage>>> {
    user.require(Role::Viewer)?;
    state
        .store
        .list_triage(user.org_id, id)
        .await?
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("alert"))
}

/// An analyst's decision on a suggestion.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionInput {
    /// `accepted` or `dismissed`.
    pub decision: String,
}

/// Accepts or dismisses one suggestion of a triage. Records the decision only.
#[utoipa::path(post, path = "/alerts/{id}/triage/{triage_id}/suggestions/{index}", tag = "ai",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Alert id"), ("triage_id" = Uuid, Path),
        ("index" = u32, Path, description = "Suggestion index")),
    request_body = DecisionInput,
    responses((status = 200, body = AlertTriage), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn decide(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath((id, triage_id, index)): ApiPath<(Uuid, Uuid, u32)>,
    ApiJson(input): ApiJson<DecisionInput>,
) -> ApiResult<axum::Json<AlertTriage>> {
    user.require(Role::Analyst)?;
    let decision = match input.decision.as_str() {
        "accepted" | "accept" => SuggestionStatus::Accepted,
        "dismissed" | "dismiss" => SuggestionStatus::Dismissed,
        other => {
            return Err(ApiError::validation(format!(
                "decision '{other}' must be accepted or dismissed"
            )));
        }
    };
    let t = state
        .store
        .decide_suggestion(
            user.org_id,
            id,
            triage_id,
            index,
            decision,
            &user.username,
            vigil_core::now(),
        )
        .await
        .map_err(ApiError::from_store("triage"))?;
    Ok(axum::Json(t))
}
