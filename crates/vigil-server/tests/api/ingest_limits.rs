//! Ingest limits: the memory budget in bytes (503 `overloaded` beyond it, nothing
//! acknowledged lost, its use in `/metrics`), and rate limits per credential rather than
//! per client IP that never cost a keep-alive connection.

use std::io::Write;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;
use vigil_core::ApiScope;
use vigil_store::Backend;

use crate::helpers::{OneConnection, Resp, TestApp, both, metric, spawn_app_with};

both!(@backend
    ingest_from_one_ip_over_four_connections_is_not_rate_limited,
    a_credential_over_its_rate_gets_429_and_another_does_not,
    a_429_leaves_the_keep_alive_connection_usable,
    the_memory_budget_refuses_with_503_and_loses_nothing,
);

const JSON: &str = "application/json";

/// An API key with the ingest scope, made through the store (no HTTP request, so it costs
/// nothing from the per-IP limits); returns (key, org id).
async fn ingest_key(app: &TestApp, name: &str) -> (String, Uuid) {
    let org = app.store.get_org_by_name("default").await.unwrap().unwrap();
    let (key, _) = vigil_server::api::keys::issue_api_key(
        &app.store,
        org.id,
        name,
        vec![ApiScope::Ingest],
        "test",
    )
    .await
    .unwrap();
    (key, org.id)
}

/// A batch of `n` events whose messages are `pad` bytes long.
fn batch(n: usize, pad: usize) -> Vec<u8> {
    let events: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "@timestamp": vigil_core::event::format_timestamp(vigil_core::now()),
                "event": {"dataset": "app"},
                "host": {"name": "h"},
                "message": format!("event {i} {}", "x".repeat(pad)),
            })
        })
        .collect();
    serde_json::to_vec(&json!({"batch_id": Uuid::now_v7(), "events": events})).unwrap()
}

async fn stored(app: &TestApp, org: Uuid) -> u64 {
    app.store.event_store().count_events(org).await.unwrap()
}

#[track_caller]
fn assert_429(r: &Resp) {
    r.err(429, "rate_limited");
    let wait: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("whole seconds");
    assert!(wait >= 1, "Retry-After {wait}");
}

#[track_caller]
fn assert_overloaded(r: &Resp) {
    r.err(503, "overloaded");
    assert_eq!(r.header("retry-after"), Some("1"), "{}", r.text);
}

