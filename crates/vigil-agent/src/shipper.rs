//! Batching, sending, retrying and buffering.
//!
//! One task owns the in-memory batch, the [`DiskBuffer`] and the retry state, so there is no
//! locking and batches leave in order. A batch is sent directly when nothing older waits;
//! otherwise (or when the send fails) it goes to the disk buffer, which is replayed oldest
//! first once the server answers again. A batch is acknowledged to its sources ([`Ack`])
//! as soon as it is durable: accepted (2xx) or fsynced into the buffer. Retries keep the
//! batch id, so the server stores a batch once however often it arrives.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use rand::Rng;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use uuid::Uuid;

use crate::buffer::DiskBuffer;
use crate::config::ShipperConfig;
use crate::source::{Ack, Record};
use crate::transport::{EncodedBatch, SendOutcome, Transport};

/// Counters shared between the shipper and whoever watches the agent.
#[derive(Debug, Default)]
pub struct Stats {
    pub events_accepted: AtomicU64,
    pub batches_accepted: AtomicU64,
    pub duplicate_receipts: AtomicU64,
    pub batches_buffered: AtomicU64,
    pub batches_rejected: AtomicU64,
    pub events_dropped: AtomicU64,
    pub buffer_dropped_batches: AtomicU64,
    pub buffer_batches: AtomicU64,
    pub buffer_bytes: AtomicU64,
    pub send_failures: AtomicU64,
    pub events_truncated: AtomicU64,
    pub auth_failed: AtomicBool,
}

/// A copy of [`Stats`] at one moment (also sent in heartbeats as `agent.*`).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub events_accepted: u64,
    pub batches_accepted: u64,
    pub duplicate_receipts: u64,
    pub batches_buffered: u64,
    pub batches_rejected: u64,
    pub events_dropped: u64,
    pub buffer_dropped_batches: u64,
    pub buffer_batches: u64,
    pub buffer_bytes: u64,
    pub send_failures: u64,
    pub events_truncated: u64,
    pub auth_failed: bool,
}

impl Stats {
    /// The current values.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            events_accepted: self.events_accepted.load(Relaxed),
            batches_accepted: self.batches_accepted.load(Relaxed),
            duplicate_receipts: self.duplicate_receipts.load(Relaxed),
            batches_buffered: self.batches_buffered.load(Relaxed),
            batches_rejected: self.batches_rejected.load(Relaxed),
            events_dropped: self.events_dropped.load(Relaxed),
            buffer_dropped_batches: self.buffer_dropped_batches.load(Relaxed),
            buffer_batches: self.buffer_batches.load(Relaxed),
            buffer_bytes: self.buffer_bytes.load(Relaxed),
            send_failures: self.send_failures.load(Relaxed),
            events_truncated: self.events_truncated.load(Relaxed),
            auth_failed: self.auth_failed.load(Relaxed),
        }
    }
}

/// A batch id derived from its parent's, so splitting the same batch again (after a crash)
/// yields the same ids and the server still deduplicates.
fn child_id(parent: Uuid, half: u8) -> Uuid {
    let salt = 0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C834u128.wrapping_mul(half as u128 + 1);
    let x = parent.as_u128().rotate_left(17 + half as u32) ^ salt;
    uuid::Builder::from_random_bytes(x.to_le_bytes()).into_uuid()
}

/// The shipping task. Build with [`Shipper::new`], then [`Shipper::run`].
pub struct Shipper {
    transport: Arc<dyn Transport>,
    buffer: DiskBuffer,
    cfg: ShipperConfig,
    stats: Arc<Stats>,
    pending: Vec<Vec<u8>>,
    pending_bytes: usize,
    pending_acks: Vec<Ack>,
    first_at: Option<Instant>,
    backoff_until: Option<Instant>,
    attempt: u32,
}

impl Shipper {
    /// A shipper over `transport` with its disk buffer.
    pub fn new(
        transport: Arc<dyn Transport>,
        buffer: DiskBuffer,
        cfg: ShipperConfig,
        stats: Arc<Stats>,
    ) -> Self {
        let s = Shipper {
            transport,
            buffer,
            cfg,
            stats,
            pending: Vec::new(),
            pending_bytes: 0,
            pending_acks: Vec::new(),
            first_at: None,
            backoff_until: None,
            attempt: 0,
        };
        s.update_buffer_stats();
        if !s.buffer.is_empty() {
            tracing::info!(
                batches = s.buffer.len(),
                bytes = s.buffer.live_bytes(),
                "replaying the disk buffer first"
            );
        }
        s
    }

    fn auth_failed(&self) -> bool {
        self.stats.auth_failed.load(Relaxed)
    }

    fn update_buffer_stats(&self) {
        self.stats
            .buffer_batches
            .store(self.buffer.len() as u64, Relaxed);
        self.stats
            .buffer_bytes
            .store(self.buffer.live_bytes(), Relaxed);
        self.stats
            .buffer_dropped_batches
            .store(self.buffer.dropped_batches(), Relaxed);
    }

