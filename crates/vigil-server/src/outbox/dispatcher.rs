//! The loop that moves committed outbox rows to the fanout and the sinks.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use vigil_core::AlertEvent;
use vigil_store::OutboxStore;

use super::{Fanout, OutboxConfig, OutboxSink};

/// Longest wait after a failed round before the next try.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the `outbox_pending` gauge is refreshed at most (it is a COUNT).
const GAUGE_EVERY: Duration = Duration::from_secs(1);
/// Rounds start at most this often while commits keep waking the dispatcher: under load
/// each round then carries many events, and on SQLite the claim and the mark (two writes)
/// take the one writer from alert creation less often. Adds at most this much latency, and
/// none to an event that follows a quiet spell.
const MIN_ROUND_GAP: Duration = Duration::from_millis(20);
/// How often dispatched rows older than `outbox.retention_hours` are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Claims undispatched events (with a lease, so several dispatchers on one PostgreSQL
/// database never hold the same row at once), publishes them to the [`Fanout`], hands them
/// to every [`OutboxSink`] and marks them dispatched. Woken by the store's notifier after
/// every local commit that wrote events, and every `outbox.poll_ms` for other processes'.
///
/// A failure (fanout or any sink) leaves the batch undispatched: the next round claims it
/// again and gives it to each target that has not accepted it yet in this process (a target
/// that failed gets the same events, same ids, again). After a crash the lease runs out and
/// any dispatcher takes the rows over: delivery is at least once.
pub struct OutboxDispatcher {
    store: Arc<dyn OutboxStore>,
    fanout: Arc<dyn Fanout>,
    sinks: Vec<Arc<dyn OutboxSink>>,
    config: OutboxConfig,
    owner: String,
    /// Per target (fanout, then each sink by index): claimed events it already accepted,
    /// so a retried batch is not published twice to targets that took it.
    accepted: HashMap<usize, HashSet<i64>>,
}

/// The fanout's key in [`OutboxDispatcher::accepted`] (sinks use their index).
const FANOUT: usize = usize::MAX;

impl OutboxDispatcher {
    pub fn new(
        store: Arc<dyn OutboxStore>,
        fanout: Arc<dyn Fanout>,
        sinks: Vec<Arc<dyn OutboxSink>>,
        config: OutboxConfig,
    ) -> Self {
        Self {
            store,
            fanout,
            sinks,
            config,
            owner: format!("{}-{}", std::process::id(), uuid::Uuid::now_v7()),
            accepted: HashMap::new(),
        }
    }

    /// The lease owner this dispatcher claims rows as.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// One round: claims a batch and dispatches it. Returns how many events were marked
    /// dispatched (0 when there was nothing to do); an error leaves the batch for the next
    /// round.
    pub async fn dispatch_once(&mut self) -> anyhow::Result<usize> {
        let lease = Duration::from_secs(self.config.lease_secs.max(1));
        let events = self
            .store
            .claim(&self.owner, self.config.batch.max(1), lease)
            .await?;
        let claimed: HashSet<i64> = events.iter().map(|e| e.seq).collect();
        // Forget rows no longer ours (dispatched, or taken over after a lapsed lease).
        for done in self.accepted.values_mut() {
            done.retain(|s| claimed.contains(s));
        }
        if events.is_empty() {
            return Ok(0);
        }
        let mut failed = None;
        let todo = not_accepted(self.accepted.entry(FANOUT).or_default(), &events);
        if !todo.is_empty() {
            match self.fanout.publish(&todo).await {
                Ok(()) => accept(self.accepted.entry(FANOUT).or_default(), &todo),
                Err(e) => {
                    tracing::warn!(error = %e, events = todo.len(), "outbox fanout failed; retrying next round");
                    failed = Some(e);
                }
            }
        }
        for (i, sink) in self.sinks.iter().enumerate() {
            let done = self.accepted.entry(i).or_default();
            let todo = not_accepted(done, &events);
            if todo.is_empty() {
                continue;
            }
            match sink.accept(&todo).await {
                Ok(()) => accept(done, &todo),
                Err(e) => {
                    tracing::warn!(error = %e, sink = sink.name(), events = todo.len(), "outbox sink failed; retrying next round");
                    failed = Some(e);
                }
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
        self.store.mark_dispatched(&seqs).await?;
        for done in self.accepted.values_mut() {
            done.clear();
        }
        Ok(seqs.len())
    }

    /// Runs until `shutdown`: a round whenever woken or polled, more at once while full
    /// batches keep coming, backing off after failures; prunes hourly. On shutdown it ends
    /// with one last round, so what was committed before the stop goes out now rather than
    /// at the next start.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let notify = self.store.notifier();
        let poll = Duration::from_millis(self.config.poll_ms.max(1));
        let mut backoff = Duration::ZERO;
        let mut gauge_at: Option<Instant> = None;
        let mut prune_at = Instant::now();
        loop {
            let round_at = Instant::now();
            match self.dispatch_once().await {
                Ok(n) => {
                    backoff = Duration::ZERO;
                    if n >= self.config.batch.max(1) as usize && !shutdown.is_cancelled() {
                        continue;
                    }
                }
                Err(e) => {
                    backoff = (backoff * 2).clamp(poll, MAX_BACKOFF);
                    tracing::debug!(error = %e, backoff_ms = backoff.as_millis() as u64, "outbox round failed");
                }
            }
            if gauge_at.is_none_or(|t| t.elapsed() >= GAUGE_EVERY) {
                gauge_at = Some(Instant::now());
                match self.store.pending().await {
                    Ok(n) => metrics::gauge!(crate::metrics::OUTBOX_PENDING).set(n as f64),
                    Err(e) => tracing::warn!(error = %e, "outbox pending count failed"),
                }
            }
            if prune_at.elapsed() >= PRUNE_EVERY {
                prune_at = Instant::now();
                self.prune().await;
            }
            if shutdown.is_cancelled() {
                return;
            }
            if backoff.is_zero() {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = notify.notified() => {}
                    _ = tokio::time::sleep(poll) => {}
                }
                if let Some(rest) = MIN_ROUND_GAP.checked_sub(round_at.elapsed()) {
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = tokio::time::sleep(rest) => {}
                    }
                }
            } else {
                // Failing: new commits do not shorten the wait.
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(backoff) => {}
                }
            }
        }
    }

    /// Deletes dispatched rows older than `outbox.retention_hours`.
    async fn prune(&self) {
        let hours = i64::try_from(self.config.retention_hours).unwrap_or(i64::MAX / 3600);
        let before = vigil_core::now() - chrono::Duration::hours(hours);
        match self.store.prune(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, hours, "dispatched outbox rows pruned"),
            Err(e) => tracing::warn!(error = %e, "outbox prune failed"),
        }
    }
}

/// The events of a batch a target has not accepted yet (the batch itself on a first try).
fn not_accepted<'a>(done: &HashSet<i64>, events: &'a [AlertEvent]) -> Cow<'a, [AlertEvent]> {
    if done.is_empty() {
        return Cow::Borrowed(events);
    }
    Cow::Owned(
        events
            .iter()
            .filter(|e| !done.contains(&e.seq))
            .cloned()
            .collect(),
    )
}

fn accept(done: &mut HashSet<i64>, events: &[AlertEvent]) {
    done.extend(events.iter().map(|e| e.seq));
}
