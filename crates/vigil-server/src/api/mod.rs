//! The HTTP API: routes, OpenAPI document and Swagger UI.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::ApiError;
use crate::state::AppState;

pub mod agents;
pub mod alerts;
pub mod analyze;
pub mod auth;
pub mod events;
pub mod ingest;
pub mod keys;
pub mod loki;
pub mod ml;
pub mod triage;
pub mod users;
pub mod webhooks;

#[derive(OpenApi)]
#[openapi(
    info(title = "Vigil API", description = "Security monitoring and incident response. \
        Authenticate with POST /api/v1/auth/login and send `Authorization: Bearer <access_token>`. \
        Errors are `{\"error\":{\"code\":\"...\",\"message\":\"...\"}}`."),
    modifiers(&BearerAuth),
    // The alert event every webhook and stream frame carries (schema v1).
    components(schemas(vigil_core::AlertEvent, vigil_core::AlertEventKind, vigil_core::AlertFieldChange)),
    tags(
        (name = "alerts", description = "Alerts and their lifecycle"),
        (name = "auth", description = "Login, tokens, sessions"),
        (name = "users", description = "User management (admin)"),
        (name = "agents", description = "Monitored hosts: enrollment, registration, heartbeats"),
        (name = "ingest", description = "Sending events (agents, API keys)"),
        (name = "events", description = "Recent normalized events"),
        (name = "api-keys", description = "API keys for machines (admin)"),
        (name = "system", description = "Health, readiness, metrics"),
        (name = "ml", description = "Anomaly detection: models, scoring, retraining"),
        (name = "ai", description = "AI-assisted analysis and alert triage (suggestions only)"),
        (name = "webhooks", description = "Signed alert events to HTTP endpoints (admin; docs/WEBHOOKS.md)"),
    )
)]
struct ApiDoc;

/// Routes outside `/api/v1` (Loki's own path, so shippers need no path rewrite): in the
/// same document, each with the server `/` instead of the document's `/api/v1`.
#[derive(OpenApi)]
#[openapi(paths(loki::push))]
struct Unversioned;

struct BearerAuth;
impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Refuses a control character in a text filter (`q`, `tag`): search compares against
/// text whose control characters are spaces, so one in `q` could never match, and SQLite's
/// LIKE stopped at a NUL (so `q=%00` matched everything).
pub(crate) fn no_control_chars(param: &str, value: &str) -> Result<(), ApiError> {
    match value.chars().enumerate().find(|(_, c)| c.is_control()) {
        None => Ok(()),
        Some((at, c)) => Err(ApiError::bad_request(
            "invalid_query",
            format!(
                "{param} must not contain control characters (U+{:04X} at character {}); \
                 search matches them as spaces",
                u32::from(c),
                at + 1
            ),
        )),
    }
}

/// The versioned API and its OpenAPI document.
pub fn v1() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(alerts::router())
        .merge(auth::router())
        .merge(users::router())
        .merge(agents::router())
        .merge(keys::router())
        .merge(events::router())
        .merge(ml::router())
        .merge(analyze::router())
        .merge(triage::router())
        .merge(webhooks::router())
        .merge(ingest::router().layer(axum::extract::DefaultBodyLimit::max(ingest::MAX_BODY)))
        .routes(routes!(health))
        .routes(routes!(ready))
        .routes(routes!(metrics))
        .split_for_parts();
    doc.servers = Some(vec![utoipa::openapi::Server::new("/api/v1")]);
    let mut outside = Unversioned::openapi().paths;
    for item in outside.paths.values_mut() {
        item.servers = Some(vec![utoipa::openapi::Server::new("/")]);
    }
    doc.paths.merge(outside);
    (router, doc)
}

/// Every route: `/api/v1/...`, Swagger UI, the original `/api/alerts` alias, and the
/// unversioned `/health`, `/ready`, `/metrics`.
pub fn routes() -> Router<AppState> {
    let (v1, doc) = v1();
    let swagger: Router<AppState> = SwaggerUi::new("/api/v1/docs")
        .url("/api/v1/openapi.json", doc)
        .into();
    Router::new()
        .nest("/api/v1", v1)
        .merge(swagger)
        .route("/api/alerts", post(alerts::create_alert))
        .route("/api/analyze", post(analyze::analyze))
        .route(
            "/loki/api/v1/push",
            post(loki::push).layer(axum::extract::DefaultBodyLimit::max(ingest::MAX_BODY)),
        )
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn not_found() -> ApiError {
    ApiError::not_found("route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}

#[derive(Serialize, ToSchema)]
pub struct HealthResponse {
    pub status: String,
    pub version: String,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "system", responses((status = 200, body = HealthResponse)))]
async fn health() -> axum::Json<HealthResponse> {
    axum::Json(HealthResponse {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

#[derive(Serialize, ToSchema)]
pub struct ReadyResponse {
    /// `ready` or `unavailable`.
    pub status: String,
    /// `ok`, or `unavailable` when the database does not take a write.
    pub database: String,
    pub backend: String,
    /// `ok`, `stalled` (batches waiting, none stored for `ingest.stall_secs`) or `stopped`.
    pub pipeline: String,
    /// Why it is not ready, for a person; empty when ready.
    pub reasons: Vec<String>,
}

/// How long the readiness write may take before the writer counts as unavailable (it
/// waits behind the single SQLite writer's current transaction).
const READY_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Readiness: the database commits a write (the writer's probe row; on SQLite the file at
/// the path is still the one opened at start) and the ingest pipeline is moving.
#[utoipa::path(get, path = "/ready", tag = "system",
    responses((status = 200, body = ReadyResponse), (status = 503, body = ReadyResponse)))]
async fn ready(State(state): State<AppState>) -> (StatusCode, axum::Json<ReadyResponse>) {
    let backend = state.store.backend().to_string();
    let mut reasons = Vec::new();
    let database = match tokio::time::timeout(READY_PROBE_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => "ok",
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the database does not take writes");
            reasons.push(format!("database: {e}"));
            "unavailable"
        }
        Err(_) => {
            tracing::warn!("readiness: the database writer did not answer in time");
            reasons.push(format!(
                "database: a write did not finish within {} s",
                READY_PROBE_TIMEOUT.as_secs()
            ));
            "unavailable"
        }
    };
    let pipeline = match state.pipeline.health() {
        crate::ingest::PipelineHealth::Ok => "ok",
        crate::ingest::PipelineHealth::Stalled { waiting, for_secs } => {
            reasons.push(format!(
                "pipeline: {waiting} batches waiting, none stored for {for_secs} s"
            ));
            "stalled"
        }
        crate::ingest::PipelineHealth::Stopped => {
            reasons.push("pipeline: stopped".into());
            "stopped"
        }
    };
    let status = if reasons.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(ReadyResponse {
            status: if reasons.is_empty() {
                "ready"
            } else {
                "unavailable"
            }
            .into(),
            database: database.into(),
            backend,
            pipeline: pipeline.into(),
            reasons,
        }),
    )
}

/// Prometheus metrics in the text exposition format (also at `/metrics`).
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, body = String, content_type = "text/plain; version=0.0.4",
        description = "Prometheus text exposition format")))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state.pipeline.budget().publish();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
