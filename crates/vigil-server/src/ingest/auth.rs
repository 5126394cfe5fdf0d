//! Who may send events: an agent (its per-agent credential, `vga_...`) or a machine with an
//! API key carrying the `ingest` scope (`vgk_...`). Both are presented as
//! `Authorization: Bearer <secret>`; log shippers that only do HTTP basic auth
//! (Promtail's `basic_auth`, Grafana Alloy) may send the API key as the password.
//!
//! Rate limits: each credential has its own bucket (`ingest.rate_limit_per_credential`,
//! [`check_rate`]), so agents behind one NAT address do not share a limit; failed
//! authentications are limited per client IP, so guessing credentials stays slow.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use uuid::Uuid;
use vigil_core::{Agent, ApiKey, ApiScope};

use crate::auth::token_hash;
use crate::error::ApiError;
use crate::state::AppState;

/// Prefix of agent credentials.
pub const AGENT_PREFIX: &str = "vga_";
/// Prefix of API keys.
pub const API_KEY_PREFIX: &str = "vgk_";
/// Prefix of enrollment tokens.
pub const ENROLLMENT_PREFIX: &str = "vge_";

/// An authenticated sender of events.
#[derive(Debug, Clone)]
pub enum IngestCaller {
    Agent(Agent),
    Key(ApiKey),
}

impl IngestCaller {
    pub fn org_id(&self) -> Uuid {
        match self {
            IngestCaller::Agent(a) => a.org_id,
            IngestCaller::Key(k) => k.org_id,
        }
    }

    /// The credential's own id (agent id or API key id): the rate limit's key.
    pub fn credential_id(&self) -> Uuid {
        match self {
            IngestCaller::Agent(a) => a.id,
            IngestCaller::Key(k) => k.id,
        }
    }
}

/// Takes one request from the credential's rate budget; 429 with Retry-After when spent.
pub fn check_rate(state: &AppState, credential: Uuid, route: &'static str) -> Result<(), ApiError> {
    if !state.config.rate_limit.enabled || state.config.ingest.rate_limit_per_credential <= 0.0 {
        return Ok(());
    }
    state.ingest_limiter.check(credential).map_err(|wait| {
        metrics::counter!(crate::metrics::INGEST_RATE_LIMITED, "route" => route).increment(1);
        ApiError::too_many_requests(wait)
    })
}

/// An authenticated agent (heartbeats accept nothing else).
#[derive(Debug, Clone)]
pub struct AgentCaller(pub Agent);

fn reject(e: ApiError) -> Response {
    let mut r = e.into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"vigil-ingest\""),
    );
    r
}

/// The secret in `Authorization`: a bearer token, or a basic-auth password.
fn secret(parts: &Parts) -> Result<String, ApiError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::unauthorized("missing Authorization: Bearer <agent credential or API key>")
        })?;
    if let Some(t) = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
    {
        return Ok(t.trim().to_owned());
    }
    if let Some(b) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .ok_or_else(|| {
                ApiError::unauthorized("Authorization: Basic is not valid base64 'user:password'")
            })?;
        let (_, password) = decoded.split_once(':').unwrap_or(("", &decoded));
        return Ok(password.to_owned());
    }
    Err(ApiError::unauthorized(
        "Authorization must be 'Bearer <secret>' or 'Basic ...'",
    ))
}

fn invalid() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_credential",
        "unknown or revoked credential",
    )
}

/// Authenticates, counting failures against the client IP's bucket: a token is taken
/// before the lookup and given back when the credential was good.
async fn caller(parts: &Parts, state: &AppState) -> Result<IngestCaller, ApiError> {
    let ip = state
        .config
        .rate_limit
        .enabled
        .then(|| crate::middleware::client_ip(state, &parts.headers, &parts.extensions))
        .flatten();
    if let Some(ip) = ip
        && let Err(wait) = state.ingest_auth_limiter.check(ip)
    {
        tracing::warn!(client = %ip, "ingest authentication rate limit hit");
        return Err(ApiError::too_many_requests(wait));
    }
    let result = lookup(parts, state).await;
    let failed = matches!(&result, Err(e) if matches!(e.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN));
    if let Some(ip) = ip
        && !failed
    {
        state.ingest_auth_limiter.refund(ip);
    }
    result
}

async fn lookup(parts: &Parts, state: &AppState) -> Result<IngestCaller, ApiError> {
    let secret = secret(parts)?;
    let hash = token_hash(&secret);
    if secret.starts_with(AGENT_PREFIX) {
        let agent = state
            .store
            .agent_by_credential(&hash)
            .await?
            .ok_or_else(invalid)?;
        return Ok(IngestCaller::Agent(agent));
    }
    if secret.starts_with(API_KEY_PREFIX) {
        let key = state
            .store
            .api_key_by_hash(&hash)
            .await?
            .ok_or_else(invalid)?;
        if !key.scopes.contains(&ApiScope::Ingest) {
            return Err(ApiError::forbidden("this API key has no ingest scope"));
        }
        return Ok(IngestCaller::Key(key));
    }
    Err(invalid())
}

impl FromRequestParts<AppState> for IngestCaller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        caller(parts, state).await.map_err(reject)
    }
}

impl FromRequestParts<AppState> for AgentCaller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match caller(parts, state).await.map_err(reject)? {
            IngestCaller::Agent(a) => Ok(AgentCaller(a)),
            IngestCaller::Key(_) => Err(reject(ApiError::forbidden("only agents send heartbeats"))),
        }
    }
}

/// A new secret with a prefix: 32 random bytes, URL-safe base64.
pub fn new_secret(prefix: &str) -> String {
    format!("{prefix}{}", crate::auth::random_token())
}
