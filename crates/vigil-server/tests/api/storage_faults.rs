//! Storage faults, made real: an immutable database file, a full disk, a database file
//! deleted or moved away while the server runs, PostgreSQL backends killed. In every case a
//! write answers 2xx only once it is committed, a failed one answers 503
//! `storage_unavailable` with Retry-After, the server recovers by itself when the fault
//! clears, and everything acknowledged is readable afterwards and after a restart.
//!
//! The SQLite faults need root (chattr, mount); without it they print a skip message,
//! except when `CI=true` (CI runs as root), where they fail.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;
use vigil_server::config::Secret;
use vigil_store::Backend;

use crate::helpers::{Resp, TestApp, spawn_app_with};

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}

/// Whether a root-only fault can be made here; prints why not (and fails under CI).
fn root_or_skip(test: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(!in_ci(), "CI=true: {test} needs root (chattr, mount)");
    eprintln!("skipped: {test} needs root (chattr, mount)");
    false
}

/// Runs a command that must succeed.
#[track_caller]
fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A directory for a database file, removed (and unmounted, and made mutable) at the end.
struct DbDir {
    dir: PathBuf,
    mounted: bool,
}

impl DbDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("vigil-fault-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create db dir");
        Self {
            dir,
            mounted: false,
        }
    }

    /// A small tmpfs of `mib` MiB mounted on the directory.
    fn tmpfs(mib: u32) -> Self {
        let mut d = Self::new();
        let size = format!("size={mib}m");
        run(
            "mount",
            &["-t", "tmpfs", "-o", &size, "tmpfs", d.dir.to_str().unwrap()],
        );
        d.mounted = true;
        d
    }

    fn db(&self) -> PathBuf {
        self.dir.join("vigil.db")
    }

    fn wal(&self) -> PathBuf {
        self.dir.join("vigil.db-wal")
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.db().display())
    }
}

