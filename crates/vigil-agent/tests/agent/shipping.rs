use std::time::Duration;

use vigil_agent::Agent;

use crate::helpers::*;

fn assert_batches_unique(f: &Fake) {
    let r = f.lock();
    assert_eq!(r.batch_order.len(), r.batches.len());
}

#[tokio::test]
async fn outage_503_then_server_down_loses_nothing_and_stores_each_batch_once() {
    let mut server = FakeServer::start().await;
    let dir = TestDir::new("outage");
    let state = dir.path().join("state");
    let log = dir.path().join("app.log");
    let mut cfg = config(&server, &state, &[&log]);
    cfg.shipper.batch_max_events = 20;
    let f = server.fake.clone();
    let handle = Agent::build(cfg.clone()).await.unwrap().spawn();
    append(&log, numbered("a", 0..10));
    wait_for(10, "first lines", || f.lines().len() >= 10).await;

    f.set_mode(Mode::Unavailable);
    append(&log, numbered("b", 0..100));
    wait_for(10, "batches buffered during 503", || {
        handle.stats().batches_buffered >= 3
    })
    .await;
    assert!(state.join("buffer").read_dir().unwrap().count() > 0);

    // Now the server is gone altogether.
    server.stop().await;
    append(&log, numbered("c", 0..100));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = handle.stats();
    assert!(during.send_failures > 0);
    assert!(during.buffer_batches > 0);

    f.set_mode(Mode::Normal);
    server.restart().await;
    append(&log, numbered("d", 0..10));
    wait_for(20, "everything after the outage", || f.lines().len() >= 220).await;
    wait_for(10, "buffer drained", || handle.stats().buffer_batches == 0).await;
    let stats = handle.shutdown().await.unwrap();
    let mut expected = numbered("a", 0..10);
    expected.extend(numbered("b", 0..100));
    expected.extend(numbered("c", 0..100));
    expected.extend(numbered("d", 0..10));
    assert_exactly_once(&f.lines(), &expected);
    assert_batches_unique(&f);
    assert_eq!(stats.events_dropped, 0);
    let r = f.lock();
    println!(
        "outage: {} batches stored, {} duplicate deliveries seen by the server",
        r.batches.len(),
        r.duplicates
    );
}

#[tokio::test]
async fn buffered_batches_are_replayed_after_a_restart_with_their_ids() {
    let server = FakeServer::start().await;
    let dir = TestDir::new("replay");
    let state = dir.path().join("state");
    let log = dir.path().join("app.log");
    let cfg = config(&server, &state, &[&log]);
    let f = server.fake.clone();
    let handle = Agent::build(cfg.clone()).await.unwrap().spawn();
    wait_for(10, "registration", || f.lock().credentials.len() == 1).await;
    f.set_mode(Mode::Unavailable);
    append(&log, numbered("a", 0..50));
    wait_for(10, "buffered", || handle.stats().batches_buffered >= 1).await;
    append(&log, numbered("b", 0..50));
    // Stop while the server is still down: everything in memory goes to the disk buffer.
    let stopped = handle.shutdown().await.unwrap();
    assert!(stopped.buffer_batches >= 1, "{stopped:?}");
    assert!(f.lines().is_empty());

    f.set_mode(Mode::Normal);
    let handle = Agent::build(cfg).await.unwrap().spawn();
    wait_for(10, "replay", || f.lines().len() >= 100).await;
    handle.shutdown().await.unwrap();
    let mut expected = numbered("a", 0..50);
    expected.extend(numbered("b", 0..50));
    assert_exactly_once(&f.lines(), &expected);
    assert_batches_unique(&f);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let server = FakeServer::start().await;
    let dir = TestDir::new("retryafter");
    let log = dir.path().join("app.log");
    let cfg = config(&server, &dir.path().join("state"), &[&log]);
    let f = server.fake.clone();
    let handle = Agent::build(cfg).await.unwrap().spawn();
    wait_for(10, "registration", || f.lock().credentials.len() == 1).await;
    f.set_mode(Mode::TooMany);
    append(&log, numbered("a", 0..5));
    wait_for(10, "a 429", || f.lock().ingest_requests >= 1).await;
    let before = f.lock().ingest_requests;
    // Retry-After: 1 second, while the backoff alone would retry within 200 ms.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        f.lock().ingest_requests,
        before,
        "retried before Retry-After"
    );
    f.set_mode(Mode::Normal);
    wait_for(10, "delivery", || f.lines().len() >= 5).await;
    handle.shutdown().await.unwrap();
    assert_exactly_once(&f.lines(), &numbered("a", 0..5));
}

