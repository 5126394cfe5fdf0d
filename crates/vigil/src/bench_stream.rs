//! `vigil bench stream`: starts `vigil serve` (this binary, SQLite in a temporary directory)
//! as a child process, connects many WebSocket clients to `GET /api/v1/stream`, creates
//! alerts over HTTP at a fixed rate, and reports the alert-to-frame latency (from sending
//! the `POST /api/v1/alerts` to each client receiving the frame) and the server's resident
//! memory per connected client (RSS after connecting minus before, over the clients).
//!
//! With `--database-url` and `--redis`, two replicas run on that PostgreSQL database and
//! Redis: alerts are created on replica A and the clients are connected to replica B, so
//! the latency includes the Redis fan-out (the memory figure is replica B's).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::bench::{login, ms, percentile};

#[derive(Args)]
pub struct StreamBench {
    /// Connected WebSocket clients.
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Alerts created per second (over HTTP).
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Seconds of alert creation.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Concurrent alert-creating requests at most.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Keep the temporary directory (database, server log) afterwards.
    #[arg(long)]
    keep: bool,
    /// Across replicas: an empty PostgreSQL database for two replicas (needs --redis).
    #[arg(long, requires = "redis")]
    database_url: Option<String>,
    /// Across replicas: the Redis they fan out through (needs --database-url).
    #[arg(long, requires = "database_url")]
    redis: Option<String>,
}

/// When each alert was sent (by its `alert_id` number): nanoseconds after `base`, 0 = not yet.
struct Sent {
    base: Instant,
    at: Vec<AtomicU64>,
}

impl Sent {
    fn mark(&self, i: u64) {
        let nanos = self.base.elapsed().as_nanos().max(1) as u64;
        if let Some(slot) = self.at.get(i as usize) {
            slot.store(nanos, Ordering::Release);
        }
    }

    fn get(&self, i: u64) -> Option<Instant> {
        let nanos = self.at.get(i as usize)?.load(Ordering::Acquire);
        (nanos > 0).then(|| self.base + Duration::from_nanos(nanos))
    }
}

/// What one client saw.
#[derive(Default)]
struct Seen {
    latencies: Vec<Duration>,
    resyncs: u64,
}

