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
