//! The outbox end to end: alert changes over HTTP reach the live hub as events, in order;
//! the dispatcher delivers to every sink and the hub, again (same ids) after a sink failed,
//! after a crash, and exactly once across two dispatchers sharing a database.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use vigil_core::{AlertEvent, AlertEventKind, AlertInput, NewAlert, Role, Severity};
use vigil_server::outbox::{LiveHub, LocalFanout, OutboxConfig, OutboxDispatcher, OutboxSink};
use vigil_store::testing::TestDb;
use vigil_store::{Backend, DynStore};

use crate::helpers::{Resp, TestApp, both, id_of, metric};

both!(alert_changes_reach_the_hub_in_order);
both!(@backend
    the_dispatcher_delivers_to_every_sink_and_the_hub_once,
    a_failing_sink_gets_the_same_events_again,
    events_left_by_a_crashed_dispatcher_are_dispatched_by_the_next,
    two_dispatchers_on_one_database_deliver_each_event_once,
);

const WAIT: Duration = Duration::from_secs(20);

/// The next event the hub delivers, or a panic after [`WAIT`].
async fn next(rx: &mut tokio::sync::broadcast::Receiver<Arc<AlertEvent>>) -> Arc<AlertEvent> {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("an event within the deadline")
        .expect("hub open")
}

async fn alert_changes_reach_the_hub_in_order(app: &TestApp) {
    let mut rx = app.hub.subscribe();
    let admin = app.admin().await;
    let a = app.alert(&admin.access, "outbox", "low").await;
    let id = id_of(&a);
    let e = next(&mut rx).await;
    assert_eq!(
        (e.kind, e.alert.id.to_string(), e.actor.as_str()),
        (AlertEventKind::Created, id.clone(), "admin")
    );
    assert_eq!(
        serde_json::to_value(&e.alert).unwrap(),
        a,
        "the event carries the alert as the API returned it"
    );

    let r = set(app, &admin.access, &id, "severity", json!("critical")).await;
    assert_eq!(r.ok(200)["severity"], "critical");
    let r = set(app, &admin.access, &id, "assignee", json!("admin")).await;
    assert_eq!(r.ok(200)["assignee"], "admin");
    let stranger = app.other_org_user("stranger", Role::Admin).await;
    // Unknown users and users of another organization cannot be assigned; another
    // organization's admin does not see the alert at all. None of these raises an event.
    let refused = [
        (&admin.access, "assignee", "nobody", 400, "invalid_assignee"),
        (
            &admin.access,
            "assignee",
            "stranger",
            400,
            "invalid_assignee",
        ),
        (&stranger.access, "severity", "low", 404, "not_found"),
        (&admin.access, "severity", "urgent", 422, "invalid_body"),
    ];
    for (token, field, value, status, code) in refused {
        set(app, token, &id, field, json!(value))
            .await
            .err(status, code);
    }
    let r = set(app, &admin.access, &id, "assignee", Value::Null).await;
    assert!(r.ok(200)["assignee"].is_null());
    let closing = json!({"status": "closed", "resolution_notes": "done"});
    app.patch(
        &format!("/api/v1/alerts/{id}/status"),
        &admin.access,
        &closing,
    )
    .await
    .ok(200);

    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(next(&mut rx).await);
    }
    let kinds: Vec<_> = got.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            AlertEventKind::SeverityChanged,
            AlertEventKind::Assigned,
            AlertEventKind::Assigned,
            AlertEventKind::Closed
        ]
    );
    assert!(got.windows(2).all(|w| w[0].seq < w[1].seq) && got[0].seq > e.seq);
    assert_eq!(got[0].alert.severity, Severity::Critical);
    assert_eq!(got[1].alert.assignee.as_deref(), Some("admin"));
    assert_eq!(
        (
            got[2].changes[0].old.as_deref(),
            got[2].changes[0].new.as_deref()
        ),
        (Some("admin"), None)
    );
    assert_eq!(
        got[3]
            .changes
            .iter()
            .find(|c| c.field == "status")
            .and_then(|c| c.new.as_deref()),
        Some("closed")
    );
    // Audited like status changes.
    let history = app
        .get(&format!("/api/v1/alerts/{id}/history"), &admin.access)
        .await;
    let fields: Vec<&str> = history
        .ok(200)
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["field"].as_str())
        .collect();
    assert!(
        fields.contains(&"severity") && fields.contains(&"assignee"),
        "{fields:?}"
    );
    // The dispatcher has marked everything and exports its gauge.
    let deadline = tokio::time::Instant::now() + WAIT;
    while app.store.outbox_store().pending().await.unwrap() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "events left undispatched"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while metric(app, "outbox_pending").await.is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no outbox_pending gauge"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `PATCH /alerts/{id}/{field}` with `{field: value}`.
