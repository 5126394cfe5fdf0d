use std::process::Command;

use crate::helpers::TestDir;

fn agent_bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vigil-agent"))
}

#[test]
fn check_config_prints_layered_config_with_secrets_redacted() {
    let dir = TestDir::new("cli");
    let file = dir.path().join("agent.toml");
    std::fs::write(
        &file,
        "server_url = \"http://127.0.0.1:9\"\nenrollment_token = \"super-secret-token\"\n\
         [metrics]\ninterval_secs = 45\n",
    )
    .unwrap();
    let out = agent_bin()
        .args(["check-config", "--config"])
        .arg(&file)
        .env("VIGIL_AGENT_HOSTNAME", "from-env")
        .args(["--state-dir", "/tmp/flag-state"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("super-secret-token"), "{stdout}");
    assert!(stdout.contains("<redacted>"), "{stdout}");
    assert!(stdout.contains("interval_secs = 45"), "{stdout}");
    assert!(stdout.contains("hostname = \"from-env\""), "{stdout}");
    assert!(
        stdout.contains("state_dir = \"/tmp/flag-state\""),
        "{stdout}"
    );
}

#[test]
fn bad_config_is_a_clear_error() {
    let dir = TestDir::new("clibad");
    let file = dir.path().join("agent.toml");
    std::fs::write(
        &file,
        "server_url = \"http://x\"\n[logs]\npath = [\"/a\"]\n",
    )
    .unwrap();
    let out = agent_bin()
        .args(["check-config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown field") && stderr.contains("path"),
        "{stderr}"
    );
    let out = agent_bin()
        .args(["check-config", "--config", "/nonexistent/agent.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/agent.toml"));
}

#[tokio::test]
async fn sigterm_flushes_events_held_in_memory() {
    use crate::helpers::*;
    let server = FakeServer::start().await;
    let dir = TestDir::new("sigterm");
    let log = dir.path().join("app.log");
    append(&log, numbered("old", 0..3));
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_vigil-agent"))
        .args(["--config", "/nonexistent/agent.toml"])
        .env("VIGIL_AGENT_SERVER_URL", server.url())
        .env("VIGIL_AGENT_ENROLLMENT_TOKEN", TOKEN)
        .env("VIGIL_AGENT_STATE_DIR", dir.path().join("state"))
        .env("VIGIL_AGENT_LOG_PATHS", &log)
        .env("VIGIL_AGENT_METRICS_ENABLED", "false")
        .env("VIGIL_AGENT_PROCESSES_ENABLED", "false")
        // Nothing leaves before the signal unless shutdown flushes it.
        .env("VIGIL_AGENT_FLUSH_INTERVAL_MS", "600000")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // --config with a missing file is an error: the agent must exit at once and say why.
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(!status.success());

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_vigil-agent"))
        .env("VIGIL_AGENT_SERVER_URL", server.url())
        .env("VIGIL_AGENT_ENROLLMENT_TOKEN", TOKEN)
        .env("VIGIL_AGENT_STATE_DIR", dir.path().join("state"))
        .env("VIGIL_AGENT_LOG_PATHS", &log)
        .env("VIGIL_AGENT_METRICS_ENABLED", "false")
        .env("VIGIL_AGENT_PROCESSES_ENABLED", "false")
        .env("VIGIL_AGENT_FLUSH_INTERVAL_MS", "600000")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let f = server.fake.clone();
    wait_for(20, "registration", || f.lock().credentials.len() == 1).await;
    // Files present at the first start are read from their end: "old" lines are skipped.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    append(&log, numbered("new", 0..7));
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(f.lines().is_empty(), "flushed before the signal");
    let pid = child.id().unwrap() as i32;
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::time::timeout(std::time::Duration::from_secs(20), child.wait())
        .await
        .expect("agent exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert_exactly_once(&f.lines(), &numbered("new", 0..7));
}

fn shared_pcap(name: &str) -> Option<std::path::PathBuf> {
    vigil_testdata::path(&format!("pcap/{name}"))
}

#[test]
fn capture_read_prints_the_flows_of_a_pcap_as_json_lines() {
    let Some(pcap) = shared_pcap("ftp-epsv.pcap") else {
        return;
    };
    let out = agent_bin()
        .args(["capture", "--read"])
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // tshark: tcp 192.168.1.182:62014 <-> 192.168.1.231:21, 112 packets, 8842 bytes.
    let control = events
        .iter()
        .find(|e| e["destination"]["port"] == 21)
        .expect("the FTP control connection");
    assert_eq!(control["event"]["dataset"], "network.flow");
    assert_eq!(control["network"]["packets"], 112);
    assert_eq!(control["network"]["bytes"], 8842);
    assert_eq!(control["source"]["ip"], "192.168.1.182");
    // A file that is not a capture is a clear error.
    let dir = TestDir::new("capture");
    let bad = dir.path().join("not.pcap");
    std::fs::write(&bad, b"hello").unwrap();
    let out = agent_bin()
        .args(["capture", "--read"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not.pcap"));
}

/// Without CAP_NET_RAW, capture says which capability is missing and how to grant it, and
/// the rest of the agent runs on. As root the binary runs as `nobody` (`setpriv`), from a
/// copy `nobody` can read; otherwise as the (unprivileged) current user.
#[cfg(feature = "live")]
#[test]
fn capture_without_cap_net_raw_names_the_capability_and_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TestDir::new("nopriv");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("vigil-agent");
    std::fs::copy(env!("CARGO_BIN_EXE_vigil-agent"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        "[logs]\nenabled = false\n[capture]\nenabled = true\ninterface = \"lo\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = if root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    let out = cmd
        .arg("--config")
        .arg(&cfg)
        .args(["bench-footprint", "--seconds", "1"])
        .env("VIGIL_AGENT_LOG", "warn")
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("packet capture is off"), "{text}");
    assert!(text.contains("lacks CAP_NET_RAW"), "{text}");
    assert!(
        text.contains("setcap cap_net_raw,cap_net_admin=eip"),
        "{text}"
    );
    // The agent itself ran on and reported its footprint.
    assert!(text.contains("peak RSS"), "{text}");
}