    /// Runs until every sender of `rx` is gone (the sources stopped), then flushes what it
    /// holds to the server or the disk buffer.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Record>) {
        let flush_every = Duration::from_millis(self.cfg.flush_interval_ms);
        let far = Duration::from_secs(86_400 * 365);
        loop {
            let now = Instant::now();
            let flush_at = self.first_at.map_or(now + far, |t| t + flush_every);
            let can_drain = !self.buffer.is_empty() && !self.auth_failed();
            let drain_at = if can_drain {
                self.backoff_until.unwrap_or(now)
            } else {
                now + far
            };
            tokio::select! {
                biased;
                _ = tokio::time::sleep_until(flush_at), if self.first_at.is_some() => {
                    self.flush().await;
                }
                _ = tokio::time::sleep_until(drain_at), if can_drain => self.drain().await,
                rec = rx.recv() => match rec {
                    Some(rec) => self.push(rec).await,
                    None => break,
                },
            }
        }
        self.flush().await;
        self.update_buffer_stats();
        tracing::info!(
            buffered_batches = self.buffer.len(),
            "shipper stopped; unsent batches stay in the disk buffer"
        );
    }

    async fn push(&mut self, rec: Record) {
        let bytes = match serde_json::to_vec(&rec.event) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "event cannot be serialized; dropped");
                self.stats.events_dropped.fetch_add(1, Relaxed);
                return;
            }
        };
        if !self.pending.is_empty() && self.pending_bytes + bytes.len() > self.cfg.batch_max_bytes {
            self.flush().await;
        }
        self.pending_bytes += bytes.len() + 1;
        self.pending.push(bytes);
        if let Some(ack) = rec.ack {
            self.pending_acks.push(ack);
        }
        self.first_at.get_or_insert_with(Instant::now);
        if self.pending.len() >= self.cfg.batch_max_events {
            self.flush().await;
        }
    }

    async fn flush(&mut self) {
        self.first_at = None;
        if self.pending.is_empty() {
            return;
        }
        let events = std::mem::take(&mut self.pending);
        let acks = std::mem::take(&mut self.pending_acks);
        self.pending_bytes = 0;
        let durable = self.deliver(Uuid::now_v7(), events).await;
        if durable {
            commit(&acks);
        }
        self.update_buffer_stats();
    }

    fn backing_off(&self) -> bool {
        self.backoff_until.is_some_and(|t| Instant::now() < t)
    }

    /// Sends or buffers one new batch; true once it is durable (or deliberately dropped).
    async fn deliver(&mut self, id: Uuid, events: Vec<Vec<u8>>) -> bool {
        let batch = match EncodedBatch::encode(id, &events) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode batch; dropped");
                self.stats
                    .events_dropped
                    .fetch_add(events.len() as u64, Relaxed);
                return true;
            }
        };
        if self.auth_failed() || !self.buffer.is_empty() || self.backing_off() {
            return self.buffer_batch(&batch);
        }
        match self.transport.send_batch(&batch).await {
            SendOutcome::Accepted(receipt) => {
                self.accepted(&batch, receipt.as_ref());
                true
            }
            SendOutcome::TooLarge if events.len() > 1 => {
                let mut first = events;
                let second = first.split_off(first.len() / 2);
                tracing::info!(batch_id = %id, "server said 413; splitting the batch");
                let a = Box::pin(self.deliver(child_id(id, 0), first)).await;
                let b = Box::pin(self.deliver(child_id(id, 1), second)).await;
                a && b
            }
            SendOutcome::TooLarge => {
                tracing::warn!(batch_id = %id, "a single event is too large for the server; dropped");
                self.stats.events_dropped.fetch_add(1, Relaxed);
                true
            }
            SendOutcome::Rejected { status, message } => {
                self.rejected(id, batch.event_count, status, &message);
                true
            }
            outcome => {
                self.failed(outcome);
                self.buffer_batch(&batch)
            }
        }
    }

    fn buffer_batch(&mut self, batch: &EncodedBatch) -> bool {
        match self.buffer.push(batch) {
            Ok(()) => {
                self.stats.batches_buffered.fetch_add(1, Relaxed);
                true
            }
            Err(e) => {
                tracing::error!(error = %e, batch_id = %batch.batch_id,
                    "cannot write the disk buffer; batch kept only in memory until lost");
                false
            }
        }
    }

    fn accepted(
        &mut self,
        batch: &EncodedBatch,
        receipt: Option<&vigil_core::event::IngestReceipt>,
    ) {
        self.attempt = 0;
        self.backoff_until = None;
        self.stats.batches_accepted.fetch_add(1, Relaxed);
        self.stats
            .events_accepted
            .fetch_add(batch.event_count as u64, Relaxed);
        if let Some(r) = receipt {
            if r.duplicate {
                self.stats.duplicate_receipts.fetch_add(1, Relaxed);
            }
            if r.rejected > 0 {
                tracing::warn!(batch_id = %batch.batch_id, rejected = r.rejected,
                    errors = ?r.errors, "server rejected some events of a batch");
            }
        }
    }

    fn rejected(&self, id: Uuid, count: u32, status: u16, message: &str) {
        self.stats.batches_rejected.fetch_add(1, Relaxed);
        self.stats.events_dropped.fetch_add(count as u64, Relaxed);
        tracing::error!(batch_id = %id, status, message,
            "server refused a batch for good; dropped");
    }

    /// Records a retryable failure or a 401.
    fn failed(&mut self, outcome: SendOutcome) {
        self.stats.send_failures.fetch_add(1, Relaxed);
        match outcome {
            SendOutcome::Unauthorized(message) if !self.stats.auth_failed.swap(true, Relaxed) => {
                tracing::error!(
                    message,
                    "the server rejected this agent's credential (401): sending stopped, \
                     events are kept in the disk buffer; re-enroll by removing \
                     state_dir/credential and setting enrollment_token, then restart"
                );
            }
            SendOutcome::Retry { after, reason } => {
                self.attempt = self.attempt.saturating_add(1);
                let delay = after.unwrap_or_else(|| {
                    let exp = self
                        .cfg
                        .retry_initial_ms
                        .saturating_mul(1u64 << self.attempt.min(30))
                        .min(self.cfg.retry_max_ms);
                    Duration::from_millis(rand::thread_rng().gen_range(0..=exp))
                });
                tracing::warn!(
                    reason,
                    retry_in_ms = delay.as_millis() as u64,
                    attempt = self.attempt,
                    "send failed; buffering and retrying"
                );
                self.backoff_until = Some(Instant::now() + delay);
            }
            _ => {}
        }
    }

    /// Replays the disk buffer, oldest first, until it is empty or a send fails.
    async fn drain(&mut self) {
        for _ in 0..64 {
            if self.auth_failed() || self.backing_off() {
                break;
            }
            let batch = match self.buffer.peek() {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "unreadable disk buffer record; dropped");
                    self.stats.events_dropped.fetch_add(1, Relaxed);
                    self.pop();
                    continue;
                }
            };
            match self.transport.send_batch(&batch).await {
                SendOutcome::Accepted(receipt) => {
                    self.accepted(&batch, receipt.as_ref());
                    self.pop();
                }
                SendOutcome::TooLarge => {
                    self.split_buffered(&batch);
                    self.pop();
                }
                SendOutcome::Rejected { status, message } => {
                    self.rejected(batch.batch_id, batch.event_count, status, &message);
                    self.pop();
                }
                outcome => {
                    self.failed(outcome);
                    break;
                }
            }
        }
        self.update_buffer_stats();
    }

    fn pop(&mut self) {
        if let Err(e) = self.buffer.pop() {
            tracing::error!(error = %e, "cannot advance the disk buffer head");
        }
    }

    /// A buffered batch got 413: its halves go to the back of the buffer.
    fn split_buffered(&mut self, batch: &EncodedBatch) {
        let events: Vec<Vec<u8>> = match batch.decode() {
            Ok(b) => b
                .events
                .iter()
                .filter_map(|e| serde_json::to_vec(e).ok())
                .collect(),
            Err(e) => {
                tracing::error!(error = %e, "cannot decode a buffered batch to split it; dropped");
                Vec::new()
            }
        };
        if events.len() <= 1 {
            tracing::warn!(batch_id = %batch.batch_id, "a single event is too large for the server; dropped");
            self.stats
                .events_dropped
                .fetch_add(batch.event_count as u64, Relaxed);
            return;
        }
        let mut first = events;
        let second = first.split_off(first.len() / 2);
        for (half, events) in [(0u8, first), (1, second)] {
            match EncodedBatch::encode(child_id(batch.batch_id, half), &events) {
                Ok(b) => {
                    self.buffer_batch(&b);
                }
                Err(e) => tracing::error!(error = %e, "cannot encode half of a split batch"),
            }
        }
    }
}

/// Tells each sink the highest durable position per key.
fn commit(acks: &[Ack]) {
    if acks.is_empty() {
        return;
    }
    type PerSink = (Arc<dyn crate::source::AckSink>, HashMap<u64, u64>);
    let mut per_sink: HashMap<*const (), PerSink> = HashMap::new();
    for ack in acks {
        let ptr = Arc::as_ptr(&ack.sink) as *const ();
        let entry = per_sink
            .entry(ptr)
            .or_insert_with(|| (ack.sink.clone(), HashMap::new()));
        let pos = entry.1.entry(ack.key).or_insert(0);
        *pos = (*pos).max(ack.position);
    }
    for (sink, positions) in per_sink.into_values() {
        let list: Vec<(u64, u64)> = positions.into_iter().collect();
        sink.commit(&list);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_ids_are_stable_and_distinct() {
        let p = Uuid::new_v4();
        assert_eq!(child_id(p, 0), child_id(p, 0));
        assert_ne!(child_id(p, 0), child_id(p, 1));
        assert_ne!(child_id(p, 0), p);
    }
}