async fn set(app: &TestApp, token: &str, id: &str, field: &str, value: Value) -> Resp {
    let body = json!({ field: value });
    app.patch(&format!("/api/v1/alerts/{id}/{field}"), token, &body)
        .await
}

/// A sink that records what it accepted, after refusing its first `fail` calls.
struct TestSink {
    fail: AtomicUsize,
    calls: AtomicUsize,
    got: Mutex<Vec<AlertEvent>>,
}

impl TestSink {
    fn new(fail: usize) -> Arc<Self> {
        Arc::new(Self {
            fail: AtomicUsize::new(fail),
            calls: AtomicUsize::new(0),
            got: Mutex::new(Vec::new()),
        })
    }

    fn ids(&self) -> Vec<Uuid> {
        self.got.lock().unwrap().iter().map(|e| e.id).collect()
    }
}

#[async_trait::async_trait]
impl OutboxSink for TestSink {
    fn name(&self) -> &'static str {
        "test"
    }

    async fn accept(&self, events: &[AlertEvent]) -> anyhow::Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self
            .fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            anyhow::bail!("receiver answered 500");
        }
        self.got.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
}

fn config() -> OutboxConfig {
    OutboxConfig {
        poll_ms: 20,
        batch: 50,
        lease_secs: 30,
        retention_hours: 72,
    }
}

fn dispatcher(store: &DynStore, hub: &Arc<LiveHub>, sinks: &[Arc<TestSink>]) -> OutboxDispatcher {
    OutboxDispatcher::new(
        store.outbox_store(),
        Arc::new(LocalFanout(hub.clone())),
        sinks
            .iter()
            .map(|s| s.clone() as Arc<dyn OutboxSink>)
            .collect(),
        config(),
    )
}

/// Creates `n` alerts in organization `o` (made when missing); returns the org id.
async fn alerts(store: &DynStore, from: usize, n: usize) -> Uuid {
    let org = match store.get_org_by_name("o").await.unwrap() {
        Some(o) => o.id,
        None => store.create_org("o").await.unwrap().id,
    };
    for i in from..from + n {
        let input = AlertInput {
            alert_id: Some(format!("OB-{i}")),
            title: format!("alert {i}"),
            severity: Severity::High,
            ..Default::default()
        };
        store
            .create_alert(org, NewAlert::parse(input, vigil_core::now()).unwrap(), "t")
            .await
            .unwrap();
    }
    org
}

/// Every event the hub holds for `rx` now.
fn drain(rx: &mut tokio::sync::broadcast::Receiver<Arc<AlertEvent>>) -> Vec<Uuid> {
    std::iter::from_fn(|| rx.try_recv().ok())
        .map(|e| e.id)
        .collect()
}

