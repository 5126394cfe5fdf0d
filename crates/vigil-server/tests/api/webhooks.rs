//! Outgoing webhooks against real receivers on 127.0.0.1: signatures checked by the
//! reference `standardwebhooks` Python package, retries (500, 429 + Retry-After), dead
//! letters and redelivery, 410 disabling the endpoint, a hanging endpoint beside a healthy
//! one, the SSRF guard, RBAC and org isolation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use vigil_core::Role;
use vigil_integrations::testing::{
    ReceivedWebhook, Reply, WebhookReceiver, test_python, verify_with_standardwebhooks,
};
use vigil_server::config::{Config, Secret};
use vigil_server::webhooks::WebhookEndpointConfig;
use vigil_store::Backend;

use crate::helpers::{TestApp, both, id_of, spawn_app_with};

both!(
    @backend
    deliveries_are_signed_filtered_and_logged,
    failures_are_retried_honouring_retry_after,
    dead_deliveries_are_redelivered,
    gone_disables_the_endpoint,
    a_hanging_endpoint_does_not_delay_a_healthy_one,
    ssrf_guard_refuses_internal_destinations,
    endpoints_are_admin_only_and_stay_in_their_org,
    changes_of_one_alert_arrive_in_order,
);

const WAIT: Duration = Duration::from_secs(30);

/// Fast retries, internal destinations allowed (the receivers are on loopback).
fn fast(c: &mut Config) {
    c.webhooks.allow_private_destinations = true;
    c.webhooks.poll_ms = 50;
    c.webhooks.retry_base_ms = 50;
    c.webhooks.retry_max_secs = 2;
    c.outbox.poll_ms = 50;
}

async fn app(backend: Backend, configure: impl FnOnce(&mut Config)) -> Option<TestApp> {
    spawn_app_with(backend, |c| {
        fast(c);
        configure(c);
    })
    .await
}

/// Creates an endpoint; returns (id, secret).
async fn endpoint(app: &TestApp, token: &str, body: Value) -> (String, String) {
    let r = app.post("/api/v1/webhooks", token, &body).await;
    let b = r.ok(201);
    let secret = b["secret"].as_str().expect("secret").to_string();
    assert!(secret.starts_with("whsec_"), "{secret}");
    (id_of(&b["endpoint"]), secret)
}

