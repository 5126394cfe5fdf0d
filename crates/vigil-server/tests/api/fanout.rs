//! Fan-out across replicas through Redis pub/sub (real Redis, a key prefix per test; real
//! PostgreSQL shared by two servers): an alert created on replica A reaches the hub of
//! replica B (the one its stream clients subscribe to), once, whichever replica's
//! dispatcher claimed the outbox row; and A's own hub hears it through Redis too.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use vigil_core::AlertEventKind;
use vigil_server::config::{Config, Secret};
use vigil_store::Backend;

use crate::helpers::{TestRedis, poll_until, spawn_app_with, spawn_replica};

fn on_redis(r: &TestRedis) -> impl Fn(&mut Config) + '_ {
    move |c: &mut Config| {
        c.redis.url = Secret::new(r.url.clone());
        c.redis.key_prefix = r.prefix.clone();
        // One secret for both, so a token from A is good on B.
        c.auth.jwt_secret = Secret::new("fan-out-test-secret-of-32-bytes-or-more");
        c.outbox.poll_ms = 50;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_created_on_replica_a_reaches_the_hub_of_replica_b_once() {
    let Some(r) = TestRedis::new() else {
        return;
    };
    let Some(a) = spawn_app_with(Backend::Postgres, on_redis(&r)).await else {
        return;
    };
    let b = spawn_replica(&a, on_redis(&r)).await;
    let mut on_b = b.hub.subscribe();
    let mut on_a = a.hub.subscribe();

    let admin = a.admin().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let alert = a
            .create_alert(
                &admin.access,
                json!({ "title": format!("fan-out {i}"), "severity": "high" }),
            )
            .await;
        ids.push(alert["id"].as_str().unwrap().to_owned());
    }
    // B's token check passes with A's token: the same user, database and secret.
    b.get(&format!("/api/v1/alerts/{}", ids[0]), &admin.access)
        .await
        .ok(200);

    let mut seen_b: HashMap<String, u32> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen_b.len() < ids.len() {
        let e = tokio::time::timeout_at(deadline, on_b.recv())
            .await
            .expect("every alert reaches replica B in time")
            .expect("no lag");
        assert_eq!(e.kind, AlertEventKind::Created);
        *seen_b.entry(e.alert.id.to_string()).or_default() += 1;
    }
    for id in &ids {
        assert_eq!(seen_b.get(id), Some(&1), "{id} on B");
    }
    // Every event dispatched (by A's dispatcher or B's: they share the outbox) ...
    poll_until(30, "the outbox drained", || {
        let store = a.store.outbox_store();
        async move { (store.pending().await.unwrap() == 0).then_some(()) }
    })
    .await;
    // ... and published once. A last alert, published after every earlier PUBLISH was
    // answered, arrives after them on each subscription: whatever comes before it is all
    // that was published.
    let last = a
        .create_alert(
            &admin.access,
            json!({ "title": "fan-out last", "severity": "low" }),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    async fn until(
        rx: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<vigil_core::AlertEvent>>,
        last: &str,
    ) -> Vec<String> {
        let mut before = Vec::new();
        loop {
            let e = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .expect("the last alert arrives")
                .expect("no lag");
            if e.alert.id.to_string() == last {
                return before;
            }
            before.push(e.alert.id.to_string());
        }
    }
    assert_eq!(
        until(&mut on_b, &last).await,
        Vec::<String>::new(),
        "a duplicate on B"
    );
    let mut heard_a = until(&mut on_a, &last).await;
    heard_a.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(
        heard_a, want,
        "A's hub hears its own alerts through Redis, once each"
    );
}
