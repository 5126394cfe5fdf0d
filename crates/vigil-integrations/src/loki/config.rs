use std::time::Duration;

/// How to reach Loki.
#[derive(Debug, Clone)]
pub struct LokiConfig {
    /// Base URL, e.g. `http://127.0.0.1:3100` (`LOKI_API_URL`).
    pub url: String,
    /// Tenant sent as `X-Scope-OrgID` (multi-tenant Loki); none when empty.
    pub tenant: String,
    /// Per-request timeout (`LOKI_TIMEOUT`).
    pub timeout: Duration,
    /// Ranges longer than this are queried in pieces of this length.
    pub split_interval: Duration,
    /// `limit` per request (Loki's default `max_entries_limit_per_query` is 5000).
    pub limit_per_query: u32,
    /// Largest response accepted, bytes.
    pub max_response_bytes: usize,
}

impl LokiConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            tenant: String::new(),
            timeout: Duration::from_secs(30),
            split_interval: Duration::from_secs(3600),
            limit_per_query: 1000,
            max_response_bytes: 32 << 20,
        }
    }
}
