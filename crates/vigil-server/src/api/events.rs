//! `GET /api/v1/events`: recent normalized events for investigation.

use axum::extract::{RawQuery, State};
use chrono::{DateTime, Utc};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vigil_core::Role;
use vigil_store::{EventFilter, EventPage};

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_events))
}

/// Query parameters of `GET /events` (documentation; parsed by hand so `field` can repeat).
#[derive(IntoParams)]
#[allow(dead_code)]
struct EventParams {
    /// Events at or after this time (RFC 3339).
    from: Option<String>,
    /// Events before this time (RFC 3339).
    to: Option<String>,
    /// `host.name` equals.
    host: Option<String>,
    /// `event.dataset` equals (`auth`, `syslog`, `network.flow`, ...).
    dataset: Option<String>,
    /// Case-insensitive text in the message; control characters in the message match as
    /// spaces, and `q` itself must not contain any (400).
    q: Option<String>,
    /// `path:value`, e.g. `source.ip:203.0.113.9`; repeat for more (all must hold).
    field: Option<Vec<String>>,
    /// Page size, 1 to 1000 (default 100).
    limit: Option<u64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

fn time(name: &str, v: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::bad_request(
                "invalid_query",
                format!("{name} must be an RFC 3339 time, got '{v}'"),
            )
        })
}

fn parse(q: Option<&str>) -> Result<EventFilter, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(q.unwrap_or(""))
        .map_err(|e| ApiError::bad_request("invalid_query", format!("query string: {e}")))?;
    let mut f = EventFilter {
        limit: 100,
        ..Default::default()
    };
    for (k, v) in pairs {
        match k.as_str() {
            "from" => f.from = Some(time("from", &v)?),
            "to" => f.to = Some(time("to", &v)?),
            "host" => f.host = Some(v),
            "dataset" => f.dataset = Some(v),
            "q" if !v.is_empty() => {
                super::no_control_chars("q", &v)?;
                f.text = Some(v)
            }
            "q" => {}
            "field" => {
                let (path, value) = v.split_once(':').ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_query",
                        format!("field must be 'path:value', got '{v}'"),
                    )
                })?;
                if !vigil_store::events_valid_field_path(path) {
                    return Err(ApiError::bad_request(
                        "invalid_query",
                        format!("'{path}' is not a field path"),
                    ));
                }
                f.fields.push((path.to_owned(), value.to_owned()));
            }
            "limit" => {
                f.limit = v
                    .parse()
                    .ok()
                    .filter(|l| (1..=1000).contains(l))
                    .ok_or_else(|| {
                        ApiError::bad_request("invalid_query", "limit must be 1 to 1000")
                    })?
            }
            "cursor" => f.cursor = Some(v),
            other => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("unknown query parameter '{other}'"),
                ));
            }
        }
    }
    if f.fields.len() > 10 {
        return Err(ApiError::bad_request(
            "invalid_query",
            "at most 10 field filters",
        ));
    }
    Ok(f)
}

/// Recent events, newest first, with filters and cursor pagination.
#[utoipa::path(get, path = "/events", tag = "events", security(("bearer" = [])), params(EventParams),
    responses((status = 200, body = EventPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_events(
    State(state): State<AppState>,
    user: AuthUser,
    RawQuery(q): RawQuery,
) -> ApiResult<axum::Json<EventPage>> {
    user.require(Role::Analyst)?;
    let f = parse(q.as_deref())?;
    Ok(axum::Json(
        state.events.query_events(user.org_id, &f).await?,
    ))
}
