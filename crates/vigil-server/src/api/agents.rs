//! `/api/v1/agents`: enrollment tokens (admin), registration (an enrollment token buys a
//! per-agent credential), heartbeats (agents), listing, detail and revocation.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use vigil_core::event::{Heartbeat, RegisterAgentRequest, RegisterAgentResponse};
use vigil_core::{Agent, EnrollmentToken, Role};
use vigil_store::{HeartbeatUpdate, NewAgentRegistration, NewEnrollmentToken};

use crate::auth::{AuthUser, token_hash};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::ingest::auth::{AGENT_PREFIX, AgentCaller, ENROLLMENT_PREFIX, new_secret};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_agents))
        .routes(routes!(get_agent))
        .routes(routes!(revoke_agent))
        .routes(routes!(create_token, list_tokens))
        .routes(routes!(register_agent))
        .routes(routes!(heartbeat))
}

/// Longest an enrollment token may live, hours.
const MAX_TOKEN_HOURS: u32 = 30 * 24;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// What the token is for (shown in the token list).
    #[serde(default)]
    pub description: Option<String>,
    /// Hours until it expires (default 24, at most 720).
    #[serde(default)]
    pub expires_in_hours: Option<u32>,
}

/// A new enrollment token: `token` is shown this once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    pub token: String,
    pub id: Uuid,
    pub expires_at: DateTime<Utc>,
}

/// Creates a one-time enrollment token (shared by the API and `vigil agent-token create`).
pub async fn issue_enrollment_token(
    store: &vigil_store::DynStore,
    org: Uuid,
    description: Option<String>,
    hours: u32,
    created_by: &str,
) -> Result<(String, EnrollmentToken), ApiError> {
    if hours == 0 || hours > MAX_TOKEN_HOURS {
        return Err(ApiError::validation(format!(
            "expires_in_hours must be between 1 and {MAX_TOKEN_HOURS}"
        )));
    }
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 200)
    {
        return Err(ApiError::validation(
            "description is longer than 200 characters",
        ));
    }
    let secret = new_secret(ENROLLMENT_PREFIX);
    let token = store
        .create_enrollment_token(NewEnrollmentToken {
            org_id: org,
            token_hash: token_hash(&secret),
            description,
            created_by: created_by.to_owned(),
            expires_at: vigil_core::now() + Duration::hours(i64::from(hours)),
        })
        .await?;
    Ok((secret, token))
}

/// Create a one-time enrollment token for a new agent (admin).
#[utoipa::path(post, path = "/agents/enrollment-tokens", tag = "agents", security(("bearer" = [])), request_body = CreateTokenRequest,
    responses((status = 201, body = CreatedToken), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_token(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<CreateTokenRequest>,
) -> ApiResult<(StatusCode, axum::Json<CreatedToken>)> {
    user.require(Role::Admin)?;
    let (token, t) = issue_enrollment_token(
        &state.store,
        user.org_id,
        req.description,
        req.expires_in_hours.unwrap_or(24),
        &user.username,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedToken {
            token,
            id: t.id,
            expires_at: t.expires_at,
        }),
    ))
}

/// Enrollment tokens of your organization, used or not (admin); never the secrets.
#[utoipa::path(get, path = "/agents/enrollment-tokens", tag = "agents", security(("bearer" = [])),
    responses((status = 200, body = [EnrollmentToken]), (status = 403, body = ErrorBody)))]
async fn list_tokens(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<axum::Json<Vec<EnrollmentToken>>> {
    user.require(Role::Admin)?;
    Ok(axum::Json(
        state.store.list_enrollment_tokens(user.org_id).await?,
    ))
}

fn check_text(name: &str, value: &Option<String>, max: usize) -> Result<(), ApiError> {
    if value
        .as_ref()
        .is_some_and(|v| v.chars().count() > max || v.chars().any(char::is_control))
    {
        return Err(ApiError::validation(format!(
            "{name} must be at most {max} printable characters"
        )));
    }
    Ok(())
}

/// Register an agent: trade a one-time enrollment token for the agent's own credential
/// (returned once; the server keeps its hash). No other authentication.
#[utoipa::path(post, path = "/agents/register-agent", tag = "agents", request_body = RegisterAgentRequest,
    responses((status = 201, body = RegisterAgentResponse), (status = 401, body = ErrorBody, description = "unknown, used or expired token"),
        (status = 422, body = ErrorBody)))]
