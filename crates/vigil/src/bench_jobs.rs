//! `vigil bench jobs`: jobs per second through the job queue with a no-op handler: the
//! in-process queue, and with `--redis URL` the Redis Streams queue too (under a key prefix
//! of its own, deleted afterwards). Enqueueing and running are timed apart; the runner
//! takes `--concurrency` jobs at once, as `vigil worker` does with `jobs.concurrency`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;
use vigil_server::config::{Config, Secret};
use vigil_server::jobs::{Job, JobError, JobHandler, JobQueue, JobRunner};

#[derive(Args)]
pub struct JobsBench {
    /// Jobs to enqueue and run per queue.
    #[arg(long, default_value_t = 10_000)]
    jobs: usize,
    /// Jobs run at once (`jobs.concurrency`).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Also measure the Redis Streams queue at this URL (e.g. redis://127.0.0.1:6379).
    #[arg(long)]
    redis: Option<String>,
}

const KIND: &str = "bench.noop";

struct Noop;

#[async_trait::async_trait]
impl JobHandler for Noop {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn run(&self, _job: &Job) -> Result<(), JobError> {
        Ok(())
    }
}

pub async fn run(b: JobsBench) -> anyhow::Result<()> {
    let mut config = Config::default();
    config.jobs.concurrency = b.concurrency.max(1);
    config.jobs.queue_capacity = config.jobs.queue_capacity.max(b.jobs);
    println!(
        "vigil bench jobs: {} no-op jobs per queue, concurrency {}",
        b.jobs, config.jobs.concurrency
    );
    let memory = vigil_server::jobs::connect(&config).await?;
    measure("in-process", memory, &config, b.jobs).await?;
    if let Some(url) = &b.redis {
        config.redis.url = Secret::new(url.clone());
        config.redis.key_prefix = format!("vigil-bench-{}", uuid::Uuid::new_v4().simple());
        let queue = vigil_server::jobs::connect(&config)
            .await
            .with_context(|| format!("Redis at {}", vigil_store::redact_url(url)))?;
        let measured = measure("redis", queue, &config, b.jobs).await;
        delete_keys(url, &config.redis.key_prefix).await?;
        measured?;
    }
    Ok(())
}

async fn measure(
    name: &str,
    queue: Arc<dyn JobQueue>,
    config: &Config,
    jobs: usize,
) -> anyhow::Result<()> {
    let started = Instant::now();
    for i in 0..jobs {
        queue.enqueue(KIND, serde_json::json!({ "n": i })).await?;
    }
    let enqueued = started.elapsed();
    let stop = CancellationToken::new();
    let runner = JobRunner::new(
        queue.clone(),
        vec![Arc::new(Noop)],
        &config.jobs,
        vigil_server::jobs::consumer_name("bench"),
    );
    let task = tokio::spawn(runner.run(stop.clone()));
    let run_started = Instant::now();
    while queue.pending().await? > 0 {
        anyhow::ensure!(
            run_started.elapsed() < Duration::from_secs(600),
            "{name}: jobs still pending after 600 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ran = run_started.elapsed();
    stop.cancel();
    task.await?;
    println!(
        "{name:>10}: enqueue {:.0} jobs/s (one at a time), run {:.0} jobs/s",
        jobs as f64 / enqueued.as_secs_f64(),
        jobs as f64 / ran.as_secs_f64()
    );
    Ok(())
}

/// Deletes every key under `prefix:`.
async fn delete_keys(url: &str, prefix: &str) -> anyhow::Result<()> {
    let mut conn = vigil_server::jobs::redis::connect(url).await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await?;
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await?;
    }
    Ok(())
}
