//! Settings of [`super::LlmService`], whichever provider it uses.

use std::time::Duration;

/// Limits, retries and caching around a provider.
#[derive(Debug, Clone)]
pub struct LlmSettings {
    /// Requests to the model at the same time; more wait for a slot.
    pub max_concurrency: usize,
    /// Extra attempts after a retryable failure (timeouts, 429, 5xx, broken streams).
    pub retries: u32,
    /// First backoff; doubled per attempt, with jitter, up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// How long an analysis of the same content is reused. Zero: no cache.
    pub cache_ttl: Duration,
    /// Most cached analyses.
    pub cache_capacity: usize,
}

impl Default for LlmSettings {
    fn default() -> Self {
        Self {
            max_concurrency: 2,
            retries: 2,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            cache_ttl: Duration::from_secs(600),
            cache_capacity: 1024,
        }
    }
}