pub async fn run(b: StreamBench) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!(
        "vigil-bench-stream-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir)?;
    let password = vigil_server::auth::random_token();
    let prefix = format!("vigil-bench-{}", uuid::Uuid::new_v4().simple());
    let (server, receiver_side, what) = match (&b.database_url, &b.redis) {
        (Some(db), Some(redis)) => {
            let shared = crate::bench::shared_toml(db, redis, &prefix);
            let a = crate::bench::spawn_vigil(&dir, "a", "serve", &shared, &password).await?;
            let b = crate::bench::spawn_vigil(&dir, "b", "serve", &shared, &password).await?;
            (
                a,
                Some(b),
                "two replicas on PostgreSQL + Redis, clients on B, alerts to A",
            )
        }
        _ => (
            crate::bench::spawn_vigil(&dir, "server", "serve", "", &password).await?,
            None,
            "SQLite",
        ),
    };
    let clients_of = receiver_side.as_ref().unwrap_or(&server);
    let (port, pid) = (clients_of.port, clients_of.pid);
    let base = server.base();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let token = login(&http, &base, &password).await?;
    println!(
        "vigil bench stream: {} clients, {} alerts/s for {} s, server pid {pid} ({what})",
        b.clients, b.rate, b.secs
    );

    // A first client warms up the stream machinery, so the figure is per extra client.
    let warm = connect(port, &token).await?;
    drop(warm);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss_kib(pid)?;
    let total = b.rate * b.secs;
    let sent = Arc::new(Sent {
        base: Instant::now(),
        at: (0..total).map(|_| AtomicU64::new(0)).collect(),
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut clients = Vec::with_capacity(b.clients);
    for _ in 0..b.clients {
        let ws = connect(port, &token).await?;
        clients.push(tokio::spawn(client(
            ws,
            sent.clone(),
            total,
            stopped.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = rss_kib(pid)?;
    let per_client = (rss_after.saturating_sub(rss_before)) as f64 / b.clients as f64;
    println!(
        "server RSS {} KiB before, {} KiB with {} clients: {:.1} KiB per client",
        rss_before, rss_after, b.clients, per_client
    );

    // Alerts at a fixed rate.
    let limit = Arc::new(tokio::sync::Semaphore::new(b.concurrency));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / b.rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let create_started = Instant::now();
    let mut creates = Vec::with_capacity(total as usize);
    for i in 0..total {
        tick.tick().await;
        let permit = limit.clone().acquire_owned().await?;
        let (http, base, token, sent) = (http.clone(), base.clone(), token.clone(), sent.clone());
        creates.push(tokio::spawn(async move {
            let _permit = permit;
            sent.mark(i);
            http.post(format!("{base}/api/v1/alerts"))
                .bearer_auth(&token)
                .json(&serde_json::json!({
                    "alert_id": format!("SB-{i}"),
                    "title": format!("stream bench {i}"),
                    "severity": "high",
                    "description": "stream benchmark",
                }))
                .send()
                .await?
                .error_for_status()?;
            anyhow::Ok(())
        }));
    }
    let mut failed = 0u64;
    for c in creates {
        if !matches!(c.await, Ok(Ok(()))) {
            failed += 1;
        }
    }
    let create_secs = create_started.elapsed().as_secs_f64();
    println!(
        "created {} alerts in {:.1} s ({:.0}/s achieved), {} failed",
        total - failed,
        create_secs,
        (total - failed) as f64 / create_secs,
        failed
    );

    // The last frames get 10 s to arrive; then every client stops and reports.
    let grace = Instant::now() + Duration::from_secs(10);
    while Instant::now() < grace && clients.iter().any(|c| !c.is_finished()) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(true);
    let mut all = Vec::new();
    let mut resyncs = 0;
    let mut missing = 0u64;
    for c in clients {
        let seen = match c.await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => anyhow::bail!("a client failed: {e}"),
            Err(e) => anyhow::bail!("a client panicked: {e}"),
        };
        missing += (total - failed).saturating_sub(seen.latencies.len() as u64);
        resyncs += seen.resyncs;
        all.extend(seen.latencies);
    }
    all.sort();
    println!(
        "alert-to-frame latency over {} frames: p50 {}  p99 {}  max {}  (resyncs {}, frames missing {})",
        all.len(),
        ms(percentile(&all, 0.50)),
        ms(percentile(&all, 0.99)),
        ms(all.last().copied().unwrap_or_default()),
        resyncs,
        missing
    );
    drop((server, receiver_side));
    if let Some(url) = &b.redis {
        crate::bench_jobs::delete_keys(url, &prefix).await?;
    }
    if b.keep {
        println!("kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a stream with the bearer subprotocol and subscribes; returns after `ready`.
async fn connect(port: u16, token: &str) -> anyhow::Result<Ws> {
    let mut req = format!("ws://127.0.0.1:{port}/api/v1/stream").into_client_request()?;
    req.headers_mut().insert(
        "sec-websocket-protocol",
        format!("vigil.v1, vigil.bearer.{token}").parse()?,
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    ws.send(Message::text(r#"{"type":"subscribe"}"#)).await?;
    while let Some(m) = ws.next().await {
        if let Message::Text(t) = m?
            && t.as_str().contains(r#""type":"ready""#)
        {
            return Ok(ws);
        }
    }
    anyhow::bail!("stream ended before ready")
}

/// Reads frames until `expected` alert frames (or a close) and times each against its send.
async fn client(
    mut ws: Ws,
    sent: Arc<Sent>,
    expected: u64,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Seen> {
    let mut seen = Seen::default();
    while (seen.latencies.len() as u64) < expected {
        let m = tokio::select! {
            m = ws.next() => m,
            _ = stop.changed() => break,
        };
        let Some(m) = m else { break };
        let Message::Text(t) = m? else { continue };
        let now = Instant::now();
        let t = t.as_str();
        if t.starts_with(r#"{"type":"resync""#) {
            seen.resyncs += 1;
            continue;
        }
        // The alert id without parsing the whole frame (200 clients share two cores).
        let Some(n) = t
            .split_once(r#""alert_id":"SB-"#)
            .and_then(|(_, rest)| rest.split('"').next())
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if let Some(at) = sent.get(n) {
            seen.latencies.push(now.saturating_duration_since(at));
        }
    }
    Ok(seen)
}

/// Resident set size of a process, KiB (Linux `/proc/<pid>/status`).
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")
}