impl Drop for DbDir {
    fn drop(&mut self) {
        for f in [self.db(), self.wal()] {
            let _ = Command::new("chattr").arg("-i").arg(&f).output();
        }
        if self.mounted {
            let _ = Command::new("umount").arg(&self.dir).output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A server on the database at `url` (a later call on the same URL is a restart).
async fn serve(backend: Backend, url: &str) -> TestApp {
    let url = url.to_owned();
    spawn_app_with(backend, move |c| c.database.url = Secret::new(url))
        .await
        .expect("test app")
}

/// Polls `/ready` until it answers `status` (bounded); returns the last answer.
async fn ready_becomes(app: &TestApp, status: u16) -> Resp {
    let mut last = String::new();
    for _ in 0..300 {
        let r = app.send(Method::GET, "/ready", None, None).await;
        if r.status == status {
            return r;
        }
        last = r.text;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/ready did not answer {status} within 30 s; last: {last}");
}

/// Asserts a refused write: 503 `storage_unavailable` in the JSON error shape, Retry-After.
#[track_caller]
fn refused(r: &Resp, what: &str) {
    assert_eq!(r.status, 503, "{what}: expected 503; body: {}", r.text);
    r.err(503, "storage_unavailable");
    assert!(
        r.header("retry-after")
            .is_some_and(|v| v.parse::<u64>().is_ok()),
        "{what}: 503 without Retry-After"
    );
}

/// Writes of every kind and what became of them: the acknowledged ones must be readable
/// later, the refused ones must be absent.
#[derive(Default)]
struct Ledger {
    /// (row id, alert_id, expected status)
    alerts: Vec<(String, String, &'static str)>,
    refused_alerts: Vec<String>,
    /// (batch id, host name, events)
    batches: Vec<(Uuid, String, usize)>,
    refused_batches: Vec<(Uuid, String, usize)>,
    users: Vec<String>,
    refused_users: Vec<String>,
}

/// Credentials of one server run.
struct Creds {
    admin: String,
    ingest_key: String,
}

async fn creds(app: &TestApp, key: Option<&str>) -> Creds {
    let admin = app.admin().await.access;
    let ingest_key = match key {
        Some(k) => k.to_owned(),
        None => app
            .post(
                "/api/v1/api-keys",
                &admin,
                &json!({"name": "shipper", "scopes": ["ingest"]}),
            )
            .await
            .ok(201)["key"]
            .as_str()
            .expect("key")
            .to_owned(),
    };
    Creds { admin, ingest_key }
}

fn batch_events(host: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({
                "@timestamp": vigil_core::event::format_timestamp(vigil_core::now()),
                "event": {"dataset": "app"},
                "host": {"name": host},
                "message": format!("event {i} of {host} {}", "x".repeat(200)),
            })
        })
        .collect()
}

impl Ledger {
    /// One write of each kind (alert, ingest batch, user, status change of the last
    /// acknowledged alert), tagged `round`. With `must` set, every write must be
    /// acknowledged (`Some(true)`) or refused (`Some(false)`); otherwise either is fine.
    /// Returns how many were refused.
    async fn round(&mut self, app: &TestApp, c: &Creds, round: &str, must: Option<bool>) -> usize {
        let mut refusals = 0;
        let mut seen = |r: &Resp, ok: u16, what: &str| -> bool {
            let acked = r.status == ok;
            if !acked {
                refused(r, what);
                refusals += 1;
            }
            if let Some(m) = must {
                assert_eq!(acked, m, "{what}: {} {}", r.status, r.text);
            }
            acked
        };

        let alert_id = format!("fault-{round}");
        let r = app
            .post(
                "/api/v1/alerts",
                &c.admin,
                &json!({"alert_id": alert_id, "title": format!("alert {round}"), "severity": "high"}),
            )
            .await;
        if seen(&r, 201, "create alert") {
            let id = r.body["id"].as_str().expect("id").to_owned();
            self.alerts.push((id, alert_id, "open"));
        } else {
            self.refused_alerts.push(alert_id);
        }

        let (batch, host) = (Uuid::now_v7(), format!("host-{round}"));
        let r = app
            .post(
                "/api/v1/ingest/events",
                &c.ingest_key,
                &json!({"batch_id": batch, "events": batch_events(&host, 50)}),
            )
            .await;
        if seen(&r, 202, "ingest") {
            assert_eq!(r.body["accepted"], 50, "{}", r.text);
            self.batches.push((batch, host, 50));
        } else {
            self.refused_batches.push((batch, host, 50));
        }

        let name = format!("user-{round}").replace('_', "-");
        let r = app
            .post(
                "/api/v1/users",
                &c.admin,
                &json!({"username": name, "password": "a-long-password-1234", "role": "analyst"}),
            )
            .await;
        if seen(&r, 201, "create user") {
            self.users.push(name);
        } else {
            self.refused_users.push(name);
        }

        if let Some(last) = self.alerts.iter_mut().rev().find(|a| a.2 == "open") {
            let r = app
                .patch(
                    &format!("/api/v1/alerts/{}/status", last.0),
                    &c.admin,
                    &json!({"status": "in_progress"}),
                )
                .await;
            if seen(&r, 200, "status change") {
                last.2 = "in_progress";
            }
        }
        refusals
    }

    /// Everything acknowledged is there (through the read pool), nothing refused is.
    async fn verify(&self, app: &TestApp, c: &Creds) {
        for (id, alert_id, status) in &self.alerts {
            let r = app.get(&format!("/api/v1/alerts/{id}"), &c.admin).await;
            let b = r.ok(200);
            assert_eq!(b["alert_id"], alert_id.as_str());
            assert_eq!(b["status"], *status, "alert {alert_id}");
        }
        for (_, host, n) in &self.batches {
            assert_eq!(
                events_of(app, c, host).await,
                *n,
                "events of acknowledged batch {host}"
            );
        }
        for (_, host, _) in &self.refused_batches {
            assert_eq!(
                events_of(app, c, host).await,
                0,
                "events of refused batch {host}"
            );
        }
        let users = app.get("/api/v1/users", &c.admin).await;
        let names: Vec<&str> = users
            .ok(200)
            .as_array()
            .expect("users")
            .iter()
            .filter_map(|u| u["username"].as_str())
            .collect();
        for u in &self.users {
            assert!(names.contains(&u.as_str()), "acknowledged user {u} missing");
        }
        for u in &self.refused_users {
            assert!(!names.contains(&u.as_str()), "refused user {u} stored");
        }
        let listed = app.get("/api/v1/alerts?limit=1000", &c.admin).await;
        let ids: Vec<&str> = listed.ok(200)["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|a| a["alert_id"].as_str())
            .collect();
        for a in &self.refused_alerts {
            assert!(!ids.contains(&a.as_str()), "refused alert {a} stored");
        }
    }

    /// The refused writes, sent again once the fault cleared (as a client that got 503
    /// does): each is stored now, as new (so it was not stored before).
    async fn resend_refused(&mut self, app: &TestApp, c: &Creds) {
        for alert_id in std::mem::take(&mut self.refused_alerts) {
            let r = app
                .post(
                    "/api/v1/alerts",
                    &c.admin,
                    &json!({"alert_id": alert_id, "title": "again", "severity": "low"}),
                )
                .await;
            let id = r.ok(201)["id"].as_str().expect("id").to_owned();
            self.alerts.push((id, alert_id, "open"));
        }
        for (batch, host, n) in std::mem::take(&mut self.refused_batches) {
            let r = app
                .post(
                    "/api/v1/ingest/events",
                    &c.ingest_key,
                    &json!({"batch_id": batch, "events": batch_events(&host, n)}),
                )
                .await;
            assert_eq!(
                r.ok(202)["duplicate"],
                false,
                "refused batch was stored: {}",
                r.text
            );
            self.batches.push((batch, host, n));
        }
    }
}

/// How many stored events `host` has (every page).
async fn events_of(app: &TestApp, c: &Creds, host: &str) -> usize {
    let mut n = 0;
    let mut cursor = String::new();
    loop {
        let r = app
            .get(
                &format!("/api/v1/events?host={host}&limit=1000{cursor}"),
                &c.admin,
            )
            .await;
        let b = r.ok(200);
        n += b["items"].as_array().expect("items").len();
        match b["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return n,
        }
    }
}

/// After a fault cleared: the server becomes ready by itself, takes writes again, everything
/// acknowledged is there, the refused writes are stored as new when sent again, and all of
/// it is still there after a restart.
async fn recover_and_verify(app: TestApp, url: &str, mut ledger: Ledger, c: &Creds) {
    ready_becomes(&app, 200).await;
    for i in 0..3 {
        ledger
            .round(&app, c, &format!("after_{i}"), Some(true))
            .await;
    }
    ledger.verify(&app, c).await;
    ledger.resend_refused(&app, c).await;
    ledger.verify(&app, c).await;
    restart_and_verify(app, url, &ledger, &c.ingest_key).await;
}

/// Stops the server, starts a new one on the same database and checks the ledger there.
async fn restart_and_verify(mut app: TestApp, url: &str, ledger: &Ledger, key: &str) {
    let backend = app.backend;
    app.shutdown().await.expect("clean shutdown");
    app.store.close().await;
    drop(app);
    let app = serve(backend, url).await;
    let c = creds(&app, Some(key)).await;
    ledger.verify(&app, &c).await;
}

/// `chattr +i` on the database and its WAL: every write is refused with 503 (the old code
/// answered 500 once, then 201/202 for writes that were never committed); after `chattr -i`
/// the server is ready again by itself and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_immutable_file_refuses_writes_then_recovers() {
    if !root_or_skip("sqlite_immutable_file_refuses_writes_then_recovers") {
        return;
    }
    let d = DbDir::new();
    let app = serve(Backend::Sqlite, &d.url()).await;
    let c = creds(&app, None).await;
    let mut ledger = Ledger::default();
    ledger.round(&app, &c, "before", Some(true)).await;
    assert!(d.wal().exists());

    let (db, wal) = (d.db(), d.wal());
    run(
        "chattr",
        &["+i", db.to_str().unwrap(), wal.to_str().unwrap()],
    );
    for i in 0..3 {
        ledger
            .round(&app, &c, &format!("during_{i}"), Some(false))
            .await;
    }
    let r = ready_becomes(&app, 503).await;
    assert_eq!(r.body["status"], "unavailable", "{}", r.text);
    run(
        "chattr",
        &["-i", db.to_str().unwrap(), wal.to_str().unwrap()],
    );

    recover_and_verify(app, &d.url(), ledger, &c).await;
}

/// A full disk (a small tmpfs filled by a filler file): writes that cannot be committed
/// answer 503; once the filler is removed the server takes writes again by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_full_disk_refuses_writes_then_recovers() {
    if !root_or_skip("sqlite_full_disk_refuses_writes_then_recovers") {
        return;
    }
    let d = DbDir::tmpfs(8);
    let app = serve(Backend::Sqlite, &d.url()).await;
    let c = creds(&app, None).await;
    let mut ledger = Ledger::default();
    ledger.round(&app, &c, "before", Some(true)).await;

    let filler = d.dir.join("filler");
    fill(&filler);
    // Whatever still fits in space SQLite already holds may be acknowledged (and must then
    // be kept); the disk is full, so writes are refused before long.
    let mut refusals = 0;
    for i in 0..40 {
        refusals += ledger.round(&app, &c, &format!("full_{i}"), None).await;
        if refusals >= 8 {
            break;
        }
    }
    assert!(refusals >= 8, "a full disk refused only {refusals} writes");
    ready_becomes(&app, 503).await;
    std::fs::remove_file(&filler).expect("remove filler");

    recover_and_verify(app, &d.url(), ledger, &c).await;
}

/// Writes a file until the filesystem is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("create filler");
    let block = vec![0xa5u8; 64 * 1024];
    loop {
        if let Err(e) = f.write_all(&block).and_then(|()| f.sync_all()) {
            assert_eq!(e.raw_os_error(), Some(28), "filler: {e}");
            break;
        }
    }
    // Smaller pieces fill what the last block left.
    let small = [0xa5u8; 512];
    while f.write_all(&small).and_then(|()| f.sync_all()).is_ok() {}
}

/// The database file moved away while the server runs: writes are refused (they would go
/// into a file the next start does not open) and `/ready` says why; moved back, the server
/// takes writes again and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_moved_database_file_refuses_writes_until_restored() {
    let d = DbDir::new();
    let app = serve(Backend::Sqlite, &d.url()).await;
    let c = creds(&app, None).await;
    let mut ledger = Ledger::default();
    ledger.round(&app, &c, "before", Some(true)).await;

