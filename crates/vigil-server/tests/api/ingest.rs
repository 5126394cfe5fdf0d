//! Ingestion over HTTP: enrollment tokens, agent registration and credentials, heartbeats,
//! batches stored once, detection into (deduplicated) alerts, the event query API, API keys.

use std::io::Write;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, both};

both!(
    enrollment_registration_heartbeat_and_revocation,
    batches_are_stored_once_and_raise_deduplicated_alerts,
    events_query_filters_and_pages,
    api_keys_ingest_with_scope_and_basic_auth,
    bad_ingest_input_gets_clear_errors,
);
both!(@backend the_local_agent_reports_process_starts_of_this_host, overload_is_answered_never_silent);
both!(events_timed_far_in_the_future_are_kept_at_their_receive_time);
both!(@backend rule_dirs_filter_and_correlate_built_in_rules, informational_matches_are_no_alerts_below_min_alert_level);

/// Creates an enrollment token and registers an agent; returns (agent id, credential).
pub async fn enrolled_agent(app: &TestApp, admin: &str, host: &str) -> (String, String) {
    let r = app
        .post(
            "/api/v1/agents/enrollment-tokens",
            admin,
            &json!({"description": "test"}),
        )
        .await;
    let token = r.ok(201)["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("vge_"));
    let r = app
        .send(
            Method::POST,
            "/api/v1/agents/register-agent",
            None,
            Some(&json!({"enrollment_token": token, "hostname": host, "os": "linux", "version": "0.1.0"})),
        )
        .await;
    let b = r.ok(201);
    (
        b["agent_id"].as_str().unwrap().to_owned(),
        b["credential"].as_str().unwrap().to_owned(),
    )
}

fn ssh_failure(i: usize, host: &str) -> Value {
    json!({
        "@timestamp": vigil_core::event::format_timestamp(vigil_core::now()),
        "event": {"dataset": "auth", "category": "authentication", "outcome": "failure"},
        "process": {"name": "sshd"},
        "host": {"name": host},
        "source": {"ip": "203.0.113.9", "port": 50000 + i},
        "user": {"name": "root"},
        "message": format!("Failed password for root from 203.0.113.9 port {} ssh2", 50000 + i),
    })
}

async fn ingest(
    app: &TestApp,
    credential: &str,
    batch: Uuid,
    events: Vec<Value>,
) -> crate::helpers::Resp {
    app.post(
        "/api/v1/ingest/events",
        credential,
        &json!({"batch_id": batch, "events": events}),
    )
    .await
}

async fn alerts(app: &TestApp, admin: &str) -> Vec<Value> {
    app.get("/api/v1/alerts?limit=100", admin).await.ok(200)["items"]
        .as_array()
        .unwrap()
        .clone()
}

async fn enrollment_registration_heartbeat_and_revocation(app: &TestApp) {
    let admin = app.admin().await.access;
    let (id, cred) = enrolled_agent(app, &admin, "web-1").await;
    assert!(cred.starts_with("vga_"));
    // The credential is stored hashed: its text appears nowhere in the database rows we can list.
    let listed = app.get("/api/v1/agents", &admin).await;
    assert!(!listed.text.contains(&cred));
    assert_eq!(listed.ok(200)[0]["hostname"], "web-1");
    assert_eq!(listed.body[0]["status"], "online");
    // Tokens are one-time.
    let r = app.get("/api/v1/agents/enrollment-tokens", &admin).await;
    let toks = r.ok(200).as_array().unwrap().clone();
    assert_eq!(toks.len(), 1);
    assert_eq!(toks[0]["agent_id"], id.as_str());
    let r = app
        .send(
            Method::POST,
            "/api/v1/agents/register-agent",
            None,
            Some(&json!({"enrollment_token": "vge_nope", "hostname": "x"})),
        )
        .await;
    r.err(401, "invalid_token");
    // Analysts cannot mint tokens.
    let analyst = app.user_session(&admin, "ana", "analyst").await.access;
    app.post("/api/v1/agents/enrollment-tokens", &analyst, &json!({}))
        .await
        .err(403, "forbidden");
    app.post(
        "/api/v1/agents/enrollment-tokens",
        &admin,
        &json!({"expires_in_hours": 100000}),
    )
    .await
    .err(422, "validation_failed");

    // Heartbeat with metrics, visible in the detail.
    let r = app
        .post(
            "/api/v1/agents/heartbeat",
            &cred,
            &json!({"version": "0.1.1", "metrics": {"cpu": {"total": 3.5}}}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let d = app.get(&format!("/api/v1/agents/{id}"), &admin).await;
    assert_eq!(d.ok(200)["last_metrics"]["cpu"]["total"], 3.5);
    assert_eq!(d.body["version"], "0.1.1");
    // A user token is not an agent credential and vice versa.
    app.post("/api/v1/agents/heartbeat", &admin, &json!({}))
        .await
        .err(401, "invalid_credential");
    app.get("/api/v1/agents", &cred)
        .await
        .err(401, "invalid_token");

    // Revocation: the credential stops working at once.
    app.post(&format!("/api/v1/agents/{id}/revoke"), &analyst, &json!({}))
        .await
        .err(403, "forbidden");
    let r = app
        .post(&format!("/api/v1/agents/{id}/revoke"), &admin, &json!({}))
        .await;
    assert!(r.ok(200)["revoked_at"].is_string());
    ingest(app, &cred, Uuid::now_v7(), vec![ssh_failure(0, "web-1")])
        .await
        .err(401, "invalid_credential");
    app.post("/api/v1/agents/heartbeat", &cred, &json!({}))
        .await
        .err(401, "invalid_credential");
}

async fn batches_are_stored_once_and_raise_deduplicated_alerts(app: &TestApp) {
    let admin = app.admin().await.access;
    let (agent_id, cred) = enrolled_agent(app, &admin, "bastion-1").await;
    let batch = Uuid::now_v7();
    let events: Vec<Value> = (0..12).map(|i| ssh_failure(i, "bastion-1")).collect();
    let r = ingest(app, &cred, batch, events.clone()).await;
    let b = r.ok(202);
    assert_eq!(
        (b["accepted"].as_u64(), b["duplicate"].as_bool()),
        (Some(12), Some(false)),
        "{b}"
    );
    // The same batch again: acknowledged, nothing stored twice.
    let r = ingest(app, &cred, batch, events.clone()).await;
    assert_eq!(r.ok(202)["duplicate"], true);
    let stored = app.get("/api/v1/events?limit=1000", &admin).await;
    assert_eq!(stored.ok(200)["items"].as_array().unwrap().len(), 12);
    // Identity comes from the credential, not from the event.
    assert_eq!(
        stored.body["items"][0]["doc"]["agent"]["id"],
        agent_id.as_str()
    );

    // Detection: twelve sshd failures from one source within minutes is the built-in
    // brute-force correlation (10 in 5 minutes); the 11th and 12th fold into the same alert.
    let list = alerts(app, &admin).await;
    let brute: Vec<&Value> = list
        .iter()
        .filter(|a| a["title"] == "SSH Brute Force")
        .collect();
    assert_eq!(brute.len(), 1, "{list:#?}");
    let a = brute[0];
    assert_eq!(a["source"], "rule");
    assert_eq!(a["severity"], "medium");
    assert_eq!(a["attack_technique_id"], "T1110.001");
    assert_eq!(a["agent_id"], agent_id.as_str());
    assert_eq!(a["event_count"], 1, "the correlation fires once per window");
    assert!(
        a["observables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["value"] == "203.0.113.9")
    );

    // Ten more failures fire the correlation again: folded into the same open alert
    // (within the dedup window) instead of a second one.
    let more: Vec<Value> = (20..30).map(|i| ssh_failure(i, "bastion-1")).collect();
    ingest(app, &cred, Uuid::now_v7(), more).await.ok(202);
    let list = alerts(app, &admin).await;
    let brute: Vec<&Value> = list
        .iter()
        .filter(|a| a["title"] == "SSH Brute Force")
        .collect();
    assert_eq!(brute.len(), 1);
    assert_eq!(brute[0]["event_count"], 2);
    assert!(brute[0]["last_seen"].is_string());

    // Metrics count what happened.
    let m = app.send(Method::GET, "/metrics", None, None).await.text;
    assert!(
        m.contains("security_events_total{source=\"agent\",outcome=\"stored\"}"),
        "{m}"
    );
    assert!(m.contains("alert_processing_duration_seconds"));
}

async fn events_query_filters_and_pages(app: &TestApp) {
    let admin = app.admin().await.access;
    let (_, cred) = enrolled_agent(app, &admin, "h1").await;
    let mut events = Vec::new();
    for i in 0..25 {
        let mut e = ssh_failure(i, if i % 5 == 0 { "h2" } else { "h1" });
        e["@timestamp"] = json!(format!("2026-11-23T10:00:{i:02}Z"));
        if i == 7 {
            e["message"] = json!("Accepted publickey for alice from 198.51.100.4 port 2222 ssh2");
            e["source"]["ip"] = json!("198.51.100.4");
        }
        events.push(e);
    }
    ingest(app, &cred, Uuid::now_v7(), events).await.ok(202);
    let q = |query: &str| {
        let admin = admin.clone();
        let query = query.to_owned();
        async move { app.get(&format!("/api/v1/events?{query}"), &admin).await }
    };
    let all = q("limit=1000").await;
    let items = all.ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 25);
    assert_eq!(items[0]["timestamp"], "2026-11-23T10:00:24Z");
    assert_eq!(
        q("host=h2").await.ok(200)["items"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let found = q("q=ACCEPTED%20publickey").await;
    assert_eq!(found.ok(200)["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        q("field=source.ip:198.51.100.4").await.ok(200)["items"][0]["doc"]["user"]["name"],
        "root"
    );
    assert_eq!(
        q("field=source.port:50003&field=host.name:h1")
            .await
            .ok(200)["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let ranged = q("from=2026-11-23T10:00:10Z&to=2026-11-23T10:00:20Z").await;
    assert_eq!(ranged.ok(200)["items"].as_array().unwrap().len(), 10);
    // Pages of 10 cover everything once.
    let mut seen = std::collections::HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("limit=10&cursor={c}"),
            None => "limit=10".into(),
        };
        let p = q(&path).await;
        for e in p.ok(200)["items"].as_array().unwrap() {
            assert!(seen.insert(e["id"].as_str().unwrap().to_owned()));
        }
        match p.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 25);
    q("from=yesterday").await.err(400, "invalid_query");
    q("field=nocolon").await.err(400, "invalid_query");
    q("field=a'b:c").await.err(400, "invalid_query");
    q("limit=0").await.err(400, "invalid_query");
    q("bogus=1").await.err(400, "invalid_query");
    q("cursor=notacursor").await.err(400, "invalid_input");
    // Viewers cannot read raw events; other orgs see none of them.
    let viewer = app.user_session(&admin, "vic", "viewer").await.access;
    app.get("/api/v1/events", &viewer)
        .await
        .err(403, "forbidden");
    let other = app
        .other_org_user("olga", vigil_core::Role::Admin)
        .await
        .access;
    assert!(
        app.get("/api/v1/events", &other).await.ok(200)["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

async fn api_keys_ingest_with_scope_and_basic_auth(app: &TestApp) {
    let admin = app.admin().await.access;
    let r = app
        .post(
            "/api/v1/api-keys",
            &admin,
            &json!({"name": "promtail", "scopes": ["ingest"]}),
        )
        .await;
    let b = r.ok(201);
    let key = b["key"].as_str().unwrap().to_owned();
    let id = b["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("vgk_"));
    let listed = app.get("/api/v1/api-keys", &admin).await;
    assert!(!listed.text.contains(&key), "secrets are never listed");
    app.post(
        "/api/v1/api-keys",
        &admin,
        &json!({"name": "x", "scopes": ["root"]}),
    )
    .await
    .err(422, "invalid_body");
    app.post(
        "/api/v1/api-keys",
        &admin,
        &json!({"name": "", "scopes": ["ingest"]}),
    )
    .await
    .err(422, "validation_failed");

    // Bearer.
    ingest(app, &key, Uuid::now_v7(), vec![ssh_failure(1, "via-key")])
        .await
        .ok(202);
    // Basic auth with the key as password, and a gzip body.
    let body = serde_json::to_vec(
        &json!({"batch_id": Uuid::now_v7(), "events": [ssh_failure(2, "via-basic")]}),
    )
    .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&body).unwrap();
    let rb = app
        .client
        .post(app.url("/api/v1/ingest/events"))
        .basic_auth("promtail", Some(&key))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap());
    let r = TestApp::finish(rb).await;
    assert_eq!(r.ok(202)["accepted"], 1);
    let hosts: Vec<String> = app.get("/api/v1/events", &admin).await.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["host"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(hosts.len(), 2);
    assert!(hosts.contains(&"via-basic".to_owned()));

    app.send(
        Method::DELETE,
        &format!("/api/v1/api-keys/{id}"),
        Some(&admin),
        None,
    )
    .await
    .ok(200);
    ingest(app, &key, Uuid::now_v7(), vec![ssh_failure(3, "h")])
        .await
        .err(401, "invalid_credential");
}

async fn bad_ingest_input_gets_clear_errors(app: &TestApp) {
    let admin = app.admin().await.access;
    let (_, cred) = enrolled_agent(app, &admin, "h").await;
    app.post("/api/v1/ingest/events", &cred, &json!({"events": []}))
        .await
        .err(422, "invalid_body");
    let rb = app
        .client
        .post(app.url("/api/v1/ingest/events"))
        .bearer_auth(&cred)
        .body("{not json");
    TestApp::finish(rb).await.err(400, "malformed_json");
    let rb = app
        .client
        .post(app.url("/api/v1/ingest/events"))
        .bearer_auth(&cred)
        .header("content-encoding", "gzip")
        .body("not gzip at all");
    TestApp::finish(rb).await.err(400, "invalid_encoding");
    let rb = app
        .client
        .post(app.url("/api/v1/ingest/events"))
        .bearer_auth(&cred)
        .header("content-encoding", "br")
        .body("x");
    TestApp::finish(rb).await.err(415, "unsupported_encoding");
    // Non-object events are refused one by one; the rest are stored.
    let r = ingest(
        app,
        &cred,
        Uuid::now_v7(),
        vec![json!(1), json!("text"), ssh_failure(0, "h")],
    )
    .await;
    let b = r.ok(202);
    assert_eq!(
        (b["accepted"].as_u64(), b["rejected"].as_u64()),
        (Some(1), Some(2))
    );
    assert!(b["errors"][0].as_str().unwrap().contains("event 0"));
    // No credential, wrong scheme.
    app.send(
        Method::POST,
        "/api/v1/ingest/events",
        None,
        Some(&json!({})),
    )
    .await
    .err(401, "unauthorized");
    // Batches over the configured limit are refused whole.
    let many: Vec<Value> = (0..10_001).map(|_| json!({})).collect();
    ingest(app, &cred, Uuid::now_v7(), many)
        .await
        .err(413, "batch_too_large");
    tokio::time::sleep(Duration::from_millis(1)).await;
}

async fn the_local_agent_reports_process_starts_of_this_host(backend: vigil_store::Backend) {
    let Some(app) = crate::helpers::spawn_app_with(backend, |c| c.ingest.local_agent = true).await
    else {
        return;
    };
    let admin = app.admin().await.access;
    let agents = app.get("/api/v1/agents", &admin).await;
    assert_eq!(
        agents.ok(200).as_array().unwrap().len(),
        1,
        "the local agent registers itself"
    );
    // Let the process sensor take its first snapshot, then start a process it must report.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let marker = format!("{}", 90000 + std::process::id() % 9999);
    let mut child = std::process::Command::new("sleep")
        .arg(format!("4.{marker}"))
        .spawn()
        .unwrap();
    let mut found = None;
    for _ in 0..100 {
        let r = app
            .get("/api/v1/events?dataset=process&limit=1000", &admin)
            .await;
        found = r.ok(200)["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| {
                e["doc"]["process"]["command_line"]
                    .as_str()
                    .is_some_and(|c| c.contains(&marker))
            })
            .cloned();
        if found.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let e = found.expect("the local agent reported the new process");
    assert_eq!(e["doc"]["process"]["name"], "sleep");
    assert_eq!(e["channel"], "local");
    assert_eq!(e["doc"]["agent"]["id"], agents.body[0]["id"]);
}

/// Under a flood with a one-batch queue, every batch is either stored (202) or refused with
/// 503 + Retry-After; what the server acknowledged is exactly what it stored.
async fn overload_is_answered_never_silent(backend: vigil_store::Backend) {
    let Some(app) = crate::helpers::spawn_app_with(backend, |c| c.ingest.queue_capacity = 1).await
    else {
        return;
    };
    let admin = app.admin().await.access;
    let (_, cred) = enrolled_agent(&app, &admin, "flood").await;
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for k in 0..24 {
        let (app, cred) = (app.clone(), cred.clone());
        tasks.push(tokio::spawn(async move {
            let events: Vec<Value> = (0..500)
                .map(|i| ssh_failure(k * 1000 + i, "flood"))
                .collect();
            let r = ingest(&app, &cred, Uuid::now_v7(), events).await;
            match r.status {
                202 => r.body["accepted"].as_u64().unwrap(),
                503 => {
                    assert_eq!(r.header("retry-after"), Some("1"));
                    assert_eq!(r.body["error"]["code"], "overloaded");
                    0
                }
                s => panic!("unexpected {s}: {}", r.text),
            }
        }));
    }
    let mut acknowledged = 0;
    for t in tasks {
        acknowledged += t.await.unwrap();
    }
    let mut stored = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/events?limit=1000&cursor={c}"),
            None => "/api/v1/events?limit=1000".into(),
        };
        let p = app.get(&path, &admin).await;
        stored += p.ok(200)["items"].as_array().unwrap().len() as u64;
        match p.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert!(acknowledged > 0);
    assert_eq!(
        stored, acknowledged,
        "acknowledged events are exactly the stored ones"
    );
}

/// Regression: an event claiming `9999-12-31` was stored with that time. It is kept (an
/// experienced user wants the event), at its receive time, its claim kept and tagged.
async fn events_timed_far_in_the_future_are_kept_at_their_receive_time(app: &TestApp) {
    let admin = app.admin().await.access;
    let (_, cred) = enrolled_agent(app, &admin, "clock-skew-host").await;
    let before = vigil_core::now();
    let mut future = ssh_failure(0, "clock-skew-host");
    future["@timestamp"] = json!("9999-12-31T23:59:59Z");
    future["message"] = json!("future-marker");
    let r = ingest(app, &cred, Uuid::now_v7(), vec![future]).await;
    assert_eq!(r.ok(202)["accepted"], 1, "{}", r.text);
    let got = app
        .get("/api/v1/events?q=future-marker&limit=10", &admin)
        .await;
    let items = got.ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1, "{}", got.text);
    let doc = &items[0]["doc"];
    let at = vigil_core::event::timestamp(doc).unwrap();
    assert!(
        at >= before && at <= vigil_core::now(),
        "stored at {at}, not at its receive time"
    );
    assert_eq!(doc["event"]["created_raw"], "9999-12-31T23:59:59Z");
    assert!(
        doc["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("_timestamp_in_future")),
        "{doc}"
    );
}

fn sudo_probe(user: &str) -> Value {
    json!({
        "@timestamp": vigil_core::event::format_timestamp(vigil_core::now()),
        "event": {"dataset": "auth"},
        "process": {"name": "sudo"},
        "host": {"name": "app-2"},
        "user": {"name": user},
        "message": format!("{user} : user NOT in sudoers ; TTY=pts/0 ; PWD=/srv ; USER=root ; COMMAND=/bin/sh"),
    })
}

/// A filter and a correlation in `ingest.rule_dirs` naming built-in rules by id take effect:
/// the directories are loaded with the built-in pack as one set.
async fn rule_dirs_filter_and_correlate_built_in_rules(backend: vigil_store::Backend) {
    let dir = std::env::temp_dir().join(format!("vigil-rules-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("tuning.yml"),
        include_str!("../../../vigil-detect/tests/fixtures/user_rules_on_builtin.yml"),
    )
    .unwrap();
    let rule_dirs = vec![dir.clone()];
    let Some(app) =
        crate::helpers::spawn_app_with(backend, |c| c.ingest.rule_dirs = rule_dirs).await
    else {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    };
    let _ = std::fs::remove_dir_all(&dir);
    let admin = app.admin().await.access;
    let (_, cred) = enrolled_agent(&app, &admin, "app-2").await;

    ingest(&app, &cred, Uuid::now_v7(), vec![sudo_probe("deploy")])
        .await
        .ok(202);
    let list = alerts(&app, &admin).await;
    assert!(
        !list
            .iter()
            .any(|a| a["title"] == "Sudo Attempt by a User Not in Sudoers"),
        "the user's filter suppresses deploy's probe: {list:#?}"
    );
    ingest(&app, &cred, Uuid::now_v7(), vec![sudo_probe("mallory")])
        .await
        .ok(202);
    let list = alerts(&app, &admin).await;
    let sudo: Vec<&Value> = list
        .iter()
        .filter(|a| a["title"] == "Sudo Attempt by a User Not in Sudoers")
        .collect();
    assert_eq!(sudo.len(), 1, "{list:#?}");
    assert_eq!(sudo[0]["metadata"]["event"]["user"]["name"], "mallory");

    let failures: Vec<Value> = (0..3)
        .map(|i| {
            let mut e = ssh_failure(i, "app-2");
            e["source"]["ip"] = "203.0.113.77".into();
            e["user"]["name"] = "alice".into();
            e["message"] = format!(
                "Failed password for alice from 203.0.113.77 port {} ssh2",
                50000 + i
            )
            .into();
            e
        })
        .collect();
    ingest(&app, &cred, Uuid::now_v7(), failures).await.ok(202);
    let list = alerts(&app, &admin).await;
    let corr: Vec<&Value> = list
        .iter()
        .filter(|a| a["title"] == "Three SSH Failures From One Address")
        .collect();
    assert_eq!(corr.len(), 1, "{list:#?}");
    assert_eq!(corr[0]["severity"], "high");
    assert_eq!(
        corr[0]["metadata"]["detail"]["group"]["source.ip"],
        "203.0.113.77"
    );
}

/// One failed login matches the built-in informational rule: no alert at the default
/// `ingest.min_alert_level` (low), an alert when it is `informational`. Root login attempts
/// (low) are alerts by default.
async fn informational_matches_are_no_alerts_below_min_alert_level(backend: vigil_store::Backend) {
    for (level, alerted) in [
        (None, false),
        (Some(vigil_detect::Level::Informational), true),
    ] {
        let Some(app) = crate::helpers::spawn_app_with(backend, |c| {
            if let Some(level) = level {
                c.ingest.min_alert_level = level;
            }
        })
        .await
        else {
            return;
        };
        let admin = app.admin().await.access;
        let (_, cred) = enrolled_agent(&app, &admin, "bastion-1").await;
        let mut alice = ssh_failure(0, "bastion-1");
        alice["user"]["name"] = "alice".into();
        alice["message"] = "Failed password for alice from 203.0.113.9 port 50000 ssh2".into();
        let root = ssh_failure(1, "bastion-1");
        ingest(&app, &cred, Uuid::now_v7(), vec![alice, root])
            .await
            .ok(202);
        let list = alerts(&app, &admin).await;
        let titles: Vec<&str> = list.iter().filter_map(|a| a["title"].as_str()).collect();
        assert_eq!(
            titles.contains(&"Authentication Failure"),
            alerted,
            "min_alert_level {level:?}: {titles:?}"
        );
        assert!(titles.contains(&"Root Login Attempt"), "{titles:?}");
    }
}
