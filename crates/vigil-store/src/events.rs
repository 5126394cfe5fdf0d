//! Recent normalized events, kept for investigation. Behind its own trait so events can
//! live elsewhere (Grafana Loki) when one database is no longer enough; the SQL
//! implementation is in `common_events.rs`, compiled for each backend.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::{Detection, DetectionOutcome, Result};

/// Most characters of `host` and `dataset` stored (both are in the listing index's key,
/// whose entries PostgreSQL limits to ~2.7 kB); longer values are cut.
pub const MAX_KEY_CHARS: usize = 256;

/// An event to store.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub timestamp: DateTime<Utc>,
    pub host: Option<String>,
    pub dataset: Option<String>,
    pub message: Option<String>,
    /// The whole normalized event as compact JSON text. Serialised once by the producer
    /// (the ingest pipeline does it off the writer's path); stored as given.
    pub doc: String,
}

impl NewEvent {
    /// An event whose document is `doc` serialised.
    pub fn with_doc(
        timestamp: DateTime<Utc>,
        host: Option<String>,
        dataset: Option<String>,
        message: Option<String>,
        doc: &serde_json::Value,
    ) -> Self {
        // Straight into a byte buffer: `to_string` goes through `fmt::Write`, a call per
        // piece of text.
        let mut text = Vec::with_capacity(512);
        serde_json::to_writer(&mut text, doc).expect("a JSON value serialises");
        Self {
            timestamp,
            host,
            dataset,
            message,
            doc: String::from_utf8(text).expect("serde_json writes UTF-8"),
        }
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StoredEvent {
    pub id: Uuid,
    pub timestamp: DateTime<Utc>,
    pub ingested_at: DateTime<Utc>,
    pub host: Option<String>,
    pub dataset: Option<String>,
    /// How it arrived: `agent`, `api`, `loki`, `syslog`, `local`.
    pub channel: String,
    pub message: Option<String>,
    #[schema(value_type = Object)]
    pub doc: serde_json::Value,
}

/// Which events to list: newest first, `limit` at a time.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub host: Option<String>,
    pub dataset: Option<String>,
    /// Case-insensitive substring of the message.
    pub text: Option<String>,
    /// Exact matches on fields of the event (dotted paths), all of which must hold.
    pub fields: Vec<(String, String)>,
    pub limit: u64,
    /// Continue after this position (from the previous page's `next_cursor`).
    pub cursor: Option<String>,
}

/// One page of events.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventPage {
    pub items: Vec<StoredEvent>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Result of appending a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    pub stored: usize,
    /// The batch id had been stored before; nothing was written.
    pub duplicate: bool,
}

/// Where events are kept.
#[async_trait::async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Stores events; with a batch id, atomically with the id, and not at all when the id
    /// was stored before.
    async fn append_events(
        &self,
        org: Uuid,
        batch: Option<Uuid>,
        channel: &str,
        events: Vec<NewEvent>,
        now: DateTime<Utc>,
    ) -> Result<AppendOutcome>;
    /// Stores a batch whole, in one transaction: its id marker, its events and its
    /// detections (raised as new alerts or folded into open ones within `dedup_window`, as
    /// [`crate::Store::record_detections`] does). Either all of it is stored or nothing is,
    /// so a batch is acknowledged only with its alerts, and a failed one can be resent. A
    /// duplicate batch id stores nothing and raises nothing (the first copy did).
    #[allow(clippy::too_many_arguments)] // one batch's parts; a struct would only repack them
    async fn append_batch(
        &self,
        org: Uuid,
        batch: Option<Uuid>,
        channel: &str,
        events: Vec<NewEvent>,
        detections: Vec<Detection>,
        dedup_window: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<(AppendOutcome, Vec<DetectionOutcome>)>;
    /// How many events of `org` are stored.
    async fn count_events(&self, org: Uuid) -> Result<u64>;
    /// Whether a batch id has been stored (a cheap check before doing work).
    async fn batch_seen(&self, org: Uuid, batch: Uuid) -> Result<bool>;
    async fn query_events(&self, org: Uuid, filter: &EventFilter) -> Result<EventPage>;
    /// Deletes events whose time is before `before` and that were received before it (an
    /// old event replayed today is kept for the retention period), and batch ids received
    /// before it; returns the events deleted.
    async fn purge_events(&self, before: DateTime<Utc>) -> Result<u64>;
}

/// Field paths in filters: letters, digits, `_`, `-`, `@`, dots between parts.
pub fn valid_field_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 128
        && path.split('.').all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'@'))
        })
}
