//! `/api/v1/alerts`: list with filters and pagination, create, lifecycle (status, ack,
//! close, bulk, severity, assignee), audit history. Every change also writes its outbox
//! event in the same transaction (`vigil_store::outbox`).

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use vigil_core::{
    Alert, AlertFilter, AlertHistoryEntry, AlertInput, AlertPage, AlertSortField, AlertStatus,
    AttackTechniqueId, NewAlert, Role, Severity,
};
use vigil_store::AlertChange;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::metrics::ALERTS_CREATED;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_alerts, create_alert))
        .routes(routes!(bulk_status))
        .routes(routes!(get_alert))
        .routes(routes!(update_status))
        .routes(routes!(acknowledge))
        .routes(routes!(update_severity))
        .routes(routes!(update_assignee))
        .routes(routes!(close))
        .routes(routes!(history))
}

/// Default and largest page sizes.
const DEFAULT_LIMIT: u64 = 50;
const MAX_LIMIT: u64 = 1000;
const MAX_BULK: usize = 1000;

/// Query parameters of `GET /alerts` (documentation; parsing accepts repeated keys and
/// comma-separated lists).
#[derive(Debug, Deserialize, IntoParams)]
#[allow(dead_code)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// One or more of open, in_progress, closed, false_positive (comma-separated or repeated).
    status: Option<String>,
    /// One or more of low, medium, high, critical.
    severity: Option<String>,
    /// One or more of agent, ml_engine, user, rule, intel.
    source: Option<String>,
    agent_id: Option<String>,
    /// ATT&CK technique; `T1059` also matches `T1059.001`.
    technique: Option<String>,
    tag: Option<String>,
    /// Case-insensitive text in title or description; control characters in them match
    /// as spaces, and `q` itself must not contain any (400).
    q: Option<String>,
    /// RFC 3339; alerts with timestamp >= since.
    since: Option<String>,
    /// RFC 3339; alerts with timestamp < until.
    until: Option<String>,
    /// timestamp (default), created_at, updated_at or severity; prefix `-` for descending.
    sort: Option<String>,
    /// asc or desc (default desc).
    order: Option<String>,
    /// Rows to skip (ignored with a cursor).
    skip: Option<u64>,
    /// Page size, 1..=1000 (default 50).
    limit: Option<u64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Count all matches exactly; by default counting stops at 10,000 (1,000 with `q`)
    /// and `total_is_exact` says whether `total` is exact.
    exact_total: Option<bool>,
}

fn parse_list<T: std::str::FromStr<Err = vigil_core::Error>>(
    out: &mut Vec<T>,
    key: &str,
    value: &str,
) -> ApiResult<()> {
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let v = part.parse().map_err(|e: vigil_core::Error| {
            ApiError::bad_request("invalid_query", format!("{key}: {e}"))
        })?;
        out.push(v);
    }
    Ok(())
}

fn parse_time(key: &str, v: &str) -> ApiResult<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| vigil_core::truncate_micros(t.with_timezone(&chrono::Utc)))
        .map_err(|_| {
            ApiError::bad_request(
                "invalid_query",
                format!(
                    "{key}: '{}' is not an RFC 3339 time such as 2026-01-31T12:00:00Z",
                    v.chars().take(64).collect::<String>()
                ),
            )
        })
}

fn parse_u64(key: &str, v: &str) -> ApiResult<u64> {
    v.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_query",
            format!(
                "{key}: '{}' is not a non-negative integer",
                v.chars().take(32).collect::<String>()
            ),
        )
    })
}

