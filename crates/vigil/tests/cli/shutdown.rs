//! `vigil serve` stopped by a signal, as systemd, Docker and CI stop it: the process exits 0
//! and everything it accepted before the signal is stored (issue 14, item 10).
//!
//! Each test runs the real binary on its own data directory and ports, sends the signal with
//! `kill(2)`, and reads the SQLite database afterwards through the store.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{tmp, vigil};

pub(crate) const ADMIN_PW: &str = "shutdown-admin-password-1234";

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `vigil serve` whose stdout (JSON log lines) is collected as it comes, so a
/// chatty server never blocks on a full pipe.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) port: u16,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `vigil --config <dir>/vigil.toml serve` with `toml` (which must set the port)
    /// and waits for `/health`.
    pub(crate) fn start(dir: &Path, port: u16, toml: &str, env: &[(&str, &str)]) -> Server {
        Self::start_command(dir, "serve", port, toml, env)
    }

    /// Starts `vigil --config <dir>/vigil.toml COMMAND` (`serve`, `worker`) and waits for
    /// `/health` on `port`.
    pub(crate) fn start_command(
        dir: &Path,
        command: &str,
        port: u16,
        toml: &str,
        env: &[(&str, &str)],
    ) -> Server {
        let config = dir.join("vigil.toml");
        std::fs::write(&config, toml).unwrap();
        let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
        c.current_dir(dir)
            .args(["--config", config.to_str().unwrap(), command])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("VIGIL_DATA_DIR", dir.join("data"))
            .env("VIGIL_ADMIN_PASSWORD", ADMIN_PW)
            .env("VIGIL_LOG__FORMAT", "json")
            .env("VIGIL_LOG__LEVEL", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("start vigil");
        let stdout = child.stdout.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let reader = std::thread::spawn({
            let log = log.clone();
            move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    log.lock().unwrap().push(line);
                }
            }
        });
        let mut server = Server {
            child,
            port,
            log,
            reader: Some(reader),
        };
        let client = reqwest::blocking::Client::new();
        let ready = wait_for(60, || {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("vigil {command} exited early: {status}");
            }
            client
                .get(format!("http://127.0.0.1:{port}/health"))
                .send()
                .is_ok_and(|r| r.status().is_success())
        });
        assert!(ready, "vigil {command} did not answer /health");
        server
    }

    pub(crate) fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
    }

    /// Waits (bounded) for the process to end; its status and its whole log.
    pub(crate) fn wait_exit(&mut self, secs: u64) -> (ExitStatus, Vec<Value>) {
        let mut status = None;
        let ended = wait_for(secs, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        assert!(ended, "vigil serve still running {secs} s after the signal");
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        let log = self
            .log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        (status.unwrap(), log)
    }

    /// A counter from `/metrics`, 0 when absent.
    pub(super) fn metric(&self, series: &str) -> u64 {
        let text = reqwest::blocking::get(format!("http://127.0.0.1:{}/metrics", self.port))
            .and_then(|r| r.text())
            .unwrap_or_default();
        text.lines()
            .filter_map(|l| l.strip_prefix(series))
            .filter_map(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
            .sum()
    }
}

/// Polls `f` every 50 ms until it holds or `secs` pass; whether it held.
pub(crate) fn wait_for(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(secs) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Every stored event's document, read from the database the server left behind.
fn stored_docs(data: &Path) -> Vec<Value> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = vigil_store::connect(&format!("sqlite://{}/vigil.db", data.display()), 2)
            .await
            .unwrap();
        let org = store.get_org_by_name("default").await.unwrap().unwrap().id;
        let mut docs = Vec::new();
        let mut after = None;
        loop {
            let page = store.events_after(org, after, 5000).await.unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            docs.extend(page.into_iter().map(|e| e.doc));
        }
        store.close().await;
        docs
    })
}

/// `(a, b)` from a message containing `<tag> a-b end`, only when it is whole.
fn marker(doc: &Value, tag: &str) -> Option<(u64, u64)> {
    let msg = doc["message"].as_str()?;
    let rest = &msg[msg.find(tag)? + tag.len()..];
    let (ids, tail) = rest.trim_start().split_once(' ')?;
    if tail != "end" {
        return None;
    }
    let (a, b) = ids.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn log_line<'a>(log: &'a [Value], message: &str) -> Vec<&'a Value> {
    log.iter().filter(|l| l["message"] == message).collect()
}

