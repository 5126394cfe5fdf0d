use std::time::Duration;

use vigil_agent::Agent;

use crate::helpers::*;

#[tokio::test]
async fn rename_rotation_delivers_every_line_once() {
    let server = FakeServer::start().await;
    let dir = TestDir::new("rename");
    let log = dir.path().join("app.log");
    append(&log, numbered("a", 0..50));
    let handle = Agent::build(config(&server, &dir.path().join("state"), &[&log]))
        .await
        .unwrap()
        .spawn();
    let f = server.fake.clone();
    wait_for(10, "first 50 lines", || f.lines().len() >= 50).await;

    append(&log, numbered("b", 0..50));
    // logrotate without copytruncate: rename, the writer still appends to the old inode
    // for a moment, then a new file appears at the path.
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append(&dir.path().join("app.log.1"), numbered("c", 0..20));
    tokio::time::sleep(Duration::from_millis(100)).await;
    append(&log, numbered("d", 0..50));
    append(&dir.path().join("app.log.1"), numbered("e", 0..5));

    let mut expected = numbered("a", 0..50);
    for (p, n) in [("b", 50), ("c", 20), ("d", 50), ("e", 5)] {
        expected.extend(numbered(p, 0..n));
    }
    let n = expected.len();
    wait_for(15, "all rotated lines", || f.lines().len() >= n).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    handle.shutdown().await.unwrap();
    assert_exactly_once(&f.lines(), &expected);
    // Events name the configured path, carry the agent's identity and no dataset.
    let ev = &f.events()[0];
    assert_eq!(ev["log"]["file"]["path"], log.to_string_lossy().as_ref());
    assert_eq!(ev["host"]["name"], "test-host");
    assert!(ev["agent"]["id"].is_string());
    assert_eq!(ev["event"]["original"], ev["message"]);
    assert!(ev["event"].get("dataset").is_none());
    assert!(ev["@timestamp"].is_string());
}

#[tokio::test]
async fn copytruncate_restarts_at_zero_and_loses_nothing() {
    let server = FakeServer::start().await;
    let dir = TestDir::new("copytrunc");
    let log = dir.path().join("app.log");
    append(&log, numbered("a", 0..100));
    let handle = Agent::build(config(&server, &dir.path().join("state"), &[&log]))
        .await
        .unwrap()
        .spawn();
    let f = server.fake.clone();
    wait_for(10, "first lines", || f.lines().len() >= 100).await;
    std::fs::copy(&log, dir.path().join("app.log.1")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, numbered("b", 0..10));
    wait_for(10, "lines after truncation", || f.lines().len() >= 110).await;
    // Truncated and quickly rewritten past the old offset: caught by the fingerprint.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, numbered("c", 0..200));
    wait_for(10, "lines after 2nd truncation", || f.lines().len() >= 310).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    handle.shutdown().await.unwrap();
    let mut expected = numbered("a", 0..100);
    expected.extend(numbered("b", 0..10));
    expected.extend(numbered("c", 0..200));
    assert_exactly_once(&f.lines(), &expected);
}

