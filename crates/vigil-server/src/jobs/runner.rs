//! Runs jobs from a queue: up to `jobs.concurrency` at once, each by the handler of its
//! kind, in a `job` span; records `jobs_total{kind,result}` and `job_duration_seconds`.
//!
//! Results: `ok` (acknowledged), `retry` (failed, queued again after a backoff), `dead`
//! (failed for good or out of attempts; dead letter). A handler that panics is retried.
//! At shutdown the runner stops taking jobs and waits for the ones running; the caller
//! bounds that wait (a job cut off then is run again: Redis hands it to another worker
//! after the visibility timeout).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Job, JobError, JobHandler, JobQueue};
use crate::metrics::{JOB_DURATION, JOBS_TOTAL};

/// How long one `next` call waits for a job before looking at the shutdown signal again.
const POLL: Duration = Duration::from_secs(1);

pub struct JobRunner {
    queue: Arc<dyn JobQueue>,
    handlers: Arc<HashMap<&'static str, Arc<dyn JobHandler>>>,
    concurrency: usize,
    max_attempts: u32,
    consumer: String,
}

impl JobRunner {
    pub fn new(
        queue: Arc<dyn JobQueue>,
        handlers: Vec<Arc<dyn JobHandler>>,
        config: &crate::config::JobsConfig,
        consumer: String,
    ) -> Self {
        Self {
            queue,
            handlers: Arc::new(handlers.into_iter().map(|h| (h.kind(), h)).collect()),
            concurrency: config.concurrency.max(1),
            max_attempts: config.max_attempts.max(1),
            consumer,
        }
    }

    /// Runs jobs until `shutdown`, then waits for those running.
    pub async fn run(self, shutdown: CancellationToken) {
        let sem = Arc::new(tokio::sync::Semaphore::new(self.concurrency));
        let mut running = tokio::task::JoinSet::new();
        tracing::info!(consumer = self.consumer, concurrency = self.concurrency, kinds = ?self.handlers.keys().collect::<Vec<_>>(), "job runner started");
        loop {
            while running.try_join_next().is_some() {}
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                p = sem.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            if shutdown.is_cancelled() {
                break;
            }
            // Not cut short by the shutdown signal: a Redis read dropped mid-way may already
            // have taken an entry, which would wait out the visibility timeout. A job taken
            // while stopping is run (the drain waits for it).
            let next = self.queue.next(&self.consumer, POLL).await;
            match next {
                Ok(Some(job)) => {
                    let span = tracing::info_span!("job", kind = %job.kind, id = %job.id, attempt = job.attempt);
                    let queue = self.queue.clone();
                    let handlers = self.handlers.clone();
                    let max_attempts = self.max_attempts;
                    running.spawn(
                        async move {
                            run_one(&*queue, &handlers, max_attempts, job).await;
                            drop(permit);
                        }
                        .instrument(span),
                    );
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "job queue unavailable; trying again");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(POLL) => {}
                    }
                }
            }
        }
        if !running.is_empty() {
            tracing::info!(
                running = running.len(),
                "job runner stopping: waiting for running jobs"
            );
        }
        while running.join_next().await.is_some() {}
    }
}

async fn run_one(
    queue: &dyn JobQueue,
    handlers: &HashMap<&'static str, Arc<dyn JobHandler>>,
    max_attempts: u32,
    job: Job,
) {
    let started = Instant::now();
    let result = match handlers.get(job.kind.as_str()) {
        None => Err(JobError::Fatal(format!(
            "no handler for job kind '{}'",
            job.kind
        ))),
        Some(h) => match std::panic::AssertUnwindSafe(h.run(&job))
            .catch_unwind()
            .await
        {
            Ok(r) => r,
            Err(_) => Err(JobError::Retry("the handler panicked".into())),
        },
    };
    metrics::histogram!(JOB_DURATION, "kind" => job.kind.clone())
        .record(started.elapsed().as_secs_f64());
    let (outcome, settled) = match &result {
        Ok(()) => ("ok", queue.ack(&job).await),
        Err(JobError::Retry(e)) => {
            let outcome = if job.attempt >= max_attempts {
                "dead"
            } else {
                "retry"
            };
            tracing::warn!(error = %e, outcome, "job failed");
            (outcome, queue.retry(&job, e).await)
        }
        Err(JobError::Fatal(e)) => {
            tracing::warn!(error = %e, "job failed for good");
            ("dead", queue.bury(&job, e).await)
        }
    };
    metrics::counter!(JOBS_TOTAL, "kind" => job.kind.clone(), "result" => outcome).increment(1);
    if let Err(e) = settled {
        // Not settled: the queue hands the job out again after the visibility timeout.
        tracing::warn!(error = %e, outcome, "job result not recorded in the queue");
    } else if outcome == "ok" {
        tracing::debug!(secs = started.elapsed().as_secs_f64(), "job done");
    }
}
