//! Background jobs: a queue, the handlers that run its jobs by kind, and the schedule of the
//! periodic ones.
//!
//! ```text
//!  producers (API, sweepers)  ──enqueue──►  JobQueue  ◄──next/ack/retry──  JobRunner (N at once)
//!  Scheduler (every process;                   │                              │ by kind
//!   one wins each tick's lease) ──enqueue──►   │                              ▼
//!                                              │                         JobHandler::run
//!      in-process (memory.rs): `vigil serve` without Redis runs its own jobs
//!      Redis Streams (redis.rs): `{prefix}:jobs`, one consumer group, `vigil worker` runs them
//! ```
//!
//! Delivery is at least once: a job whose runner dies before acknowledging it is run again
//! (Redis: after `jobs.visibility_timeout_secs`), so every handler is idempotent. A job
//! carries its attempt number (1 on the first run); a failure is retried with exponential
//! backoff (`jobs.backoff_base_ms` doubled per attempt, capped at `jobs.backoff_max_secs`)
//! until `jobs.max_attempts`, then kept as a dead letter (`{prefix}:jobs:dead`).
//!
//! Periodic work (retention purge, ML retraining, AI auto-triage) is enqueued by the
//! [`Scheduler`]: each period is a numbered tick of the wall clock, and with several
//! replicas only the one that takes the tick's lease (Redis `SET NX PX`) enqueues it.

pub mod handlers;
pub mod memory;
pub mod redis;
pub mod runner;
pub mod schedule;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use handlers::{JobContext, handlers};
pub use memory::MemoryQueue;
pub use redis::RedisQueue;
pub use runner::JobRunner;
pub use schedule::{Periodic, Scheduler};

/// One run of a job, as handed to a handler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The queue's id of this delivery (a Redis stream entry id); `ack` and `retry` take it.
    /// A retried job comes back under a new id with the same kind and payload.
    pub id: String,
    pub kind: String,
    pub payload: serde_json::Value,
    /// Which run this is: 1 on the first, counting runs whose worker died.
    pub attempt: u32,
}

/// A job that used up its attempts or failed for good.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadJob {
    pub kind: String,
    pub payload: serde_json::Value,
    /// Runs made.
    pub attempts: u32,
    /// The last failure.
    pub error: String,
    pub failed_at: chrono::DateTime<chrono::Utc>,
}

/// Where jobs wait. Both implementations keep the same contract (tested alike in
/// `tests/api/jobs.rs`).
#[async_trait]
pub trait JobQueue: Send + Sync {
    async fn enqueue(&self, kind: &str, payload: serde_json::Value) -> anyhow::Result<()>;
    /// The next job to run, waiting up to `wait` for one. `consumer` names the taker (the
    /// process and task), so a dead taker's jobs can be handed to another.
    async fn next(&self, consumer: &str, wait: Duration) -> anyhow::Result<Option<Job>>;
    /// The job is done: it will not be run again.
    async fn ack(&self, job: &Job) -> anyhow::Result<()>;
    /// The run failed and may succeed later: run it again after a backoff, or, when its
    /// attempts are used up, move it to the dead letters.
    async fn retry(&self, job: &Job, error: &str) -> anyhow::Result<()>;
    /// The run failed and will not succeed later: straight to the dead letters.
    async fn bury(&self, job: &Job, error: &str) -> anyhow::Result<()>;
    /// Jobs waiting, running and delayed for a retry.
    async fn pending(&self) -> anyhow::Result<u64>;
    /// The newest dead letters, newest first.
    async fn dead_letters(&self, limit: usize) -> anyhow::Result<Vec<DeadJob>>;
}

/// Why a handler failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt (a network error, a database that is down).
    #[error("{0}")]
    Retry(String),
    /// Will fail the same way again (a payload that does not parse): dead letter now.
    #[error("{0}")]
    Fatal(String),
}

impl JobError {
    /// A retryable error from anything printable.
    pub fn retry(e: impl std::fmt::Display) -> Self {
        Self::Retry(e.to_string())
    }
    pub fn fatal(e: impl std::fmt::Display) -> Self {
        Self::Fatal(e.to_string())
    }
}

