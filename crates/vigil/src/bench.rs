//! `vigil bench api`: seeds a throwaway database (a SQLite file, or with `--postgres` a
//! fresh PostgreSQL database) with many alerts, starts the real server on loopback and
//! measures, over HTTP, the latency of filtered paginated listings and the throughput of
//! alert creation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};
use vigil_core::{AlertInput, AlertSource, NewAlert, Severity};
use vigil_server::config::{Config, Secret};

#[derive(Subcommand)]
pub enum BenchCmd {
    /// Alert API latency and throughput over HTTP against SQLite (or --postgres, --database-url).
    Api(ApiBench),
    /// Ingestion throughput: HTTP + parsing + detection + storage, built-in rules, SQLite.
    Ingest(crate::bench_ingest::IngestBench),
    /// Live stream: alert-to-frame latency with many WebSocket clients, memory per client.
    Stream(crate::bench_stream::StreamBench),
    /// Job queue throughput with a no-op handler: in-process, and Redis with --redis.
    Jobs(crate::bench_jobs::JobsBench),
    /// Webhook throughput to one endpoint with a fast receiver (deliveries/s).
    Webhooks(crate::bench_jobs::WebhooksBench),
}

#[derive(Args)]
pub struct ApiBench {
    /// Alerts to seed before measuring.
    #[arg(long, default_value_t = 1_000_000)]
    alerts: u64,
    /// Filtered GET /alerts requests to time.
    #[arg(long, default_value_t = 2_000)]
    list_requests: u64,
    /// Alerts to create over HTTP for the throughput figure.
    #[arg(long, default_value_t = 50_000)]
    creates: u64,
    /// Concurrent HTTP clients for creation.
    #[arg(long, default_value_t = 32)]
    concurrency: u64,
    /// Database to use instead of a temporary SQLite file (it must be empty).
    #[arg(long, conflicts_with = "postgres")]
    database_url: Option<String>,
    /// Run on PostgreSQL: a fresh database is created on the server this URL reaches
    /// (default `postgres://postgres@127.0.0.1:5432/postgres`) and dropped afterwards.
    #[arg(long, value_name = "ADMIN_URL", num_args = 0..=1,
          default_missing_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: Option<String>,
    /// Keep the temporary directory or PostgreSQL database afterwards.
    #[arg(long)]
    keep: bool,
}

pub async fn run(cmd: BenchCmd) -> anyhow::Result<()> {
    match cmd {
        BenchCmd::Api(b) => api(b).await,
        BenchCmd::Ingest(b) => crate::bench_ingest::run(b).await,
        BenchCmd::Stream(b) => crate::bench_stream::run(b).await,
        BenchCmd::Jobs(b) => crate::bench_jobs::run(b).await,
        BenchCmd::Webhooks(b) => crate::bench_jobs::webhooks(b).await,
    }
}

