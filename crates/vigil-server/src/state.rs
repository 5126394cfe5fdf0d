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
    pub jwt: JwtKeys,
    pub metrics: PrometheusHandle,
    pub api_limiter: RateLimiter,
    pub login_limiter: RateLimiter,
    pub sessions: SessionCache,
}

/// Remembers for a moment that a session was active, so a burst of requests with one token
/// costs one database lookup. Anything that ends sessions in this process clears it; other
/// processes (replicas, the CLI) are seen within the TTL.
pub struct SessionCache {
    ttl: std::time::Duration,
    active_until: std::sync::Mutex<std::collections::HashMap<uuid::Uuid, std::time::Instant>>,
}

impl SessionCache {
    pub fn new(ttl: std::time::Duration) -> Self {
        Self {
            ttl,
            active_until: Default::default(),
        }
    }

    pub fn is_known_active(&self, sid: uuid::Uuid) -> bool {
        let map = self.active_until.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&sid)
            .is_some_and(|t| *t > std::time::Instant::now())
    }

    pub fn remember_active(&self, sid: uuid::Uuid) {
        if self.ttl.is_zero() {
            return;
        }
        let now = std::time::Instant::now();
        let mut map = self.active_until.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, t| *t > now);
        }
        map.insert(sid, now + self.ttl);
    }

    /// Forgets everything; called whenever sessions may have ended.
    pub fn clear(&self) {
        self.active_until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
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
