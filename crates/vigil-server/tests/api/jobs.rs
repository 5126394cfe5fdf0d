//! The job queue contract, held by the in-process queue and by Redis Streams alike (real
//! Redis, a key prefix per test, deleted at the end): enqueue → next → ack; a taker that
//! dies without acknowledging → the job goes to another after the visibility timeout and
//! completes once; retries with backoff, attempts counted, then a dead letter; periodic
//! jobs enqueued once per tick by two schedulers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use vigil_server::config::JobsConfig;
use vigil_server::jobs::schedule::Lease;
use vigil_server::jobs::{
    Job, JobError, JobHandler, JobQueue, JobRunner, MemoryQueue, Periodic, RedisQueue, RetryPolicy,
    Scheduler,
};

use crate::helpers::{TestRedis, poll_until};

fn policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base: Duration::from_millis(50),
        max: Duration::from_millis(200),
    }
}

fn memory(max_attempts: u32, visibility: Duration) -> Arc<dyn JobQueue> {
    Arc::new(MemoryQueue::new(
        policy(max_attempts),
        1000,
        100,
        visibility,
    ))
}

async fn redis_queue(r: &TestRedis, max_attempts: u32, visibility: Duration) -> Arc<dyn JobQueue> {
    let conn = vigil_server::jobs::redis::connect(&r.url)
        .await
        .expect("redis");
    Arc::new(
        RedisQueue::with_url(
            conn,
            Some(&r.url),
            &r.prefix,
            policy(max_attempts),
            visibility,
            100,
        )
        .await
        .expect("redis queue"),
    )
}