async fn the_dispatcher_delivers_to_every_sink_and_the_hub_once(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let hub = Arc::new(LiveHub::new(1024));
    let mut rx = hub.subscribe();
    let (a, b) = (TestSink::new(0), TestSink::new(0));
    let mut d = dispatcher(&db.store, &hub, &[a.clone(), b.clone()]);
    let org = alerts(&db.store, 0, 3).await;
    let written: Vec<Uuid> = db
        .store
        .outbox_store()
        .after(org, 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(d.dispatch_once().await.unwrap(), 3);
    assert_eq!(a.ids(), written, "oldest first");
    assert_eq!(b.ids(), written);
    assert_eq!(drain(&mut rx), written);
    assert_eq!(db.store.outbox_store().pending().await.unwrap(), 0);
    // Nothing goes out twice.
    assert_eq!(d.dispatch_once().await.unwrap(), 0);
    assert_eq!(a.calls.load(Ordering::SeqCst), 1);
    assert!(drain(&mut rx).is_empty());
}

async fn a_failing_sink_gets_the_same_events_again(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let hub = Arc::new(LiveHub::new(1024));
    let mut rx = hub.subscribe();
    let (ok, flaky) = (TestSink::new(0), TestSink::new(2));
    let mut d = dispatcher(&db.store, &hub, &[ok.clone(), flaky.clone()]);
    let org = alerts(&db.store, 0, 3).await;
    let outbox = db.store.outbox_store();
    for _ in 0..2 {
        assert!(d.dispatch_once().await.is_err());
        assert_eq!(
            outbox.pending().await.unwrap(),
            3,
            "nothing marked while a sink fails"
        );
    }
    assert_eq!(d.dispatch_once().await.unwrap(), 3);
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 3);
    let written: Vec<Uuid> = outbox
        .after(org, 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(
        flaky.ids(),
        written,
        "the same events, same ids, once accepted"
    );
    // The sink and the hub that took the batch are not given it again by this dispatcher.
    assert_eq!(ok.ids(), written);
    assert_eq!(drain(&mut rx), written);
    assert_eq!(outbox.pending().await.unwrap(), 0);
}

/// Waits until `sink` has accepted `n` events.
async fn until_accepted(sink: &TestSink, n: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while sink.got.lock().unwrap().len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {n} events delivered",
            sink.got.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn events_left_by_a_crashed_dispatcher_are_dispatched_by_the_next(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    // Committed while no dispatcher ran; some of them claimed by one that then died.
    alerts(&db.store, 0, 5).await;
    let claimed = db
        .store
        .outbox_store()
        .claim("crashed", 2, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    db.store.close().await;

    // A new process: its own store and dispatcher.
    let store = vigil_store::connect(&db.url, 4).await.unwrap();
    let hub = Arc::new(LiveHub::new(1024));
    let sink = TestSink::new(0);
    let stop = CancellationToken::new();
    let task =
        tokio::spawn(dispatcher(&store, &hub, std::slice::from_ref(&sink)).run(stop.clone()));
    until_accepted(&sink, 5).await;
    let org = alerts(&store, 5, 2).await;
    until_accepted(&sink, 7).await;
    stop.cancel();
    task.await.unwrap();
    let all: Vec<Uuid> = store
        .outbox_store()
        .after(org, 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    let got: HashSet<Uuid> = sink.ids().into_iter().collect();
    assert_eq!(
        got,
        all.iter().copied().collect(),
        "every event, the crashed claim's included"
    );
    assert_eq!(store.outbox_store().pending().await.unwrap(), 0);
    for e in claimed {
        assert!(got.contains(&e.id));
    }
}

async fn two_dispatchers_on_one_database_deliver_each_event_once(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let sink = TestSink::new(0);
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    for _ in 0..2 {
        // Two replicas: each its own store (pool, notifier) and dispatcher.
        let store = vigil_store::connect(&db.url, 4).await.unwrap();
        let hub = Arc::new(LiveHub::new(1024));
        tasks.push(tokio::spawn(
            dispatcher(&store, &hub, std::slice::from_ref(&sink)).run(stop.clone()),
        ));
    }
    // Written while both run, from a third connection, in several commits.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let url = db.url.clone();
            tokio::spawn(async move {
                let store = vigil_store::connect(&url, 2).await.unwrap();
                if w > 0 {
                    // Let the first writer make the organization.
                    while store.get_org_by_name("o").await.unwrap().is_none() {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                alerts(&store, w * 50, 50).await;
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    until_accepted(&sink, 200).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while db.store.outbox_store().pending().await.unwrap() > 0 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    for t in tasks {
        t.await.unwrap();
    }
    let ids = sink.ids();
    let unique: HashSet<Uuid> = ids.iter().copied().collect();
    assert_eq!(
        (ids.len(), unique.len()),
        (200, 200),
        "each event delivered once"
    );
}
