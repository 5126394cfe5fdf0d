//! `/api/v1/webhooks` (admin, own organization): endpoints, their delivery log, manual
//! redelivery and test deliveries. The signing secret is shown at creation and on rotation
//! only; it is kept encrypted (`webhooks/secrets.rs`). Endpoints from the config file are
//! shown but changed only in the file (409 `managed_by_config`).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use vigil_core::Role;
use vigil_integrations::webhooks::{WebhookError, WebhookSecret};
use vigil_store::{
    NewWebhookEndpoint, WebhookAttemptLog, WebhookDelivery, WebhookDeliveryStatus, WebhookEndpoint,
    WebhookEndpointUpdate,
};

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::webhooks::EndpointFilters;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_endpoint, list_endpoints))
        .routes(routes!(get_endpoint, update_endpoint, delete_endpoint))
        .routes(routes!(rotate_secret))
        .routes(routes!(test_endpoint))
        .routes(routes!(list_deliveries))
        .routes(routes!(get_delivery))
        .routes(routes!(redeliver))
        .routes(routes!(redeliver_dead_since))
}

/// Shortest and longest request timeout an endpoint may set, milliseconds.
const TIMEOUT_MS: std::ops::RangeInclusive<u64> =
    100..=crate::webhooks::config::MAX_TIMEOUT_SECS * 1000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpointRequest {
    /// Unique within your organization.
    pub name: String,
    /// `https://...` (or `http://`); internal addresses are refused unless
    /// `webhooks.allow_private_destinations` is set.
    pub url: String,
    /// `whsec_<base64 of 24 to 64 bytes>`; absent: generated.
    pub secret: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `low`, `medium`, `high`, `critical`; absent: every severity.
    pub min_severity: Option<String>,
    #[serde(default)]
    pub sources: Vec<String>,
    /// Alerts carrying at least one of these tags; empty: all.
    #[serde(default)]
    pub tags: Vec<String>,
    /// `alert.created`, `alert.folded`, `alert.status_changed`, `alert.severity_changed`,
    /// `alert.assigned`, `alert.triaged`, `alert.closed`; empty: all.
    #[serde(default)]
    pub event_kinds: Vec<String>,
    /// Extra request headers (never `webhook-*`, `content-type`, `host`, ...).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request timeout, 100 to 60000 ms; absent: `webhooks.default_timeout_secs`.
    pub timeout_ms: Option<u64>,
}

fn yes() -> bool {
    true
}

/// Changes; absent fields stay as they are. `min_severity: null` removes the filter.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEndpointRequest {
    pub name: Option<String>,
    pub url: Option<String>,
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub min_severity: Option<Option<String>>,
    pub sources: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
    pub event_kinds: Option<Vec<String>>,
    pub headers: Option<BTreeMap<String, String>>,
    pub timeout_ms: Option<u64>,
}

fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// A new endpoint, or a new secret: `secret` is shown this once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EndpointWithSecret {
    pub secret: String,
    pub endpoint: WebhookEndpoint,
}

/// A page of deliveries, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryPage {
    pub items: Vec<WebhookDelivery>,
    /// Pass as `before` for the next page; absent on the last.
    pub next_before: Option<Uuid>,
}

/// A delivery with every attempt.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: WebhookDelivery,
    pub attempts: Vec<WebhookAttemptLog>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    /// `pending`, `delivering`, `delivered`, `dead`.
    pub status: Option<String>,
    /// The `next_before` of the previous page.
    pub before: Option<Uuid>,
    /// 1 to 500 (default 50).
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SinceQuery {
    /// RFC 3339 time: deliveries that died at or after it are sent again.
    pub since: DateTime<Utc>,
}

/// How many deliveries were queued again.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Requeued {
    pub requeued: u64,
}

/// The result of a test delivery.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TestResult {
    /// `delivered`, `gone`, `failed` or `refused`.
    pub outcome: String,
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
}

fn refused(e: WebhookError) -> ApiError {
    match e {
        WebhookError::DestinationRefused { .. } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "destination_refused",
            e.to_string(),
        ),
        WebhookError::InvalidUrl { .. } => ApiError::validation(e.to_string()),
        WebhookError::Resolve { .. } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "destination_unresolvable",
            e.to_string(),
        ),
        other => ApiError::validation(other.to_string()),
    }
}

