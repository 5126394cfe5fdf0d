//! Webhooks are never lost (issue 16): 10,000 alerts created over HTTP while the receiver
//! fails every other request and `vigil serve` is killed with SIGKILL twice and restarted on
//! the same database. Every alert is delivered at least once, and a repeated delivery of an
//! event always carries the same `webhook-id`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use vigil_integrations::testing::{
    ReceivedWebhook, Reply, WebhookReceiver, test_python, verify_with_standardwebhooks,
};

use super::shutdown::{ADMIN_PW, Server, free_port, wait_for};
use super::tmp;

const ALERTS: usize = 10_000;
const CREATORS: usize = 24;

/// The receiver answers 500 to even-numbered requests and 204 to odd ones.
fn answered_ok(r: &ReceivedWebhook) -> bool {
    r.index % 2 == 1
}

#[test]
fn every_alert_is_delivered_through_two_sigkills() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let receiver = rt.block_on(WebhookReceiver::start(|r| {
        if answered_ok(r) {
            Reply::Status(204)
        } else {
            Reply::Status(500)
        }
    }));
    let secret = vigil_integrations::webhooks::WebhookSecret::generate().expose();
    let d = tmp();
    let port = free_port();
    let toml = format!(
        "[server]\nport = {port}\n[ingest]\nlocal_agent = false\n[rate_limit]\nenabled = false\n\
         [outbox]\npoll_ms = 100\nlease_secs = 3\n\
         [webhooks]\nallow_private_destinations = true\npoll_ms = 100\nretry_base_ms = 50\n\
         retry_max_secs = 1\nmax_concurrency_per_endpoint = 16\n\
         [[webhooks.endpoints]]\norg = \"default\"\nname = \"receiver\"\nurl = \"{}\"\n\
         secret = \"{secret}\"\ntimeout_secs = 5\n",
        receiver.url
    );
    let mut server = Server::start(&d.0, port, &toml, &[]);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let token: String = rt.block_on(async {
        let r = client
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"username": "admin", "password": ADMIN_PW}))
            .send()
            .await
            .unwrap();
        let b: serde_json::Value = r.json().await.unwrap();
        b["access_token"].as_str().unwrap().to_string()
    });

    // Creators: each alert is sent until the server answers 201, or 409 (it was stored
    // before a kill cut the answer off); connection errors while the server is down wait.
    let next = Arc::new(AtomicUsize::new(0));
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let creators: Vec<_> = (0..CREATORS)
        .map(|_| {
            let (next, acknowledged) = (next.clone(), acknowledged.clone());
            let (client, base, token) = (client.clone(), base.clone(), token.clone());
            rt.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= ALERTS {
                        return;
                    }
                    let body = json!({"alert_id": format!("e2e-{i}"), "title": format!("alert {i}"),
                                      "severity": "high"});
                    loop {
                        let sent = client
                            .post(format!("{base}/api/v1/alerts"))
                            .bearer_auth(&token)
                            .json(&body)
                            .timeout(Duration::from_secs(30))
                            .send()
                            .await;
                        match sent.map(|r| r.status().as_u16()) {
                            Ok(201 | 409) => break,
                            Ok(s) if s < 500 => panic!("alert {i}: HTTP {s}"),
                            _ => tokio::time::sleep(Duration::from_millis(100)).await,
                        }
                    }
                    acknowledged.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();

    let started = Instant::now();
    for kill_at in [3_000, 6_500] {
        assert!(
            wait_for(300, || acknowledged.load(Ordering::SeqCst) >= kill_at),
            "alert creation stalled at {}",
            acknowledged.load(Ordering::SeqCst)
        );
        server.signal(libc::SIGKILL);
        let (status, _) = server.wait_exit(30);
        assert_eq!(status.code(), None, "killed by the signal");
        server = Server::start(&d.0, port, &toml, &[]);
    }
    for c in creators {
        rt.block_on(c).unwrap();
    }
    let created_in = started.elapsed();

    // Every alert reaches the receiver with a 2xx answer.
    let delivered_ok = |got: &[ReceivedWebhook]| -> HashSet<String> {
        got.iter()
            .filter(|r| answered_ok(r))
            .filter_map(|r| {
                let b = r.json();
                let id = b["alert"]["alert_id"].as_str()?.to_string();
                (b["kind"] == "alert.created").then_some(id)
            })
            .collect()
    };
    let got = rt.block_on(receiver.wait_until(
        "every alert delivered",
        Duration::from_secs(900),
        |got| delivered_ok(got).len() == ALERTS,
    ));
    let all_in = started.elapsed();
    let ok = delivered_ok(&got);
    assert!((0..ALERTS).all(|i| ok.contains(&format!("e2e-{i}"))));

    // Repeats of an alert's creation carry one webhook-id, and one id is one body.
    let mut ids_per_alert: HashMap<String, HashSet<String>> = HashMap::new();
    let mut body_per_id: HashMap<String, Vec<u8>> = HashMap::new();
    for r in &got {
        let b = r.json();
        if b["kind"] != "alert.created" {
            continue;
        }
        let id = r.header("webhook-id").unwrap().to_string();
        assert_eq!(b["id"].as_str(), Some(id.as_str()));
        ids_per_alert
            .entry(b["alert"]["alert_id"].as_str().unwrap().to_string())
            .or_default()
            .insert(id.clone());
        let first = body_per_id
            .entry(id.clone())
            .or_insert_with(|| r.body.clone());
        assert_eq!(*first, r.body, "webhook-id {id} with two bodies");
    }
    let split: Vec<_> = ids_per_alert
        .iter()
        .filter(|(_, ids)| ids.len() > 1)
        .collect();
    assert!(
        split.is_empty(),
        "alerts delivered under several webhook-ids: {split:?}"
    );
    let ok_requests = got.iter().filter(|r| answered_ok(r)).count();
    println!(
        "{ALERTS} alerts created in {created_in:?} with 2 SIGKILLs; all delivered after {all_in:?}; \
         {} requests, {ok_requests} answered 2xx ({} duplicates of a delivered event)",
        got.len(),
        ok_requests - ALERTS
    );
    // The reference implementation refuses timestamps over 5 minutes old: the latest ones.
    if let Some(python) = test_python() {
        let recent = &got[got.len().saturating_sub(1000)..];
        let bad: Vec<_> = verify_with_standardwebhooks(&python, &secret, recent)
            .into_iter()
            .filter(|r| r.is_err())
            .collect();
        assert!(
            bad.is_empty(),
            "{} signatures fail: {:?}",
            bad.len(),
            bad.first()
        );
    }
    server.signal(libc::SIGTERM);
    let (status, _) = server.wait_exit(60);
    assert_eq!(status.code(), Some(0));
}
