//! Parsed log lines against Vigil's built-in detection rules: the fields the parsers produce
//! are the ones the rules, pipelines and correlations expect.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value as Json;
use vigil_detect::{PipelineSet, builtin_rules};
use vigil_parse::{LineContext, parse_line, parse_reader};

fn received() -> chrono::DateTime<chrono::Utc> {
    "2026-11-23T12:00:00Z".parse().unwrap()
}

fn auth_log_events() -> Vec<Json> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/auth.log");
    let file = std::fs::File::open(&path).unwrap();
    let path = path.to_str().unwrap().to_owned();
    let ctx = LineContext::new(received()).with_path(&path);
    parse_reader(std::io::BufReader::new(file), &ctx)
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

/// Runs the built-in pack (with pipelines and correlations) over events in order; returns
/// detection titles per event and all correlation titles.
fn run(events: &[Json]) -> (Vec<Vec<String>>, Vec<String>) {
    let report = builtin_rules();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let mut correlations = report.correlation_engine().unwrap();
    let ruleset = report.into_ruleset_with(&PipelineSet::builtin().unwrap());
    let mut per_event = Vec::new();
    let mut correlated = Vec::new();
    for event in events {
        let time = vigil_core::event::timestamp(event)
            .expect("every parsed event has an @timestamp")
            .timestamp_millis();
        let matched: Vec<_> = ruleset.matches(event).collect();
        per_event.push(matched.iter().map(|r| r.rule().title.clone()).collect());
        correlated.extend(
            correlations
                .process_rules(time, &matched, event)
                .into_iter()
                .map(|m| m.title),
        );
    }
    (per_event, correlated)
}

fn count(titles: &[Vec<String>], title: &str) -> usize {
    titles
        .iter()
        .filter(|t| t.iter().any(|x| x == title))
        .count()
}

#[test]
fn auth_log_fires_the_ssh_and_sudo_rules() {
    let events = auth_log_events();
    assert_eq!(events.len(), 36);
    assert!(events.iter().all(|e| e["event"]["dataset"] == "auth"));
    let (titles, correlated) = run(&events);

    // Each `Failed password` line counts once; PAM's line for the same attempt does not.
    assert_eq!(count(&titles, "SSH Authentication Failure"), 15);
    assert_eq!(count(&titles, "SSH Login Accepted"), 1);
    assert_eq!(count(&titles, "Sudo to Root by a Service Account"), 1);
    assert_eq!(count(&titles, "Sudo Attempt by a User Not in Sudoers"), 1);
    assert_eq!(count(&titles, "Sudo Command With a Shell Escape"), 1);

    let mut by_title: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &correlated {
        *by_title.entry(t.as_str()).or_default() += 1;
    }
    // Ten failures from 203.0.113.9 in ten seconds, then a success from the same address;
    // five users from 198.51.100.23. Spraying needs user.name and source.ip parsed.
    assert!(by_title.contains_key("SSH Brute Force"), "{by_title:?}");
    assert!(
        by_title.contains_key("SSH Login Succeeded After Repeated Failures"),
        "{by_title:?}"
    );
    assert!(
        by_title.contains_key("SSH Password Spraying"),
        "{by_title:?}"
    );
}

#[test]
fn failures_from_other_hosts_or_programs_do_not_count() {
    let ctx = LineContext::new(received());
    let vsftpd = parse_line(
        "Nov 23 10:00:00 ftp-1 vsftpd[5]: Failed password for root from 203.0.113.9 port 1 ssh2",
        &ctx,
    );
    let (titles, _) = run(&[vsftpd]);
    assert!(titles[0].is_empty(), "{titles:?}");
}

#[test]
fn web_access_lines_fire_the_webserver_rules() {
    let ctx = LineContext::new(received()).with_path("/var/log/nginx/access.log");
    let lines = [
        r#"203.0.113.80 - - [23/Nov/2026:10:00:00 +0000] "GET /products.php?id=1%20union%20select%201,2,3-- HTTP/1.1" 200 512 "-" "Mozilla/5.0""#,
        r#"203.0.113.80 - - [23/Nov/2026:10:00:01 +0000] "GET / HTTP/1.1" 200 512 "-" "sqlmap/1.7.2#stable (https://sqlmap.org)""#,
        r#"10.0.0.7 - - [23/Nov/2026:10:00:02 +0000] "GET /products.php?id=42&sort=price HTTP/1.1" 200 512 "-" "Mozilla/5.0""#,
    ];
    let events: Vec<Json> = lines.iter().map(|l| parse_line(l, &ctx)).collect();
    let (titles, _) = run(&events);
    assert!(
        titles[0].contains(&"SQL Injection Attempt in a Web Request".to_owned()),
        "{titles:?}"
    );
    assert!(
        titles[1].contains(&"Attack Tool User-Agent".to_owned()),
        "{titles:?}"
    );
    assert!(titles[2].is_empty(), "{titles:?}");
}

#[test]
fn firewall_lines_reach_the_firewall_logsource() {
    let ctx = LineContext::new(received());
    let drop = parse_line(
        "Nov 23 10:00:07 fw-1 kernel: [ 1234.567890] [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:ab:cd:ef:08:00 SRC=203.0.113.9 DST=10.0.0.5 LEN=60 TOS=0x00 PREC=0x00 TTL=52 ID=54321 DF PROTO=TCP SPT=51234 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0",
        &ctx,
    );
    assert_eq!(drop["event"]["dataset"], "firewall");
    let (titles, _) = run(&[drop]);
    assert!(titles[0].contains(&"Network Flow".to_owned()), "{titles:?}");
}
