//! Shared application state handed to every handler.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use vigil_store::DynStore;

use crate::auth::JwtKeys;
use crate::config::Config;
use crate::middleware::RateLimiter;

/// Cheap to clone; everything lives behind one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub store: DynStore,
    /// Where normalized events are kept (the same database by default).
    pub events: std::sync::Arc<dyn vigil_store::EventStore>,
    /// The ingestion pipeline (detection, storage, alerts).
    pub pipeline: crate::ingest::Pipeline,
    /// Anomaly detection: models, feature windows, scoring.
    pub ml: std::sync::Arc<crate::ml::MlEngine>,
    pub jwt: JwtKeys,
    pub metrics: PrometheusHandle,
    pub api_limiter: RateLimiter,
    pub login_limiter: RateLimiter,
    /// Ingest requests per credential (agent or API key id), `[ingest]` rate.
    pub ingest_limiter: RateLimiter<uuid::Uuid>,
    /// Ingest authentication attempts per client IP: a token is taken before the
    /// credential is looked up and given back when it is valid, so only failures count.
    pub ingest_auth_limiter: RateLimiter,
    pub sessions: SessionCache,
    /// The model and Loki clients (`[ollama]`, `[loki]`); each optional.
    pub ai: crate::ai::Ai,
    /// Outgoing webhooks: endpoints, deliveries, attempts (`[webhooks]`).
    pub webhooks: crate::webhooks::Webhooks,
    /// Encoded live events for the stream clients (`GET /api/v1/stream`).
    pub stream: std::sync::Arc<crate::stream::StreamHub>,
    /// The one shutdown signal of `vigil serve`; long-lived connections (the stream) end
    /// with it.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Background jobs: in-process, or Redis Streams with `[redis] url` (`jobs/`).
    pub jobs: Arc<dyn crate::jobs::JobQueue>,
    /// Dispatched alert events, for live stream clients (`outbox/hub.rs`).
    pub hub: Arc<crate::outbox::LiveHub>,
}

/// Remembers for a moment that a session was active, so a burst of requests with one token
/// costs one database lookup. Anything that ends sessions in this process clears it; other
/// processes (replicas, the CLI) are seen within the TTL.
pub struct SessionCache {
    ttl: std::time::Duration,
    inner: std::sync::Mutex<SessionCacheInner>,
    /// The generation, published on every `clear`, so long-lived connections (the live
    /// stream) re-check their session at once instead of at their next interval.
    cleared: tokio::sync::watch::Sender<u64>,
}

#[derive(Default)]
struct SessionCacheInner {
    /// Bumped by every `clear`, so a check that started before a revocation cannot put the
    /// revoked session back.
    generation: u64,
    active_until: std::collections::HashMap<uuid::Uuid, std::time::Instant>,
}

impl SessionCache {
    pub fn new(ttl: std::time::Duration) -> Self {
        Self {
            ttl,
            inner: Default::default(),
            cleared: tokio::sync::watch::Sender::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SessionCacheInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the session was seen active within the TTL. Hits never extend the entry:
    /// a session ended elsewhere is noticed at most `ttl` after its last database check.
    pub fn is_known_active(&self, sid: uuid::Uuid) -> bool {
        self.lock()
            .active_until
            .get(&sid)
            .is_some_and(|t| *t > std::time::Instant::now())
    }

    /// The generation to pass to [`SessionCache::remember_active`]; take it before the
    /// database check.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Records a database check that found the session active, unless the cache was
    /// cleared since `generation` was read.
    pub fn remember_active(&self, sid: uuid::Uuid, generation: u64) {
        if self.ttl.is_zero() {
            return;
        }
        let now = std::time::Instant::now();
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if inner.active_until.len() > 100_000 {
            inner.active_until.retain(|_, t| *t > now);
        }
        inner.active_until.insert(sid, now + self.ttl);
    }

    /// Forgets everything; called whenever sessions may have ended.
    pub fn clear(&self) {
        let generation = {
            let mut inner = self.lock();
            inner.generation += 1;
            inner.active_until.clear();
            inner.generation
        };
        self.cleared.send_replace(generation);
    }

    /// Changes whenever sessions may have ended in this process (see [`SessionCache::clear`]).
    pub fn watch_cleared(&self) -> tokio::sync::watch::Receiver<u64> {
        self.cleared.subscribe()
    }
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_racing_a_clear_is_not_cached() {
        let c = SessionCache::new(std::time::Duration::from_secs(60));
        let sid = uuid::Uuid::new_v4();
        let g = c.generation();
        c.clear(); // a logout lands while the database check runs
        c.remember_active(sid, g);
        assert!(!c.is_known_active(sid));
        c.remember_active(sid, c.generation());
        assert!(c.is_known_active(sid));
    }
}
