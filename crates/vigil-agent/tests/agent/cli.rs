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
