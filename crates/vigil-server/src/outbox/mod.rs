//! Alert events leaving Vigil: the transactional outbox's dispatcher and the in-process hub.
//!
//! ```text
//! alert change (store transaction) ──same tx──► outbox row (seq, event id)
//!        │ COMMIT wakes the store's notifier
//!        ▼
//! OutboxDispatcher (dispatcher.rs): claim undispatched rows with a lease
//!        ├─► Fanout::publish ── LocalFanout: LiveHub (hub.rs) ─► stream clients
//!        │                      (Redis fanout: every replica's LiveHub)
//!        ├─► each OutboxSink::accept (webhook deliveries, ...; idempotent)
//!        └─► mark dispatched; pruned after `outbox.retention_hours`
//! ```
//!
//! Nothing is lost between a commit and its delivery: an event is a row written with the
//! change, and a row stays undispatched until every target took it. A failed round is
//! retried; after a crash the lease (`outbox.lease_secs`) runs out and the rows are claimed
//! again, by this process after a restart or by another replica. Delivery is therefore at
//! least once, with the same event id each time. See `vigil_store::outbox` for the storage
//! side and for what `seq` promises on PostgreSQL.

mod dispatcher;
mod hub;
pub mod redis;

pub use dispatcher::OutboxDispatcher;
pub use hub::{Fanout, LiveHub, LocalFanout, OutboxSink};
pub use redis::{RedisFanout, RedisSubscriber};

use serde::{Deserialize, Serialize};

/// Events the in-process hub holds for a slow subscriber before it lags.
pub const HUB_CAPACITY: usize = 4096;

/// The outbox dispatcher (`[outbox]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// Milliseconds between looks for events other processes wrote (this process's own
    /// commits wake the dispatcher at once).
    pub poll_ms: u64,
    /// Most events one dispatch round claims.
    pub batch: u32,
    /// Seconds a claimed batch stays reserved for its dispatcher; after a crash another
    /// dispatcher (or this one restarted) takes the rows over once it runs out.
    pub lease_secs: u64,
    /// Hours dispatched events are kept (stream clients resume from them), then pruned.
    pub retention_hours: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            poll_ms: 200,
            batch: 500,
            lease_secs: 30,
            retention_hours: 72,
        }
    }
}

impl OutboxConfig {
    /// Refuses values the dispatcher cannot work with.
    pub fn validate(&self) -> Result<(), String> {
        if self.poll_ms == 0 || self.batch == 0 || self.lease_secs == 0 || self.retention_hours == 0
        {
            return Err("outbox.poll_ms, batch, lease_secs and retention_hours must be > 0".into());
        }
        Ok(())
    }
}
