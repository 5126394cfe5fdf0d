//! Periodic jobs: each period is a numbered tick of the wall clock (`unix time / period`),
//! so every process agrees on when a tick starts. At each tick a process takes the tick's
//! lease and, if it got it, enqueues the job; with Redis the lease is `SET NX PX`
//! `{prefix}:schedule:{kind}:{tick}`, so with N replicas the job is enqueued once per tick.
//! Without Redis there is one process and no lease to take.
//!
//! The scheduler also refreshes the `jobs_pending` gauge.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;

use super::JobQueue;
use crate::metrics::JOBS_PENDING;

/// How often the `jobs_pending` gauge is refreshed (and the longest the scheduler sleeps).
const GAUGE_EVERY: Duration = Duration::from_secs(5);

/// A job enqueued once per period.
#[derive(Debug, Clone)]
pub struct Periodic {
    pub kind: &'static str,
    pub every: Duration,
    pub payload: serde_json::Value,
    /// Leave out the tick current when this process starts (work that should wait a whole
    /// period after a start, like retraining).
    pub skip_first: bool,
}

/// Who may enqueue a tick.
#[derive(Clone)]
pub enum Lease {
    /// One process: always this one.
    Local,
    Redis {
        conn: ConnectionManager,
        prefix: String,
        /// This process's name, the lease's value.
        owner: String,
    },
}

impl Lease {
    /// Whether this process holds (or just took) the lease of `tick` of `kind`, for `ttl`.
    pub async fn acquire(&self, kind: &str, tick: u64, ttl: Duration) -> anyhow::Result<bool> {
        match self {
            Lease::Local => Ok(true),
            Lease::Redis {
                conn,
                prefix,
                owner,
            } => {
                let mut conn = conn.clone();
                let key = format!("{prefix}:schedule:{kind}:{tick}");
                let set: Option<String> = redis::cmd("SET")
                    .arg(&key)
                    .arg(owner)
                    .arg("NX")
                    .arg("PX")
                    .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
                    .query_async(&mut conn)
                    .await?;
                if set.is_some() {
                    return Ok(true);
                }
                // Ours already (an enqueue that failed after taking it is tried again).
                let holder: Option<String> =
                    redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
                Ok(holder.as_deref() == Some(owner.as_str()))
            }
        }
    }
}

pub struct Scheduler {
    queue: Arc<dyn JobQueue>,
    lease: Lease,
    jobs: Vec<Periodic>,
}

fn period_ms(p: &Periodic) -> u64 {
    u64::try_from(p.every.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

fn now_ms() -> u64 {
    u64::try_from(vigil_core::now().timestamp_millis()).unwrap_or(0)
}

impl Scheduler {
    pub fn new(queue: Arc<dyn JobQueue>, lease: Lease, jobs: Vec<Periodic>) -> Self {
        Self { queue, lease, jobs }
    }

    /// Enqueues each job whose current tick this process has not handled yet and whose
    /// lease it gets; `done` remembers the ticks handled. Returns the kinds enqueued.
    pub async fn run_due(&self, done: &mut HashMap<&'static str, u64>) -> Vec<&'static str> {
        let now = now_ms();
        let mut enqueued = Vec::new();
        for p in &self.jobs {
            let tick = now / period_ms(p);
            if done.get(p.kind) == Some(&tick) {
                continue;
            }
            // The lease outlives the tick a little so a slow peer never takes it again.
            let ttl = p.every.saturating_mul(2);
            match self.lease.acquire(p.kind, tick, ttl).await {
                Ok(false) => {
                    done.insert(p.kind, tick);
                }
                Ok(true) => match self.queue.enqueue(p.kind, p.payload.clone()).await {
                    Ok(()) => {
                        tracing::debug!(kind = p.kind, tick, "periodic job enqueued");
                        done.insert(p.kind, tick);
                        enqueued.push(p.kind);
                    }
                    Err(e) => {
                        tracing::warn!(kind = p.kind, error = %e, "periodic job not enqueued; trying again")
                    }
                },
                Err(e) => {
                    tracing::warn!(kind = p.kind, error = %e, "schedule lease unavailable; trying again")
                }
            }
        }
        enqueued
    }

    /// Until `shutdown`: enqueues the periodic jobs at each tick and refreshes the gauge.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut done: HashMap<&'static str, u64> = HashMap::new();
        let start = now_ms();
        for p in self.jobs.iter().filter(|p| p.skip_first) {
            done.insert(p.kind, start / period_ms(p));
        }
        let mut gauge_due = tokio::time::Instant::now();
        loop {
            self.run_due(&mut done).await;
            if tokio::time::Instant::now() >= gauge_due {
                match self.queue.pending().await {
                    Ok(n) => metrics::gauge!(JOBS_PENDING).set(n as f64),
                    Err(e) => tracing::debug!(error = %e, "jobs_pending not refreshed"),
                }
                gauge_due = tokio::time::Instant::now() + GAUGE_EVERY;
            }
            // Sleep until the next tick starts (or the gauge is due, or a failed tick is tried again).
            let now = now_ms();
            let next_tick = self
                .jobs
                .iter()
                .map(|p| {
                    let ms = period_ms(p);
                    let tick = now / ms;
                    if done.get(p.kind) == Some(&tick) {
                        (tick + 1) * ms - now
                    } else {
                        1000
                    }
                })
                .min()
                .map_or(GAUGE_EVERY, Duration::from_millis);
            let wait =
                next_tick.min(gauge_due.saturating_duration_since(tokio::time::Instant::now()));
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait.max(Duration::from_millis(10))) => {}
            }
        }
    }
}
