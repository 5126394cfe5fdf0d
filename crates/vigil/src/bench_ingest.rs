//! `vigil bench ingest`: ingestion throughput through the whole server path — HTTP,
//! parsing of raw log lines, normalization, detection with the built-in rules, and storage
//! of every event (plus the alerts they raise) — against a throwaway SQLite database, or,
//! with `--url` and `--api-key`, against a `vigil serve` running in another process (so
//! that process's memory can be measured alone: `scripts/bench_ingest_memory.sh`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde_json::{Value, json};
use vigil_server::config::{Config, Secret};

#[derive(Args)]
pub struct IngestBench {
    /// Events to send.
    #[arg(long, default_value_t = 500_000)]
    events: u64,
    /// Events per batch (one HTTP request each).
    #[arg(long, default_value_t = 2_000)]
    batch: u64,
    /// Concurrent senders (each its own keep-alive connection).
    #[arg(long, alias = "connections", default_value_t = 4)]
    concurrency: u64,
    /// Send pre-normalized events instead of raw lines (skips parsing).
    #[arg(long)]
    normalized: bool,
    /// Database to use instead of a temporary SQLite file (it must be empty).
    #[arg(long)]
    database_url: Option<String>,
    /// Send to this running server (e.g. `http://127.0.0.1:8000`) instead of starting one;
    /// needs `--api-key`. Every event must then be acknowledged (202) instead of counted in
    /// the database.
    #[arg(long, requires = "api_key")]
    url: Option<String>,
    /// An API key with the ingest scope of the server at `--url`.
    #[arg(long, requires = "url")]
    api_key: Option<String>,
}

/// A realistic mix of auth.log / syslog / access-log lines; few of them match a rule. The
/// failed logins come from a few addresses, so brute-force correlations raise alerts.
fn line(i: u64) -> String {
    let ip = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
    match i % 10 {
        0 => format!(
            "Nov 23 10:00:{:02} web-{} sshd[{}]: Failed password for invalid user u{} from 203.0.113.{} port {} ssh2",
            i % 60,
            i % 50,
            1000 + i % 30000,
            i % 997,
            (i / 10) % 16,
            1024 + i % 60000
        ),
        1 => format!(
            "Nov 23 10:00:{:02} web-{} sshd[{}]: Accepted publickey for deploy from {ip} port {} ssh2",
            i % 60,
            i % 50,
            1000 + i % 30000,
            1024 + i % 60000
        ),
        2 => format!(
            "Nov 23 10:00:{:02} web-{} sudo:   deploy : TTY=pts/0 ; PWD=/srv ; USER=root ; COMMAND=/usr/bin/systemctl restart app",
            i % 60,
            i % 50
        ),
        3 | 4 => format!(
            "{ip} - - [23/Nov/2026:10:00:{:02} +0000] \"GET /api/items/{} HTTP/1.1\" 200 {} \"-\" \"Mozilla/5.0\"",
            i % 60,
            i,
            200 + i % 5000
        ),
        5 => format!(
            "Nov 23 10:00:{:02} web-{} kernel: [UFW BLOCK] IN=eth0 OUT= MAC=00 SRC={ip} DST=10.0.0.1 LEN=60 PROTO=TCP SPT={} DPT=22 WINDOW=64240 SYN",
            i % 60,
            i % 50,
            1024 + i % 60000
        ),
        6 => format!(
            "Nov 23 10:00:{:02} web-{} CRON[{}]: (root) CMD (run-parts /etc/cron.hourly)",
            i % 60,
            i % 50,
            1000 + i % 30000
        ),
        _ => format!(
            "Nov 23 10:00:{:02} web-{} systemd[1]: Started Session {} of user deploy.",
            i % 60,
            i % 50,
            i
        ),
    }
}

fn event(i: u64, normalized: bool) -> Value {
    if normalized {
        json!({"@timestamp": vigil_core::event::format_timestamp(vigil_core::now()),
               "event": {"dataset": "syslog"}, "host": {"name": format!("web-{}", i % 50)},
               "process": {"name": "systemd"}, "message": format!("Started Session {i} of user deploy.")})
    } else {
        json!({"message": line(i), "log": {"file": {"path": "/var/log/syslog"}}})
    }
}