#[test]
fn serve_exits_0_on_sigterm_and_sigint_when_idle() {
    // The quick start's configuration (local agent on), as CI runs it.
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let d = tmp();
        let port = free_port();
        let mut server = Server::start(&d.0, port, &format!("[server]\nport = {port}\n"), &[]);
        server.signal(sig);
        let (status, log) = server.wait_exit(30);
        assert_eq!(status.code(), Some(0), "signal {sig}: {status}");
        assert_eq!(log_line(&log, "stopped").len(), 1, "signal {sig}: {log:?}");
    }
}

#[test]
fn sigterm_during_a_syslog_tcp_flood_stores_every_message_read() {
    const CONNECTIONS: u64 = 4;
    let d = tmp();
    let port = free_port();
    let syslog_port = free_port();
    // A short queue: the flood keeps it full, and the drain stays quick in a debug build.
    let toml = format!(
        "[server]\nport = {port}\n[ingest]\nlocal_agent = false\nqueue_capacity = 8\n\
         [rate_limit]\nenabled = false\n[syslog]\ntcp = \"127.0.0.1:{syslog_port}\"\n"
    );
    let mut server = Server::start(&d.0, port, &toml, &[]);

    // Several connections, each writing newline-framed RFC 3164 messages numbered in order
    // as fast as the server reads them, until the server closes the connection.
    let stop = Arc::new(AtomicBool::new(false));
    let written: Vec<Arc<AtomicU64>> = (0..CONNECTIONS)
        .map(|_| Arc::new(AtomicU64::new(0)))
        .collect();
    let senders: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let stop = stop.clone();
            let written = written[c as usize].clone();
            std::thread::spawn(move || {
                let mut conn = std::net::TcpStream::connect(("127.0.0.1", syslog_port)).unwrap();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let mut chunk = String::new();
                    for _ in 0..100 {
                        chunk.push_str(&format!(
                            "<38>Dec  7 10:00:00 flood-host flood[42]: flood {c}-{n} end\n"
                        ));
                        n += 1;
                    }
                    // Counted before the write: a message may be read partly or wholly.
                    written.store(n, Ordering::Relaxed);
                    if conn.write_all(chunk.as_bytes()).is_err() {
                        break;
                    }
                }
            })
        })
        .collect();

    // In the middle of the flood: once the server has queued a few thousand messages. The
    // last figure read here is a lower bound of what it read before the signal.
    let received = "security_events_total{source=\"syslog\",outcome=\"received\"}";
    let mut before_signal = 0;
    assert!(
        wait_for(120, || {
            before_signal = server.metric(received);
            before_signal >= 5000
        }),
        "the server did not take in the flood ({before_signal} messages)"
    );
    server.signal(libc::SIGTERM);
    let (status, log) = server.wait_exit(60);
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.join().unwrap();
    }
    assert_eq!(status.code(), Some(0), "{status}");

    // Every message the server read is in the database, once, whole, and one that was sent.
    let docs = stored_docs(&d.0.join("data"));
    let mut seen = std::collections::HashSet::new();
    for doc in &docs {
        let (c, n) = marker(doc, "flood")
            .unwrap_or_else(|| panic!("stored message is not one that was sent: {doc}"));
        assert!(
            c < CONNECTIONS && n < written[c as usize].load(Ordering::Relaxed),
            "{doc}"
        );
        assert!(seen.insert((c, n)), "stored twice: {doc}");
    }
    let stored = seen.len() as u64;
    eprintln!("syslog flood: {before_signal} taken in before SIGTERM, {stored} stored");
    assert!(
        stored >= before_signal,
        "{stored} stored, but the server had taken in {before_signal} before SIGTERM"
    );
    // The server's own count of what it read, logged at shutdown.
    let drained = log_line(&log, "syslog drained");
    assert_eq!(drained.len(), 1, "one report for the TCP listener: {log:?}");
    let report = drained[0];
    eprintln!("syslog drained: {report}");
    assert_eq!(report["listener"], "tcp");
    let read = report["received"].as_u64().unwrap();
    assert!(read >= before_signal, "{report}");
    assert_eq!(report["stored"], report["received"], "{report}");
    assert!(
        stored >= read,
        "{stored} stored of {read} read (report {report})"
    );
    // Each connection's messages arrive in order: what is stored is a prefix per connection.
    for c in 0..CONNECTIONS {
        let count = seen.iter().filter(|(cc, _)| *cc == c).count() as u64;
        assert!(
            (0..count).all(|n| seen.contains(&(c, n))),
            "connection {c}: a gap among its first {count} messages"
        );
    }
}