/// Polls `/metrics` until `name` satisfies `ok` (other test servers in this process share
/// the recorder, so a scrape can briefly show theirs).
async fn wait_for_metric(app: &TestApp, name: &str, ok: impl Fn(f64) -> bool) -> f64 {
    let mut last = None;
    for _ in 0..200 {
        last = metric(app, name).await;
        if last.is_some_and(&ok) {
            return last.unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("{name} never reached the expected value; last {last:?}");
}

/// 500 batches from one address over 4 keep-alive connections, with an agent credential
/// and an API key, under the default `[ingest]` limits: every one is stored. (The per-IP
/// limit of the interactive API refused them once its burst of 200 was spent. Its refill
/// is lowered here from 100/s to 1/s so that the outcome does not depend on how fast this
/// machine sends: a slow run refilled the shared bucket as fast as it was spent.)
async fn ingest_from_one_ip_over_four_connections_is_not_rate_limited(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| {
        c.rate_limit.enabled = true;
        c.rate_limit.requests_per_second = 1.0;
    })
    .await
    else {
        return;
    };
    let admin = app.admin().await.access;
    let (_, agent) = crate::ingest::enrolled_agent(&app, &admin, "nat-host").await;
    let (key, org) = ingest_key(&app, "shipper").await;
    let app = Arc::new(app);
    let mut tasks = Vec::new();
    for c in 0..4 {
        let app = app.clone();
        let credential = if c % 2 == 0 {
            agent.clone()
        } else {
            key.clone()
        };
        tasks.push(tokio::spawn(async move {
            let mut conn = OneConnection::open(&app).await;
            for i in 0..125 {
                let r = conn
                    .post("/api/v1/ingest/events", &credential, JSON, batch(2, 10))
                    .await
                    .unwrap_or_else(|e| panic!("connection {c}, batch {i}: {e}"));
                assert_eq!(r.status, 202, "connection {c}, batch {i}: {}", r.text);
            }
            let hb = json!({"hostname": "nat-host"}).to_string().into_bytes();
            if c % 2 == 0 {
                let r = conn
                    .post("/api/v1/agents/heartbeat", &credential, JSON, hb)
                    .await
                    .unwrap();
                assert_eq!(r.status, 204, "{}", r.text);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(stored(&app, org).await, 1000);
}

/// Each credential has its own budget: one that spends it is refused (429 JSON with
/// Retry-After, on ingest, heartbeats and Loki pushes alike) while another credential on
/// the same address and the same connection goes on.
async fn a_credential_over_its_rate_gets_429_and_another_does_not(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| {
        c.rate_limit.enabled = true;
        c.ingest.rate_limit_per_credential = 0.01;
        c.ingest.rate_limit_burst = 3;
    })
    .await
    else {
        return;
    };
    let admin = app.admin().await.access;
    let (_, agent) = crate::ingest::enrolled_agent(&app, &admin, "busy").await;
    let (key, org) = ingest_key(&app, "other").await;
    let mut conn = OneConnection::open(&app).await;
    for _ in 0..3 {
        let r = conn
            .post("/api/v1/ingest/events", &agent, JSON, batch(1, 10))
            .await
            .unwrap();
        r.ok(202);
    }
    let r = conn
        .post("/api/v1/ingest/events", &agent, JSON, batch(1, 10))
        .await
        .unwrap();
    assert_429(&r);
    let hb = json!({"hostname": "busy"}).to_string().into_bytes();
    assert_429(
        &conn
            .post("/api/v1/agents/heartbeat", &agent, JSON, hb)
            .await
            .unwrap(),
    );
    // The other credential, same address, same connection: unaffected.
    conn.post("/api/v1/ingest/events", &key, JSON, batch(1, 10))
        .await
        .unwrap()
        .ok(202);
    let push = json!({"streams": [{"stream": {"job": "app"},
        "values": [[(vigil_core::now().timestamp_nanos_opt().unwrap()).to_string(), "a line"]]}]});
    let r = conn
        .post(
            "/loki/api/v1/push",
            &key,
            JSON,
            push.to_string().into_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 204, "{}", r.text);
    conn.post("/api/v1/ingest/events", &key, JSON, batch(1, 10))
        .await
        .unwrap()
        .ok(202);
    assert_429(
        &conn
            .post(
                "/loki/api/v1/push",
                &key,
                JSON,
                push.to_string().into_bytes(),
            )
            .await
            .unwrap(),
    );
    assert_429(
        &conn
            .post("/api/v1/ingest/events", &agent, JSON, batch(1, 10))
            .await
            .unwrap(),
    );
    assert_eq!(stored(&app, org).await, 3 + 1 + 1 + 1);
}

/// A 429 answered before the body was read used to make the server close the connection
/// (and a client still sending a large body saw it reset). Refused requests are read to
/// their end first: one connection serves every request below.
async fn a_429_leaves_the_keep_alive_connection_usable(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| {
        c.rate_limit.enabled = true;
        c.rate_limit.requests_per_second = 0.01;
        c.rate_limit.burst = 1;
        c.ingest.rate_limit_per_credential = 0.01;
        c.ingest.rate_limit_burst = 1;
    })
    .await
    else {
        return;
    };
    let (key, org) = ingest_key(&app, "k").await;
    // Spend this address's interactive budget on another connection.
    app.login("admin", "wrong-password-1").await;
    let mut conn = OneConnection::open(&app).await;
    let big = json!({"title": "t", "severity": "low", "description": "x".repeat(1536 * 1024)})
        .to_string()
        .into_bytes();
    for i in 0..3 {
        let r = conn
            .post("/api/v1/alerts", "not-a-token", JSON, big.clone())
            .await
            .unwrap_or_else(|e| panic!("interactive request {i}: {e}"));
        assert_429(&r);
    }
    conn.post("/api/v1/ingest/events", &key, JSON, batch(3, 10))
        .await
        .unwrap()
        .ok(202);
    for i in 0..3 {
        let r = conn
            .post("/api/v1/ingest/events", &key, JSON, batch(2000, 1000))
            .await
            .unwrap_or_else(|e| panic!("ingest request {i}: {e}"));
        assert_429(&r);
    }
    assert_eq!(stored(&app, org).await, 3);
}

/// Writes the head of an ingest request announcing `len` body bytes and the first `first`
/// of them, holding the rest back.
async fn held_request(
    app: &TestApp,
    key: &str,
    body: &[u8],
    first: usize,
) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    let head = format!(
        "POST /api/v1/ingest/events HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {key}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body[..first]).await.unwrap();
    s
}

/// With a 4 MiB budget: a request announcing 3 MiB holds 3 MiB from its first byte (seen
/// in `/metrics`); meanwhile a batch, a gzip batch that expands and a Loki push that
/// would not fit are refused with 503 `overloaded` + Retry-After; the held batch, once
/// complete, is too large for the budget at all (413). Then a concurrent flood: each
/// batch is stored (202) or refused (503), and what was acknowledged is what was stored.
async fn the_memory_budget_refuses_with_503_and_loses_nothing(backend: Backend) {
    const BUDGET: f64 = 4.0 * 1024.0 * 1024.0;
    let Some(app) = spawn_app_with(backend, |c| c.ingest.memory_budget_bytes = 4 << 20).await
    else {
        return;
    };
    let (key, org) = ingest_key(&app, "k").await;
    wait_for_metric(&app, "ingest_memory_budget_bytes", |v| v == BUDGET).await;

    let mut held_body = batch(1, 10);
    held_body.resize(3 << 20, b' ');
    let mut held = held_request(&app, &key, &held_body, 1000).await;
    wait_for_metric(&app, "ingest_memory_inflight_bytes", |v| {
        v >= 3.0 * 1024.0 * 1024.0
    })
    .await;

    // ~200 KB of JSON: its body fits in what is left, its parsed form does not.
    let post = |body: Vec<u8>, path: &'static str| {
        TestApp::finish(
            app.client
                .post(app.url(path))
                .bearer_auth(&key)
                .header("content-type", JSON)
                .body(body),
        )
    };
    assert_overloaded(&post(batch(200, 900), "/api/v1/ingest/events").await);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&batch(2000, 1000)).unwrap();
    let gz = gz.finish().unwrap();
    assert!(gz.len() < 256 * 1024, "compresses well: {}", gz.len());
    let r = TestApp::finish(
        app.client
            .post(app.url("/api/v1/ingest/events"))
            .bearer_auth(&key)
            .header("content-type", JSON)
            .header("content-encoding", "gzip")
            .body(gz),
    )
    .await;
    assert_overloaded(&r);
    let now = vigil_core::now().timestamp_nanos_opt().unwrap();
    let values: Vec<Value> = (0..200)
        .map(|i| json!([(now + i).to_string(), "y".repeat(1000)]))
        .collect();
    let push = json!({"streams": [{"stream": {"job": "app"}, "values": values}]});
    assert_overloaded(&post(push.to_string().into_bytes(), "/loki/api/v1/push").await);

    // The held batch completes: 3 MiB of JSON would cost far more than the whole budget.
    held.write_all(&held_body[1000..]).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = held.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("batch_too_large"), "{answer}");
    drop(held);
    wait_for_metric(&app, "ingest_memory_inflight_bytes", |v| v == 0.0).await;
    assert_eq!(stored(&app, org).await, 0, "nothing refused was stored");

    // A flood of ~100 KB batches (about 1 MB each once parsed): a few fit at a time.
    let app = Arc::new(app);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (app, key) = (app.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let r = TestApp::finish(
                app.client
                    .post(app.url("/api/v1/ingest/events"))
                    .bearer_auth(&key)
                    .header("content-type", JSON)
                    .body(batch(100, 900)),
            )
            .await;
            match r.status {
                202 => r.body["accepted"].as_u64().unwrap(),
                _ => {
                    assert_overloaded(&r);
                    0
                }
            }
        }));
    }
    let mut acknowledged = 0;
    for t in tasks {
        acknowledged += t.await.unwrap();
    }
    assert!(acknowledged > 0);
    assert_eq!(stored(&app, org).await, acknowledged);
    wait_for_metric(&app, "ingest_memory_inflight_bytes", |v| v == 0.0).await;
    // The most ever held: the 3 MiB announced by the held request, never above the budget.
    wait_for_metric(&app, "ingest_memory_inflight_peak_bytes", |v| {
        (3.0 * 1024.0 * 1024.0..=BUDGET).contains(&v)
    })
    .await;
}