pub async fn run(b: IngestBench) -> anyhow::Result<()> {
    if let (Some(url), Some(key)) = (&b.url, &b.api_key) {
        let client = reqwest::Client::new();
        let started = Instant::now();
        let (accepted, retries) = flood(&b, &client, url.trim_end_matches('/'), key).await?;
        let secs = started.elapsed().as_secs_f64();
        anyhow::ensure!(
            accepted == b.events,
            "{accepted} events acknowledged, {} sent",
            b.events
        );
        println!(
            "sent {} events in batches of {} over {} connections to {url} in {secs:.2} s: \
             {:.0} events/s, all acknowledged, {retries} overloaded (503) retries",
            b.events,
            b.batch,
            b.concurrency,
            b.events as f64 / secs
        );
        return Ok(());
    }
    let dir = std::env::temp_dir().join(format!("vigil-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let mut cfg = Config {
        data_dir: dir.clone(),
        ..Default::default()
    };
    cfg.server.port = 0;
    cfg.rate_limit.enabled = false;
    cfg.log.level = "warn".into();
    cfg.ingest.local_agent = false;
    cfg.server.body_limit_bytes = 64 * 1024 * 1024;
    if let Some(u) = &b.database_url {
        cfg.database.url = Secret::new(u.clone());
    }
    println!(
        "vigil bench ingest: database {}",
        vigil_store::redact_url(&cfg.database_url())
    );
    let app = vigil_server::Application::build(
        cfg,
        Some(Secret::new(vigil_server::auth::random_token())),
    )
    .await?;
    let store = app.store();
    let org = store
        .get_org_by_name("default")
        .await?
        .context("no default org")?;
    let (key, _) = vigil_server::api::keys::issue_api_key(
        &store,
        org.id,
        "bench",
        vec![vigil_core::ApiScope::Ingest],
        "bench",
    )
    .await
    .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stop_rx.await;
    }));
    let client = reqwest::Client::new();
    let started = Instant::now();
    let (_, retries) = flood(&b, &client, &base, &key).await?;
    let secs = started.elapsed().as_secs_f64();
    // Every event sent must be stored, once.
    let stored = store.event_store().count_events(org.id).await?;
    anyhow::ensure!(
        stored == b.events,
        "{stored} events stored, {} sent",
        b.events
    );
    let alerts = store
        .list_alerts(
            org.id,
            &vigil_core::AlertFilter {
                limit: 1,
                exact_total: true,
                ..Default::default()
            },
        )
        .await?;
    println!(
        "ingested {} events ({}) in {:.2} s: {:.0} events/s through HTTP + {}detection + storage; \
         {stored} stored, {} alerts raised, {} overloaded (503) retries",
        b.events,
        if b.normalized {
            "pre-normalized"
        } else {
            "raw log lines"
        },
        secs,
        b.events as f64 / secs,
        if b.normalized { "" } else { "parsing + " },
        alerts.total,
        retries,
    );
    let _ = stop_tx.send(());
    let _ = server.await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Sends `b.events` events in batches over `b.concurrency` connections, retrying each
/// batch refused with 503 until it is acknowledged; returns (events acknowledged, 503s).
async fn flood(
    b: &IngestBench,
    client: &reqwest::Client,
    base: &str,
    key: &str,
) -> anyhow::Result<(u64, u64)> {
    // Pre-build the request bodies so the clock measures the server, not the client.
    let batches: Vec<Vec<u8>> = (0..b.events.div_ceil(b.batch))
        .map(|k| {
            let lo = k * b.batch;
            let hi = (lo + b.batch).min(b.events);
            let events: Vec<Value> = (lo..hi).map(|i| event(i, b.normalized)).collect();
            serde_json::to_vec(&json!({"batch_id": uuid::Uuid::now_v7(), "events": events}))
                .unwrap_or_default()
        })
        .collect();
    let sizes: Vec<u64> = (0..batches.len() as u64)
        .map(|k| (b.events - k * b.batch).min(b.batch))
        .collect();
    let batches: Arc<Vec<(Vec<u8>, u64)>> = Arc::new(batches.into_iter().zip(sizes).collect());
    let next = Arc::new(AtomicU64::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let pb = crate::bench::bar(b.events, "events");
    let mut tasks = Vec::new();
    for _ in 0..b.concurrency {
        let (client, url, key, batches, next, retries, accepted, pb) = (
            client.clone(),
            format!("{base}/api/v1/ingest/events"),
            key.to_owned(),
            batches.clone(),
            next.clone(),
            retries.clone(),
            accepted.clone(),
            pb.clone(),
        );
        let per = b.batch;
        tasks.push(tokio::spawn(async move {
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some((body, events)) = batches.get(k) else {
                    return Ok::<_, anyhow::Error>(());
                };
                loop {
                    let r = client
                        .post(&url)
                        .bearer_auth(&key)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await?;
                    if r.status().as_u16() == 503 {
                        retries.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                    let receipt: Value = r.error_for_status()?.json().await?;
                    // A batch answered 503 after its wait ran out may still have been
                    // stored: its retry is acknowledged as a duplicate.
                    let n = if receipt["duplicate"] == true {
                        *events
                    } else {
                        receipt["accepted"].as_u64().unwrap_or(0)
                    };
                    accepted.fetch_add(n, Ordering::Relaxed);
                    break;
                }
                pb.inc(per);
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    pb.finish_and_clear();
    Ok((
        accepted.load(Ordering::Relaxed),
        retries.load(Ordering::Relaxed),
    ))
}
