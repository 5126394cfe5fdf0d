//! The ML engine end to end: a baseline learned from normal traffic, a port scan flagged
//! with an `ml_engine` alert that names the unusual features; cold start; the API's bad
//! input, RBAC and org isolation; metrics.
//!
//! Traffic is real packets on loopback: the test writes a pcap as Linux captures `lo`
//! (Ethernet link type, all-zero MACs; 127.0.0.1 at both ends, the resolver a local stub
//! at 127.0.0.53; IPv4/TCP and UDP DNS built with etherparse, TCP handshakes, data, FIN;
//! the scan is a SYN to each of 300 ports of 127.0.0.1, each answered by RST/ACK as a
//! closed port does) and turns it into
//! `network.flow`/`network.dns` events with vigil-net's `summarize_bytes`, the same code
//! the sensor runs. Times are fixed minutes in the past, so the run is deterministic.

use chrono::{DateTime, Duration, DurationRound, Utc};
use etherparse::PacketBuilder;
use serde_json::{Value, json};
use uuid::Uuid;
use vigil_store::Backend;

use crate::helpers::{TestApp, both, spawn_app_with};
use crate::ingest::enrolled_agent;

both!(@backend a_baseline_from_normal_traffic_then_a_port_scan_raises_an_explained_alert);
both!(
    predict_rejects_bad_vectors_and_says_cold_start,
    ml_routes_need_roles_and_stay_in_their_org
);

const CLIENT: [u8; 4] = [127, 0, 0, 1];
const SERVER: [u8; 4] = [127, 0, 0, 1];
const RESOLVER: [u8; 4] = [127, 0, 0, 53];
/// What Linux puts in the Ethernet header of a frame on `lo`.
const LO_MAC: [u8; 6] = [0; 6];

/// A classic pcap file being written (Ethernet link type, as Linux captures `lo`).
struct Pcap(Vec<u8>);

impl Pcap {
    fn new() -> Self {
        let mut b = Vec::new();
        b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        b.extend_from_slice(&2u16.to_le_bytes());
        b.extend_from_slice(&4u16.to_le_bytes());
        b.extend_from_slice(&0i32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&65535u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        Pcap(b)
    }

    fn packet(&mut self, t: DateTime<Utc>, frame: &[u8]) {
        self.0
            .extend_from_slice(&(t.timestamp() as u32).to_le_bytes());
        self.0
            .extend_from_slice(&t.timestamp_subsec_micros().to_le_bytes());
        self.0
            .extend_from_slice(&(frame.len() as u32).to_le_bytes());
        self.0
            .extend_from_slice(&(frame.len() as u32).to_le_bytes());
        self.0.extend_from_slice(frame);
    }

    /// One TCP segment; `flags` among S A F R P.
    #[allow(clippy::too_many_arguments)]
    fn tcp(
        &mut self,
        t: DateTime<Utc>,
        from: ([u8; 4], u16),
        to: ([u8; 4], u16),
        seq: u32,
        ack: u32,
        flags: &str,
        payload: &[u8],
    ) {
        let mut b = PacketBuilder::ethernet2(LO_MAC, LO_MAC)
            .ipv4(from.0, to.0, 64)
            .tcp(from.1, to.1, seq, 64240);
        if flags.contains('S') {
            b = b.syn();
        }
        if flags.contains('A') {
            b = b.ack(ack);
        }
        if flags.contains('F') {
            b = b.fin();
        }
        if flags.contains('R') {
            b = b.rst();
        }
        if flags.contains('P') {
            b = b.psh();
        }
        let mut frame = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut frame, payload).expect("build tcp packet");
        self.packet(t, &frame);
    }

    /// A whole TCP connection: handshake, one request, one response, FIN both ways.
    fn connection(&mut self, t: DateTime<Utc>, sport: u16, dport: u16, up: usize, down: usize) {
        let c = (CLIENT, sport);
        let s = (SERVER, dport);
        let ms = |n: i64| t + Duration::milliseconds(n);
        self.tcp(ms(0), c, s, 1000, 0, "S", &[]);
        self.tcp(ms(1), s, c, 5000, 1001, "SA", &[]);
        self.tcp(ms(2), c, s, 1001, 5001, "A", &[]);
        self.tcp(ms(3), c, s, 1001, 5001, "PA", &vec![b'q'; up]);
        self.tcp(
            ms(20),
            s,
            c,
            5001,
            1001 + up as u32,
            "PA",
            &vec![b'r'; down],
        );
        self.tcp(
            ms(21),
            c,
            s,
            1001 + up as u32,
            5001 + down as u32,
            "FA",
            &[],
        );
        self.tcp(
            ms(22),
            s,
            c,
            5001 + down as u32,
            1002 + up as u32,
            "FA",
            &[],
        );
        self.tcp(ms(23), c, s, 1002 + up as u32, 5002 + down as u32, "A", &[]);
    }

