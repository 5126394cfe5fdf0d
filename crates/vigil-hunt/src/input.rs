//! Finding input files and reading events out of them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::Value as Json;

use crate::Error;

/// How a file is read, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// Windows event log (`.evtx`).
    Evtx,
    /// `.json`: one event, an array of events, or several values back to back.
    Json,
    /// `.jsonl` / `.ndjson`: one event per line.
    JsonLines,
    /// Packet captures (`.pcap`, `.pcapng`, `.cap`): read with `vigil-net` into its
    /// `network.flow`, `network.dns`, `network.http` and `network.tls` events.
    Capture,
    /// Anything else: each non-empty line is an event `{"message": line}`.
    Text,
}

impl InputKind {
    pub fn of(path: &Path) -> Self {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("evtx") => InputKind::Evtx,
            Some("json") => InputKind::Json,
            Some("jsonl" | "ndjson") => InputKind::JsonLines,
            Some("pcap" | "pcapng" | "cap") => InputKind::Capture,
            _ => InputKind::Text,
        }
    }
}

/// The files named by `inputs`: files as given, directories searched recursively (in path
/// order, hidden entries left out), and patterns with `*` or `?` in their last component
/// matched against that directory's files. Inputs naming nothing are errors.
pub fn expand_inputs(inputs: &[PathBuf]) -> (Vec<PathBuf>, Vec<Error>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for input in inputs {
        let before = files.len();
        let name = input.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.contains(['*', '?']) && !input.exists() {
            let dir = match input.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map(|d| d.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            found.retain(|p| {
                p.is_file()
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| wildcard(name, n))
            });
            found.sort();
            files.extend(found);
        } else if input.is_dir() {
            walk(input, &mut files, &mut errors);
        } else if input.exists() {
            files.push(input.clone());
        }
        if files.len() == before && input.is_dir() {
            continue; // an empty directory is not an error
        }
        if files.len() == before {
            errors.push(Error::NoMatch {
                pattern: input.display().to_string(),
            });
        }
    }
    (files, errors)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, errors: &mut Vec<Error>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(d) => d,
        Err(source) => {
            errors.push(Error::Io {
                path: dir.to_path_buf(),
                source,
            });
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            walk(&path, files, errors);
        } else if path.is_file() {
            files.push(path);
        }
    }
}

/// `*` (any run of characters) and `?` (one character) against a whole file name.
fn wildcard(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Reads the events of one file as `kind` says, calling `on_event(record, event)` for each
/// (`record` as in [`Location::record`](crate::Location::record)), and pushing each bad file,
/// line or record to `errors`.
pub fn read_events(
    path: &Path,
    kind: InputKind,
    on_event: &mut dyn FnMut(u64, Json),
    errors: &mut Vec<Error>,
) {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let parse = |line: Option<u64>, reason: String| Error::Parse {
        path: path.to_path_buf(),
        line,
        reason,
    };
    match kind {
        InputKind::Evtx => read_evtx(path, on_event, errors),
        InputKind::Capture => read_capture(path, on_event, errors),
        InputKind::Json => {
            let text = match std::fs::read(path) {
                Ok(t) => t,
                Err(e) => return errors.push(io(e)),
            };
            let mut record = 0;
            let mut stream = serde_json::Deserializer::from_slice(&text).into_iter::<Json>();
            loop {
                match stream.next() {
                    None => break,
                    Some(Ok(Json::Array(items))) => {
                        for item in items {
                            record += 1;
                            on_event(record, item);
                        }
                    }
                    Some(Ok(value)) => {
                        record += 1;
                        on_event(record, value);
                    }
                    Some(Err(e)) => {
                        // The rest of the file cannot be resynchronised.
                        errors.push(parse(Some(e.line() as u64), e.to_string()));
                        break;
                    }
                }
            }
        }
        InputKind::JsonLines | InputKind::Text => {
            let file = match std::fs::File::open(path) {
                Ok(f) => f,
                Err(e) => return errors.push(io(e)),
            };
            let received = modified(&file);
            let mut reader = BufReader::new(file);
            let mut buf = Vec::new();
            let mut line_no = 0u64;
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => return errors.push(io(e)),
                }
                line_no += 1;
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end_matches(['\n', '\r']);
                if line.trim().is_empty() {
                    continue;
                }
                if kind == InputKind::Text {
                    on_event(line_no, text_event(path, line, received));
                    continue;
                }
                match serde_json::from_str::<Json>(line) {
                    Ok(event) => on_event(line_no, event),
                    Err(e) => errors.push(parse(Some(line_no), e.to_string())),
                }
            }
        }
    }
}

/// A text line as an event, through [`vigil_parse::parse_line`]: syslog lines (auth.log,
/// secure, messages ...) get `event.dataset` `auth` or `syslog`, `process.name`, `host.name`
/// and the sshd/sudo/su fields the built-in Linux rules use; audit.log records, web access
/// logs, firewall lines and JSON objects their own fields; anything else
/// `{"message": line, "event": {"dataset": "raw"}}`. `received` (the file's modification
/// time) gives RFC 3164 times their year; a line with no time of its own gets no
/// `@timestamp`, so the hunt reports none rather than a made-up one.
fn text_event(path: &Path, line: &str, received: DateTime<Utc>) -> Json {
    let path = path.to_string_lossy();
    let ctx = vigil_parse::LineContext::new(received).with_path(&path);
    let mut event = vigil_parse::parse_line(line, &ctx);
    let made_up = received.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    if event.get("@timestamp").and_then(Json::as_str) == Some(made_up.as_str())
        && let Some(obj) = event.as_object_mut()
    {
        obj.remove("@timestamp");
    }
    event
}

