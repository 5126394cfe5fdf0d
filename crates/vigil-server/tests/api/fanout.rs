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

/// A TCP forwarder to Redis whose connections the test can cut, as a network fault or a
/// Redis restart would.
struct CuttableProxy {
    port: u16,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl CuttableProxy {
    async fn start(upstream: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let accept = tokio::spawn({
            let conns = conns.clone();
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    let conn = tokio::spawn(async move {
                        if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    conns.lock().unwrap().push(conn);
                }
            }
        });
        Self {
            port,
            conns,
            accept,
        }
    }

    /// Closes every connection made so far.
    fn cut(&self) {
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subscriber_reconnects_after_its_connection_is_cut() {
    let Some(r) = TestRedis::new() else {
        return;
    };
    // A real event to publish: an alert's outbox record from a throwaway server.
    let app = crate::helpers::spawn_app(Backend::Sqlite).await.unwrap();
    let admin = app.admin().await;
    app.create_alert(
        &admin.access,
        json!({ "title": "reconnect", "severity": "low" }),
    )
    .await;
    let org = app.default_org().await;
    let event = app
        .store
        .outbox_store()
        .after(org, 0, 1)
        .await
        .unwrap()
        .remove(0);

    let upstream: std::net::SocketAddr = r
        .url
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .parse()
        .expect("VIGIL_TEST_REDIS_URL as redis://HOST:PORT");
    let proxy = CuttableProxy::start(upstream).await;
    let hub = std::sync::Arc::new(vigil_server::outbox::LiveHub::new(64));
    let mut rx = hub.subscribe();
    let stop = tokio_util::sync::CancellationToken::new();
    let subscriber = vigil_server::outbox::RedisSubscriber::new(
        &format!("redis://127.0.0.1:{}", proxy.port),
        &r.prefix,
        hub.clone(),
    )
    .unwrap()
    .start(stop.clone())
    .await
    .unwrap();
    let fanout = vigil_server::outbox::RedisFanout::new(
        vigil_server::jobs::redis::connect(&r.url).await.unwrap(),
        &r.prefix,
    );
    use vigil_server::outbox::Fanout;

    fanout.publish(std::slice::from_ref(&event)).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("delivered")
        .unwrap();
    assert_eq!(got.id, event.id);

    proxy.cut();
    // What is published while it is down is lost (stream clients resume from the outbox);
    // once it is back, events flow again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the subscriber did not come back"
        );
        fanout.publish(std::slice::from_ref(&event)).await.unwrap();
        if let Ok(e) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
            assert_eq!(e.unwrap().id, event.id);
            break;
        }
    }
    stop.cancel();
    subscriber.await.unwrap();
}