    let aside = d.dir.join("moved-away.db");
    std::fs::rename(d.db(), &aside).expect("move db away");
    for i in 0..2 {
        ledger
            .round(&app, &c, &format!("moved_{i}"), Some(false))
            .await;
    }
    let r = ready_becomes(&app, 503).await;
    let reasons = r.body["reasons"].to_string();
    assert!(reasons.contains("database file"), "{}", r.text);
    assert!(!d.db().exists(), "no new empty database was created");
    std::fs::rename(&aside, d.db()).expect("move db back");

    ready_becomes(&app, 200).await;
    ledger.round(&app, &c, "restored", Some(true)).await;
    ledger.verify(&app, &c).await;
    ledger.resend_refused(&app, &c).await;
    ledger.verify(&app, &c).await;
    restart_and_verify(app, &d.url(), &ledger, &c.ingest_key).await;
}

/// The database file deleted while the server runs: nothing is acknowledged any more (the
/// old code stored writes into the deleted file, lost at the next start), `/ready` answers
/// 503 with the reason, and no new empty database appears at the path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_deleted_database_file_refuses_writes() {
    let d = DbDir::new();
    let app = serve(Backend::Sqlite, &d.url()).await;
    let c = creds(&app, None).await;
    let mut ledger = Ledger::default();
    ledger.round(&app, &c, "before", Some(true)).await;

    std::fs::remove_file(d.db()).expect("delete db");
    for i in 0..2 {
        ledger
            .round(&app, &c, &format!("deleted_{i}"), Some(false))
            .await;
    }
    let r = ready_becomes(&app, 503).await;
    assert_eq!(r.body["status"], "unavailable");
    assert!(
        r.body["reasons"].to_string().contains("database file"),
        "{}",
        r.text
    );
    // Still refused, and still not ready: the fault has not cleared.
    ledger.round(&app, &c, "still", Some(false)).await;
    assert_eq!(
        app.send(Method::GET, "/ready", None, None).await.status,
        503
    );
    assert!(!d.db().exists(), "no new empty database was created");
}