fn check_name(name: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "name must be 1 to 100 printable characters",
        ));
    }
    Ok(name.to_string())
}

async fn check_url(state: &AppState, url: &str) -> ApiResult<String> {
    let url = url.trim();
    if url.len() > 2048 {
        return Err(ApiError::validation("url must be at most 2048 bytes"));
    }
    state
        .webhooks
        .check_destination(url)
        .await
        .map_err(refused)?;
    Ok(url.to_string())
}

fn check_headers(h: &BTreeMap<String, String>) -> ApiResult<Vec<(String, String)>> {
    if h.len() > 20 {
        return Err(ApiError::validation("at most 20 custom headers"));
    }
    h.iter()
        .map(|(n, v)| {
            vigil_integrations::webhooks::validate_header(n, v)
                .map_err(|e| ApiError::validation(e.to_string()))?;
            Ok((n.trim().to_string(), v.clone()))
        })
        .collect()
}

fn check_timeout(t: u64) -> ApiResult<u64> {
    if TIMEOUT_MS.contains(&t) {
        Ok(t)
    } else {
        Err(ApiError::validation(format!(
            "timeout_ms must be {} to {}",
            TIMEOUT_MS.start(),
            TIMEOUT_MS.end()
        )))
    }
}

fn check_tags(tags: &[String]) -> ApiResult<()> {
    if tags.len() > 50 || tags.iter().any(|t| t.is_empty() || t.len() > 100) {
        return Err(ApiError::validation("at most 50 tags of 1 to 100 bytes"));
    }
    Ok(())
}

async fn own_endpoint(state: &AppState, user: &AuthUser, id: Uuid) -> ApiResult<WebhookEndpoint> {
    state
        .webhooks
        .store()
        .get_endpoint(user.org_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook endpoint"))
}

fn not_from_config(e: &WebhookEndpoint) -> ApiResult<()> {
    if e.from_config {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "managed_by_config",
            format!(
                "webhook endpoint '{}' comes from the config file ([[webhooks.endpoints]]); change it there",
                e.name
            ),
        ));
    }
    Ok(())
}

/// Create a webhook endpoint (admin). The secret is in the answer this once.
#[utoipa::path(post, path = "/webhooks", tag = "webhooks", security(("bearer" = [])), request_body = CreateEndpointRequest,
    responses((status = 201, body = EndpointWithSecret), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "invalid field, or `destination_refused` by the SSRF guard")))]
async fn create_endpoint(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<CreateEndpointRequest>,
) -> ApiResult<(StatusCode, axum::Json<EndpointWithSecret>)> {
    user.require(Role::Admin)?;
    let name = check_name(&req.name)?;
    let filters =
        EndpointFilters::parse(req.min_severity.as_deref(), &req.sources, &req.event_kinds)
            .map_err(ApiError::validation)?;
    check_tags(&req.tags)?;
    let headers = check_headers(&req.headers)?;
    let timeout_ms = req.timeout_ms.map(check_timeout).transpose()?.unwrap_or(0);
    let secret = match req.secret.as_deref() {
        Some(s) => WebhookSecret::parse(s).map_err(|e| ApiError::validation(e.to_string()))?,
        None => WebhookSecret::generate(),
    };
    let url = check_url(&state, &req.url).await?;
    let sealed = state
        .webhooks
        .secrets()
        .seal(user.org_id, &secret)
        .map_err(ApiError::internal)?;
    let endpoint = state
        .webhooks
        .store()
        .create_endpoint(
            user.org_id,
            NewWebhookEndpoint {
                name,
                url,
                secret: sealed,
                enabled: req.enabled,
                min_severity: filters.min_severity,
                sources: filters.sources,
                tags: req.tags,
                event_kinds: filters.event_kinds,
                headers,
                timeout_ms,
                from_config: false,
            },
        )
        .await?;
    tracing::info!(endpoint = %endpoint.id, name = %endpoint.name, by = %user.username, "webhook endpoint created");
    Ok((
        StatusCode::CREATED,
        axum::Json(EndpointWithSecret {
            secret: secret.expose(),
            endpoint,
        }),
    ))
}

/// Webhook endpoints of your organization (admin); never the secrets.
#[utoipa::path(get, path = "/webhooks", tag = "webhooks", security(("bearer" = [])),
    responses((status = 200, body = [WebhookEndpoint]), (status = 403, body = ErrorBody)))]
