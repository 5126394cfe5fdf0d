//! The transactional outbox: every alert change others must hear about (created, folded,
//! status / severity / assignee changed, triaged, closed) writes one [`AlertEvent`] row in the
//! same transaction as the change, so an event exists exactly when its change was committed.
//! The server's dispatcher claims undispatched rows, hands them to the sinks and marks them
//! dispatched; a crash between commit and delivery loses nothing (the rows stay undispatched
//! and are claimed again once their lease runs out). Delivery is at least once; the event id
//! is stable so receivers deduplicate. The SQL is `common_outbox.rs`, compiled per backend.
//!
//! `seq` is a resume cursor, not a total order of commits on PostgreSQL: a `bigserial` value
//! is taken when the row is inserted, and two concurrent transactions may commit in the
//! opposite order (seq 8 visible before seq 7). Dispatch does not depend on it — it claims by
//! `dispatched_at IS NULL`, so a row committed late is still dispatched — but a stream client
//! resuming `after` a cursor could miss a row that committed after a higher one was read. The
//! window is one in-flight transaction; the changes of one alert are ordered (its row lock
//! serialises them). On SQLite (one writer) `seq` follows commit order exactly.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use uuid::Uuid;
use vigil_core::AlertEvent;

use crate::Result;

/// Where alert events wait for dispatch and stream clients resume from.
#[async_trait::async_trait]
pub trait OutboxStore: Send + Sync + 'static {
    /// Claims up to `limit` undispatched events (oldest first) for `lease`; rows claimed by
    /// another owner whose lease is live are skipped (PostgreSQL: `FOR UPDATE SKIP LOCKED`),
    /// rows `owner` claimed before are claimed again (a failed round is retried at once).
    async fn claim(&self, owner: &str, limit: u32, lease: Duration) -> Result<Vec<AlertEvent>>;
    /// Marks events dispatched (every sink accepted them); they are pruned later.
    async fn mark_dispatched(&self, seqs: &[i64]) -> Result<()>;
    /// Events of `org` with `seq > after`, oldest first, at most `limit` (stream resume).
    async fn after(&self, org: Uuid, after: i64, limit: u32) -> Result<Vec<AlertEvent>>;
    /// The highest `seq` of `org` (0 when none).
    async fn latest_seq(&self, org: Uuid) -> Result<i64>;
    /// Undispatched rows, all organizations.
    async fn pending(&self) -> Result<u64>;
    /// Deletes rows dispatched before `dispatched_before`; returns how many.
    async fn prune(&self, dispatched_before: DateTime<Utc>) -> Result<u64>;
    /// Woken (`notify_one`) after every commit that wrote outbox rows through this store in
    /// this process; other processes' rows are found by polling.
    fn notifier(&self) -> Arc<Notify>;
}
