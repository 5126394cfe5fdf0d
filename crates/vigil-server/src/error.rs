//! The one HTTP error type. Every 4xx is `{"error":{"code":"...","message":"..."}}`; internal
//! errors are logged with an id and only the id reaches the client.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Error body returned by every failing endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable code, e.g. `invalid_status`, `not_found`, `unauthorized`.
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
    /// Extra structured context (allowed transitions, offending field ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub details: Option<serde_json::Value>,
}

/// An error answered over HTTP.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Boxed: a `Value` is large when serde_json's `preserve_order` is on (the EVTX parser of
    /// vigil-hunt turns it on workspace-wide), and every handler returns this error.
    pub details: Option<Box<serde_json::Value>>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(Box::new(details));
        self
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            message,
        )
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }
    pub fn too_many_requests(retry_after: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests; retry after {retry_after} s"),
        );
        e.retry_after = Some(retry_after);
        e
    }
    /// Logs the cause with an id and returns a 500 that shows only the id.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let id = uuid::Uuid::new_v4();
        tracing::error!(error = %cause, error_id = %id, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("internal error (id {id})"),
        )
    }
    /// Maps a store error, naming `what` was not found (instead of a generic "resource").
    pub fn from_store(what: &'static str) -> impl FnOnce(vigil_store::Error) -> ApiError {
        move |e| match e {
            vigil_store::Error::NotFound => ApiError::not_found(what),
            e => e.into(),
        }
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
    /// 503 `storage_unavailable` with Retry-After: the write was not stored (the database
    /// failed to commit it); the same request may be sent again.
    pub fn storage_unavailable(message: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            message,
        );
        e.retry_after = Some(STORAGE_RETRY_AFTER_SECS);
        e
    }
}

/// Retry-After of a `storage_unavailable` answer: long enough not to hammer a failing disk,
/// short enough that a cleared fault is noticed soon.
pub const STORAGE_RETRY_AFTER_SECS: u64 = 2;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                details: self.details.map(|d| *d),
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

impl From<vigil_store::Error> for ApiError {
    fn from(e: vigil_store::Error) -> Self {
        use vigil_store::Error as E;
        match e {
            E::NotFound => ApiError::not_found("resource"),
            E::Conflict(m) => ApiError::conflict(m),
            E::InvalidInput(m) => ApiError::bad_request("invalid_input", m),
            E::Transition { from, to, allowed } => ApiError::new(
                StatusCode::CONFLICT,
                "invalid_transition",
                format!(
                    "cannot change status from {from} to {to}; allowed from {from}: {}",
                    if allowed.is_empty() {
                        "none".to_string()
                    } else {
                        allowed
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
            )
            .with_details(serde_json::json!({
                "from": from, "to": to, "allowed": allowed,
            })),
            e if e.is_unavailable() => {
                tracing::warn!(error = %e, "storage unavailable; nothing was stored");
                ApiError::storage_unavailable(
                    "storage unavailable, nothing was stored; retry later",
                )
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<vigil_core::Error> for ApiError {
    fn from(e: vigil_core::Error) -> Self {
        ApiError::validation(e.to_string())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
