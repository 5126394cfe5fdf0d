//! Cross-cutting request handling: per-IP rate limits, timeouts, security headers, request
//! metrics.
//!
//! Ingest routes (event batches, Loki pushes, heartbeats) are not under the per-IP limit:
//! many agents share one address behind NAT. They are limited per credential instead
//! (`api::ingest::authenticate`), and their failed authentications per IP.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

/// Token buckets keyed by client IP (or by credential id for ingest).
pub struct RateLimiter<K = IpAddr> {
    rate_per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Above this many tracked clients, idle (full) buckets are forgotten.
const MAX_TRACKED: usize = 50_000;

impl<K: Hash + Eq + Copy> RateLimiter<K> {
    pub fn new(rate_per_sec: f64, burst: u32) -> Self {
        Self {
            rate_per_sec,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `ip`; `Err(seconds)` says when the next one will be available.
    pub fn check(&self, ip: K) -> Result<(), u64> {
        let now = Instant::now();
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > MAX_TRACKED {
            let (rate, burst) = (self.rate_per_sec, self.burst);
            map.retain(|_, b| b.tokens + now.duration_since(b.last).as_secs_f64() * rate < burst);
        }
        let b = map.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        let elapsed = now.duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate_per_sec).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - b.tokens) / self.rate_per_sec;
            Err(wait.ceil().max(1.0) as u64)
        }
    }

    /// Gives back a token taken by [`RateLimiter::check`] (the attempt did not count).
    pub fn refund(&self, key: K) {
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = map.get_mut(&key) {
            b.tokens = (b.tokens + 1.0).min(self.burst);
        }
    }
}

/// The client address: the socket peer, or, behind a trusted reverse proxy, the last
/// `X-Forwarded-For` hop — the address that proxy saw. Earlier hops are whatever the client
/// chose to send and cannot be trusted (rotating them would evade the rate limits).
pub fn client_ip(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    extensions: &axum::http::Extensions,
) -> Option<IpAddr> {
    if state.config.server.trust_forwarded_for
        && let Some(ip) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok())
    {
        return Some(ip);
    }
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Routes agents and log shippers send to: limited per credential, not per IP.
pub fn is_ingest(path: &str) -> bool {
    matches!(
        path,
        "/api/v1/ingest/events" | "/api/v1/agents/heartbeat" | "/loki/api/v1/push"
    )
}

/// Reads what is left of a request body and throws it away (at most `max` bytes, for at
/// most a few seconds), so that answering early — a 429, a 503 — leaves the keep-alive
/// connection usable. hyper closes a connection whose request body was not read to its
/// end, and a client still writing that body sees the connection reset.
pub async fn drain(mut body: axum::body::Body, max: usize) {
    use axum::body::HttpBody;
    let read = async {
        let mut seen = 0usize;
        while let Some(frame) =
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
        {
            let Ok(frame) = frame else { return };
            if let Some(data) = frame.data_ref() {
                seen += data.len();
                if seen > max {
                    return;
                }
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), read).await;
}

/// A 429 for this request, after its body was drained.
async fn refuse(req: Request, wait: u64) -> Response {
    drain(req.into_body(), crate::api::ingest::MAX_BODY).await;
    ApiError::too_many_requests(wait).into_response()
}

/// Paths whose requests count against the stricter login limit.
fn is_login(path: &str) -> bool {
    matches!(path, "/api/v1/auth/login" | "/api/v1/auth/refresh")
}

pub async fn rate_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if state.config.rate_limit.enabled
        && let Some(ip) = client_ip(&state, req.headers(), req.extensions())
    {
        let path = req.uri().path();
        if path.starts_with("/api/") && !is_ingest(path) {
            if let Err(wait) = state.api_limiter.check(ip) {
                return refuse(req, wait).await;
            }
            if is_login(path)
                && let Err(wait) = state.login_limiter.check(ip)
            {
                tracing::warn!(client = %ip, "login rate limit hit");
                return refuse(req, wait).await;
            }
        }
    }
    next.run(req).await
}

/// Answers 503 (JSON) when a request runs longer than the configured timeout.
pub async fn timeout(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit = Duration::from_secs(state.config.server.request_timeout_secs.max(1));
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the request took too long",
        )
        .into_response(),
    }
}

const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
const DOCS_CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'";

/// Security headers on every response.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let docs = req.uri().path().starts_with("/api/v1/docs");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(
        h,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        if docs { DOCS_CSP } else { API_CSP },
    );
    if !docs {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    resp
}

/// Records `api_request_duration_seconds{method, route, status}`.
pub async fn track_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::histogram!(
        crate::metrics::API_REQUEST_DURATION,
        "method" => method,
        "route" => route,
        "status" => status
    )
    .record(start.elapsed().as_secs_f64());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_refuses_with_wait() {
        let l: RateLimiter = RateLimiter::new(1.0 / 60.0, 3);
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        for _ in 0..3 {
            assert!(l.check(ip).is_ok());
        }
        let wait = l.check(ip).unwrap_err();
        assert!((50..=60).contains(&wait), "{wait}");
        // Another client is unaffected.
        assert!(l.check("127.0.0.10".parse().unwrap()).is_ok());
        // A refunded token can be taken again, once.
        l.refund(ip);
        assert!(l.check(ip).is_ok());
        assert!(l.check(ip).is_err());
    }
}
