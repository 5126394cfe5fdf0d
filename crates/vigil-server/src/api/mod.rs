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

#[derive(OpenApi)]
#[openapi(
    info(title = "Vigil API", description = "Security monitoring and incident response. \
        Authenticate with POST /api/v1/auth/login and send `Authorization: Bearer <access_token>`. \
        Errors are `{\"error\":{\"code\":\"...\",\"message\":\"...\"}}`."),
    modifiers(&BearerAuth),
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
    )
)]
struct ApiDoc;

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
        .merge(ingest::router().layer(axum::extract::DefaultBodyLimit::max(ingest::MAX_BODY)))
        .routes(routes!(health))
        .routes(routes!(ready))
        .split_for_parts();
    doc.servers = Some(vec![utoipa::openapi::Server::new("/api/v1")]);
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
        .nest("/api/v1", v1.route("/metrics", get(metrics)))
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
    pub status: String,
    pub database: String,
    pub backend: String,
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/ready", tag = "system",
    responses((status = 200, body = ReadyResponse), (status = 503, body = ReadyResponse)))]
async fn ready(State(state): State<AppState>) -> (StatusCode, axum::Json<ReadyResponse>) {
    let backend = state.store.backend().to_string();
    match state.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            axum::Json(ReadyResponse {
                status: "ready".into(),
                database: "ok".into(),
                backend,
            }),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(ReadyResponse {
                    status: "unavailable".into(),
                    database: "unreachable".into(),
                    backend,
                }),
            )
        }
    }
}

/// Prometheus metrics in the text exposition format.
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
