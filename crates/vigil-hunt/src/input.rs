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

/// The longest line of a text or JSON lines file that is read; a longer one is reported and
/// skipped, so a file without line breaks cannot take all memory.
pub const MAX_LINE_BYTES: usize = 16 << 20;

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
    match kind {
        InputKind::Evtx => match evtx::EvtxParser::from_path(path) {
            Ok(parser) => read_evtx(path, parser, on_event, errors),
            Err(e) => errors.push(not_evtx(path, e)),
        },
        InputKind::Capture => read_capture(path, on_event, errors),
        InputKind::Json | InputKind::JsonLines | InputKind::Text => {
            let file = match std::fs::File::open(path) {
                Ok(f) => f,
                Err(e) => return errors.push(io(e)),
            };
            let received = modified(&file);
            let reader = BufReader::new(file);
            if kind == InputKind::Json {
                read_json(path, reader, on_event, errors);
            } else {
                read_lines(path, kind, received, reader, on_event, errors);
            }
        }
    }
}

/// [`read_events`] over bytes in memory, as if they were the file `path` (which is only used
/// in events and errors): the fuzz targets' entry point. Captures are read from files only.
pub fn read_events_from_bytes(
    path: &Path,
    kind: InputKind,
    data: &[u8],
    on_event: &mut dyn FnMut(u64, Json),
    errors: &mut Vec<Error>,
) {
    match kind {
        InputKind::Evtx => match evtx::EvtxParser::from_buffer(data.to_vec()) {
            Ok(parser) => read_evtx(path, parser, on_event, errors),
            Err(e) => errors.push(not_evtx(path, e)),
        },
        InputKind::Capture => errors.push(Error::Parse {
            path: path.to_path_buf(),
            line: None,
            reason: "captures are read from files only".into(),
        }),
        InputKind::Json => read_json(path, data, on_event, errors),
        InputKind::JsonLines | InputKind::Text => {
            let received = DateTime::<Utc>::UNIX_EPOCH;
            read_lines(path, kind, received, data, on_event, errors);
        }
    }
}

/// A `.json` file: one event, an array of events (streamed one element at a time, so memory
/// is bounded by the largest event, not the file), or several values back to back. Nesting
/// deeper than serde_json's limit (128) is an error. A syntax error ends the file: the rest
/// cannot be resynchronised.
fn read_json(
    path: &Path,
    reader: impl std::io::Read,
    on_event: &mut dyn FnMut(u64, Json),
    errors: &mut Vec<Error>,
) {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_reader(reader);
    let mut record = 0;
    loop {
        // `end` is Ok at the end of the input, and leaves a next value's first byte unread.
        if de.end().is_ok() {
            break;
        }
        let seed = JsonEvents {
            on_event: &mut *on_event,
            record: &mut record,
        };
        if let Err(e) = seed.deserialize(&mut de) {
            let line = (e.line() > 0).then_some(e.line() as u64);
            errors.push(Error::Parse {
                path: path.to_path_buf(),
                line,
                reason: e.to_string(),
            });
            break;
        }
    }
}

/// One top-level JSON value of a `.json` file: each element of an array is an event, and
/// any other value is one.
struct JsonEvents<'a> {
    on_event: &'a mut dyn FnMut(u64, Json),
    record: &'a mut u64,
}

impl<'de> serde::de::DeserializeSeed<'de> for JsonEvents<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for JsonEvents<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an event or an array of events")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(event) = seq.next_element::<Json>()? {
            *self.record += 1;
            (self.on_event)(*self.record, event);
        }
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        use serde::Deserialize;
        let event = Json::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        *self.record += 1;
        (self.on_event)(*self.record, event);
        Ok(())
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.one(Json::from(v))
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<(), E> {
        self.one(Json::from(v))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        self.one(Json::from(v))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        self.one(Json::from(v))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        self.one(Json::from(v))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.one(Json::Null)
    }
}

impl JsonEvents<'_> {
    /// A scalar at the top level: an event of its own, as any JSON value is to the engine.
    fn one<E>(self, value: Json) -> Result<(), E> {
        *self.record += 1;
        (self.on_event)(*self.record, value);
        Ok(())
    }
}

/// Text and JSON lines files, one event per non-empty line.
fn read_lines(
    path: &Path,
    kind: InputKind,
    received: DateTime<Utc>,
    mut reader: impl BufRead,
    on_event: &mut dyn FnMut(u64, Json),
    errors: &mut Vec<Error>,
) {
    let parse = |line: Option<u64>, reason: String| Error::Parse {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    loop {
        buf.clear();
        let too_long = match read_bounded_line(&mut reader, &mut buf, MAX_LINE_BYTES) {
            Ok(None) => break,
            Ok(Some(too_long)) => too_long,
            Err(source) => {
                return errors.push(Error::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        line_no += 1;
        if too_long {
            errors.push(parse(
                Some(line_no),
                format!("line longer than {} MiB skipped", MAX_LINE_BYTES >> 20),
            ));
            continue;
        }
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

/// Reads one line (with its `\n`) into `buf`; `None` at the end of the input, else whether
/// the line was longer than `max` (then `buf` is left empty and the line is read past).
fn read_bounded_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<bool>> {
    let (mut read, mut too_long) = (0usize, false);
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok((read > 0).then_some(too_long));
        }
        let (n, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if !too_long {
            if buf.len() + n > max {
                too_long = true;
                *buf = Vec::new();
            } else {
                buf.extend_from_slice(&available[..n]);
            }
        }
        reader.consume(n);
        read += n;
        if done {
            return Ok(Some(too_long));
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

fn not_evtx(path: &Path, e: evtx::err::EvtxError) -> Error {
    Error::Parse {
        path: path.to_path_buf(),
        line: None,
        reason: format!("not a readable EVTX file: {e}"),
    }
}

/// The records of an EVTX file; a damaged chunk or record is reported and the rest read.
fn read_evtx<T: std::io::Read + std::io::Seek>(
    path: &Path,
    parser: evtx::EvtxParser<T>,
    on_event: &mut dyn FnMut(u64, Json),
    errors: &mut Vec<Error>,
) {
    // One thread per file: the hunt already reads files in parallel.
    let settings = evtx::ParserSettings::new()
        .num_threads(1)
        .separate_json_attributes(false);
    let mut parser = parser.with_configuration(settings);
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