#[test]
fn sigterm_during_http_ingest_loses_no_acknowledged_batch() {
    const CLIENTS: u64 = 4;
    const EVENTS: u64 = 200;
    let d = tmp();
    let port = free_port();
    let toml = format!(
        "[server]\nport = {port}\n[ingest]\nlocal_agent = false\n[rate_limit]\nenabled = false\n"
    );
    let mut server = Server::start(&d.0, port, &toml, &[]);
    let data = d.0.join("data");
    let dd = data.to_string_lossy().into_owned();
    let o = vigil(
        &d.0,
        &["api-key", "create", "flood"],
        &[("VIGIL_DATA_DIR", &dd)],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let key = String::from_utf8_lossy(&o.stdout)
        .lines()
        .find(|l| l.starts_with("vgk_"))
        .expect("api key")
        .to_owned();

    // Clients send batches back to back, each answered once stored; every answer is kept.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<(u64, u64)>::new()));
    let answers = Arc::new(Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (stop, acked, answers, key) =
                (stop.clone(), acked.clone(), answers.clone(), key.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap();
                let mut b = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let batch = c * 1_000_000 + b;
                    let events: Vec<Value> = (0..EVENTS)
                        .map(|e| json!({"message": format!("batch {batch}-{e} end"), "event": {"dataset": "shutdown.test"}}))
                        .collect();
                    let r = client
                        .post(format!("http://127.0.0.1:{port}/api/v1/ingest/events"))
                        .bearer_auth(&key)
                        .json(&json!({"batch_id": uuid::Uuid::now_v7(), "events": events}))
                        .send();
                    let answer = match r {
                        Ok(r) if r.status() == 202 => {
                            acked.lock().unwrap().push((batch, EVENTS));
                            "202".to_owned()
                        }
                        Ok(r) => r.status().as_u16().to_string(),
                        Err(_) => {
                            // The server has gone away: nothing more to send.
                            answers.lock().unwrap().push("connection error".into());
                            return;
                        }
                    };
                    answers.lock().unwrap().push(answer);
                    b += 1;
                }
            })
        })
        .collect();

    assert!(
        wait_for(120, || acked.lock().unwrap().len() >= 8),
        "no batches acknowledged"
    );
    server.signal(libc::SIGTERM);
    let (status, _) = server.wait_exit(60);
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(status.code(), Some(0), "{status}");
    let answers = answers.lock().unwrap().clone();
    let count = |a: &str| answers.iter().filter(|x| *x == a).count();
    eprintln!(
        "http ingest: {} answered 202, {} 503, {} connection errors",
        count("202"),
        count("503"),
        count("connection error")
    );
    assert!(
        answers
            .iter()
            .all(|a| a == "202" || a == "503" || a == "connection error"),
        "{answers:?}"
    );

    let mut per_batch = std::collections::HashMap::<u64, u64>::new();
    for doc in stored_docs(&data) {
        let (batch, _) =
            marker(&doc, "batch").unwrap_or_else(|| panic!("unexpected stored event: {doc}"));
        *per_batch.entry(batch).or_default() += 1;
    }
    let acked = acked.lock().unwrap().clone();
    for (batch, n) in &acked {
        assert_eq!(
            per_batch.get(batch),
            Some(n),
            "batch {batch} was acknowledged (202) but is not stored whole"
        );
    }
    // A batch is stored whole or not at all (one transaction).
    assert!(per_batch.values().all(|n| *n == EVENTS), "{per_batch:?}");
}