/// The file's modification time, or now.
fn modified(file: &std::fs::File) -> DateTime<Utc> {
    file.metadata()
        .and_then(|m| m.modified())
        .map(DateTime::<Utc>::from)
        .unwrap_or_else(|_| Utc::now())
}

/// A capture's flows and their DNS/HTTP/TLS transactions as events (record = the event's
/// position, 1-based); flows end on vigil-net's default idle/active timeouts and TCP close.
/// A capture damaged part way gives the events before the damage and an error.
fn read_capture(path: &Path, on_event: &mut dyn FnMut(u64, Json), errors: &mut Vec<Error>) {
    let summary = match vigil_net::summarize_file(path, &vigil_net::FlowConfig::default()) {
        Ok(s) => s,
        Err(vigil_net::Error::Io { source, .. }) => {
            return errors.push(Error::Io {
                path: path.to_path_buf(),
                source,
            });
        }
        Err(e) => {
            return errors.push(Error::Parse {
                path: path.to_path_buf(),
                line: None,
                reason: format!("not a readable capture: {}", without_path(&e)),
            });
        }
    };
    if let Some(link) = summary.stats.unknown_link {
        errors.push(Error::Parse {
            path: path.to_path_buf(),
            line: None,
            reason: format!(
                "{} packets of link type {} skipped: vigil-net decodes Ethernet, raw IP, \
                 Linux cooked (v1, v2) and loopback captures",
                summary.stats.unsupported_link, link.0
            ),
        });
    }
    for (i, event) in summary.events.into_iter().enumerate() {
        on_event(i as u64 + 1, event);
    }
    if let Some(e) = summary.error {
        errors.push(Error::Parse {
            path: path.to_path_buf(),
            line: None,
            reason: format!("capture read only in part: {}", without_path(&e)),
        });
    }
}

/// A vigil-net error without the path it wraps (ours prints the path already).
fn without_path(e: &vigil_net::Error) -> String {
    match e {
        vigil_net::Error::InFile { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

fn read_evtx(path: &Path, on_event: &mut dyn FnMut(u64, Json), errors: &mut Vec<Error>) {
    let settings = evtx::ParserSettings::new()
        .num_threads(1)
        .separate_json_attributes(false);
    let mut parser = match evtx::EvtxParser::from_path(path) {
        Ok(p) => p.with_configuration(settings),
        Err(e) => {
            return errors.push(Error::Parse {
                path: path.to_path_buf(),
                line: None,
                reason: format!("not a readable EVTX file: {e}"),
            });
        }
    };
    for record in parser.records_json_value() {
        match record {
            Ok(r) => on_event(r.event_record_id, r.data),
            Err(e) => errors.push(Error::Parse {
                path: path.to_path_buf(),
                line: None,
                reason: format!("bad EVTX record: {e}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_whole_names() {
        assert!(wildcard("*.evtx", "a.evtx"));
        assert!(wildcard("a?c*", "abcdef"));
        assert!(!wildcard("*.evtx", "a.evtx.bak"));
        assert!(wildcard("*", ""));
        assert!(!wildcard("?", ""));
    }

    #[test]
    fn syslog_lines_get_the_fields_the_linux_pipeline_needs() {
        let received: DateTime<Utc> = "2024-06-01T00:00:00Z".parse().unwrap();
        let e = text_event(
            Path::new("/var/log/auth.log"),
            "May  1 09:00:00 web1 sshd[123]: Failed password for root from 203.0.113.9 port 22 ssh2",
            received,
        );
        assert_eq!(e["event"]["dataset"], "auth");
        assert_eq!(e["process"]["name"], "sshd");
        assert_eq!(e["process"]["pid"], 123);
        assert_eq!(e["host"]["name"], "web1");
        assert_eq!(e["source"]["ip"], "203.0.113.9");
        assert_eq!(e["@timestamp"], "2024-05-01T09:00:00.000000Z");
        let e = text_event(
            Path::new("messages"),
            "2024-05-01T09:00:00+00:00 web1 CRON: (root) CMD (true)",
            received,
        );
        assert_eq!(e["event"]["dataset"], "syslog");
        assert_eq!(e["process"]["name"], "CRON");
        let e = text_event(Path::new("app.log"), "just text: here", received);
        assert_eq!(e["message"], "just text: here");
        assert_eq!(e["event"]["dataset"], "raw");
        assert!(e.get("@timestamp").is_none(), "no made-up time: {e}");
    }

    #[test]
    fn kinds_come_from_extensions() {
        assert_eq!(InputKind::of(Path::new("a/B.EVTX")), InputKind::Evtx);
        assert_eq!(InputKind::of(Path::new("x.ndjson")), InputKind::JsonLines);
        assert_eq!(InputKind::of(Path::new("x.json")), InputKind::Json);
        assert_eq!(InputKind::of(Path::new("syslog")), InputKind::Text);
        assert_eq!(InputKind::of(Path::new("a.PCAP")), InputKind::Capture);
        assert_eq!(InputKind::of(Path::new("a.pcapng")), InputKind::Capture);
    }
}