#[tokio::test]
async fn restart_neither_loses_nor_resends_lines() {
    let server = FakeServer::start().await;
    let dir = TestDir::new("restart");
    let state = dir.path().join("state");
    let log = dir.path().join("app.log");
    append(&log, numbered("a", 0..100));
    let cfg = config(&server, &state, &[&log]);
    let f = server.fake.clone();

    let handle = Agent::build(cfg.clone()).await.unwrap().spawn();
    wait_for(10, "first run", || f.lines().len() >= 100).await;
    // Written right before the stop: the graceful shutdown ships them.
    append(&log, numbered("b", 0..30));
    handle.shutdown().await.unwrap();
    assert_eq!(f.lines().len(), 130, "graceful stop must flush");

    // While stopped: more lines, a partial line, then rotation by rename.
    append(&log, numbered("c", 0..40));
    {
        use std::io::Write;
        let mut w = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        write!(w, "partial ").unwrap();
    }
    let handle = Agent::build(cfg.clone()).await.unwrap().spawn();
    wait_for(10, "second run", || f.lines().len() >= 170).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        f.lines().len(),
        170,
        "the partial line waits for its newline"
    );
    handle.shutdown().await.unwrap();

    append(&log, vec!["line completed".to_string()]);
    append(&log, numbered("d", 0..10));
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append(&log, numbered("e", 0..25));
    // The file now at the path is new, but its path was known: read from its start even
    // though unknown files start at their end.
    let mut cfg = cfg;
    cfg.logs.start_at_end = true;
    let handle = Agent::build(cfg).await.unwrap().spawn();
    wait_for(10, "third run", || f.lines().len() >= 206).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    handle.shutdown().await.unwrap();

    let mut expected = numbered("a", 0..100);
    expected.extend(numbered("b", 0..30));
    expected.extend(numbered("c", 0..40));
    expected.push("partial line completed".into());
    expected.extend(numbered("d", 0..10));
    expected.extend(numbered("e", 0..25));
    assert_exactly_once(&f.lines(), &expected);
    assert_eq!(f.lock().duplicates, 0);
}

#[tokio::test]
async fn globs_pick_up_new_files_and_long_lines_are_truncated() {
    let server = FakeServer::start().await;
    let dir = TestDir::new("glob");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let old = logs.join("old.log");
    append(&old, numbered("before-start", 0..5));
    let pattern = logs.join("*.log");
    let mut cfg = config(&server, &dir.path().join("state"), &[&pattern]);
    cfg.logs.start_at_end = true;
    cfg.logs.max_line_bytes = 1000;
    let handle = Agent::build(cfg).await.unwrap().spawn();
    tokio::time::sleep(Duration::from_millis(300)).await;
    append(&old, numbered("after-start", 0..3));
    let newer = logs.join("new.log");
    append(&newer, numbered("new", 0..4));
    append(&logs.join("ignored.txt"), numbered("ignored", 0..4));
    append(&newer, vec!["x".repeat(100_000), "short".into()]);
    let f = server.fake.clone();
    wait_for(10, "glob lines", || f.lines().len() >= 9).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    handle.shutdown().await.unwrap();
    let lines = f.lines();
    let mut expected = numbered("after-start", 0..3);
    expected.extend(numbered("new", 0..4));
    expected.push("x".repeat(1000));
    expected.push("short".into());
    assert_exactly_once(&lines, &expected);
    let long = f
        .events()
        .into_iter()
        .find(|e| e["message"].as_str().is_some_and(|m| m.starts_with("xxx")))
        .unwrap();
    assert_eq!(long["event"]["truncated"], true);
    assert_eq!(long["message"].as_str().unwrap().len(), 1000);
}

#[tokio::test]
async fn a_glob_that_also_matches_the_rotated_name_reads_nothing_twice() {
    let server = FakeServer::start().await;
    let dir = TestDir::new("globrot");
    let log = dir.path().join("app.log");
    append(&log, numbered("a", 0..30));
    let pattern = dir.path().join("app.log*");
    let mut cfg = config(&server, &dir.path().join("state"), &[&pattern]);
    cfg.logs.poll_interval_ms = 20;
    let handle = Agent::build(cfg).await.unwrap().spawn();
    let f = server.fake.clone();
    wait_for(10, "first lines", || f.lines().len() >= 30).await;
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append(&dir.path().join("app.log.1"), numbered("b", 0..10));
    append(&log, numbered("c", 0..10));
    wait_for(10, "rotated lines", || f.lines().len() >= 50).await;
    // Longer than the rotation grace and a glob rescan: the old file is closed and seen again
    // by the glob, and must not be read again.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    append(&log, numbered("d", 0..5));
    wait_for(10, "later lines", || f.lines().len() >= 55).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    handle.shutdown().await.unwrap();
    let mut expected = numbered("a", 0..30);
    expected.extend(numbered("b", 0..10));
    expected.extend(numbered("c", 0..10));
    expected.extend(numbered("d", 0..5));
    assert_exactly_once(&f.lines(), &expected);
}