/// Runs the jobs of one kind. Must be idempotent: a job may run more than once.
#[async_trait]
pub trait JobHandler: Send + Sync {
    fn kind(&self) -> &'static str;
    async fn run(&self, job: &Job) -> Result<(), JobError>;
}

/// Retry timing and limits shared by both queues.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    pub fn from_config(c: &crate::config::JobsConfig) -> Self {
        Self {
            max_attempts: c.max_attempts.max(1),
            base: Duration::from_millis(c.backoff_base_ms),
            max: Duration::from_secs(c.backoff_max_secs),
        }
    }

    /// Delay before the run after `attempt` failed: base × 2^(attempt-1), capped, with up
    /// to 20 % jitter taken off so retries of jobs that failed together spread out.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let d = self.base.saturating_mul(1u32 << exp).min(self.max);
        let jitter = rand::random::<f64>() * 0.2;
        d.mul_f64(1.0 - jitter)
    }
}

/// The queue the configuration asks for: Redis Streams with `[redis] url`, else in-process.
pub async fn connect(config: &crate::config::Config) -> anyhow::Result<Arc<dyn JobQueue>> {
    let policy = RetryPolicy::from_config(&config.jobs);
    if config.redis.url.is_empty() {
        Ok(Arc::new(MemoryQueue::new(
            policy,
            config.jobs.queue_capacity,
            config.jobs.dead_letter_max,
            Duration::from_secs(config.jobs.visibility_timeout_secs),
        )))
    } else {
        let url = config.redis.url.expose();
        let conn = self::redis::connect(url).await?;
        Ok(Arc::new(
            RedisQueue::with_url(
                conn,
                Some(url),
                &config.redis.key_prefix,
                policy,
                Duration::from_secs(config.jobs.visibility_timeout_secs),
                config.jobs.dead_letter_max,
            )
            .await?,
        ))
    }
}

/// A name for this process's consumers: host, pid and a random suffix.
pub fn consumer_name(role: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    format!(
        "{role}-{host}-{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// Starts what a process does with jobs: the scheduler always (its lease makes one replica
/// enqueue each tick), and with `run` a runner. Returns the tasks by name; they end after
/// `shutdown` (the runner once its running jobs finish).
pub async fn start(
    ctx: &JobContext,
    run: bool,
    role: &str,
    shutdown: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<Vec<(&'static str, tokio::task::JoinHandle<()>)>> {
    let config = &ctx.config;
    let consumer = consumer_name(role);
    let lease = if config.redis.url.is_empty() {
        schedule::Lease::Local
    } else {
        schedule::Lease::Redis {
            conn: self::redis::connect(config.redis.url.expose()).await?,
            prefix: config.redis.key_prefix.clone(),
            owner: consumer.clone(),
        }
    };
    let periodic = handlers::periodic(config, &ctx.ai, vigil_core::now());
    let scheduler = Scheduler::new(ctx.jobs.clone(), lease, periodic);
    let mut tasks = vec![(
        "job-scheduler",
        tokio::spawn(scheduler.run(shutdown.clone())),
    )];
    if run {
        let runner = JobRunner::new(ctx.jobs.clone(), handlers(ctx), &config.jobs, consumer);
        tasks.push(("job-runner", tokio::spawn(runner.run(shutdown.clone()))));
    }
    Ok(tasks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 5,
            base: Duration::from_millis(100),
            max: Duration::from_millis(1000),
        };
        let b1 = p.backoff(1);
        assert!(b1 <= Duration::from_millis(100) && b1 >= Duration::from_millis(80));
        let b3 = p.backoff(3);
        assert!(b3 <= Duration::from_millis(400) && b3 >= Duration::from_millis(320));
        let b10 = p.backoff(10);
        assert!(b10 <= Duration::from_millis(1000) && b10 >= Duration::from_millis(800));
        assert!(p.backoff(u32::MAX) <= Duration::from_millis(1000));
    }
}