async fn list_endpoints(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<axum::Json<Vec<WebhookEndpoint>>> {
    user.require(Role::Admin)?;
    Ok(axum::Json(
        state.webhooks.store().list_endpoints(user.org_id).await?,
    ))
}

/// One webhook endpoint (admin).
#[utoipa::path(get, path = "/webhooks/{id}", tag = "webhooks", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = WebhookEndpoint), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_endpoint(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<axum::Json<WebhookEndpoint>> {
    user.require(Role::Admin)?;
    Ok(axum::Json(own_endpoint(&state, &user, id).await?))
}

/// Change a webhook endpoint (admin). Enabling it again sends what waited meanwhile.
#[utoipa::path(patch, path = "/webhooks/{id}", tag = "webhooks", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = UpdateEndpointRequest,
    responses((status = 200, body = WebhookEndpoint), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_endpoint(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<UpdateEndpointRequest>,
) -> ApiResult<axum::Json<WebhookEndpoint>> {
    user.require(Role::Admin)?;
    let current = own_endpoint(&state, &user, id).await?;
    not_from_config(&current)?;
    let filters = EndpointFilters::parse(
        req.min_severity.clone().flatten().as_deref(),
        req.sources.as_deref().unwrap_or_default(),
        req.event_kinds.as_deref().unwrap_or_default(),
    )
    .map_err(ApiError::validation)?;
    if let Some(t) = &req.tags {
        check_tags(t)?;
    }
    let update = WebhookEndpointUpdate {
        name: req.name.as_deref().map(check_name).transpose()?,
        url: match req.url.as_deref() {
            Some(u) => Some(check_url(&state, u).await?),
            None => None,
        },
        enabled: req
            .enabled
            .map(|e| (e, (!e).then(|| format!("disabled by {}", user.username)))),
        min_severity: req.min_severity.map(|_| filters.min_severity),
        sources: req.sources.map(|_| filters.sources),
        tags: req.tags,
        event_kinds: req.event_kinds.map(|_| filters.event_kinds),
        headers: req.headers.as_ref().map(check_headers).transpose()?,
        timeout_ms: req.timeout_ms.map(check_timeout).transpose()?,
    };
    let e = state
        .webhooks
        .store()
        .update_endpoint(user.org_id, id, update)
        .await
        .map_err(ApiError::from_store("webhook endpoint"))?;
    if e.enabled {
        state.webhooks.wake();
    }
    Ok(axum::Json(e))
}

/// Delete a webhook endpoint with its delivery log (admin).
#[utoipa::path(delete, path = "/webhooks/{id}", tag = "webhooks", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_endpoint(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    user.require(Role::Admin)?;
    let current = own_endpoint(&state, &user, id).await?;
    not_from_config(&current)?;
    state
        .webhooks
        .store()
        .delete_endpoint(user.org_id, id)
        .await
        .map_err(ApiError::from_store("webhook endpoint"))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replace the signing secret with a new random one, shown this once (admin). Attempts from
/// now on are signed with it.
#[utoipa::path(post, path = "/webhooks/{id}/rotate-secret", tag = "webhooks", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = EndpointWithSecret), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn rotate_secret(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<axum::Json<EndpointWithSecret>> {
    user.require(Role::Admin)?;
    let endpoint = own_endpoint(&state, &user, id).await?;
    not_from_config(&endpoint)?;
    let secret = WebhookSecret::generate();
    let sealed = state
        .webhooks
        .secrets()
        .seal(user.org_id, &secret)
        .map_err(ApiError::internal)?;
    state
        .webhooks
        .store()
        .set_endpoint_secret(user.org_id, id, &sealed)
        .await
        .map_err(ApiError::from_store("webhook endpoint"))?;
    tracing::info!(endpoint = %id, by = %user.username, "webhook secret rotated");
    Ok(axum::Json(EndpointWithSecret {
        secret: secret.expose(),
        endpoint,
    }))
}