/// Builds an [`AlertFilter`] from a raw query string; unknown parameters are refused.
pub fn parse_filter(query: Option<&str>) -> ApiResult<AlertFilter> {
    let mut f = AlertFilter {
        limit: DEFAULT_LIMIT,
        descending: true,
        ..Default::default()
    };
    let mut order: Option<bool> = None;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))?;
    for (k, v) in &pairs {
        match k.as_str() {
            "status" => parse_list(&mut f.statuses, k, v)?,
            "severity" => parse_list(&mut f.severities, k, v)?,
            "source" => parse_list(&mut f.sources, k, v)?,
            "agent_id" => f.agent_id = Some(v.clone()),
            "technique" | "attack_technique_id" => {
                f.technique = Some(
                    AttackTechniqueId::parse(v)
                        .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))?,
                )
            }
            "tag" => {
                // Tags cannot hold control characters (`NewAlert::parse`).
                super::no_control_chars(k, v)?;
                f.tag = Some(v.clone())
            }
            "q" | "search" => {
                super::no_control_chars(k, v)?;
                if v.chars().count() > 256 {
                    return Err(ApiError::bad_request(
                        "invalid_query",
                        "q: at most 256 characters",
                    ));
                }
                f.text = Some(v.clone()).filter(|s| !s.is_empty());
            }
            "since" | "start_time" => f.since = Some(parse_time(k, v)?),
            "until" | "end_time" => f.until = Some(parse_time(k, v)?),
            "sort" => {
                let (desc, field) = match v.strip_prefix('-') {
                    Some(rest) => (Some(true), rest),
                    None => (None, v.as_str()),
                };
                f.sort = field
                    .parse::<AlertSortField>()
                    .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))?;
                if desc.is_some() {
                    order = desc;
                }
            }
            "order" => {
                order = Some(match v.to_ascii_lowercase().as_str() {
                    "desc" => true,
                    "asc" => false,
                    _ => {
                        return Err(ApiError::bad_request(
                            "invalid_query",
                            "order must be asc or desc",
                        ));
                    }
                })
            }
            "skip" | "offset" => f.skip = parse_u64(k, v)?,
            "limit" => {
                let l = parse_u64(k, v)?;
                if l == 0 || l > MAX_LIMIT {
                    return Err(ApiError::bad_request(
                        "invalid_query",
                        format!("limit must be 1..={MAX_LIMIT}"),
                    ));
                }
                f.limit = l;
            }
            "exact_total" => {
                f.exact_total = match v.as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(ApiError::bad_request(
                            "invalid_query",
                            "exact_total must be true or false",
                        ));
                    }
                }
            }
            "cursor" => {
                f.cursor =
                    Some(vigil_store::decode_cursor(v).map_err(|_| {
                        ApiError::bad_request("invalid_query", "cursor is not valid")
                    })?)
            }
            other => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!(
                        "unknown query parameter '{}'",
                        other.chars().take(64).collect::<String>()
                    ),
                ));
            }
        }
    }
    if let Some(d) = order {
        f.descending = d;
    }
    if let (Some(s), Some(u)) = (f.since, f.until)
        && s > u
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            "since must not be after until",
        ));
    }
    Ok(f)
}

/// List alerts of your organization.
#[utoipa::path(get, path = "/alerts", tag = "alerts", security(("bearer" = [])), params(ListParams),
    responses((status = 200, body = AlertPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_alerts(
    State(state): State<AppState>,
    user: AuthUser,
    RawQuery(q): RawQuery,
) -> ApiResult<axum::Json<AlertPage>> {
    user.require(Role::Viewer)?;
    let f = parse_filter(q.as_deref())?;
    Ok(axum::Json(state.store.list_alerts(user.org_id, &f).await?))
}

/// Create an alert (also `POST /api/alerts`, the original API).
#[utoipa::path(post, path = "/alerts", tag = "alerts", security(("bearer" = [])), request_body = AlertInput,
    responses((status = 201, body = Alert), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody, description = "alert_id exists"),
        (status = 422, body = ErrorBody)))]
