//! End to end with real processes: `vigil serve` and the `vigil-agent` binary talking over
//! loopback HTTP. The agent tails a log file; the server parses, detects and stores.
//!
//! - SSH failure lines appended to the tailed file become the built-in brute-force alert;
//! - the server is killed (SIGKILL) mid-stream and restarted: every line reaches the event
//!   store exactly once (the agent buffers and re-sends with the same batch ids).
//!
//! The agent binary is taken from the same target directory as `vigil`; when it has not
//! been built (e.g. `cargo test -p vigil` alone) the test builds it with cargo first.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const ADMIN_PW: &str = "e2e-admin-password-1234";

fn agent_binary() -> PathBuf {
    let vigil = PathBuf::from(env!("CARGO_BIN_EXE_vigil"));
    let agent = vigil.with_file_name("vigil-agent");
    if !agent.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "vigil-agent", "--bin", "vigil-agent"]);
        if vigil
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|d| d == "release")
        {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build for vigil-agent");
        assert!(status.success(), "building vigil-agent failed");
    }
    agent
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn vigil_cmd(data: &Path, port: u16) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("VIGIL_DATA_DIR", data)
        .env("VIGIL_SERVER__PORT", port.to_string())
        .env("VIGIL_ADMIN_PASSWORD", ADMIN_PW)
        .env("VIGIL_INGEST__LOCAL_AGENT", "false")
        .env("VIGIL_RATE_LIMIT__ENABLED", "false")
        .env("VIGIL_LOG__LEVEL", "warn");
    c
}