/// A store stage that cannot finish (another connection holds SQLite's write lock) shows
/// in `/ready` as a stalled pipeline; once the lock is gone the batch is stored and the
/// server is ready again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_pipeline_is_not_ready() {
    use sqlx::{Connection, Executor};
    let d = DbDir::new();
    let url = d.url();
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.database.url = Secret::new(url);
        c.ingest.stall_secs = 1;
    })
    .await
    .expect("test app");
    let c = creds(&app, None).await;
    ready_becomes(&app, 200).await;

    let mut holder = sqlx::SqliteConnection::connect(&d.url())
        .await
        .expect("second connection");
    holder
        .execute("BEGIN EXCLUSIVE")
        .await
        .expect("take the write lock");
    let batch = Uuid::now_v7();
    let send = app
        .client
        .post(app.url("/api/v1/ingest/events"))
        .bearer_auth(&c.ingest_key)
        .json(&json!({"batch_id": batch, "events": batch_events("stalled", 5)}));
    let pending = tokio::spawn(TestApp::finish(send));

    // The store stage waits for the lock (SQLite's busy timeout is 10 s).
    let r = ready_becomes(&app, 503).await;
    assert_eq!(r.body["pipeline"], "stalled", "{}", r.text);
    assert!(
        r.body["reasons"].to_string().contains("pipeline"),
        "{}",
        r.text
    );
    holder.execute("ROLLBACK").await.expect("release the lock");
    let r = pending.await.expect("request task");
    assert_eq!(r.ok(202)["accepted"], 5);
    let r = ready_becomes(&app, 200).await;
    assert_eq!(r.body["pipeline"], "ok");
    assert_eq!(events_of(&app, &c, "stalled").await, 5);
}

