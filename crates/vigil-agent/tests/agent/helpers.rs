//! A fake Vigil server (axum on 127.0.0.1:0) implementing the agent contract, and helpers.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value as Json, json};
use tokio::sync::oneshot;
use uuid::Uuid;
use vigil_agent::AgentConfig;
use vigil_core::event::{Heartbeat, IngestBatch, IngestReceipt, RegisterAgentRequest};

pub const TOKEN: &str = "enroll-ok";

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Normal,
    /// 503 without Retry-After.
    Unavailable,
    /// 429 with Retry-After: 1.
    TooMany,
    /// 400 with a JSON error: the batch is refused for good.
    BadRequest,
}

#[derive(Default)]
pub struct Recorded {
    pub registrations: Vec<RegisterAgentRequest>,
    pub credentials: HashSet<String>,
    pub revoked: bool,
    pub mode: Option<Mode>,
    /// Batches with more events get 413.
    pub max_events: Option<usize>,
    pub batches: HashMap<Uuid, Vec<Json>>,
    pub batch_order: Vec<Uuid>,
    pub duplicates: usize,
    pub ingest_requests: usize,
    pub unauthorized_ingests: usize,
    pub too_large: usize,
    pub heartbeats: Vec<Heartbeat>,
}

#[derive(Clone, Default)]
pub struct Fake(pub Arc<Mutex<Recorded>>);

impl Fake {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.0.lock().unwrap()
    }

    pub fn set_mode(&self, m: Mode) {
        self.lock().mode = Some(m);
    }

    /// Every stored event, in arrival order of their batches.
    pub fn events(&self) -> Vec<Json> {
        let r = self.lock();
        r.batch_order
            .iter()
            .flat_map(|id| r.batches[id].iter().cloned())
            .collect()
    }

    /// Messages of stored events from log tailing (no event.dataset), in order.
    pub fn lines(&self) -> Vec<String> {
        self.events()
            .iter()
            .filter(|e| e.get("log").is_some())
            .filter_map(|e| e["message"].as_str().map(String::from))
            .collect()
    }
}

fn bearer(h: &HeaderMap) -> Option<String> {
    h.get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(String::from)
}

async fn register(State(f): State<Fake>, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<RegisterAgentRequest>(&body) else {
        return (StatusCode::BAD_REQUEST, "bad json").into_response();
    };
    if req.enrollment_token != TOKEN {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"code": "invalid_token", "message": "unknown enrollment token"})),
        )
            .into_response();
    }
    let mut r = f.lock();
    let credential = format!("cred-{}", Uuid::new_v4());
    r.credentials.insert(credential.clone());
    r.registrations.push(req);
    (
        StatusCode::CREATED,
        axum::Json(
            json!({"agent_id": Uuid::new_v4(), "org_id": Uuid::new_v4(), "credential": credential}),
        ),
    )
        .into_response()
}

fn authorized(f: &Fake, h: &HeaderMap) -> bool {
    let r = f.lock();
    !r.revoked && bearer(h).is_some_and(|c| r.credentials.contains(&c))
}

async fn ingest(State(f): State<Fake>, headers: HeaderMap, body: Bytes) -> Response {
    f.lock().ingest_requests += 1;
    if !authorized(&f, &headers) {
        f.lock().unauthorized_ingests += 1;
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"code": "invalid_credential", "message": "revoked"})),
        )
            .into_response();
    }
    match f.lock().mode.unwrap_or(Mode::Normal) {
        Mode::Unavailable => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
        Mode::TooMany => {
            return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")]).into_response();
        }
        Mode::BadRequest => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"code": "invalid_batch", "message": "refused"})),
            )
                .into_response();
        }
        Mode::Normal => {}
    }
    let gz = headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"gzip");
    assert!(gz, "agent must gzip its batches");
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_end(&mut json)
        .expect("valid gzip");
    let batch: IngestBatch = serde_json::from_slice(&json).expect("valid IngestBatch");
    let mut r = f.lock();
    if r.max_events.is_some_and(|m| batch.events.len() > m) {
        r.too_large += 1;
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    let n = batch.events.len();
    let duplicate = r.batches.contains_key(&batch.batch_id);
    if duplicate {
        r.duplicates += 1;
    } else {
        r.batch_order.push(batch.batch_id);
        r.batches.insert(batch.batch_id, batch.events);
    }
    let receipt = IngestReceipt {
        batch_id: batch.batch_id,
        accepted: if duplicate { 0 } else { n },
        rejected: 0,
        duplicate,
        errors: vec![],
    };
    (StatusCode::ACCEPTED, axum::Json(receipt)).into_response()
}

async fn heartbeat(State(f): State<Fake>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&f, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let hb: Heartbeat = serde_json::from_slice(&body).expect("valid heartbeat");
    f.lock().heartbeats.push(hb);
    StatusCode::NO_CONTENT.into_response()
}

/// A running fake server; `stop` and `restart` keep the same port and state.
pub struct FakeServer {
    pub fake: Fake,
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl FakeServer {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), Fake::default()).await
    }

    async fn start_on(addr: SocketAddr, fake: Fake) -> Self {
        let app = Router::new()
            .route("/api/v1/agents/register-agent", post(register))
            .route("/api/v1/ingest/events", post(ingest))
            .route("/api/v1/agents/heartbeat", post(heartbeat))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        FakeServer {
            fake,
            addr,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }

    pub async fn restart(&mut self) {
        self.stop().await;
        let fresh = Self::start_on(self.addr, self.fake.clone()).await;
        *self = fresh;
    }
}

/// A temporary directory removed on drop.
pub struct TestDir(pub PathBuf);

impl TestDir {
    pub fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("vigil-agent-{name}-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&p).unwrap();
        TestDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Logs to the test output when `VIGIL_AGENT_LOG` is set (e.g. `debug`).
pub fn init_tracing() {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("VIGIL_AGENT_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
}

/// A fast configuration: only tailing of `logs`, short intervals.
pub fn config(server: &FakeServer, state: &Path, logs: &[&Path]) -> AgentConfig {
    init_tracing();
    let mut c = AgentConfig {
        server_url: server.url(),
        enrollment_token: vigil_agent::Secret::new(TOKEN),
        state_dir: Some(state.to_owned()),
        hostname: Some("test-host".into()),
        heartbeat_interval_secs: 1,
        ..AgentConfig::default()
    };
    c.metrics.enabled = false;
    c.processes.enabled = false;
    c.logs.paths = logs
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    c.logs.start_at_end = false;
    c.logs.poll_interval_ms = 30;
    c.logs.glob_interval_secs = 1;
    c.shipper.flush_interval_ms = 50;
    c.shipper.retry_initial_ms = 20;
    c.shipper.retry_max_ms = 200;
    c.shipper.request_timeout_secs = 5;
    c
}

/// Waits until `cond` holds, polling; panics with `what` after `secs`.
pub async fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {secs}s waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub fn append(path: &Path, lines: impl IntoIterator<Item = String>) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
    f.sync_all().unwrap();
}

pub fn numbered(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix} line {i:05}")).collect()
}

/// Asserts every expected line arrived exactly once (and nothing else from these files).
pub fn assert_exactly_once(got: &[String], expected: &[String]) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for g in got {
        *counts.entry(g.as_str()).or_default() += 1;
    }
    let dups: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "lines delivered more than once: {dups:?}");
    let missing: Vec<_> = expected
        .iter()
        .filter(|e| !counts.contains_key(e.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} lines missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(got.len(), expected.len(), "unexpected extra lines");
}
