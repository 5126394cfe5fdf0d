//! The in-process queue of `vigil serve` without Redis: bounded, retries after a backoff
//! (a timer per wait, not a thread), dead letters kept in memory (the newest
//! `jobs.dead_letter_max`). Jobs do not survive a restart; the work they stand for does
//! (periodic jobs come back at the next tick, webhook deliveries are rows in the database).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{DeadJob, Job, JobQueue, RetryPolicy};

/// A job between runs: what it is and which run comes next.
#[derive(Debug, Clone)]
struct Entry {
    kind: String,
    payload: serde_json::Value,
    attempt: u32,
}

#[derive(Default)]
struct State {
    seq: u64,
    ready: VecDeque<Entry>,
    /// Waiting for their retry time, keyed by (due, seq).
    delayed: BTreeMap<(Instant, u64), Entry>,
    /// Handed out and not yet acknowledged, by job id, with the time they are handed out
    /// again if still unacknowledged.
    inflight: HashMap<String, (Entry, Instant)>,
    dead: VecDeque<DeadJob>,
}

pub struct MemoryQueue {
    policy: RetryPolicy,
    capacity: usize,
    dead_max: usize,
    visibility: Duration,
    state: Mutex<State>,
    notify: tokio::sync::Notify,
}

impl MemoryQueue {
    pub fn new(
        policy: RetryPolicy,
        capacity: usize,
        dead_max: usize,
        visibility: Duration,
    ) -> Self {
        Self {
            policy,
            capacity: capacity.max(1),
            dead_max,
            visibility,
            state: Mutex::default(),
            notify: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push_dead(
        &self,
        st: &mut State,
        kind: &str,
        payload: &serde_json::Value,
        attempts: u32,
        error: &str,
    ) {
        tracing::warn!(kind, attempts, error, "job dead-lettered");
        st.dead.push_front(DeadJob {
            kind: kind.to_owned(),
            payload: payload.clone(),
            attempts,
            error: error.to_owned(),
            failed_at: vigil_core::now(),
        });
        st.dead.truncate(self.dead_max);
    }

    /// Moves due retries to the ready queue and takes back jobs whose taker went quiet;
    /// returns when something next becomes due.
    fn promote(&self, st: &mut State, now: Instant) -> Option<Instant> {
        while let Some(entry) = st.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let e = entry.remove();
            st.ready.push_back(e);
        }
        let expired: Vec<String> = st
            .inflight
            .iter()
            .filter(|(_, (_, until))| *until <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some((mut e, _)) = st.inflight.remove(&id) {
                // The run that went quiet counts as an attempt.
                e.attempt += 1;
                if e.attempt > self.policy.max_attempts {
                    let (kind, payload) = (e.kind.clone(), e.payload.clone());
                    self.push_dead(
                        st,
                        &kind,
                        &payload,
                        e.attempt - 1,
                        "visibility timeout: the runner went quiet",
                    );
                } else {
                    st.ready.push_front(e);
                }
            }
        }
        let next_delayed = st.delayed.keys().next().map(|(t, _)| *t);
        let next_expiry = st.inflight.values().map(|(_, t)| *t).min();
        match (next_delayed, next_expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[async_trait]
impl JobQueue for MemoryQueue {
    async fn enqueue(&self, kind: &str, payload: serde_json::Value) -> anyhow::Result<()> {
        {
            let mut st = self.lock();
            let held = st.ready.len() + st.delayed.len() + st.inflight.len();
            if held >= self.capacity {
                anyhow::bail!("in-process job queue full ({held} jobs, jobs.queue_capacity)");
            }
            st.ready.push_back(Entry {
                kind: kind.to_owned(),
                payload,
                attempt: 1,
            });
        }
        self.notify.notify_one();
        Ok(())
    }

    async fn next(&self, _consumer: &str, wait: Duration) -> anyhow::Result<Option<Job>> {
        let deadline = Instant::now() + wait;
        loop {
            let wake = {
                let mut st = self.lock();
                let now = Instant::now();
                let due = self.promote(&mut st, now);
                if let Some(e) = st.ready.pop_front() {
                    st.seq += 1;
                    let id = format!("mem-{}", st.seq);
                    let job = Job {
                        id: id.clone(),
                        kind: e.kind.clone(),
                        payload: e.payload.clone(),
                        attempt: e.attempt,
                    };
                    st.inflight.insert(id, (e, now + self.visibility));
                    // Another waiter may take the next one.
                    if !st.ready.is_empty() {
                        self.notify.notify_one();
                    }
                    return Ok(Some(job));
                }
                due.map_or(deadline, |d| d.min(deadline))
            };
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::select! {
                _ = self.notify.notified() => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    async fn ack(&self, job: &Job) -> anyhow::Result<()> {
        self.lock().inflight.remove(&job.id);
        Ok(())
    }

    async fn retry(&self, job: &Job, error: &str) -> anyhow::Result<()> {
        {
            let mut st = self.lock();
            if st.inflight.remove(&job.id).is_none() {
                // Taken back after the visibility timeout and already queued again.
                return Ok(());
            }
            if job.attempt >= self.policy.max_attempts {
                self.push_dead(&mut st, &job.kind, &job.payload, job.attempt, error);
                return Ok(());
            }
            let due = Instant::now() + self.policy.backoff(job.attempt);
            st.seq += 1;
            let seq = st.seq;
            st.delayed.insert(
                (due, seq),
                Entry {
                    kind: job.kind.clone(),
                    payload: job.payload.clone(),
                    attempt: job.attempt + 1,
                },
            );
        }
        // A waiter sleeping longer than the new due time recomputes its wake-up.
        self.notify.notify_one();
        Ok(())
    }

    async fn bury(&self, job: &Job, error: &str) -> anyhow::Result<()> {
        let mut st = self.lock();
        if st.inflight.remove(&job.id).is_some() {
            self.push_dead(&mut st, &job.kind, &job.payload, job.attempt, error);
        }
        Ok(())
    }

    async fn pending(&self) -> anyhow::Result<u64> {
        let st = self.lock();
        Ok((st.ready.len() + st.delayed.len() + st.inflight.len()) as u64)
    }

    async fn dead_letters(&self, limit: usize) -> anyhow::Result<Vec<DeadJob>> {
        Ok(self.lock().dead.iter().take(limit).cloned().collect())
    }
}