    /// A DNS A query (UDP).
    fn dns_query(&mut self, t: DateTime<Utc>, sport: u16, id: u16, name: &str) {
        let mut q = Vec::new();
        q.extend_from_slice(&id.to_be_bytes());
        q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        let b = PacketBuilder::ethernet2(LO_MAC, LO_MAC)
            .ipv4(CLIENT, RESOLVER, 64)
            .udp(sport, 53);
        let mut frame = Vec::with_capacity(b.size(q.len()));
        b.write(&mut frame, &q).expect("build udp packet");
        self.packet(t, &frame);
    }
}

/// Normal traffic for one minute: a few HTTPS/HTTP/SSH connections of varying size and a
/// DNS lookup.
fn normal_minute(p: &mut Pcap, start: DateTime<Utc>, k: usize) {
    const PORTS: [u16; 4] = [443, 443, 80, 22];
    for j in 0..3 + k % 4 {
        let t = start + Duration::seconds(2 + 9 * j as i64);
        let sport = 40_000 + (k * 10 + j) as u16;
        let up = 200 + 37 * ((k * 7 + j) % 11);
        let down = 1000 + 113 * ((k * 3 + j) % 13);
        p.connection(t, sport, PORTS[j % 4], up, down);
    }
    let names = [
        "www.example.com",
        "api.example.com",
        "cdn.example.net",
        "mail.example.org",
    ];
    p.dns_query(
        start + Duration::seconds(1),
        53_000 + k as u16,
        k as u16,
        names[k % names.len()],
    );
}

/// A SYN scan of 300 ports within one minute; closed ports answer RST/ACK.
fn port_scan(p: &mut Pcap, start: DateTime<Utc>) {
    for port in 1..=300u16 {
        let t = start + Duration::milliseconds(5 + 100 * i64::from(port));
        p.tcp(t, (CLIENT, 61_000), (SERVER, port), 7, 0, "S", &[]);
        p.tcp(
            t + Duration::milliseconds(1),
            (SERVER, port),
            (CLIENT, 61_000),
            0,
            8,
            "RA",
            &[],
        );
    }
}

fn events_of(p: &Pcap) -> Vec<Value> {
    let s = vigil_net::summarize_bytes(&p.0, &vigil_net::FlowConfig::default());
    assert!(s.error.is_none(), "{:?}", s.error);
    s.events
}

async fn ingest(app: &TestApp, cred: &str, events: Vec<Value>) {
    for chunk in events.chunks(500) {
        let r = app
            .post(
                "/api/v1/ingest/events",
                cred,
                &json!({"batch_id": Uuid::new_v4(), "events": chunk}),
            )
            .await;
        assert!(
            r.status == 200 || r.status == 202,
            "{} {}",
            r.status,
            r.text
        );
    }
}

async fn ml_alerts(app: &TestApp, token: &str) -> Vec<Value> {
    app.get("/api/v1/alerts?source=ml_engine&limit=100", token)
        .await
        .ok(200)["items"]
        .as_array()
        .unwrap()
        .clone()
}

