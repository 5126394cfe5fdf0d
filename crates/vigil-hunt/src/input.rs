//! Finding input files and reading events out of them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

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
                    on_event(line_no, text_event(path, line));
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

/// A text line as an event: `{"message": line}`, and for syslog lines
/// (`May  1 09:00:00 host sshd[42]: ...`, or with an ISO 8601 time) also the fields the
/// built-in Linux pipeline selects on (`event.dataset`: `auth` for files named `auth*` or
/// `secure*`, else `syslog`; `process.name`, `host.name`, `timestamp`), so SigmaHQ's
/// sshd/sudo/cron keyword rules apply.
fn text_event(path: &Path, line: &str) -> Json {
    static SYSLOG: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    let syslog = SYSLOG.get_or_init(|| {
        regex::Regex::new(
            r"^(?:<\d+>\d?\s*)?([A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2}|\d{4}-\d{2}-\d{2}T\S+) (\S+) ([^\s:\[]+)(?:\[(\d+)\])?: ",
        )
        .ok()
    });
    let Some(caps) = syslog.as_ref().and_then(|re| re.captures(line)) else {
        return serde_json::json!({ "message": line });
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let dataset = if name.starts_with("auth") || name.starts_with("secure") {
        "auth"
    } else {
        "syslog"
    };
    let app = &caps[3];
    let mut process = serde_json::json!({ "name": app });
    if let Some(pid) = caps.get(4).and_then(|p| p.as_str().parse::<u64>().ok()) {
        process["pid"] = pid.into();
    }
    serde_json::json!({
        "message": line,
        "timestamp": &caps[1],
        "event": {"dataset": dataset},
        "host": {"name": &caps[2]},
        "process": process,
        "log": {"syslog": {"appname": app}},
    })
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
        let e = text_event(
            Path::new("/var/log/auth.log"),
            "May  1 09:00:00 web1 sshd[123]: Failed password for root",
        );
        assert_eq!(e["event"]["dataset"], "auth");
        assert_eq!(e["process"]["name"], "sshd");
        assert_eq!(e["process"]["pid"], 123);
        assert_eq!(e["host"]["name"], "web1");
        assert_eq!(e["timestamp"], "May  1 09:00:00");
        let e = text_event(
            Path::new("messages"),
            "2024-05-01T09:00:00+00:00 web1 CRON: (root) CMD (true)",
        );
        assert_eq!(e["event"]["dataset"], "syslog");
        assert_eq!(e["process"]["name"], "CRON");
        let e = text_event(Path::new("app.log"), "just text: here");
        assert_eq!(e, serde_json::json!({"message": "just text: here"}));
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