/// Terminates the PostgreSQL backends of `db` whose query starts with `query_prefix`
/// (every backend with `None`); returns how many.
async fn terminate(admin: &mut sqlx::PgConnection, db: &str, query_prefix: Option<&str>) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid() \
         AND ($2::text IS NULL OR (state = 'active' AND query LIKE $2 || '%'))) t",
    )
    .bind(db)
    .bind(query_prefix)
    .fetch_one(admin)
    .await
    .expect("pg_terminate_backend")
}

/// PostgreSQL backends killed with `pg_terminate_backend`: every backend of the server's
/// database between writes (all pool connections), and an ingest transaction in the
/// middle of its INSERT. The killed write answers 503, the server replaces its
/// connections by itself, and everything acknowledged is there, also after a restart.
///
/// A restart of the PostgreSQL server is not made here: the cluster is shared by every
/// test; killing every backend is what a restart does to the pool's connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_backends_are_replaced() {
    use sqlx::Connection;
    let Some(db) = vigil_store::testing::TestDb::new(Backend::Postgres).await else {
        return;
    };
    let name = db.url.rsplit('/').next().expect("database name").to_owned();
    let mut admin = sqlx::PgConnection::connect(&vigil_store::testing::pg_admin_url())
        .await
        .expect("admin connection");
    let app = serve(Backend::Postgres, &db.url).await;
    let c = creds(&app, None).await;
    let mut ledger = Ledger::default();
    ledger.round(&app, &c, "before", Some(true)).await;

    for i in 0..3 {
        assert!(
            terminate(&mut admin, &name, None).await >= 1,
            "no backend killed"
        );
        ledger.round(&app, &c, &format!("killed_{i}"), None).await;
        ready_becomes(&app, 200).await;
        ledger
            .round(&app, &c, &format!("after_{i}"), Some(true))
            .await;
    }

    // An ingest transaction killed in the middle of its INSERT.
    let mut caught = 0;
    for attempt in 0..5 {
        let (batch, host) = (Uuid::now_v7(), format!("inflight-{attempt}"));
        let send = app
            .client
            .post(app.url("/api/v1/ingest/events"))
            .bearer_auth(&c.ingest_key)
            .json(&json!({"batch_id": batch, "events": batch_events(&host, 10_000)}));
        let pending = tokio::spawn(TestApp::finish(send));
        let mut killed = 0;
        while killed == 0 && !pending.is_finished() {
            killed = terminate(&mut admin, &name, Some("INSERT INTO events")).await;
        }
        let r = pending.await.expect("request task");
        if killed > 0 && r.status == 503 {
            refused(&r, "killed ingest");
            ledger.refused_batches.push((batch, host, 10_000));
            caught += 1;
        } else {
            assert_eq!(r.ok(202)["accepted"], 10_000);
            ledger.batches.push((batch, host, 10_000));
        }
        if caught >= 2 {
            break;
        }
    }
    assert!(
        caught >= 1,
        "no ingest INSERT was caught in flight in 5 tries"
    );
    ready_becomes(&app, 200).await;
    ledger.verify(&app, &c).await;
    ledger.resend_refused(&app, &c).await;
    ledger.verify(&app, &c).await;
    restart_and_verify(app, &db.url, &ledger, &c.ingest_key).await;
}