async fn wait_for<F: Fn(&Value) -> bool>(app: &TestApp, token: &str, what: &str, ok: F) -> Value {
    for _ in 0..100 {
        let alerts = ml_alerts(app, token).await;
        if let Some(a) = alerts.iter().find(|a| ok(a)) {
            return a.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let titles: Vec<Value> = ml_alerts(app, token)
        .await
        .iter()
        .map(|a| {
            json!([
                a["title"],
                a["metadata"]["ml"]["score"],
                a["metadata"]["ml"]["threshold"]
            ])
        })
        .collect();
    panic!("no {what} alert: {titles:?}");
}

async fn a_baseline_from_normal_traffic_then_a_port_scan_raises_an_explained_alert(
    backend: Backend,
) {
    let Some(app) = spawn_app_with(backend, |c| {
        c.ml.window_secs = 60;
        c.ml.window_grace_secs = 0;
        c.ml.flush_interval_secs = 1;
        c.ml.retrain_interval_secs = 0;
        c.ml.min_samples = 16;
    })
    .await
    else {
        return;
    };
    let admin = app.admin().await.access;
    let (agent, cred) = enrolled_agent(&app, &admin, "sensor-1").await;

    // Cold start: no model, the API says so.
    let h = app.get("/api/v1/ml/health", &admin).await;
    assert_eq!(h.ok(200)["cold_start"], true);
    assert_eq!(h.body["status"], "cold_start");

    // Forty minutes of normal traffic, three hours ago.
    let t0 = (vigil_core::now() - Duration::hours(3))
        .duration_trunc(Duration::minutes(1))
        .unwrap();
    let mut normal = Pcap::new();
    for k in 0..40 {
        normal_minute(&mut normal, t0 + Duration::minutes(k as i64), k);
    }
    let events = events_of(&normal);
    assert!(
        events
            .iter()
            .any(|e| e["event"]["dataset"] == "network.dns")
    );
    ingest(&app, &cred, events).await;

    // The windows close (the last one through the worker's flush) and are stored.
    let org = app
        .store
        .get_org_by_name("default")
        .await
        .unwrap()
        .unwrap()
        .id;
    let since = vigil_core::now() - Duration::days(1);
    let mut stored = Vec::new();
    for _ in 0..100 {
        stored = app
            .store
            .ml_store()
            .feature_entities(org, "network", since)
            .await
            .unwrap();
        if stored == [(agent.clone(), 40)] {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        stored,
        [(agent.clone(), 40)],
        "one window per minute, all closed"
    );
    // Still cold: nothing is scored as anomalous without a model.
    assert!(ml_alerts(&app, &admin).await.is_empty());

    let r = app
        .post("/api/v1/ml/models/retrain", &admin, &json!({}))
        .await;
    let b = r.ok(200).clone();
    assert_eq!(b["cold_start"], false);
    let network = b["trained"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["feature_set"] == "network" && m["entity"] == agent.as_str())
        .cloned()
        .expect("the agent's network model");
    assert_eq!(network["sample_count"], 40);
    assert_eq!(network["version"], 1);
    assert!(network["version"].as_i64().unwrap() >= 1);
    assert_eq!(network["features"][6], "distinct_dst_ports");
    assert!(network["trained_at"].is_string());
    let models = app.get("/api/v1/ml/models", &admin).await;
    let items = models.ok(200)["items"].as_array().unwrap().clone();
    assert!(
        items.iter().any(|m| m["feature_set"] == "flow"),
        "{items:?}"
    );
    assert!(
        items.iter().any(|m| m["entity"] == "*"),
        "an org-wide model too: {items:?}"
    );
    let h = app.get("/api/v1/ml/health", &admin).await;
    assert_eq!(h.ok(200)["cold_start"], false);
    assert!(h.body["models_loaded"].as_u64().unwrap() >= 3);

    // The scan, one minute later.
    let mut scan = Pcap::new();
    port_scan(&mut scan, t0 + Duration::minutes(41));
    let events = events_of(&scan);
    assert_eq!(events.len(), 300);
    ingest(&app, &cred, events).await;

    let alert = wait_for(&app, &admin, "network ml_engine", |a| {
        a["metadata"]["ml"]["feature_set"] == "network"
    })
    .await;
    assert_eq!(alert["source"], "ml_engine");
    let ml = &alert["metadata"]["ml"];
    assert_eq!(ml["entity"], agent.as_str());
    let score = ml["score"].as_f64().unwrap();
    let threshold = ml["threshold"].as_f64().unwrap();
    assert!(score > threshold, "{score} <= {threshold}");
    assert_eq!(ml["features"]["distinct_dst_ports"], 300.0);
    assert_eq!(ml["features"]["syn_only_ratio"], 1.0);
    let unusual: Vec<&str> = ml["unusual"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["feature"].as_str().unwrap())
        .collect();
    assert!(
        unusual.contains(&"distinct_dst_ports") || unusual.contains(&"syn_only_ratio"),
        "{unusual:?}"
    );
    let text = format!("{} {}", alert["title"], alert["description"]);
    assert!(
        text.contains(unusual[0]) && text.contains("threshold"),
        "{text}"
    );
    assert_eq!(ml["model"]["version"], network["version"]);
    assert_eq!(
        ml["window"]["start"].as_str().unwrap().get(..16),
        Some(
            vigil_core::event::format_timestamp(t0 + Duration::minutes(41))
                .get(..16)
                .unwrap()
        )
    );

    // One alert for the window: repeats fold into it (dedup by feature set and entity).
    let network_alerts = ml_alerts(&app, &admin)
        .await
        .into_iter()
        .filter(|a| a["metadata"]["ml"]["feature_set"] == "network")
        .count();
    assert_eq!(network_alerts, 1);
    // The scan's 300 flows were scored and kept as flow vectors.
    let flows = app
        .store
        .ml_store()
        .feature_entities(org, "flow", since)
        .await
        .unwrap();
    assert_eq!(
        flows.iter().map(|(_, n)| n).sum::<i64>(),
        300 + flow_count(&items)
    );

    // A minute like the baseline scores as normal through the API.
    let like = network_vector(&normal_window_vector(&app, &admin, &agent).await);
    let r = app
        .post(
            "/api/v1/ml/predict",
            &admin,
            &json!({"feature_set": "network", "entity": agent, "features": like}),
        )
        .await;
    assert_eq!(r.ok(200)["anomalous"], false, "{}", r.text);
    assert_eq!(r.body["model"]["entity"], agent.as_str());

    let m = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.lines().any(|l| l.starts_with("ml_predictions_total{")
            && l.contains("model=\"network\"")
            && l.contains("prediction=\"anomaly\"")),
        "{m}"
    );
    assert!(m.contains("ml_training_duration_seconds"), "{m}");
}

/// Flows the baseline's flow model was trained on.
fn flow_count(models: &[Value]) -> i64 {
    models
        .iter()
        .find(|m| m["feature_set"] == "flow" && m["entity"] != "*")
        .and_then(|m| m["sample_count"].as_i64())
        .unwrap_or(0)
}

/// One of the agent's stored network vectors: a typical minute.
async fn normal_window_vector(app: &TestApp, _admin: &str, agent: &str) -> Vec<f64> {
    let org = app
        .store
        .get_org_by_name("default")
        .await
        .unwrap()
        .unwrap()
        .id;
    let rows = app
        .store
        .ml_store()
        .feature_rows(
            org,
            "network",
            Some(agent),
            vigil_core::now() - Duration::days(1),
            1000,
        )
        .await
        .unwrap();
    let t0 = rows.iter().map(|r| r.window_start).min().unwrap();
    // The window with k = 2: 5 connections, like most.
    rows.into_iter()
        .find(|r| r.window_start == t0 + Duration::minutes(2))
        .unwrap()
        .values
}

fn network_vector(v: &[f64]) -> Vec<f64> {
    assert_eq!(v.len(), 14);
    v.to_vec()
}

async fn predict_rejects_bad_vectors_and_says_cold_start(app: &TestApp) {
    let admin = app.admin().await.access;
    let p = |body: Value| {
        let admin = admin.clone();
        async move { app.post("/api/v1/ml/predict", &admin, &body).await }
    };
    // Cold start: answered, and says so.
    let r = p(json!({"feature_set": "host", "features": [0.5, 0.4, 120, 1.0, 1000, 500]})).await;
    let b = r.ok(200);
    assert_eq!(b["cold_start"], true);
    assert_eq!(b["prediction"], "no_model");
    assert_eq!(b["anomalous"], false);
    // Wrong dimension names the feature set's features.
    let r = p(json!({"feature_set": "host", "features": [1, 2]})).await;
    let e = r.err(400, "invalid_features");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("expected 6 features, got 2"),
        "{e}"
    );
    assert!(e["message"].as_str().unwrap().contains("cpu_usage"), "{e}");
    // Non-finite values: JSON has no NaN literal, and 1e999 overflows.
    for body in [
        r#"{"feature_set":"host","features":[NaN,0,0,0,0,0]}"#,
        r#"{"feature_set":"host","features":[1e999,0,0,0,0,0]}"#,
    ] {
        let r = app
            .client
            .post(app.url("/api/v1/ml/predict"))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let e: Value = r.json().await.unwrap();
        assert!(e["error"]["code"].is_string(), "{e}");
    }
    let r = p(json!({"feature_set": "host", "features": ["x", 0, 0, 0, 0, 0]})).await;
    assert!(
        r.status == 400 || r.status == 422,
        "{} {}",
        r.status,
        r.text
    );
    p(json!({"feature_set": "disk", "features": [1]}))
        .await
        .err(400, "invalid_features");
    p(json!({"features": [1]}))
        .await
        .err(400, "invalid_features");
    p(json!({})).await.err(400, "invalid_features");
    p(json!({"event": {"event": {"dataset": "auth"}}}))
        .await
        .err(400, "invalid_features");
    let r = p(json!({"feature_set": "network", "features": [1], "extra": true})).await;
    assert!(
        r.status == 400 || r.status == 422,
        "{} {}",
        r.status,
        r.text
    );
    // A flow event is turned into a flow vector.
    let flow = json!({"@timestamp": "2026-01-01T00:00:00Z", "event": {"dataset": "network.flow", "duration": 1000},
                      "host": {"name": "h"}, "network": {"transport": "tcp", "bytes": 60, "packets": 1},
                      "source": {"ip": "10.0.0.5", "bytes": 60, "packets": 1, "tcp_flags": ["SYN"]},
                      "destination": {"ip": "10.0.0.1", "port": 22, "bytes": 0, "packets": 0}});
    let r = p(json!({"event": flow})).await;
    let b = r.ok(200);
    assert_eq!(b["feature_set"], "flow");
    assert_eq!(b["entity"], "h");
    assert_eq!(b["features"][6], 1.0);
}

async fn ml_routes_need_roles_and_stay_in_their_org(app: &TestApp) {
    let admin = app.admin().await.access;
    let viewer = app.user_session(&admin, "vera", "viewer").await.access;
    let analyst = app.user_session(&admin, "anna", "analyst").await.access;
    // Anyone signed in reads; only admins retrain.
    app.get("/api/v1/ml/health", &viewer).await.ok(200);
    app.get("/api/v1/ml/models", &viewer).await.ok(200);
    app.post("/api/v1/ml/models/retrain", &viewer, &json!({}))
        .await
        .err(403, "forbidden");
    app.post("/api/v1/ml/models/retrain", &analyst, &json!({}))
        .await
        .err(403, "forbidden");
    let r = app
        .client
        .get(app.url("/api/v1/ml/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Org A gets a host model from its own vectors; org B sees none and cannot use it.
    let org_a = app
        .store
        .get_org_by_name("default")
        .await
        .unwrap()
        .unwrap()
        .id;
    let rows: Vec<vigil_store::NewFeatureRow> = (0..40)
        .map(|i| vigil_store::NewFeatureRow {
            feature_set: "host".into(),
            entity: "db-1".into(),
            window_start: vigil_core::now() - Duration::minutes(100 - i),
            values: vec![
                0.2 + (i % 5) as f64 * 0.01,
                0.5,
                100.0 + (i % 3) as f64,
                1.0,
                1000.0,
                500.0,
            ],
        })
        .collect();
    app.store
        .ml_store()
        .append_features(org_a, rows)
        .await
        .unwrap();
    let r = app
        .post("/api/v1/ml/models/retrain", &admin, &json!({}))
        .await;
    let trained = r.ok(200)["trained"].as_array().unwrap().clone();
    assert_eq!(trained.len(), 2, "db-1 and the org-wide model: {trained:?}");
    let busy = json!({"feature_set": "host", "entity": "db-1", "features": [0.99, 0.97, 900, 30.0, 1e9, 1e9]});
    let r = app.post("/api/v1/ml/predict", &viewer, &busy).await;
    assert_eq!(r.ok(200)["anomalous"], true, "{}", r.text);
    assert_eq!(r.body["unusual"].as_array().unwrap().len(), 3);

    let other = app
        .other_org_user("olga", vigil_core::Role::Admin)
        .await
        .access;
    let h = app.get("/api/v1/ml/health", &other).await;
    assert_eq!(h.ok(200)["cold_start"], true);
    assert!(
        app.get("/api/v1/ml/models", &other).await.ok(200)["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let r = app.post("/api/v1/ml/predict", &other, &busy).await;
    assert_eq!(
        r.ok(200)["cold_start"],
        true,
        "org B must not score with org A's model"
    );
    let r = app
        .post("/api/v1/ml/models/retrain", &other, &json!({}))
        .await;
    assert!(r.ok(200)["trained"].as_array().unwrap().is_empty());
    // Org A's models are untouched by B's retrain.
    assert_eq!(
        app.get("/api/v1/ml/models", &admin).await.ok(200)["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}