fn start_server(data: &Path, port: u16) -> Proc {
    let child = Proc(
        vigil_cmd(data, port)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start vigil serve"),
    );
    let started = Instant::now();
    let client = reqwest::blocking::Client::new();
    while started.elapsed() < Duration::from_secs(60) {
        if client
            .get(format!("http://127.0.0.1:{port}/ready"))
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            return child;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("vigil serve did not become ready");
}

fn enrollment_token(data: &Path, port: u16) -> String {
    let o = vigil_cmd(data, port)
        .args(["agent-token", "create"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find(|l| l.starts_with("vge_"))
        .expect("token")
        .to_owned()
}

fn start_agent(dir: &Path, port: u16, token: &str, log: &Path) -> Proc {
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "server_url = \"http://127.0.0.1:{port}\"\nenrollment_token = \"{token}\"\nstate_dir = \"{}\"\n\
             hostname = \"e2e-host\"\nheartbeat_interval_secs = 1\n\
             [metrics]\nenabled = false\n[processes]\nenabled = false\n\
             [logs]\npaths = [\"{}\"]\npoll_interval_ms = 50\n\
             [shipper]\nflush_interval_ms = 100\nbatch_max_events = 200\nretry_initial_ms = 100\nretry_max_ms = 500\nrequest_timeout_secs = 5\n",
            dir.join("agent-state").display(),
            log.display()
        ),
    )
    .unwrap();
    let child = Command::new(agent_binary())
        .args(["--config", config.to_str().unwrap()])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start vigil-agent");
    Proc(child)
}

struct Api {
    base: String,
    token: String,
    client: reqwest::blocking::Client,
}

impl Api {
    fn login(port: u16) -> Self {
        let client = reqwest::blocking::Client::new();
        let base = format!("http://127.0.0.1:{port}/api/v1");
        let r: Value = client
            .post(format!("{base}/auth/login"))
            .json(&json!({"username": "admin", "password": ADMIN_PW}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        Api {
            base,
            token: r["access_token"].as_str().expect("login").to_owned(),
            client,
        }
    }
    fn get(&self, path: &str) -> Value {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .and_then(|r| r.json())
            .unwrap_or(Value::Null)
    }
    /// Every event whose message contains `text`, all pages.
    fn events(&self, text: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/events?limit=1000&q={text}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = self.get(&path);
            out.extend(page["items"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return out,
            }
        }
    }
}

fn wait_until(secs: u64, what: &str, f: impl FnMut() -> bool) {
    assert!(wait_for(secs, f), "timed out waiting for {what}");
}

/// Polls `f` until it holds or `secs` pass; whether it held.
fn wait_for(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(secs) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

fn tmp(name: &str) -> Dir {
    let d = std::env::temp_dir().join(format!(
        "vigil-e2e-{name}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&d).unwrap();
    Dir(d)
}

fn append(path: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
    f.flush().unwrap();
}

#[test]
fn ssh_failures_in_a_tailed_log_become_a_brute_force_alert() {
    let dir = tmp("brute");
    let data = dir.0.join("server");
    let port = free_port();
    let _server = start_server(&data, port);
    let api = Api::login(port);
    let log = dir.0.join("auth.log");
    std::fs::write(&log, "").unwrap();
    let token = enrollment_token(&data, port);
    let _agent = start_agent(&dir.0, port, &token, &log);
    wait_until(30, "the agent to register", || {
        api.get("/agents").as_array().is_some_and(|a| a.len() == 1)
    });
    std::thread::sleep(Duration::from_millis(500));
    let lines: Vec<String> = (0..12)
        .map(|i| format!("Nov 23 10:00:{i:02} bastion sshd[{}]: Failed password for root from 203.0.113.50 port {} ssh2", 700 + i, 40000 + i))
        .collect();
    append(&log, &lines);
    let mut alert = Value::Null;
    wait_until(30, "the brute-force alert", || {
        let list = api.get("/alerts?limit=100");
        if let Some(a) = list["items"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["title"] == "SSH Brute Force"))
        {
            alert = a.clone();
            return true;
        }
        false
    });
    assert_eq!(alert["attack_technique_id"], "T1110.001");
    assert_eq!(
        alert["metadata"]["detail"]["group"]["source.ip"], "203.0.113.50",
        "{alert:#}"
    );
    let agents = api.get("/agents");
    assert_eq!(alert["agent_id"], agents[0]["id"]);
    assert_eq!(agents[0]["hostname"], "e2e-host");
    let events = api.events("Failed%20password");
    assert_eq!(events.len(), 12);
    assert_eq!(events[0]["doc"]["event"]["dataset"], "auth");
    assert_eq!(
        events[0]["doc"]["log"]["file"]["path"],
        log.display().to_string()
    );
}

#[test]
fn a_server_killed_mid_stream_loses_and_duplicates_nothing() {
    let dir = tmp("outage");
    let data = dir.0.join("server");
    let port = free_port();
    let mut server = start_server(&data, port);
    let api = Api::login(port);
    let log = dir.0.join("app.log");
    std::fs::write(&log, "").unwrap();
    let token = enrollment_token(&data, port);
    let _agent = start_agent(&dir.0, port, &token, &log);
    wait_until(30, "the agent to register", || {
        api.get("/agents").as_array().is_some_and(|a| a.len() == 1)
    });
    std::thread::sleep(Duration::from_millis(500));
    const N: usize = 3000;
    let line = |i: usize| format!("Nov 23 10:00:00 app-1 worker[1]: job outage-{i:05} done");
    let writer_log = log.clone();
    let writer = std::thread::spawn(move || {
        for chunk in (0..N).collect::<Vec<_>>().chunks(50) {
            append(
                &writer_log,
                &chunk.iter().map(|&i| line(i)).collect::<Vec<_>>(),
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    // Kill the server without warning while lines are flowing, keep it down, restart it.
    std::thread::sleep(Duration::from_millis(1200));
    let _ = server.0.kill(); // SIGKILL
    let _ = server.0.wait();
    std::thread::sleep(Duration::from_millis(1500));
    server = start_server(&data, port);
    writer.join().unwrap();
    let api = Api::login(port);
    let mut got = Vec::new();
    let mut arrived = 0;
    let every_line = wait_for(90, || {
        got = api.events("outage-");
        arrived = got.len();
        arrived >= N
    });
    assert!(
        every_line,
        "timed out waiting for every line: {arrived} of {N} arrived"
    );
    std::thread::sleep(Duration::from_millis(1500)); // anything re-sent late would show now
    got = api.events("outage-");
    let mut seen = std::collections::BTreeMap::new();
    for e in &got {
        *seen
            .entry(e["message"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    let dup: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dup.is_empty(), "duplicated: {dup:?}");
    let missing: Vec<usize> = (0..N)
        .filter(|&i| !seen.contains_key(&format!("job outage-{i:05} done")))
        .collect();
    assert!(
        missing.is_empty(),
        "lost {} lines, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert_eq!(got.len(), N);
    drop(server);
}

/// Regression: the agent built into `vigil serve` reported (and alerted on) Vigil's own
/// processes, e.g. an operator's `vigil parse` next to the server. They are known by the
/// executable path the kernel reports, not by name.
#[test]
fn the_local_agent_does_not_report_vigils_own_binaries() {
    let dir = tmp("own");
    let data = dir.0.join("server");
    let port = free_port();
    let _server = Proc(
        vigil_cmd(&data, port)
            .env("VIGIL_INGEST__LOCAL_AGENT", "true")
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start vigil serve"),
    );
    wait_until(60, "vigil serve to be ready", || {
        reqwest::blocking::get(format!("http://127.0.0.1:{port}/ready"))
            .is_ok_and(|r| r.status().is_success())
    });
    let api = Api::login(port);
    let processes = || api.get("/events?dataset=process&limit=1000")["items"].clone();
    let command_lines = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["doc"]["process"]["command_line"].as_str())
            .map(str::to_owned)
            .collect()
    };
    // A marker process the sensor must report: once one is, the sensor is past its baseline
    // scan (processes present at the first scan are never reported).
    let marker = |n: u32| {
        let arg = format!("30.{}{n:02}", std::process::id());
        let child = Proc(Command::new("sleep").arg(&arg).spawn().unwrap());
        (child, format!("sleep {arg}"))
    };
    let mut first = Vec::new();
    for n in 0..30 {
        let (child, line) = marker(n);
        if wait_for(5, || command_lines(&processes()).contains(&line)) {
            first.push(child);
            break;
        }
    }
    assert!(
        !first.is_empty(),
        "the process sensor never reported a marker"
    );
    // Vigil's own binary, alive across the next scans (it reads standard input until it ends).
    let mut own = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["parse", "--host", "own-binary-marker", "-"])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (_after, line) = marker(99);
    wait_until(30, "the second marker", || {
        command_lines(&processes()).contains(&line)
    });
    drop(own.stdin.take());
    let _ = own.wait();
    let vigil = std::fs::canonicalize(env!("CARGO_BIN_EXE_vigil")).unwrap();
    let reported = processes();
    let own_reported: Vec<&Value> = reported
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            e["doc"]["process"]["executable"].as_str() == Some(&*vigil.to_string_lossy())
                || e["doc"]["process"]["command_line"]
                    .as_str()
                    .is_some_and(|m| m.contains("own-binary-marker"))
        })
        .collect();
    assert!(own_reported.is_empty(), "{own_reported:#?}");
    let alerts = api.get("/alerts?limit=100");
    assert!(
        !alerts.to_string().contains("own-binary-marker"),
        "{alerts:#}"
    );
}