pub async fn create_alert(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(input): ApiJson<AlertInput>,
) -> ApiResult<(StatusCode, axum::Json<Alert>)> {
    user.require(Role::Analyst)?;
    let now = vigil_core::now();
    let skew = state.config.ingest.max_future_skew_secs;
    if let Some(ts) = input.timestamp
        && ts > crate::ingest::normalize::skew_limit(now, skew)
    {
        return Err(ApiError::validation(format!(
            "timestamp {} is more than {skew} s ahead of the server's clock \
             ([ingest] max_future_skew_secs)",
            vigil_core::event::format_timestamp(ts)
        ))
        .with_details(serde_json::json!({"field": "timestamp"})));
    }
    let new = NewAlert::parse(input, now)?;
    let alert = state
        .store
        .create_alert(user.org_id, new, &user.username)
        .await?;
    metrics::counter!(ALERTS_CREATED, "source" => alert.source.as_str(), "severity" => alert.severity.as_str()).increment(1);
    Ok((StatusCode::CREATED, axum::Json(alert)))
}

/// One alert.
#[utoipa::path(get, path = "/alerts/{id}", tag = "alerts", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Alert), (status = 404, body = ErrorBody)))]
async fn get_alert(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<axum::Json<Alert>> {
    user.require(Role::Viewer)?;
    state
        .store
        .get_alert(user.org_id, id)
        .await?
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("alert"))
}

/// Body of a status change.
#[derive(Debug, Deserialize, ToSchema)]
pub struct StatusRequest {
    /// open, in_progress, closed or false_positive.
    pub status: AlertStatus,
    /// Stored as resolution notes (typically when closing).
    pub resolution_notes: Option<String>,
}

/// Reads `status` and `resolution_notes` from a JSON object with explicit 400s.
fn parse_status_body(body: &serde_json::Value) -> ApiResult<(AlertStatus, Option<String>)> {
    let obj = body.as_object().ok_or_else(|| {
        ApiError::bad_request(
            "invalid_body",
            "expected a JSON object with a 'status' field",
        )
    })?;
    for k in obj.keys() {
        if k != "status" && k != "resolution_notes" {
            return Err(ApiError::bad_request(
                "invalid_body",
                format!("unknown field '{}'", k.chars().take(64).collect::<String>()),
            ));
        }
    }
    let allowed = AlertStatus::ALL
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>();
    let status = match obj.get("status") {
        None | Some(serde_json::Value::Null) => {
            return Err(
                ApiError::bad_request("missing_status", "the 'status' field is required")
                    .with_details(serde_json::json!({ "allowed": allowed })),
            );
        }
        Some(serde_json::Value::String(s)) => s.parse::<AlertStatus>().map_err(|_| {
            ApiError::bad_request(
                "invalid_status",
                format!(
                    "'{}' is not a status; use one of: {}",
                    s.chars().take(64).collect::<String>(),
                    allowed.join(", ")
                ),
            )
            .with_details(serde_json::json!({ "allowed": allowed }))
        })?,
        Some(_) => {
            return Err(
                ApiError::bad_request("invalid_status", "'status' must be a string")
                    .with_details(serde_json::json!({ "allowed": allowed })),
            );
        }
    };
    let notes = parse_notes(obj.get("resolution_notes"))?;
    Ok((status, notes))
}

fn parse_notes(v: Option<&serde_json::Value>) -> ApiResult<Option<String>> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => {
            vigil_core::validate_notes(s)?;
            Ok(Some(s.clone()))
        }
        Some(_) => Err(ApiError::bad_request(
            "invalid_body",
            "'resolution_notes' must be a string",
        )),
    }
}

async fn change(
    state: &AppState,
    user: &AuthUser,
    id: Uuid,
    change: AlertChange,
) -> ApiResult<axum::Json<Alert>> {
    user.require(Role::Analyst)?;
    let a = state
        .store
        .update_alert(user.org_id, id, &change, &user.username)
        .await
        .map_err(ApiError::from_store("alert"))?;
    Ok(axum::Json(a))
}

/// Change an alert's status. Allowed: open → in_progress | closed | false_positive;
/// in_progress → open | closed | false_positive; closed | false_positive → open.
#[utoipa::path(patch, path = "/alerts/{id}/status", tag = "alerts", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = StatusRequest,
    responses((status = 200, body = Alert), (status = 400, body = ErrorBody, description = "status missing or invalid"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "transition not allowed")))]