/// Send a test event (`kind: webhook.test`) now, signed and sent like every delivery, and
/// answer how it went (admin). Nothing is stored or retried.
#[utoipa::path(post, path = "/webhooks/{id}/test", tag = "webhooks", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = TestResult, description = "sent (see `outcome`)"), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody, description = "`destination_refused` by the SSRF guard")))]
async fn test_endpoint(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<axum::Json<TestResult>> {
    user.require(Role::Admin)?;
    let endpoint = own_endpoint(&state, &user, id).await?;
    let a = state
        .webhooks
        .send_test(&endpoint, &user.username)
        .await
        .map_err(ApiError::internal)?;
    if a.outcome == vigil_integrations::webhooks::WebhookOutcome::Refused {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "destination_refused",
            a.error.unwrap_or_else(|| "destination refused".into()),
        ));
    }
    Ok(axum::Json(TestResult {
        outcome: a.outcome.as_str().into(),
        status_code: a.status,
        latency_ms: u64::try_from(a.latency.as_millis()).unwrap_or(u64::MAX),
        error: a.error,
    }))
}

/// The delivery log of an endpoint, newest first (admin): status, attempts, last response
/// code and latency, next attempt.
#[utoipa::path(get, path = "/webhooks/{id}/deliveries", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path), DeliveryQuery),
    responses((status = 200, body = DeliveryPage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_deliveries(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<DeliveryQuery>,
) -> ApiResult<axum::Json<DeliveryPage>> {
    user.require(Role::Admin)?;
    own_endpoint(&state, &user, id).await?;
    let status = q
        .status
        .as_deref()
        .map(|s| {
            WebhookDeliveryStatus::parse(s).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_query",
                    "status must be pending, delivering, delivered or dead",
                )
            })
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit must be 1 to 500",
        ));
    }
    let items = state
        .webhooks
        .store()
        .list_deliveries(user.org_id, id, status, q.before, limit)
        .await?;
    let next_before = (items.len() == limit as usize)
        .then(|| items.last().map(|d| d.id))
        .flatten();
    Ok(axum::Json(DeliveryPage { items, next_before }))
}

async fn own_delivery(
    state: &AppState,
    user: &AuthUser,
    id: Uuid,
    did: Uuid,
) -> ApiResult<WebhookDelivery> {
    state
        .webhooks
        .store()
        .get_delivery(user.org_id, did)
        .await?
        .filter(|d| d.endpoint_id == id)
        .ok_or_else(|| ApiError::not_found("webhook delivery"))
}

/// One delivery with all its attempts (admin).
#[utoipa::path(get, path = "/webhooks/{id}/deliveries/{did}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("did" = Uuid, Path)),
    responses((status = 200, body = DeliveryDetail), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_delivery(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath((id, did)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<axum::Json<DeliveryDetail>> {
    user.require(Role::Admin)?;
    let delivery = own_delivery(&state, &user, id, did).await?;
    let attempts = state
        .webhooks
        .store()
        .list_attempts(user.org_id, did)
        .await?;
    Ok(axum::Json(DeliveryDetail { delivery, attempts }))
}

/// Send one delivery again now (same `webhook-id`), whatever its state, with a fresh
/// maximum age (admin).
#[utoipa::path(post, path = "/webhooks/{id}/deliveries/{did}/redeliver", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("did" = Uuid, Path)),
    responses((status = 202, body = WebhookDelivery), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn redeliver(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath((id, did)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<(StatusCode, axum::Json<WebhookDelivery>)> {
    user.require(Role::Admin)?;
    own_delivery(&state, &user, id, did).await?;
    let d = state
        .webhooks
        .store()
        .redeliver(user.org_id, did, Utc::now())
        .await
        .map_err(ApiError::from_store("webhook delivery"))?;
    state.webhooks.wake();
    Ok((StatusCode::ACCEPTED, axum::Json(d)))
}

/// Send again every delivery of the endpoint that died at or after `since` (admin).
#[utoipa::path(post, path = "/webhooks/{id}/redeliver", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path), SinceQuery),
    responses((status = 202, body = Requeued), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn redeliver_dead_since(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<SinceQuery>,
) -> ApiResult<(StatusCode, axum::Json<Requeued>)> {
    user.require(Role::Admin)?;
    own_endpoint(&state, &user, id).await?;
    let requeued = state
        .webhooks
        .store()
        .redeliver_dead_since(user.org_id, id, q.since, Utc::now())
        .await?;
    state.webhooks.wake();
    Ok((StatusCode::ACCEPTED, axum::Json(Requeued { requeued })))
}