/// Both kinds of queue, as `(name, queue, a second handle on the same queue)`; the Redis
/// pair are two connections (two processes, as far as Redis can tell).
async fn queues(
    r: Option<&TestRedis>,
    max_attempts: u32,
    visibility: Duration,
) -> Vec<(&'static str, Arc<dyn JobQueue>, Arc<dyn JobQueue>)> {
    let m = memory(max_attempts, visibility);
    let mut out = vec![("memory", m.clone(), m)];
    if let Some(r) = r {
        out.push((
            "redis",
            redis_queue(r, max_attempts, visibility).await,
            redis_queue(r, max_attempts, visibility).await,
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_next_ack() {
    let r = TestRedis::new();
    for (name, q, _) in queues(r.as_ref(), 3, Duration::from_secs(60)).await {
        for i in 0..3 {
            q.enqueue("test.kind", json!({ "n": i })).await.unwrap();
        }
        assert_eq!(q.pending().await.unwrap(), 3, "{name}");
        let mut seen = Vec::new();
        for _ in 0..3 {
            let job = q
                .next("c1", Duration::from_secs(2))
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{name}: a job"));
            assert_eq!(job.kind, "test.kind", "{name}");
            assert_eq!(job.attempt, 1, "{name}");
            seen.push(job.payload["n"].as_i64().unwrap());
            q.ack(&job).await.unwrap();
        }
        assert_eq!(seen, vec![0, 1, 2], "{name}: in order");
        assert_eq!(q.pending().await.unwrap(), 0, "{name}");
        assert!(
            q.next("c1", Duration::from_millis(200))
                .await
                .unwrap()
                .is_none(),
            "{name}: nothing left"
        );
        assert!(q.dead_letters(10).await.unwrap().is_empty(), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taker_that_dies_loses_its_job_to_another_after_the_visibility_timeout() {
    let r = TestRedis::new();
    let visibility = Duration::from_secs(2);
    for (name, q1, q2) in queues(r.as_ref(), 5, visibility).await {
        q1.enqueue("test.kind", json!({ "token": "only-once" }))
            .await
            .unwrap();
        let taken = q1
            .next("dies", Duration::from_secs(2))
            .await
            .unwrap()
            .expect("a job");
        assert_eq!(taken.attempt, 1);
        // "dies" never acknowledges. Another taker gets the job once it has been idle long
        // enough, as its second attempt.
        let again = poll_until(20, "the job handed to another taker", || {
            let q2 = q2.clone();
            async move { q2.next("lives", Duration::from_millis(200)).await.unwrap() }
        })
        .await;
        assert_eq!(again.payload, json!({ "token": "only-once" }), "{name}");
        assert_eq!(again.attempt, 2, "{name}: the dead run counts");
        q2.ack(&again).await.unwrap();
        // The first taker coming back late cannot put a second copy in the queue.
        q1.retry(&taken, "late").await.unwrap();
        q1.ack(&taken).await.unwrap();
        assert_eq!(q1.pending().await.unwrap(), 0, "{name}");
        assert!(
            q2.next("lives", Duration::from_millis(300))
                .await
                .unwrap()
                .is_none(),
            "{name}: completed once"
        );
        assert!(q1.dead_letters(10).await.unwrap().is_empty(), "{name}");
    }
}

/// Fails the first `fail` runs of every job (with `fatal`: for good), recording attempts.
struct Flaky {
    fail: u32,
    fatal: bool,
    attempts: Arc<Mutex<Vec<u32>>>,
}

#[async_trait]
impl JobHandler for Flaky {
    fn kind(&self) -> &'static str {
        "test.flaky"
    }
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        self.attempts.lock().unwrap().push(job.attempt);
        if job.attempt <= self.fail {
            if self.fatal {
                return Err(JobError::Fatal("bad payload".into()));
            }
            return Err(JobError::Retry(format!("failure {}", job.attempt)));
        }
        Ok(())
    }
}

fn jobs_config(max_attempts: u32) -> JobsConfig {
    JobsConfig {
        concurrency: 2,
        max_attempts,
        ..JobsConfig::default()
    }
}

/// Runs `q` with a `Flaky` handler until `done` says so; returns the attempts seen.
async fn run_flaky(
    q: Arc<dyn JobQueue>,
    fail: u32,
    fatal: bool,
    max_attempts: u32,
    what: &str,
) -> Vec<u32> {
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let handler = Arc::new(Flaky {
        fail,
        fatal,
        attempts: attempts.clone(),
    });
    let stop = CancellationToken::new();
    let runner = JobRunner::new(
        q.clone(),
        vec![handler],
        &jobs_config(max_attempts),
        "runner-1".into(),
    );
    let task = tokio::spawn(runner.run(stop.clone()));
    q.enqueue("test.flaky", json!({ "id": what }))
        .await
        .unwrap();
    poll_until(30, what, || {
        let q = q.clone();
        async move { (q.pending().await.unwrap() == 0).then_some(()) }
    })
    .await;
    stop.cancel();
    task.await.unwrap();
    attempts.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_with_backoff_then_dead_lettered() {
    let r = TestRedis::new();
    for (name, q, _) in queues(r.as_ref(), 3, Duration::from_secs(60)).await {
        // Fails twice, then succeeds on its third run: no dead letter.
        let seen = run_flaky(q.clone(), 2, false, 3, "recovers").await;
        assert_eq!(seen, vec![1, 2, 3], "{name}");
        assert!(q.dead_letters(10).await.unwrap().is_empty(), "{name}");

        // Always fails: three runs, then a dead letter that says so.
        let seen = run_flaky(q.clone(), 10, false, 3, "never recovers").await;
        assert_eq!(seen, vec![1, 2, 3], "{name}");
        let dead = q.dead_letters(10).await.unwrap();
        assert_eq!(dead.len(), 1, "{name}: {dead:?}");
        assert_eq!(dead[0].kind, "test.flaky");
        assert_eq!(dead[0].payload, json!({ "id": "never recovers" }));
        assert_eq!(dead[0].attempts, 3);
        assert_eq!(dead[0].error, "failure 3");

        // A fatal error: one run, straight to the dead letters.
        let seen = run_flaky(q.clone(), 10, true, 3, "fatal").await;
        assert_eq!(seen, vec![1], "{name}");
        let dead = q.dead_letters(10).await.unwrap();
        assert_eq!(dead.len(), 2, "{name}");
        assert_eq!(
            dead[0].payload,
            json!({ "id": "fatal" }),
            "{name}: newest first"
        );
        assert_eq!(dead[0].attempts, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_an_unknown_kind_is_dead_lettered() {
    let r = TestRedis::new();
    for (name, q, _) in queues(r.as_ref(), 3, Duration::from_secs(60)).await {
        let stop = CancellationToken::new();
        let runner = JobRunner::new(q.clone(), Vec::new(), &jobs_config(3), "runner-1".into());
        let task = tokio::spawn(runner.run(stop.clone()));
        q.enqueue("no.such.kind", json!({})).await.unwrap();
        let dead = poll_until(10, "a dead letter", || {
            let q = q.clone();
            async move { q.dead_letters(1).await.unwrap().pop() }
        })
        .await;
        assert_eq!(dead.kind, "no.such.kind", "{name}");
        assert!(dead.error.contains("no handler"), "{name}: {}", dead.error);
        stop.cancel();
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_process_queue_is_bounded() {
    let q = MemoryQueue::new(policy(3), 2, 10, Duration::from_secs(60));
    q.enqueue("k", json!(1)).await.unwrap();
    q.enqueue("k", json!(2)).await.unwrap();
    let e = q.enqueue("k", json!(3)).await.unwrap_err();
    assert!(e.to_string().contains("full"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_periodic_job_is_enqueued_once_per_tick_by_two_schedulers() {
    let Some(r) = TestRedis::new() else {
        return;
    };
    let q = redis_queue(&r, 3, Duration::from_secs(60)).await;
    let periodic = vec![Periodic {
        kind: "test.periodic",
        every: Duration::from_secs(3600),
        payload: json!({}),
        skip_first: false,
    }];
    let mut schedulers = Vec::new();
    for owner in ["replica-a", "replica-b"] {
        let conn = vigil_server::jobs::redis::connect(&r.url).await.unwrap();
        let lease = Lease::Redis {
            conn,
            prefix: r.prefix.clone(),
            owner: owner.into(),
        };
        schedulers.push((
            Scheduler::new(q.clone(), lease, periodic.clone()),
            Default::default(),
        ));
    }
    let mut enqueued = 0;
    // Both try the current tick, twice each.
    for _ in 0..2 {
        for (s, done) in &mut schedulers {
            enqueued += s.run_due(done).await.len();
        }
    }
    assert_eq!(enqueued, 1);
    assert_eq!(q.pending().await.unwrap(), 1);
    let job = q
        .next("w", Duration::from_secs(2))
        .await
        .unwrap()
        .expect("the periodic job");
    assert_eq!(job.kind, "test.periodic");
    q.ack(&job).await.unwrap();
    assert!(
        r.keys()
            .iter()
            .any(|k| k.contains(":schedule:test.periodic:"))
    );
}