async fn update_status(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> ApiResult<axum::Json<Alert>> {
    let (to, notes) = parse_status_body(&body)?;
    change(&state, &user, id, AlertChange::Status { to, notes }).await
}

/// Acknowledge an alert: records who took it; an open alert moves to in_progress.
#[utoipa::path(post, path = "/alerts/{id}/ack", tag = "alerts", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Alert), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn acknowledge(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<axum::Json<Alert>> {
    change(&state, &user, id, AlertChange::Acknowledge).await
}

/// Body of a severity change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeverityRequest {
    /// low, medium, high or critical.
    pub severity: Severity,
}

/// Change an alert's severity (any status; the same severity changes nothing). Audited in
/// the alert's history; raises an `alert.severity_changed` event.
#[utoipa::path(patch, path = "/alerts/{id}/severity", tag = "alerts", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = SeverityRequest,
    responses((status = 200, body = Alert), (status = 422, body = ErrorBody, description = "severity missing or invalid"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_severity(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<SeverityRequest>,
) -> ApiResult<axum::Json<Alert>> {
    change(
        &state,
        &user,
        id,
        AlertChange::Severity { to: req.severity },
    )
    .await
}

/// Body of an assignment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssigneeRequest {
    /// User name of an enabled user of the organization; `null` unassigns.
    pub assignee: Option<String>,
}

/// Assign an alert to a user of the organization, or unassign it (`assignee: null`).
/// Audited in the alert's history; raises an `alert.assigned` event.
#[utoipa::path(patch, path = "/alerts/{id}/assignee", tag = "alerts", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = AssigneeRequest,
    responses((status = 200, body = Alert), (status = 400, body = ErrorBody, description = "unknown or disabled user"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody, description = "malformed body")))]