#[tokio::test]
async fn buffer_stays_within_its_bound_dropping_oldest() {
    let server = FakeServer::start().await;
    let dir = TestDir::new("bound");
    let state = dir.path().join("state");
    let log = dir.path().join("app.log");
    let mut cfg = config(&server, &state, &[&log]);
    let max: u64 = 256 * 1024;
    cfg.shipper.buffer_max_bytes = max;
    cfg.shipper.batch_max_events = 50;
    let f = server.fake.clone();
    let handle = Agent::build(cfg).await.unwrap().spawn();
    wait_for(10, "registration", || f.lock().credentials.len() == 1).await;
    f.set_mode(Mode::Unavailable);
    // Incompressible lines so the buffer really fills: ~1 MB of input for a 256 KiB bound.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let lines: Vec<String> = (0..8000)
        .map(|i| {
            let noise: String = (0..120)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    char::from(b'a' + (x % 26) as u8)
                })
                .collect();
            format!("{i} {noise}")
        })
        .collect();
    append(&log, lines);
    wait_for(20, "the buffer to overflow", || {
        handle.stats().buffer_dropped_batches > 0
    })
    .await;
    let stats = handle.shutdown().await.unwrap();
    assert!(stats.buffer_bytes <= max, "{stats:?}");
    let on_disk: u64 = std::fs::read_dir(state.join("buffer"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    // Live records stay under the bound; a partly consumed segment may linger (<= 64 KiB).
    assert!(
        on_disk <= max + 64 * 1024 + 64,
        "buffer uses {on_disk} bytes on disk"
    );
}

#[tokio::test]
async fn revoked_credential_stops_sending_and_keeps_the_buffer() {
    let server = FakeServer::start().await;
    let dir = TestDir::new("revoked");
    let log = dir.path().join("app.log");
    let cfg = config(&server, &dir.path().join("state"), &[&log]);
    let f = server.fake.clone();
    let handle = Agent::build(cfg).await.unwrap().spawn();
    append(&log, numbered("a", 0..5));
    wait_for(10, "first lines", || f.lines().len() >= 5).await;
    f.lock().revoked = true;
    append(&log, numbered("b", 0..5));
    wait_for(10, "auth failure noticed", || handle.stats().auth_failed).await;
    append(&log, numbered("c", 0..5));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let stats = handle.shutdown().await.unwrap();
    assert_eq!(
        f.lock().unauthorized_ingests,
        1,
        "must stop after the first 401"
    );
    assert!(stats.buffer_batches >= 2, "{stats:?}");
    assert_exactly_once(&f.lines(), &numbered("a", 0..5));
}

#[tokio::test]
async fn too_large_batches_are_split() {
    let server = FakeServer::start().await;
    let dir = TestDir::new("split");
    let log = dir.path().join("app.log");
    let mut cfg = config(&server, &dir.path().join("state"), &[&log]);
    cfg.shipper.batch_max_events = 200;
    cfg.shipper.flush_interval_ms = 300;
    let f = server.fake.clone();
    f.lock().max_events = Some(10);
    let handle = Agent::build(cfg).await.unwrap().spawn();
    append(&log, numbered("a", 0..77));
    wait_for(10, "split delivery", || f.lines().len() >= 77).await;
    handle.shutdown().await.unwrap();
    assert!(f.lock().too_large > 0);
    assert_exactly_once(&f.lines(), &numbered("a", 0..77));
}

#[tokio::test]
async fn other_4xx_drops_the_batch_with_a_count_and_goes_on() {
    let server = FakeServer::start().await;
    let dir = TestDir::new("400");
    let log = dir.path().join("app.log");
    let cfg = config(&server, &dir.path().join("state"), &[&log]);
    let f = server.fake.clone();
    let handle = Agent::build(cfg).await.unwrap().spawn();
    wait_for(10, "registration", || f.lock().credentials.len() == 1).await;
    f.set_mode(Mode::BadRequest);
    append(&log, numbered("refused", 0..5));
    wait_for(10, "the refusal", || handle.stats().batches_rejected >= 1).await;
    f.set_mode(Mode::Normal);
    append(&log, numbered("ok", 0..5));
    wait_for(10, "later lines", || f.lines().len() >= 5).await;
    let stats = handle.shutdown().await.unwrap();
    assert_eq!(stats.events_dropped, 5, "{stats:?}");
    assert_eq!(stats.buffer_batches, 0, "a refused batch is not retried");
    assert_exactly_once(&f.lines(), &numbered("ok", 0..5));
}