/// Polls the delivery log until `ok` holds for it.
async fn wait_log(
    app: &TestApp,
    token: &str,
    endpoint: &str,
    what: &str,
    ok: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = app
            .get(
                &format!("/api/v1/webhooks/{endpoint}/deliveries?limit=500"),
                token,
            )
            .await;
        let items = r.ok(200)["items"].as_array().cloned().unwrap_or_default();
        if ok(&items) {
            return items;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: log is {items:#?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn verify_all(secret: &str, got: &[ReceivedWebhook]) {
    let Some(python) = test_python() else { return };
    let results = verify_with_standardwebhooks(&python, secret, got);
    assert_eq!(results.len(), got.len());
    for r in results {
        r.expect("standardwebhooks verifies the signature");
    }
}

async fn deliveries_are_signed_filtered_and_logged(backend: Backend) {
    let Some(app) = app(backend, |_| {}).await else {
        return;
    };
    let admin = app.admin().await.access;
    let rx = WebhookReceiver::start(|_| Reply::Status(204)).await;
    let (ep, secret) = endpoint(
        &app,
        &admin,
        json!({"name": "siem", "url": rx.url, "min_severity": "high",
               "event_kinds": ["alert.created"], "headers": {"X-Team": "secops"}}),
    )
    .await;
    app.alert(&admin, "too low for the filter", "medium").await;
    let alert = app
        .alert(&admin, "root login from 203.0.113.9", "critical")
        .await;
    let got = rx.wait_until("one delivery", WAIT, |r| !r.is_empty()).await;
    let log = wait_log(&app, &admin, &ep, "delivered", |l| {
        l.len() == 1 && l[0]["status"] == "delivered"
    })
    .await;
    assert_eq!(got.len(), 1, "the medium alert is filtered out");
    let req = &got[0];
    let body = req.json();
    assert_eq!(body["schema"], 1);
    assert_eq!(body["kind"], "alert.created");
    assert_eq!(body["alert"]["id"], alert["id"]);
    assert_eq!(req.header("webhook-id"), body["id"].as_str());
    assert_eq!(log[0]["event_id"], body["id"]);
    assert_eq!(req.header("x-team"), Some("secops"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert!(req.header("webhook-signature").unwrap().starts_with("v1,"));
    assert_eq!(log[0]["last_status_code"], 204);
    assert_eq!(log[0]["attempts"], 1);
    assert!(log[0]["last_latency_ms"].is_u64());
    verify_all(&secret, &got);
    // A tampered body (or another secret) fails verification.
    if let Some(python) = test_python() {
        let mut tampered = req.clone();
        tampered.body = String::from_utf8_lossy(&req.body)
            .replace("critical", "low")
            .into_bytes();
        assert_ne!(tampered.body, req.body);
        let r = verify_with_standardwebhooks(&python, &secret, &[tampered]);
        assert!(
            r[0].as_ref()
                .is_err_and(|e| e.contains("No matching signature")),
            "{r:?}"
        );
        let other = vigil_integrations::webhooks::WebhookSecret::generate().expose();
        assert!(verify_with_standardwebhooks(&python, &other, &got)[0].is_err());
    }

    // The test button: the same signing path, a `webhook.test` event, nothing stored.
    let r = app
        .post(&format!("/api/v1/webhooks/{ep}/test"), &admin, &json!({}))
        .await;
    let t = r.ok(200);
    assert_eq!(t["outcome"], "delivered");
    assert_eq!(t["status_code"], 204);
    let got = rx
        .wait_until("the test event", WAIT, |r| r.len() == 2)
        .await;
    assert_eq!(got[1].json()["kind"], "webhook.test");
    verify_all(&secret, &got[1..]);

    // After a rotation, deliveries verify with the new secret only.
    let r = app
        .post(
            &format!("/api/v1/webhooks/{ep}/rotate-secret"),
            &admin,
            &json!({}),
        )
        .await;
    let new_secret = r.ok(200)["secret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, secret);
    app.post(&format!("/api/v1/webhooks/{ep}/test"), &admin, &json!({}))
        .await
        .ok(200);
    let got = rx
        .wait_until("a test after rotation", WAIT, |r| r.len() == 3)
        .await;
    verify_all(&new_secret, &got[2..]);
    if let Some(python) = test_python() {
        assert!(verify_with_standardwebhooks(&python, &secret, &got[2..])[0].is_err());
    }
    // The secret never comes back in listings.
    let r = app.get("/api/v1/webhooks", &admin).await;
    assert!(
        !r.text.contains(&new_secret[6..]) && !r.text.contains("secret\""),
        "{}",
        r.text
    );
    let m = app.send(reqwest::Method::GET, "/metrics", None, None).await;
    assert!(
        m.text
            .contains("webhook_deliveries_total{result=\"delivered\"}")
            && m.text.contains("webhook_delivery_duration_seconds"),
        "metrics lack the webhook series"
    );
}

async fn failures_are_retried_honouring_retry_after(backend: Backend) {
    let Some(app) = app(backend, |c| c.webhooks.retry_max_secs = 5).await else {
        return;
    };
    let admin = app.admin().await.access;
    let rx = WebhookReceiver::start(|r| match r.index {
        0 => Reply::Status(500),
        1 => Reply::RetryAfter(429, "2".into()),
        _ => Reply::Status(200),
    })
    .await;
    let (ep, secret) = endpoint(&app, &admin, json!({"name": "flaky", "url": rx.url})).await;
    app.alert(&admin, "retry me", "high").await;
    // After the 429: the next attempt waits at least the 2 s Retry-After asked for.
    let log = wait_log(&app, &admin, &ep, "two failed attempts", |l| {
        l.len() == 1 && l[0]["attempts"] == 2
    })
    .await;
    assert_eq!(log[0]["status"], "pending");
    assert_eq!(log[0]["last_status_code"], 429);
    let last: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(log[0]["last_attempt_at"].clone()).unwrap();
    let next: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(log[0]["next_attempt_at"].clone()).unwrap();
    assert!(
        next - last >= chrono::Duration::seconds(2),
        "{last} -> {next}"
    );
    let log = wait_log(&app, &admin, &ep, "delivered on the third attempt", |l| {
        l[0]["status"] == "delivered"
    })
    .await;
    assert_eq!(log[0]["attempts"], 3);
    let got = rx.received();
    assert_eq!(got.len(), 3);
    // Every attempt carries the same id (receivers deduplicate on it) and a valid signature.
    assert!(
        got.iter()
            .all(|r| r.header("webhook-id") == got[0].header("webhook-id"))
    );
    verify_all(&secret, &got);
    // The attempt log shows each try.
    let did = log[0]["id"].as_str().unwrap();
    let d = app
        .get(&format!("/api/v1/webhooks/{ep}/deliveries/{did}"), &admin)
        .await;
    let attempts = d.ok(200)["attempts"].as_array().unwrap().clone();
    let codes: Vec<&Value> = attempts.iter().map(|a| &a["status_code"]).collect();
    assert_eq!(codes, vec![&json!(500), &json!(429), &json!(200)]);
}

async fn dead_deliveries_are_redelivered(backend: Backend) {
    let Some(app) = app(backend, |c| c.webhooks.max_age_secs = 1).await else {
        return;
    };
    let admin = app.admin().await.access;
    let status = Arc::new(AtomicU16::new(503));
    let s = status.clone();
    let rx = WebhookReceiver::start(move |_| Reply::Status(s.load(Ordering::SeqCst))).await;
    let (ep, secret) = endpoint(&app, &admin, json!({"name": "down", "url": rx.url})).await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(5);
    app.alert(&admin, "first", "high").await;
    app.alert(&admin, "second", "high").await;
    let log = wait_log(&app, &admin, &ep, "both dead", |l| {
        l.len() == 2 && l.iter().all(|d| d["status"] == "dead")
    })
    .await;
    assert!(
        log.iter()
            .all(|d| d["next_attempt_at"].is_null() && d["attempts"].as_u64() >= Some(1))
    );
    let dead = app
        .get(
            &format!("/api/v1/webhooks/{ep}/deliveries?status=dead&limit=1"),
            &admin,
        )
        .await;
    let page = dead.ok(200);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert!(page["next_before"].is_string(), "a second page exists");
    let failed = rx.received().len();

    status.store(200, Ordering::SeqCst);
    let since = urlencode(&before.to_rfc3339());
    let r = app
        .post(
            &format!("/api/v1/webhooks/{ep}/redeliver?since={since}"),
            &admin,
            &json!({}),
        )
        .await;
    assert_eq!(r.ok(202)["requeued"], 2);
    wait_log(&app, &admin, &ep, "both delivered", |l| {
        l.iter().all(|d| d["status"] == "delivered")
    })
    .await;
    // One delivered delivery sent again by hand: the same webhook-id once more.
    let did = log[0]["id"].as_str().unwrap();
    let r = app
        .post(
            &format!("/api/v1/webhooks/{ep}/deliveries/{did}/redeliver"),
            &admin,
            &json!({}),
        )
        .await;
    r.ok(202);
    let got = rx
        .wait_until("the manual redelivery", WAIT, |r| r.len() == failed + 3)
        .await;
    let event = log[0]["event_id"].as_str();
    let repeats = got
        .iter()
        .filter(|r| r.header("webhook-id") == event)
        .count();
    assert!(repeats >= 2, "the event was sent again: {repeats}");
    verify_all(&secret, &got[failed..]);
    assert_eq!(
        app.post(
            &format!("/api/v1/webhooks/{ep}/redeliver?since=yesterday"),
            &admin,
            &json!({})
        )
        .await
        .status,
        400
    );
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

async fn gone_disables_the_endpoint(backend: Backend) {
    let Some(app) = app(backend, |_| {}).await else {
        return;
    };
    let admin = app.admin().await.access;
    let rx = WebhookReceiver::start(|_| Reply::Status(410)).await;
    let (ep, _) = endpoint(&app, &admin, json!({"name": "gone", "url": rx.url})).await;
    app.alert(&admin, "to a receiver that left", "high").await;
    let log = wait_log(&app, &admin, &ep, "dead after 410", |l| {
        l.len() == 1 && l[0]["status"] == "dead"
    })
    .await;
    assert_eq!(log[0]["attempts"], 1, "410 is not retried");
    let e = app.get(&format!("/api/v1/webhooks/{ep}"), &admin).await;
    let e = e.ok(200);
    assert_eq!(e["enabled"], false);
    assert!(e["disabled_reason"].as_str().unwrap().contains("410"));
    // Disabled: later alerts make no deliveries for it.
    app.alert(&admin, "after the 410", "high").await;
    let other = WebhookReceiver::start(|_| Reply::Status(200)).await;
    endpoint(&app, &admin, json!({"name": "other", "url": other.url})).await;
    app.alert(&admin, "seen by the other endpoint", "high")
        .await;
    other
        .wait_until("the other endpoint's delivery", WAIT, |r| !r.is_empty())
        .await;
    assert_eq!(rx.received().len(), 1);
    // Enabled again by an admin.
    let r = app
        .patch(
            &format!("/api/v1/webhooks/{ep}"),
            &admin,
            &json!({"enabled": true}),
        )
        .await;
    assert_eq!(r.ok(200)["disabled_reason"], Value::Null);
}

async fn a_hanging_endpoint_does_not_delay_a_healthy_one(backend: Backend) {
    let Some(app) = app(backend, |c| c.webhooks.max_concurrency_per_endpoint = 2).await else {
        return;
    };
    let admin = app.admin().await.access;
    let hang = WebhookReceiver::start(|_| Reply::Hang).await;
    let ok = WebhookReceiver::start(|_| Reply::Status(200)).await;
    endpoint(
        &app,
        &admin,
        json!({"name": "hangs", "url": hang.url, "timeout_ms": 60000}),
    )
    .await;
    let (healthy, _) = endpoint(&app, &admin, json!({"name": "healthy", "url": ok.url})).await;
    for i in 0..12 {
        app.alert(&admin, &format!("alert {i}"), "high").await;
    }
    ok.wait_until("all 12 at the healthy endpoint", WAIT, |r| r.len() == 12)
        .await;
    wait_log(&app, &admin, &healthy, "12 delivered", |l| {
        l.len() == 12 && l.iter().all(|d| d["status"] == "delivered")
    })
    .await;
    // Meanwhile the hanging endpoint holds only its own two slots: nothing answered yet.
    hang.wait_until("two hanging requests", WAIT, |r| r.len() == 2)
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        hang.received().len(),
        2,
        "at most max_concurrency_per_endpoint in flight"
    );
}

async fn ssrf_guard_refuses_internal_destinations(backend: Backend) {
    let rx = WebhookReceiver::start(|_| Reply::Status(200)).await;
    let url = rx.url.clone();
    let Some(app) = spawn_app_with(backend, move |c| {
        c.webhooks.poll_ms = 50;
        c.outbox.poll_ms = 50;
        // A config-file endpoint is kept (DNS may change) but every attempt is checked.
        c.webhooks.endpoints = vec![WebhookEndpointConfig {
            org: "default".into(),
            name: "from-file".into(),
            url,
            secret: Secret::new(vigil_integrations::webhooks::WebhookSecret::generate().expose()),
            enabled: true,
            min_severity: None,
            sources: vec![],
            tags: vec![],
            event_kinds: vec![],
            headers: vec!["X-From: file".into()],
            timeout_secs: Some(2),
        }];
    })
    .await
    else {
        return;
    };
    let admin = app.admin().await.access;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://[::1]:9/",
        "http://[::ffff:127.0.0.1]:9/",
        "http://10.0.0.8/",
        "http://169.254.169.254/latest/meta-data",
    ] {
        let r = app
            .post(
                "/api/v1/webhooks",
                &admin,
                &json!({"name": "internal", "url": url}),
            )
            .await;
        let e = r.err(422, "destination_refused");
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains("allow_private_destinations"),
            "{e}"
        );
    }
    app.post(
        "/api/v1/webhooks",
        &admin,
        &json!({"name": "x", "url": "ftp://example.com/"}),
    )
    .await
    .err(422, "validation_failed");
    let list = app.get("/api/v1/webhooks", &admin).await;
    let file_ep = list.ok(200)[0].clone();
    assert_eq!(file_ep["name"], "from-file");
    assert_eq!(file_ep["from_config"], true);
    let ep = id_of(&file_ep);
    // At send time: the test button answers 422, and a real delivery records the refusal.
    app.post(&format!("/api/v1/webhooks/{ep}/test"), &admin, &json!({}))
        .await
        .err(422, "destination_refused");
    app.alert(&admin, "must not reach loopback", "high").await;
    let log = wait_log(&app, &admin, &ep, "a refused attempt", |l| {
        l.len() == 1 && l[0]["attempts"].as_u64() >= Some(1)
    })
    .await;
    assert!(
        log[0]["last_error"].as_str().unwrap().contains("refused"),
        "{log:?}"
    );
    assert!(
        rx.received().is_empty(),
        "nothing reached the loopback receiver"
    );
    // Config endpoints change in the file only.
    app.patch(
        &format!("/api/v1/webhooks/{ep}"),
        &admin,
        &json!({"enabled": false}),
    )
    .await
    .err(409, "managed_by_config");
}

async fn endpoints_are_admin_only_and_stay_in_their_org(backend: Backend) {
    let Some(app) = app(backend, |_| {}).await else {
        return;
    };
    let admin = app.admin().await.access;
    let rx = WebhookReceiver::start(|_| Reply::Status(200)).await;
    let (ep, _) = endpoint(&app, &admin, json!({"name": "a-only", "url": rx.url})).await;
    app.alert(&admin, "org a", "high").await;
    let log = wait_log(&app, &admin, &ep, "delivered", |l| {
        l.len() == 1 && l[0]["status"] == "delivered"
    })
    .await;
    let did = log[0]["id"].as_str().unwrap().to_string();

    let analyst = app.user_session(&admin, "ana", "analyst").await.access;
    app.get("/api/v1/webhooks", &analyst)
        .await
        .err(403, "forbidden");
    app.post(
        "/api/v1/webhooks",
        &analyst,
        &json!({"name": "n", "url": rx.url}),
    )
    .await
    .err(403, "forbidden");

    let b = app.other_org_user("bob", Role::Admin).await.access;
    assert_eq!(app.get("/api/v1/webhooks", &b).await.ok(200), &json!([]));
    for path in [
        format!("/api/v1/webhooks/{ep}"),
        format!("/api/v1/webhooks/{ep}/deliveries"),
        format!("/api/v1/webhooks/{ep}/deliveries/{did}"),
    ] {
        app.get(&path, &b).await.err(404, "not_found");
    }
    for path in [
        format!("/api/v1/webhooks/{ep}/rotate-secret"),
        format!("/api/v1/webhooks/{ep}/test"),
        format!("/api/v1/webhooks/{ep}/deliveries/{did}/redeliver"),
        format!("/api/v1/webhooks/{ep}/redeliver?since=2020-01-01T00:00:00Z"),
    ] {
        app.post(&path, &b, &json!({})).await.err(404, "not_found");
    }
    app.patch(
        &format!("/api/v1/webhooks/{ep}"),
        &b,
        &json!({"url": "http://127.0.0.1:1/"}),
    )
    .await
    .err(404, "not_found");
    let r = app
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/webhooks/{ep}"),
            Some(&b),
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    // Org B's alerts never reach org A's endpoint; its own endpoint gets only its own.
    let rx_b = WebhookReceiver::start(|_| Reply::Status(200)).await;
    endpoint(&app, &b, json!({"name": "a-only", "url": rx_b.url})).await;
    app.alert(&b, "org b", "high").await;
    let got = rx_b
        .wait_until("org b's delivery", WAIT, |r| !r.is_empty())
        .await;
    assert_eq!(got[0].json()["alert"]["title"], "org b");
    app.alert(&admin, "org a again", "high").await;
    rx.wait_until("org a's second", WAIT, |r| r.len() == 2)
        .await;
    assert!(
        rx.received()
            .iter()
            .all(|r| r.json()["alert"]["title"] != "org b")
    );
    assert_eq!(rx_b.received().len(), 1);
    // Still there for org A, deletable by its admin.
    let r = app
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/webhooks/{ep}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
}

async fn changes_of_one_alert_arrive_in_order(backend: Backend) {
    // The failed first attempt waits 0.5 to 1 s: time for the later changes to overtake it
    // if nothing held them back.
    let Some(app) = app(backend, |c| c.webhooks.retry_base_ms = 1000).await else {
        return;
    };
    let admin = app.admin().await.access;
    // The first request fails: the alert's later changes must wait for its retry.
    let rx = WebhookReceiver::start(|r| {
        if r.index == 0 {
            Reply::Status(503)
        } else {
            Reply::Status(200)
        }
    })
    .await;
    let (ep, secret) = endpoint(&app, &admin, json!({"name": "ordered", "url": rx.url})).await;
    let alert = app.alert(&admin, "changes in order", "medium").await;
    let id = id_of(&alert);
    app.post(&format!("/api/v1/alerts/{id}/ack"), &admin, &json!({}))
        .await
        .ok(200);
    app.patch(
        &format!("/api/v1/alerts/{id}/severity"),
        &admin,
        &json!({"severity": "critical"}),
    )
    .await
    .ok(200);
    app.post(
        &format!("/api/v1/alerts/{id}/close"),
        &admin,
        &json!({"resolution_notes": "done"}),
    )
    .await
    .ok(200);
    wait_log(&app, &admin, &ep, "four delivered", |l| {
        l.len() == 4 && l.iter().all(|d| d["status"] == "delivered")
    })
    .await;
    let got = rx.received();
    let kinds: Vec<String> = got
        .iter()
        .map(|r| r.json()["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "alert.created",
            "alert.created",
            "alert.status_changed",
            "alert.severity_changed",
            "alert.closed"
        ],
        "a later change overtook the failed one"
    );
    let last = got[4].json();
    assert_eq!(last["alert"]["status"], "closed");
    assert_eq!(last["alert"]["severity"], "critical");
    verify_all(&secret, &got);
}