async fn update_assignee(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<AssigneeRequest>,
) -> ApiResult<axum::Json<Alert>> {
    user.require(Role::Analyst)?;
    if let Some(name) = &req.assignee {
        // Another organization's user is as unknown as a missing one.
        let known = state
            .store
            .get_user_by_username(name)
            .await?
            .filter(|u| u.org_id == user.org_id && !u.disabled);
        if known.is_none() {
            return Err(ApiError::bad_request(
                "invalid_assignee",
                format!(
                    "'{}' is not an enabled user of this organization",
                    name.chars().take(64).collect::<String>()
                ),
            ));
        }
    }
    change(&state, &user, id, AlertChange::Assign { to: req.assignee }).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseRequest {
    pub resolution_notes: Option<String>,
    /// closed (default) or false_positive.
    pub status: Option<AlertStatus>,
}

/// Close an alert with resolution notes (`status: false_positive` to mark it one).
#[utoipa::path(post, path = "/alerts/{id}/close", tag = "alerts", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = CloseRequest,
    responses((status = 200, body = Alert), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn close(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<CloseRequest>,
) -> ApiResult<axum::Json<Alert>> {
    let to = req.status.unwrap_or(AlertStatus::Closed);
    if !to.is_terminal() {
        return Err(ApiError::bad_request(
            "invalid_status",
            "close takes status closed or false_positive",
        ));
    }
    if let Some(n) = &req.resolution_notes {
        vigil_core::validate_notes(n)?;
    }
    change(
        &state,
        &user,
        id,
        AlertChange::Status {
            to,
            notes: req.resolution_notes,
        },
    )
    .await
}

/// The audit trail of an alert, oldest first.
#[utoipa::path(get, path = "/alerts/{id}/history", tag = "alerts", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = [AlertHistoryEntry]), (status = 404, body = ErrorBody)))]
async fn history(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<axum::Json<Vec<AlertHistoryEntry>>> {
    user.require(Role::Viewer)?;
    state
        .store
        .alert_history(user.org_id, id)
        .await?
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("alert"))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct BulkStatusRequest {
    /// Up to 1000 alert ids.
    pub ids: Vec<Uuid>,
    pub status: AlertStatus,
    pub resolution_notes: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BulkItemResult {
    pub id: Uuid,
    pub ok: bool,
    /// Error code when not ok: not_found or invalid_transition.
    pub error: Option<String>,
    pub message: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BulkStatusResponse {
    pub updated: u64,
    pub failed: u64,
    pub results: Vec<BulkItemResult>,
}

/// Change the status of many alerts; each alert succeeds or fails on its own.
#[utoipa::path(post, path = "/alerts/bulk/status", tag = "alerts", security(("bearer" = [])), request_body = BulkStatusRequest,
    responses((status = 200, body = BulkStatusResponse), (status = 400, body = ErrorBody)))]
async fn bulk_status(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> ApiResult<axum::Json<BulkStatusResponse>> {
    user.require(Role::Analyst)?;
    let (to, notes) = {
        let mut b = body.clone();
        if let Some(o) = b.as_object_mut() {
            o.remove("ids");
        }
        parse_status_body(&b)?
    };
    let ids: Vec<Uuid> = match body.get("ids") {
        Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
            ApiError::bad_request(
                "invalid_body",
                "'ids' must be an array of alert ids (UUIDs)",
            )
        })?,
        None => {
            return Err(ApiError::bad_request(
                "invalid_body",
                "the 'ids' field is required",
            ));
        }
    };
    if ids.is_empty() || ids.len() > MAX_BULK {
        return Err(ApiError::bad_request(
            "invalid_body",
            format!("'ids' must hold 1 to {MAX_BULK} ids"),
        ));
    }
    let mut results = Vec::with_capacity(ids.len());
    let mut updated = 0;
    for id in ids {
        let r = state
            .store
            .update_alert(
                user.org_id,
                id,
                &AlertChange::Status {
                    to,
                    notes: notes.clone(),
                },
                &user.username,
            )
            .await;
        results.push(match r {
            Ok(_) => {
                updated += 1;
                BulkItemResult {
                    id,
                    ok: true,
                    error: None,
                    message: None,
                }
            }
            Err(vigil_store::Error::NotFound) => BulkItemResult {
                id,
                ok: false,
                error: Some("not_found".into()),
                message: Some("alert not found".into()),
            },
            Err(e @ vigil_store::Error::Transition { .. }) => BulkItemResult {
                id,
                ok: false,
                error: Some("invalid_transition".into()),
                message: Some(e.to_string()),
            },
            Err(e) => return Err(e.into()),
        });
    }
    let failed = results.len() as u64 - updated;
    Ok(axum::Json(BulkStatusResponse {
        updated,
        failed,
        results,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_lists_and_reject_unknowns() {
        let f = parse_filter(Some(
            "status=open,in_progress&severity=high&severity=critical&sort=-severity&limit=10&q=ssh",
        ))
        .unwrap();
        assert_eq!(f.statuses, [AlertStatus::Open, AlertStatus::InProgress]);
        assert_eq!(f.severities.len(), 2);
        assert_eq!(f.sort, AlertSortField::Severity);
        assert!(f.descending);
        assert_eq!(f.limit, 10);
        let f = parse_filter(Some("sort=timestamp&order=asc")).unwrap();
        assert!(!f.descending);
        for bad in [
            "limit=0",
            "limit=1001",
            "skip=-1",
            "severity=urgent",
            "bogus=1",
            "since=yesterday",
            "cursor=zzz",
            "order=up",
            "technique=T1",
        ] {
            let e = parse_filter(Some(bad)).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn status_body_errors_explain() {
        let e = parse_status_body(&serde_json::json!({})).unwrap_err();
        assert_eq!(e.code, "missing_status");
        let e = parse_status_body(&serde_json::json!({"status": "done"})).unwrap_err();
        assert_eq!(e.code, "invalid_status");
        assert!(e.message.contains("false_positive"));
        let (s, n) =
            parse_status_body(&serde_json::json!({"status": "closed", "resolution_notes": "ok"}))
                .unwrap();
        assert_eq!((s, n.as_deref()), (AlertStatus::Closed, Some("ok")));
    }
}
