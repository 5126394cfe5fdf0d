//! `vigil hunt`: output formats, the time range, exit codes, parallel runs, correlations
//! across files, bad input, and the SigmaHQ regression data.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{text, tmp, vigil};

const WHOAMI: &str = "title: Whoami Run\nid: 0b4a7c1e-0000-4000-8000-000000000001\nlevel: high\n\
     logsource: {product: windows, category: process_creation}\n\
     detection:\n  sel:\n    Image|endswith: '\\whoami.exe'\n  condition: sel\n";

fn sysmon(time: &str, image: &str, command_line: &str) -> serde_json::Value {
    serde_json::json!({"Event": {
        "System": {"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational",
                   "Computer": "ws1", "TimeCreated": {"#attributes": {"SystemTime": time}}},
        "EventData": {"Image": image, "CommandLine": command_line}
    }})
}

/// `rules/whoami.yml` and `logs/` with three whoami runs on 1, 2 and 3 May 2024 and one
/// notepad run.
fn whoami_case(dir: &Path) {
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    std::fs::write(dir.join("rules/whoami.yml"), WHOAMI).unwrap();
    let who = "C:\\Windows\\System32\\whoami.exe";
    let events = [
        sysmon("2024-05-01T09:00:00Z", who, "whoami /all, \"quoted\""),
        sysmon("2024-05-02T09:00:00Z", who, "whoami\n/priv"),
        sysmon("2024-05-03T09:00:00Z", who, "whoami"),
        sysmon(
            "2024-05-03T10:00:00Z",
            "C:\\Windows\\notepad.exe",
            "notepad",
        ),
    ];
    std::fs::write(
        dir.join("logs/events.json"),
        serde_json::to_string(&events).unwrap(),
    )
    .unwrap();
}

fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn hunt_csv_output_parses_back_with_the_same_rows_as_json() {
    let d = tmp();
    whoami_case(&d.0);
    let o = vigil(
        &d.0,
        &["hunt", "-r", "rules", "--output", "csv", "logs"],
        &[],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("matches: 3"),
        "the summary goes to stderr: {err}"
    );
    let mut reader = csv::Reader::from_reader(out.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header,
        [
            "time",
            "level",
            "rule_title",
            "rule_id",
            "kind",
            "file",
            "record",
            "details"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert_eq!(&rows[0][0], "2024-05-01T09:00:00Z");
    assert_eq!(&rows[0][1], "high");
    assert_eq!(&rows[0][2], "Whoami Run");
    assert_eq!(&rows[0][3], "0b4a7c1e-0000-4000-8000-000000000001");
    assert_eq!(&rows[0][4], "detection");
    assert_eq!(&rows[0][5], "logs/events.json");
    assert_eq!(&rows[0][6], "1");
    // Commas, quotes and line breaks survive the quoting.
    assert!(
        rows[0][7].contains("CommandLine=whoami /all, \"quoted\""),
        "{:?}",
        &rows[0][7]
    );
    assert!(
        rows[1][7].contains("CommandLine=whoami\n/priv"),
        "{:?}",
        &rows[1][7]
    );

    let o = vigil(&d.0, &["hunt", "-r", "rules", "-o", "json", "logs"], &[]);
    let hits = json_lines(&text(&o).0);
    let from_json: Vec<(String, u64)> = hits
        .iter()
        .map(|h| {
            (
                h["time"].as_str().unwrap().to_string(),
                h["record"].as_u64().unwrap(),
            )
        })
        .collect();
    let from_csv: Vec<(String, u64)> = rows
        .iter()
        .map(|r| (r[0].to_string(), r[6].parse().unwrap()))
        .collect();
    assert_eq!(from_json, from_csv);
    assert!(hits.iter().all(|h| h["kind"] == "detection"));
}

#[test]
fn hunt_from_and_to_keep_only_events_in_the_range() {
    let d = tmp();
    whoami_case(&d.0);
    let times = |args: &[&str]| {
        let o = vigil(
            &d.0,
            &[&["hunt", "-r", "rules", "--json"], args, &["logs"]].concat(),
            &[],
        );
        let (out, err) = text(&o);
        let times: Vec<String> = json_lines(&out)
            .iter()
            .map(|h| h["time"].as_str().unwrap().to_string())
            .collect();
        (o.status.code(), times, err)
    };
    let (code, t, err) = times(&["--from", "2024-05-02T00:00:00Z"]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(t, ["2024-05-02T09:00:00Z", "2024-05-03T09:00:00Z"]);
    assert!(
        err.contains("outside --from/--to (or without a time): 1 events"),
        "{err}"
    );
    let (_, t, _) = times(&["--to", "2024-05-02T09:00:00+00:00"]);
    assert_eq!(t, ["2024-05-01T09:00:00Z", "2024-05-02T09:00:00Z"]);
    let (_, t, _) = times(&["--from", "2024-05-02", "--to", "2024-05-02T23:59:59Z"]);
    assert_eq!(t, ["2024-05-02T09:00:00Z"]);
    // Relative: the last day (2024 is long past), so nothing, and exit 0.
    let (code, t, err) = times(&["--from", "1d"]);
    assert_eq!((code, t.len()), (Some(0), 0), "{err}");
    assert!(err.contains("4 events"), "{err}");

    for bad in [
        &["--from", "yesterday"][..],
        &["--from", "2024-05-03", "--to", "2024-05-01"],
    ] {
        let (code, _, err) = times(bad);
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("error:"), "{err}");
    }
}

#[test]
fn hunt_exit_codes_are_0_without_findings_1_with_and_2_on_errors() {
    let d = tmp();
    whoami_case(&d.0);
    std::fs::create_dir_all(d.0.join("quiet")).unwrap();
    std::fs::write(
        d.0.join("quiet/notepad.jsonl"),
        format!(
            "{}\n",
            sysmon("2024-05-01T00:00:00Z", "C:\\notepad.exe", "notepad")
        ),
    )
    .unwrap();
    let code = |args: &[&str]| {
        let o = vigil(&d.0, args, &[]);
        (o.status.code(), text(&o).1)
    };
    assert_eq!(code(&["hunt", "-r", "rules", "quiet"]).0, Some(0));
    assert_eq!(code(&["hunt", "-r", "rules", "logs"]).0, Some(1));
    // Errors: a rules directory that does not exist, no rules in it, no input at all, bad
    // arguments.
    let (c, err) = code(&["hunt", "-r", "nope", "logs"]);
    assert_eq!(c, Some(2), "{err}");
    assert!(err.contains("nope"), "{err}");
    assert_eq!(code(&["hunt", "-r", "quiet", "logs"]).0, Some(2));
    assert_eq!(code(&["hunt", "-r", "rules", "missing/"]).0, Some(2));
    assert_eq!(
        code(&["hunt", "-r", "rules", "--output", "xml", "logs"]).0,
        Some(2)
    );

    // Bad files among good ones are reported and skipped: the exit code is the findings'.
    let bad = d.0.join("logs/bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(
        bad.join("garbage.evtx"),
        [0xffu8, 0, 0x13, 0x37].repeat(2000),
    )
    .unwrap();
    std::fs::write(bad.join("nested.json"), "[".repeat(100_000)).unwrap();
    std::fs::write(bad.join("truncated.json"), "[{\"a\": 1}, {\"b\":").unwrap();
    std::fs::write(
        bad.join("binary.jsonl"),
        [0u8, 159, 146, 150, b'\n', 0xff].repeat(50),
    )
    .unwrap();
    if let Some(sigma) = sigma_dir() {
        // A real EVTX file cut in the middle of its records.
        let evtx = vigil_testdata::files_with_extension(&sigma.join("regression_data"), "evtx");
        let data = std::fs::read(&evtx[0]).unwrap();
        std::fs::write(bad.join("cut.evtx"), &data[..data.len() * 2 / 3]).unwrap();
    }
    let (c, err) = code(&["hunt", "-r", "rules", "logs"]);
    assert_eq!(c, Some(1), "{err}");
    assert!(
        err.contains("garbage.evtx: not a readable EVTX file"),
        "{err}"
    );
    assert!(
        err.contains("nested.json:1: recursion limit exceeded"),
        "{err}"
    );
    assert!(err.contains("truncated.json"), "{err}");
    assert!(err.contains("binary.jsonl:1"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let (c, err) = code(&["hunt", "-r", "rules", "logs/bad"]);
    assert_eq!(c, Some(0), "only bad files: reported, no findings: {err}");
}

#[test]
fn hunt_into_a_reader_that_stops_early_is_not_an_error() {
    // `vigil hunt ... | head`: the reader closes the pipe before anything is written. The
    // exit code stays the findings' (1), with no write error.
    let d = tmp();
    whoami_case(&d.0);
    for output in ["table", "json", "csv"] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
            .current_dir(&d.0)
            .args(["hunt", "-r", "rules", "--output", output, "logs"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run vigil");
        drop(child.stdout.take());
        let o = child.wait_with_output().expect("wait for vigil");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{output}: {err}");
        assert!(!err.contains("error"), "{output}: {err}");
    }
}

#[test]
fn hunt_table_is_coloured_only_when_asked_or_on_a_terminal() {
    let d = tmp();
    whoami_case(&d.0);
    let run = |extra: &[&str], env: &[(&str, &str)]| {
        let o = vigil(
            &d.0,
            &[&["hunt", "-r", "rules"], extra, &["logs"]].concat(),
            env,
        );
        text(&o).0
    };
    let always = run(&["--color", "always"], &[]);
    assert!(always.contains("\x1b[31mhigh"), "{always}");
    // Piped stdout: no escapes, and the columns still line up with the header.
    for out in [
        run(&[], &[]),
        run(&["--color", "never"], &[]),
        run(&[], &[("NO_COLOR", "1")]),
    ] {
        assert!(!out.contains('\x1b'), "{out}");
        let header = out.lines().next().unwrap();
        let row = out.lines().find(|l| l.starts_with("2024-")).unwrap();
        assert_eq!(header.find("RULE ID"), row.find("0b4a7c1e"), "{out}");
    }
}

/// Many files, each with a match: one thread and four give the same output, byte for byte.
#[test]
fn hunt_output_is_the_same_whatever_the_number_of_threads() {
    let d = tmp();
    whoami_case(&d.0);
    for i in 0..40 {
        let sub = d.0.join(format!("logs/host{}", i % 7));
        std::fs::create_dir_all(&sub).unwrap();
        let time = format!("2024-05-{:02}T{:02}:00:00Z", 1 + i % 5, i % 24);
        let line = |image: &str| sysmon(&time, image, "x").to_string();
        std::fs::write(
            sub.join(format!("f{i}.jsonl")),
            format!("{}\n{}\n", line("C:\\notepad.exe"), line("C:\\whoami.exe")),
        )
        .unwrap();
    }
    let run = |threads: &str| {
        let o = vigil(
            &d.0,
            &["hunt", "-r", "rules", "--json", "-j", threads, "logs"],
            &[],
        );
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        (out, err)
    };
    let (one, err1) = run("1");
    let (four, err4) = run("4");
    assert_eq!(json_lines(&one).len(), 43);
    assert_eq!(one, four);
    assert!(
        err1.contains("1 threads") && err4.contains("4 threads"),
        "{err1}\n{err4}"
    );
    // Sorted by event time.
    let times: Vec<String> = json_lines(&one)
        .iter()
        .map(|h| h["time"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted);
}

/// The built-in SSH brute force correlation (10 failures within 5 minutes) over a log
/// rotated in the middle of the attack: found only by taking both files in time order.
#[test]
fn hunt_correlates_events_across_files_in_time_order() {
    let d = tmp();
    let failure = |second: u32| {
        format!(
            "Nov 23 10:00:{second:02} bastion-1 sshd[812]: Failed password for root from 203.0.113.9 port {} ssh2\n",
            50000 + second
        )
    };
    let older: String = (0..5).map(failure).collect();
    let newer: String = (5..10).map(failure).collect();
    std::fs::write(d.0.join("auth.log.1"), older).unwrap();
    std::fs::write(d.0.join("auth.log"), &newer).unwrap();
    for threads in ["1", "2"] {
        let o = vigil(
            &d.0,
            &["hunt", "--json", "-j", threads, "auth.log", "auth.log.1"],
            &[],
        );
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        let found: Vec<serde_json::Value> = json_lines(&out)
            .into_iter()
            .filter(|h| h["kind"] == "correlation")
            .collect();
        assert_eq!(found.len(), 1, "{out}\n{err}");
        let c = &found[0];
        assert_eq!(c["rule"]["title"], "SSH Brute Force");
        assert_eq!(c["correlation"]["count"], 10);
        assert_eq!(c["correlation"]["group"]["source.ip"], "203.0.113.9");
        let events = c["correlation"]["events"].as_array().unwrap();
        assert_eq!(events.len(), 10);
        assert_eq!(events[0]["file"], "auth.log.1");
        assert_eq!(events[9]["file"], "auth.log");
        assert_eq!(events[9]["record"], 5);
    }
    // One file alone has too few failures.
    let o = vigil(&d.0, &["hunt", "--json", "auth.log"], &[]);
    assert!(!text(&o).0.contains("\"correlation\""), "{}", text(&o).0);
}

pub fn sigma_dir() -> Option<PathBuf> {
    vigil_testdata::path("sigma")
}

/// `vigil hunt regression_data --rules rules --output json` finds, in every regression
/// case whose rule is in `rules`, loads and is mapped by a pipeline, that rule.
#[test]
fn hunt_finds_the_expected_rule_of_every_sigma_regression_case() {
    let Some(sigma) = sigma_dir() else {
        return;
    };
    let rules = sigma.join("rules");
    let report = vigil_detect::load_dir(&rules, &vigil_detect::CompileOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let pipelines = vigil_detect::PipelineSet::builtin().unwrap();
    let ruleset = report.into_ruleset_with(&pipelines);
    let unmapped: BTreeSet<String> = ruleset
        .unmapped()
        .filter_map(|r| r.rule().id.clone())
        .collect();
    let usable: BTreeSet<String> = ruleset
        .rules()
        .iter()
        .filter_map(|r| r.rule().id.clone())
        .filter(|id| !unmapped.contains(id))
        .collect();

    let d = tmp();
    let data = sigma.join("regression_data");
    let args = [
        "hunt",
        data.to_str().unwrap(),
        "--rules",
        rules.to_str().unwrap(),
        "--output",
        "json",
    ];
    let o = vigil(&d.0, &args, &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let hits = json_lines(&out);

    let mut infos = vigil_testdata::files_with_extension(&sigma.join("regression_data"), "yml");
    infos.retain(|p| p.file_name().is_some_and(|n| n == "info.yml"));
    let (mut checked, mut missing) = (0, Vec::new());
    for info in &infos {
        let doc: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(info).unwrap()).unwrap();
        let case = info.parent().unwrap();
        for meta in doc["rule_metadata"].as_sequence().into_iter().flatten() {
            let id = meta["id"].as_str().unwrap_or_default();
            if !usable.contains(id) {
                continue;
            }
            checked += 1;
            let found = hits.iter().any(|h| {
                h["rule"]["id"] == id && Path::new(h["file"].as_str().unwrap()).starts_with(case)
            });
            if !found {
                missing.push(format!("{}: {id}", case.display()));
            }
        }
    }
    println!("{checked} regression cases checked, {} hits", hits.len());
    assert!(checked >= 100, "only {checked} cases have a usable rule");
    assert!(
        missing.is_empty(),
        "expected rules not found:\n{}",
        missing.join("\n")
    );
}

/// An auth.log as sshd writes it: `failures` failed logins by alice from as many addresses
/// (none reaches the brute-force correlation), `invalid` unknown users, `root` failed root
/// logins and two accepted logins.
fn auth_log(failures: usize, invalid: usize, root: usize) -> String {
    let mut lines = Vec::new();
    let mut second = 0;
    let mut line = |msg: String| {
        second += 1;
        lines.push(format!(
            "May  1 09:{:02}:{:02} bastion-1 sshd[{}]: {msg}",
            second / 60,
            second % 60,
            1000 + second
        ));
    };
    for i in 0..failures {
        line(format!(
            "Failed password for alice from 203.0.113.{} port {} ssh2",
            i + 1,
            40000 + i
        ));
    }
    for i in 0..invalid {
        line(format!(
            "Invalid user admin{i} from 198.51.100.{} port {}",
            i + 1,
            41000 + i
        ));
    }
    for i in 0..root {
        line(format!(
            "Failed password for root from 192.0.2.{} port {} ssh2",
            i + 1,
            42000 + i
        ));
    }
    line("Accepted publickey for alice from 10.0.0.5 port 43000 ssh2: ED25519 SHA256:abc".into());
    line("Accepted publickey for alice from 10.0.0.5 port 43001 ssh2: ED25519 SHA256:abc".into());
    lines.join("\n") + "\n"
}

/// `vigil hunt auth.log` on single failed logins: root login attempts (low) are listed, the
/// informational failures and unknown users are counted in the summary as hidden, and
/// `--min-level informational` lists them.
#[test]
fn hunt_counts_the_informational_auth_findings_it_hides_and_shows_them_on_request() {
    let d = tmp();
    std::fs::write(d.0.join("auth.log"), auth_log(20, 5, 3)).unwrap();
    let o = vigil(&d.0, &["hunt", "auth.log"], &[]);
    let (out, err) = text(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "root attempts are findings; {err}"
    );
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("Root Login Attempt") && l.contains("auth.log:"))
        .collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(rows.iter().all(|r| r.contains(" low ")), "{out}");
    assert!(
        rows[0].contains("source.ip=192.0.2.1 user.name=root"),
        "{out}"
    );
    // 20 + 5 + 3 failures, 5 unknown users: 33 informational matches hidden.
    assert!(
        out.contains(
            "matches: 3 (33 below --min-level low hidden: informational 33; \
             --min-level informational shows them)"
        ),
        "{out}"
    );
    assert!(!out.contains("Authentication Failure"), "{out}");

    let o = vigil(
        &d.0,
        &["hunt", "--min-level", "informational", "--json", "auth.log"],
        &[],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let hits = json_lines(&out);
    let count = |title: &str| hits.iter().filter(|h| h["rule"]["title"] == title).count();
    assert_eq!(count("Authentication Failure"), 28, "{out}");
    assert_eq!(
        count("Authentication Failure for an Unknown User"),
        5,
        "{out}"
    );
    assert_eq!(count("Root Login Attempt"), 3, "{out}");
    assert_eq!(hits.len(), 36, "{out}");
    assert!(
        hits.iter()
            .filter(|h| h["rule"]["title"] == "Authentication Failure for an Unknown User")
            .all(|h| h["level"] == "informational"
                && h["event"]["source"]["ip"]
                    .as_str()
                    .unwrap()
                    .starts_with("198.51.100.")),
        "{out}"
    );
    assert!(err.contains("matches: 36, correlations: 0"), "{err}");

    // Only hidden findings: exit 0, and the summary still says what was left out.
    std::fs::write(d.0.join("quiet.log"), auth_log(4, 0, 0)).unwrap();
    let o = vigil(&d.0, &["hunt", "--json", "quiet.log"], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(
        err.contains("matches: 0 (4 below --min-level low hidden"),
        "{err}"
    );
}

/// A filter and a correlation in `--rules` that name built-in rules by id take effect: the
/// directory is loaded with the built-in pack as one set.
#[test]
fn hunt_rules_filters_and_correlations_may_name_built_in_rules() {
    let d = tmp();
    std::fs::create_dir_all(d.0.join("mine")).unwrap();
    std::fs::write(d.0.join("mine/tuning.yml"), super::USER_RULES_ON_BUILTIN).unwrap();
    let log = [
        "May  1 09:00:01 app-2 sudo: deploy : user NOT in sudoers ; TTY=pts/0 ; PWD=/srv ; USER=root ; COMMAND=/bin/ls",
        "May  1 09:00:02 app-2 sudo: mallory : user NOT in sudoers ; TTY=pts/1 ; PWD=/tmp ; USER=root ; COMMAND=/bin/sh",
        "May  1 09:00:03 app-2 sshd[7]: Failed password for alice from 203.0.113.77 port 50001 ssh2",
        "May  1 09:00:04 app-2 sshd[8]: Failed password for alice from 203.0.113.77 port 50002 ssh2",
        "May  1 09:00:05 app-2 sshd[9]: Failed password for alice from 203.0.113.77 port 50003 ssh2",
    ];
    std::fs::write(d.0.join("auth.log"), log.join("\n") + "\n").unwrap();

    let o = vigil(&d.0, &["hunt", "--json", "-r", "mine", "auth.log"], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    let hits = json_lines(&out);
    let sudo: Vec<&serde_json::Value> = hits
        .iter()
        .filter(|h| h["rule"]["title"] == "Sudo Attempt by a User Not in Sudoers")
        .collect();
    assert_eq!(sudo.len(), 1, "the filter removes deploy's probe: {out}");
    assert_eq!(sudo[0]["record"], 2, "{out}");
    let corr: Vec<&serde_json::Value> = hits
        .iter()
        .filter(|h| h["rule"]["title"] == "Three SSH Failures From One Address")
        .collect();
    assert_eq!(corr.len(), 1, "{out}");
    assert_eq!(corr[0]["correlation"]["group"]["source.ip"], "203.0.113.77");
    assert!(!err.contains("unknown referenced rule"), "{err}");

    // Without the built-in pack the references are unknown, and said so.
    let o = vigil(
        &d.0,
        &["hunt", "--json", "--no-builtin", "-r", "mine", "auth.log"],
        &[],
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("no rules loaded from mine"), "{err}");

    // A rule reusing a built-in id is rejected, and the built-in rule still runs.
    std::fs::write(
        d.0.join("mine/copy.yml"),
        "title: My Sudo Copy\nid: a1894dc3-4879-49e8-877a-376dd1ec8cf8\nlevel: high\n\
         logsource: {product: linux, service: sudo}\ndetection: {kw: [sudoers], condition: kw}\n",
    )
    .unwrap();
    let o = vigil(&d.0, &["hunt", "--json", "-r", "mine", "auth.log"], &[]);
    let (out, err) = text(&o);
    assert!(err.contains("duplicate id"), "{err}");
    assert!(!out.contains("My Sudo Copy"), "{out}");
    assert!(
        out.contains("Sudo Attempt by a User Not in Sudoers"),
        "{out}"
    );
}