pub fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(&format!(
            "{what:>10} [{{bar:40}}] {{pos}}/{{len}} ({{per_sec}}, eta {{eta}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb
}

const TAGS: &[&str] = &[
    "ssh", "vip", "dmz", "prod", "lab", "windows", "linux", "beacon",
];
const WORDS: &[&str] = &[
    "SSH brute force",
    "Port scan",
    "Malware beacon",
    "Suspicious PowerShell",
    "DNS tunnelling",
    "Privilege escalation",
];

/// Alert `i` of `n`: timestamps spread over the last 30 days in arrival order (with up to a
/// minute of jitter), as a running system records them.
fn synthetic(
    i: u64,
    n: u64,
    rng: &mut rand::rngs::StdRng,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<NewAlert> {
    let span = 30 * 86_400_000_000i64;
    let step = span / n.max(1) as i64;
    let at =
        now - chrono::Duration::microseconds(span - step * i as i64 + rng.gen_range(0..60_000_000));
    let sev = Severity::ALL[rng.gen_range(0..4)];
    let t = rng.gen_range(0..WORDS.len());
    Ok(NewAlert::parse(
        AlertInput {
            alert_id: Some(format!("BENCH-{i}")),
            title: format!("{} on host-{}", WORDS[t], rng.gen_range(0..500)),
            description: format!("synthetic alert {i}"),
            severity: sev,
            source: Some(AlertSource::ALL[rng.gen_range(0..5)]),
            event_type: Some("bench".into()),
            timestamp: Some(at),
            attack_technique_id: Some(
                [
                    "T1110.001",
                    "T1046",
                    "T1071.001",
                    "T1059.001",
                    "T1068",
                    "T1071.004",
                ][t]
                    .into(),
            ),
            confidence_score: Some(rng.gen_range(0.0..1.0)),
            agent_id: Some(format!("agent-{}", rng.gen_range(0..200))),
            tags: vec![TAGS[rng.gen_range(0..TAGS.len())].into()],
            ..Default::default()
        },
        now,
    )?)
}

/// Logs in as `admin` and returns the access token.
pub(crate) async fn login(
    client: &reqwest::Client,
    base: &str,
    password: &str,
) -> anyhow::Result<String> {
    let login: serde_json::Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "admin", "password": password}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(login["access_token"]
        .as_str()
        .context("no access token")?
        .to_string())
}

/// A `vigil serve` or `vigil worker` child of this binary for a benchmark, killed on drop.
pub(crate) struct Child {
    pub _process: tokio::process::Child,
    pub port: u16,
    pub pid: u32,
}

impl Child {
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Starts `vigil <command>` (`serve` or `worker`) with its data, config and log in
/// `dir/<name>*`, rate limits, the local agent and ML off, `extra` TOML appended, and waits
/// until it answers (`/ready`; a worker's `/health`).
pub(crate) async fn spawn_vigil(
    dir: &std::path::Path,
    name: &str,
    command: &str,
    extra: &str,
    password: &str,
) -> anyhow::Result<Child> {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let section = if command == "worker" {
        "worker"
    } else {
        "server"
    };
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[{section}]\nport = {port}\n[rate_limit]\nenabled = false\n\
             [ingest]\nlocal_agent = false\n[ml]\nenabled = false\n[log]\nlevel = \"warn\"\n{extra}",
            dir.join(name).display().to_string()
        ),
    )?;
    let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
    let process = tokio::process::Command::new(std::env::current_exe()?)
        .arg("--config")
        .arg(&config)
        .arg(command)
        .env("VIGIL_ADMIN_PASSWORD", password)
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start vigil {command}"))?;
    let pid = process.id().context("child pid")?;
    let child = Child {
        _process: process,
        port,
        pid,
    };
    let ready = if command == "worker" {
        "health"
    } else {
        "ready"
    };
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{}/{ready}", child.base())).send().await
            && r.status().is_success()
        {
            return Ok(child);
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "vigil {command} ({name}) not ready in 60 s: see {}",
            dir.join(format!("{name}.log")).display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The TOML that puts benchmark processes on one PostgreSQL database and Redis (a key
/// prefix of their own) with one JWT secret.
pub(crate) fn shared_toml(database_url: &str, redis_url: &str, prefix: &str) -> String {
    format!(
        "[database]\nurl = {database_url:?}\n[redis]\nurl = {redis_url:?}\nkey_prefix = {prefix:?}\n\
         [auth]\njwt_secret = {:?}\n",
        vigil_server::auth::random_token()
    )
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

async fn api(b: ApiBench) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("vigil-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let mut cfg = Config {
        data_dir: dir.clone(),
        ..Default::default()
    };
    cfg.server.port = 0;
    cfg.rate_limit.enabled = false;
    cfg.log.level = "warn".into();
    if let Some(u) = &b.database_url {
        cfg.database.url = Secret::new(u.clone());
    }
    // (admin URL, database name) of a database this run made.
    let mut made = None;
    if let Some(admin) = &b.postgres {
        let name = format!("vigil_bench_{}", uuid::Uuid::new_v4().simple());
        let url = vigil_store::PgStore::create_database(admin, &name)
            .await
            .with_context(|| {
                format!(
                    "cannot create a database on {}",
                    vigil_store::redact_url(admin)
                )
            })?;
        cfg.database.url = Secret::new(url);
        made = Some((admin.clone(), name));
    }
    let admin_pw = vigil_server::auth::random_token();
    println!(
        "vigil bench api: database {}",
        vigil_store::redact_url(&cfg.database_url())
    );

    // Seed.
    let store = vigil_store::connect(&cfg.database_url(), cfg.database.max_connections).await?;
    store.migrate().await?;
    let org = store
        .create_org("default")
        .await
        .context("the bench database must be empty")?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let now = vigil_core::now();
    let pb = bar(b.alerts, "seeding");
    let started = Instant::now();
    let mut i = 0;
    while i < b.alerts {
        let n = (b.alerts - i).min(20_000);
        let batch = (i..i + n)
            .map(|k| synthetic(k, b.alerts, &mut rng, now))
            .collect::<anyhow::Result<Vec<_>>>()?;
        store.insert_alerts_bulk(org.id, batch).await?;
        i += n;
        pb.set_position(i);
    }
    store.analyze().await?;
    pb.finish_and_clear();
    let seed_secs = started.elapsed().as_secs_f64();
    println!(
        "seeded {} alerts in {:.1} s ({:.0} alerts/s, bulk insert)",
        b.alerts,
        seed_secs,
        b.alerts as f64 / seed_secs.max(1e-9)
    );
    store.close().await;

    // Serve.
    let app = vigil_server::Application::build(cfg, Some(Secret::new(admin_pw.clone()))).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stop_rx.await;
    }));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let token = login(&client, &base, &admin_pw).await?;

    // Latency of filtered, paginated listings.
    type QueryGen = Box<dyn Fn(&mut rand::rngs::StdRng) -> String>;
    let queries: Vec<(&str, QueryGen)> = vec![
        (
            "status+severity",
            Box::new(|r| {
                format!(
                    "status=open&severity=high,critical&limit=50&skip={}",
                    r.gen_range(0..20) * 50
                )
            }),
        ),
        (
            "severity sort",
            Box::new(|r| {
                format!(
                    "severity=critical&sort=-severity&limit=50&skip={}",
                    r.gen_range(0..10) * 50
                )
            }),
        ),
        (
            "agent",
            Box::new(|r| format!("agent_id=agent-{}&limit=50", r.gen_range(0..200))),
        ),
        (
            "technique",
            Box::new(|_| "technique=T1110&limit=50".to_string()),
        ),
        (
            "tag",
            Box::new(|r| format!("tag={}&limit=50", TAGS[r.gen_range(0..TAGS.len())])),
        ),
        (
            "time range",
            Box::new(|r| {
                let end = chrono::Utc::now() - chrono::Duration::days(r.gen_range(0..29));
                let start = end - chrono::Duration::hours(6);
                format!(
                    "since={}&until={}&limit=50",
                    start.format("%Y-%m-%dT%H:%M:%SZ"),
                    end.format("%Y-%m-%dT%H:%M:%SZ")
                )
            }),
        ),
        (
            "text search",
            Box::new(|_| "q=beacon&severity=critical&limit=50".to_string()),
        ),
        ("first page", Box::new(|_| "limit=50".to_string())),
    ];
    let mut per_kind: Vec<Vec<Duration>> = vec![Vec::new(); queries.len()];
    let mut all = Vec::with_capacity(b.list_requests as usize);
    let pb = bar(b.list_requests, "listing");
    // Warm up caches so the figures describe a running server, not a cold start.
    for (_, q) in &queries {
        client
            .get(format!("{base}/api/v1/alerts?{}", q(&mut rng)))
            .bearer_auth(&token)
            .send()
            .await?
            .error_for_status()?;
    }
    for n in 0..b.list_requests {
        let k = (n as usize) % queries.len();
        let url = format!("{base}/api/v1/alerts?{}", (queries[k].1)(&mut rng));
        let t = Instant::now();
        let resp = client.get(&url).bearer_auth(&token).send().await?;
        let status = resp.status();
        let _ = resp.bytes().await?;
        let d = t.elapsed();
        anyhow::ensure!(status.is_success(), "GET {url} answered {status}");
        per_kind[k].push(d);
        all.push(d);
        pb.inc(1);
    }
    pb.finish_and_clear();
    all.sort();
    println!(
        "\nGET /api/v1/alerts with {} alerts ({} requests, one client):",
        b.alerts, b.list_requests
    );
    println!(
        "  {:<16} {:>10} {:>10} {:>10}",
        "query", "p50", "p99", "max"
    );
    for (k, (name, _)) in queries.iter().enumerate() {
        per_kind[k].sort();
        println!(
            "  {:<16} {:>10} {:>10} {:>10}",
            name,
            ms(percentile(&per_kind[k], 0.5)),
            ms(percentile(&per_kind[k], 0.99)),
            ms(*per_kind[k].last().unwrap_or(&Duration::ZERO))
        );
    }
    println!(
        "  {:<16} {:>10} {:>10} {:>10}",
        "ALL",
        ms(percentile(&all, 0.5)),
        ms(percentile(&all, 0.99)),
        ms(*all.last().unwrap_or(&Duration::ZERO))
    );

    // Create throughput.
    let done = Arc::new(AtomicU64::new(0));
    let pb = bar(b.creates, "creating");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..b.concurrency {
        let (client, base, token, done, pb) = (
            client.clone(),
            base.clone(),
            token.clone(),
            done.clone(),
            pb.clone(),
        );
        let total = b.creates;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let n = done.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                let body = serde_json::json!({
                    "title": format!("HTTP created alert {n}"),
                    "severity": "high",
                    "source": "agent",
                    "description": "created by vigil bench",
                    "attack_technique_id": "T1046",
                    "agent_id": format!("agent-{w}"),
                    "tags": ["bench"],
                    "observables": [{"type": "ip", "value": "127.0.0.1"}],
                });
                let t = Instant::now();
                let r = client
                    .post(format!("{base}/api/v1/alerts"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await?;
                let s = r.status();
                let _ = r.bytes().await?;
                latencies.push(t.elapsed());
                anyhow::ensure!(s.as_u16() == 201, "POST /alerts answered {s}");
                pb.inc(1);
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let secs = started.elapsed().as_secs_f64();
    pb.finish_and_clear();
    lat.sort();
    println!(
        "\nPOST /api/v1/alerts: {} alerts in {:.2} s = {:.0} alerts/s ({} concurrent clients; latency p50 {}, p99 {})",
        b.creates,
        secs,
        b.creates as f64 / secs.max(1e-9),
        b.concurrency,
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99))
    );

    let _ = stop_tx.send(());
    server.await??;
    if b.keep {
        println!("kept {}", dir.display());
        if let Some((_, name)) = &made {
            println!("kept PostgreSQL database {name}");
        }
    } else {
        let _ = std::fs::remove_dir_all(&dir);
        if let Some((admin, name)) = &made {
            vigil_store::PgStore::drop_database(admin, name).await?;
        }
    }
    Ok(())
}