async fn register_agent(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RegisterAgentRequest>,
) -> ApiResult<(StatusCode, axum::Json<RegisterAgentResponse>)> {
    let host = req.hostname.trim().to_owned();
    if host.is_empty() || host.chars().count() > 255 || host.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "hostname must be 1 to 255 printable characters",
        ));
    }
    check_text("os", &req.os, 200)?;
    check_text("version", &req.version, 64)?;
    check_text("ip", &req.ip, 64)?;
    let credential = new_secret(AGENT_PREFIX);
    let agent = state
        .store
        .register_agent(
            &token_hash(req.enrollment_token.trim()),
            NewAgentRegistration {
                hostname: host,
                os: req.os,
                version: req.version,
                ip: req.ip,
                credential_hash: token_hash(&credential),
            },
            vigil_core::now(),
        )
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "enrollment token is unknown, already used or expired",
            )
        })?;
    tracing::info!(agent = %agent.id, host = %agent.hostname, "agent registered");
    Ok((
        StatusCode::CREATED,
        axum::Json(RegisterAgentResponse {
            agent_id: agent.id,
            org_id: agent.org_id,
            credential,
        }),
    ))
}

/// Agent heartbeat with its latest metrics (agent credential).
#[utoipa::path(post, path = "/agents/heartbeat", tag = "agents", security(("bearer" = [])), request_body = Heartbeat,
    responses((status = 204), (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "this agent's rate limit (`ingest.rate_limit_per_credential`)")))]
async fn heartbeat(
    State(state): State<AppState>,
    AgentCaller(agent): AgentCaller,
    ApiJson(hb): ApiJson<Heartbeat>,
) -> ApiResult<StatusCode> {
    // Checked once the body is read: a 429 then leaves the connection usable.
    crate::ingest::auth::check_rate(&state, agent.id, "heartbeat")?;
    check_text("os", &hb.os, 200)?;
    check_text("version", &hb.version, 64)?;
    check_text("hostname", &hb.hostname, 255)?;
    if hb
        .metrics
        .as_ref()
        .is_some_and(|m| serde_json::to_vec(m).map_or(true, |v| v.len() > 256 * 1024))
    {
        return Err(ApiError::validation("metrics are larger than 256 KiB"));
    }
    state
        .store
        .record_heartbeat(
            agent.org_id,
            agent.id,
            HeartbeatUpdate {
                hostname: hb.hostname,
                os: hb.os,
                version: hb.version,
                ip: None,
                metrics: hb.metrics,
            },
            vigil_core::now(),
        )
        .await
        .map_err(ApiError::from_store("agent"))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Agents of your organization, with status derived from their last heartbeat
/// (online: within 2 minutes, stale: within 15, else offline).
#[utoipa::path(get, path = "/agents", tag = "agents", security(("bearer" = [])),
    responses((status = 200, body = [Agent]), (status = 401, body = ErrorBody)))]
async fn list_agents(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<axum::Json<Vec<Agent>>> {
    user.require(Role::Viewer)?;
    let mut agents = state.store.list_agents(user.org_id).await?;
    for a in &mut agents {
        a.last_metrics = None; // detail only
    }
    Ok(axum::Json(agents))
}

/// One agent, with its latest metrics.
#[utoipa::path(get, path = "/agents/{id}", tag = "agents", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Agent), (status = 404, body = ErrorBody)))]
async fn get_agent(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<axum::Json<Agent>> {
    user.require(Role::Viewer)?;
    state
        .store
        .get_agent(user.org_id, id)
        .await?
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("agent"))
}

/// Revoke an agent's credential (admin): it can no longer send or heartbeat.
#[utoipa::path(post, path = "/agents/{id}/revoke", tag = "agents", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Agent), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_agent(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<axum::Json<Agent>> {
    user.require(Role::Admin)?;
    let agent = state
        .store
        .revoke_agent(user.org_id, id, vigil_core::now())
        .await
        .map_err(ApiError::from_store("agent"))?;
    tracing::info!(agent = %id, by = %user.username, "agent revoked");
    Ok(axum::Json(agent))
}