/// An event that the built-in rule "Sudo Attempt by a User Not in Sudoers" raises an
/// alert for on its own (no correlation state involved).
fn sudo_probe(host: &str) -> Value {
    json!({
        "@timestamp": vigil_core::event::format_timestamp(vigil_core::now()),
        "event": {"dataset": "auth"},
        "process": {"name": "sudo"},
        "host": {"name": host},
        "user": {"name": "mallory"},
        "message": "mallory : user NOT in sudoers ; TTY=pts/0 ; PWD=/srv ; USER=root ; COMMAND=/bin/sh",
    })
}

/// Runs statements on a connection of its own to the server's database (not the server's).
async fn side_exec(backend: Backend, url: &str, sqls: &[&str]) {
    use sqlx::{Connection, Executor};
    match backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(url)
                .await
                .expect("side connection");
            for s in sqls {
                c.execute(*s).await.expect(s);
            }
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(url)
                .await
                .expect("side connection");
            for s in sqls {
                c.execute(*s).await.expect(s);
            }
        }
    }
}

/// Alerts of the sudo probe's rule (each test has a database of its own).
async fn probe_alerts(app: &TestApp, c: &Creds) -> usize {
    let r = app.get("/api/v1/alerts?limit=1000", &c.admin).await;
    r.ok(200)["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|a| a["title"] == "Sudo Attempt by a User Not in Sudoers")
        .count()
}

/// A batch whose events can be written but whose alert cannot (a trigger on `alerts`
/// fails every insert, as a full disk or a killed connection would fail it half-way): the
/// batch is refused with 503 and nothing of it is stored, and once the fault is gone its
/// resend is stored with its alert, exactly once. The old code wrote the alerts in a
/// transaction of their own after the events: it answered 202, the alert was lost, and the
/// resend was a duplicate.
async fn a_batch_is_stored_only_with_its_alerts(
    backend: Backend,
    url: &str,
    fail: &[&str],
    heal: &[&str],
) {
    let app = serve(backend, url).await;
    let c = creds(&app, None).await;
    side_exec(backend, url, fail).await;

    let (batch, host) = (Uuid::now_v7(), "sudo-probe");
    let body = json!({"batch_id": batch, "events": [sudo_probe(host)]});
    let r = app
        .post("/api/v1/ingest/events", &c.ingest_key, &body)
        .await;
    refused(&r, "a batch whose alert cannot be written");
    assert_eq!(
        events_of(&app, &c, host).await,
        0,
        "events stored without their alert"
    );
    assert_eq!(probe_alerts(&app, &c).await, 0);

    side_exec(backend, url, heal).await;
    let r = app
        .post("/api/v1/ingest/events", &c.ingest_key, &body)
        .await;
    let b = r.ok(202);
    assert_eq!(
        (b["accepted"].as_u64(), b["duplicate"].as_bool()),
        (Some(1), Some(false)),
        "{b}"
    );
    assert_eq!(events_of(&app, &c, host).await, 1);
    assert_eq!(
        probe_alerts(&app, &c).await,
        1,
        "the resend raises its alert"
    );

    let r = app
        .post("/api/v1/ingest/events", &c.ingest_key, &body)
        .await;
    assert_eq!(r.ok(202)["duplicate"], true);
    assert_eq!(events_of(&app, &c, host).await, 1);
    assert_eq!(probe_alerts(&app, &c).await, 1, "stored once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_batch_is_stored_only_with_its_alerts() {
    let d = DbDir::new();
    a_batch_is_stored_only_with_its_alerts(
        Backend::Sqlite,
        &d.url(),
        &["CREATE TRIGGER no_alerts BEFORE INSERT ON alerts BEGIN SELECT RAISE(ABORT, 'disk gone'); END"],
        &["DROP TRIGGER no_alerts"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_batch_is_stored_only_with_its_alerts() {
    let Some(db) = vigil_store::testing::TestDb::new(Backend::Postgres).await else {
        return;
    };
    a_batch_is_stored_only_with_its_alerts(
        Backend::Postgres,
        &db.url,
        &[
            "CREATE FUNCTION no_alerts() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'disk gone'; END $$",
            "CREATE TRIGGER no_alerts BEFORE INSERT ON alerts FOR EACH ROW EXECUTE FUNCTION no_alerts()",
        ],
        &["DROP TRIGGER no_alerts ON alerts", "DROP FUNCTION no_alerts()"],
    )
    .await;
}

/// A PostgreSQL server of this test's own (initdb in a temporary directory, run as the
/// `postgres` user on a free loopback port), so it can be stopped and started without
/// touching the cluster every other test uses. Stopped and removed on drop.
struct PrivatePg {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl PrivatePg {
    /// `None` (with a message) where there is no PostgreSQL server binary or no root to run
    /// it as `postgres`; under CI both must be there.
    fn start() -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|d| d.filter_map(Result::ok).map(|e| e.path().join("bin")).max())
            .filter(|b| b.join("initdb").exists());
        let Some(bin) = bin else {
            assert!(
                !in_ci(),
                "CI=true: no PostgreSQL server binaries under /usr/lib/postgresql"
            );
            eprintln!("skipped: no PostgreSQL server binaries under /usr/lib/postgresql");
            return None;
        };
        if !root_or_skip("postgres_server_restart_is_survived") {
            return None;
        }
        let dir = std::env::temp_dir().join(format!("vigil-pg-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("cluster directory");
        run("chown", &["postgres:postgres", &dir.to_string_lossy()]);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let pg = Self { bin, dir, port };
        pg.as_postgres(
            "initdb",
            &[
                "-D",
                &pg.data(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        pg.ctl("start");
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn as_postgres(&self, tool: &str, args: &[&str]) {
        let tool = self.bin.join(tool).to_string_lossy().into_owned();
        let mut all = vec!["-u", "postgres", "--", tool.as_str()];
        all.extend_from_slice(args);
        run("runuser", &all);
    }

    /// `pg_ctl start` (waiting until it accepts connections) or `stop` in immediate mode:
    /// the server dies as on a crash or a kill, without a clean shutdown of its sessions.
    fn ctl(&self, what: &str) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.to_string_lossy()
        );
        let log = self.dir.join("log").to_string_lossy().into_owned();
        let data = self.data();
        match what {
            "start" => self.as_postgres(
                "pg_ctl",
                &["-D", &data, "-l", &log, "-o", &opts, "-w", "start"],
            ),
            _ => self.as_postgres("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]),
        }
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let data = self.data();
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &data, "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The PostgreSQL server itself goes away (stopped as on a crash) and comes back: writes
/// while it is down are refused, never acknowledged; everything acknowledged survives; Vigil
/// becomes ready again by itself, and after a restart of Vigil too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_server_restart_is_survived() {
    let Some(pg) = PrivatePg::start() else {
        return;
    };
    let url = pg.url();
    let app = serve(Backend::Postgres, &url).await;
    let c = creds(&app, None).await;
    let mut ledger = Ledger::default();
    ledger.round(&app, &c, "before", Some(true)).await;

    pg.ctl("stop");
    ledger.round(&app, &c, "down", Some(false)).await;
    ready_becomes(&app, 503).await;

    pg.ctl("start");
    ready_becomes(&app, 200).await;
    ledger.round(&app, &c, "after", Some(true)).await;
    ledger.verify(&app, &c).await;
    ledger.resend_refused(&app, &c).await;
    ledger.verify(&app, &c).await;
    restart_and_verify(app, &url, &ledger, &c.ingest_key).await;
}
