//! `vigil bench jobs`: jobs per second through the job queue with a no-op handler: the
//! in-process queue, and with `--redis URL` the Redis Streams queue too (under a key prefix
//! of its own, deleted afterwards). Enqueueing and running are timed apart; the runner
//! takes `--concurrency` jobs at once, as `vigil worker` does with `jobs.concurrency`.
//!
//! `vigil bench webhooks`: deliveries per second to one endpoint whose receiver (in this
//! process, on 127.0.0.1) answers 204 at once. The receiver holds its first requests until
//! every alert is created and the outbox has written every delivery, then the clock runs
//! until each event has arrived. `vigil serve` on SQLite delivers them itself; with
//! `--database-url` and `--redis`, one `vigil serve` queues `webhook.deliver` jobs and one
//! `vigil worker` sends them.

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
pub(crate) async fn delete_keys(url: &str, prefix: &str) -> anyhow::Result<()> {
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

#[derive(Args)]
pub struct WebhooksBench {
    /// Alerts created (one delivery each).
    #[arg(long, default_value_t = 5_000)]
    alerts: usize,
    /// `webhooks.max_concurrency_per_endpoint` (and the worker's `jobs.concurrency`).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// An empty PostgreSQL database for `vigil serve` + `vigil worker` (needs --redis).
    #[arg(long, requires = "redis")]
    database_url: Option<String>,
    /// The Redis of the job queue (needs --database-url).
    #[arg(long, requires = "database_url")]
    redis: Option<String>,
    /// Keep the temporary directory (configs, logs) afterwards.
    #[arg(long)]
    keep: bool,
}

/// The receiver's tally: distinct webhook ids, and the gate its requests wait at.
struct Tally {
    ids: std::sync::Mutex<std::collections::HashSet<String>>,
    requests: std::sync::atomic::AtomicU64,
    open: tokio::sync::watch::Receiver<bool>,
    all: tokio::sync::Notify,
    expected: usize,
}

async fn receive(
    axum::extract::State(t): axum::extract::State<Arc<Tally>>,
    headers: axum::http::HeaderMap,
) -> axum::http::StatusCode {
    let mut open = t.open.clone();
    let _ = open.wait_for(|o| *o).await;
    t.requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut ids = t.ids.lock().unwrap_or_else(|p| p.into_inner());
    ids.insert(id);
    if ids.len() >= t.expected {
        t.all.notify_one();
    }
    axum::http::StatusCode::NO_CONTENT
}

pub async fn webhooks(b: WebhooksBench) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!(
        "vigil-bench-webhooks-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir)?;
    let (gate, open) = tokio::sync::watch::channel(false);
    let tally = Arc::new(Tally {
        ids: Default::default(),
        requests: Default::default(),
        open,
        all: tokio::sync::Notify::new(),
        expected: b.alerts,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let app = axum::Router::new()
        .fallback(receive)
        .with_state(tally.clone());
    let receiver = tokio::spawn(async move { axum::serve(listener, app).await });

    let secret = vigil_integrations::webhooks::WebhookSecret::generate().expose();
    let webhooks = format!(
        "[outbox]\npoll_ms = 50\n[webhooks]\nallow_private_destinations = true\npoll_ms = 100\n\
         max_concurrency_per_endpoint = {}\n[[webhooks.endpoints]]\norg = \"default\"\n\
         name = \"bench\"\nurl = {url:?}\nsecret = {secret:?}\ntimeout_secs = 60\n\
         [jobs]\nconcurrency = {}\n",
        b.concurrency, b.concurrency
    );
    let password = vigil_server::auth::random_token();
    let prefix = format!("vigil-bench-{}", uuid::Uuid::new_v4().simple());
    let (server, worker, what) = match (&b.database_url, &b.redis) {
        (Some(db), Some(redis)) => {
            let toml = format!(
                "{}{webhooks}",
                crate::bench::shared_toml(db, redis, &prefix)
            );
            let server =
                crate::bench::spawn_vigil(&dir, "server", "serve", &toml, &password).await?;
            let worker =
                crate::bench::spawn_vigil(&dir, "worker", "worker", &toml, &password).await?;
            (
                server,
                Some(worker),
                "vigil serve queues jobs, vigil worker sends (PostgreSQL + Redis)",
            )
        }
        _ => (
            crate::bench::spawn_vigil(&dir, "server", "serve", &webhooks, &password).await?,
            None,
            "vigil serve sends (SQLite)",
        ),
    };
    println!(
        "vigil bench webhooks: {} alerts to one endpoint, {} at once; {what}",
        b.alerts, b.concurrency
    );
    let http = reqwest::Client::new();
    let base = server.base();
    let token = crate::bench::login(&http, &base, &password).await?;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let creators: Vec<_> = (0..32)
        .map(|_| {
            let (http, base, token, next) =
                (http.clone(), base.clone(), token.clone(), next.clone());
            let total = b.alerts;
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= total {
                        return anyhow::Ok(());
                    }
                    http.post(format!("{base}/api/v1/alerts"))
                        .bearer_auth(&token)
                        .json(&serde_json::json!({
                            "title": format!("webhook bench {i}"),
                            "severity": "high",
                        }))
                        .send()
                        .await?
                        .error_for_status()?;
                }
            })
        })
        .collect();
    for c in creators {
        c.await??;
    }
    // Every delivery row written: the outbox has nothing pending.
    let started = Instant::now();
    loop {
        let metrics = http
            .get(format!("{base}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        if metrics.lines().any(|l| l.trim() == "outbox_pending 0") {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(300),
            "the outbox did not drain in 300 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all = tally.all.notified();
    let released = Instant::now();
    let _ = gate.send(true);
    tokio::time::timeout(Duration::from_secs(600), all)
        .await
        .context("not every event arrived in 600 s")?;
    let took = released.elapsed();
    println!(
        "{} events in {:.2} s: {:.0} deliveries/s to one endpoint ({} requests)",
        b.alerts,
        took.as_secs_f64(),
        b.alerts as f64 / took.as_secs_f64(),
        tally.requests.load(std::sync::atomic::Ordering::Relaxed)
    );
    drop((server, worker));
    receiver.abort();
    if let Some(url) = &b.redis {
        delete_keys(url, &prefix).await?;
    }
    if b.keep {
        println!("kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
