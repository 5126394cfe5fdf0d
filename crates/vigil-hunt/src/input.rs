//! Finding input files and reading events out of them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::Value as Json;
use vigil_detect::{Event, JsonEvent};

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

/// The longest line of a text or JSON lines file that is read, and the largest event of a
/// `.json` file; a longer one is reported and skipped, so a file without line breaks cannot
/// take all memory.
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// One event as a reader gives it: JSON read straight from its bytes into the engine's node
/// table (JSON lines, `.json` files, EVTX records as the evtx crate renders them), with the
/// text it was parsed from, or a document a normaliser built (text lines, captures).
#[derive(Debug, Clone, Copy)]
pub enum InputEvent<'a> {
    /// `event` was parsed from `text` by [`JsonEvent::parse`]; a match is printed as `text`.
    Parsed {
        text: &'a str,
        event: &'a JsonEvent<'a>,
    },
    /// An event built as a `serde_json::Value` (text lines through `vigil-parse`, captures
    /// through `vigil-net`); a match is printed as it serialises.
    Value(&'a Json),
}

impl<'a> InputEvent<'a> {
    /// The event the engine evaluates.
    pub fn event(&self) -> &'a dyn Event {
        match *self {
            InputEvent::Parsed { event, .. } => event,
            InputEvent::Value(value) => value,
        }
    }

    /// The event's time as written ([`event_time`](crate::event_time)'s answer, read from
    /// the node table for a parsed event).
    pub fn time(&self) -> Option<String> {
        let event = match *self {
            InputEvent::Parsed { event, .. } => event,
            InputEvent::Value(value) => return crate::event_time(value),
        };
        if let Some(t) = event
            .str_at(&[
                "Event",
                "System",
                "TimeCreated",
                "#attributes",
                "SystemTime",
            ])
            .or_else(|| event.str_at(&["Event", "System", "TimeCreated_attributes", "SystemTime"]))
        {
            return Some(t.to_string());
        }
        crate::TIME_FIELDS
            .iter()
            .find_map(|k| match event.str_at(&[k]) {
                Some(s) => Some(s.to_string()),
                None => event.number_at(&[k]).map(|n| n.to_string()),
            })
    }

    /// The event as a `serde_json::Value`: for tests and tools, not the hunt's path.
    pub fn to_value(&self) -> serde_json::Result<Json> {
        match *self {
            InputEvent::Parsed { text, .. } => serde_json::from_str(text),
            InputEvent::Value(value) => Ok(value.clone()),
        }
    }

    /// The event's JSON text on one line: the text it was parsed from (a pretty-printed
    /// `.json` event without the whitespace between its tokens, so it is one line of JSON
    /// lines output), or the `Value` serialised.
    pub fn one_line(&self) -> String {
        let mut out = Vec::new();
        self.write_one_line(&mut out);
        // Written from a `str`, or by serde_json: UTF-8.
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// [`InputEvent::one_line`] appended to `out` (a buffer the caller reuses).
    pub fn write_one_line(&self, out: &mut Vec<u8>) {
        match *self {
            InputEvent::Parsed { text, .. } => compact_json(text, out),
            // Writing a `Value` to a `Vec` cannot fail.
            InputEvent::Value(value) => {
                let _ = serde_json::to_writer(&mut *out, value);
            }
        }
    }
}

/// Appends `text` (valid JSON) to `out` as it is when it is on one line (JSON lines, EVTX
/// records), else without whitespace outside strings and the rest byte for byte.
fn compact_json(text: &str, out: &mut Vec<u8>) {
    let bytes = text.as_bytes();
    let spaced = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    // A line break is never inside a JSON string (control characters are escaped there).
    if memchr::memchr2(b'\n', b'\r', bytes).is_none() {
        return out.extend_from_slice(bytes);
    }
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            out.push(b);
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if !spaced(&b) {
            in_string = b == b'"';
            out.push(b);
        }
    }
}

/// A part of a file to read: all of it, or (JSON lines) the lines that start in a byte
/// range, so one large file is read by several threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// The whole file; an EVTX file's chunks rendered by this many threads (the evtx crate's
    /// pool) while the caller's thread evaluates the records.
    Whole { evtx_threads: usize },
    /// Lines starting at or after `start` and before `end`; their numbers are counted from
    /// the first line of the part (the caller adds the lines of the parts before).
    Lines { start: u64, end: u64 },
}

/// What reading a part found out about it.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PartRead {
    /// Lines read (text and JSON lines): the next part's first line is this much further.
    pub lines: u64,
}

/// Reads the events of one file as `kind` says, calling `on_event(record, event)` for each
/// (`record` as in [`Location::record`](crate::Location::record)), and pushing each bad file,
/// line or record to `errors`.
pub fn read_events(
    path: &Path,
    kind: InputKind,
    on_event: &mut dyn FnMut(u64, InputEvent<'_>),
    errors: &mut Vec<Error>,
) {
    read_part(
        path,
        kind,
        Part::Whole { evtx_threads: 1 },
        on_event,
        errors,
    );
}

/// [`read_events`] for a part of the file.
pub(crate) fn read_part(
    path: &Path,
    kind: InputKind,
    part: Part,
    on_event: &mut dyn FnMut(u64, InputEvent<'_>),
    errors: &mut Vec<Error>,
) -> PartRead {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    match kind {
        InputKind::Evtx => match evtx::EvtxParser::from_path(path) {
            Ok(parser) => {
                let threads = match part {
                    Part::Whole { evtx_threads } => evtx_threads,
                    Part::Lines { .. } => 1,
                };
                read_evtx(path, parser, threads, on_event, errors)
            }
            Err(e) => errors.push(not_evtx(path, e)),
        },
        InputKind::Capture => read_capture(path, on_event, errors),
        InputKind::Json | InputKind::JsonLines | InputKind::Text => {
            let mut file = match std::fs::File::open(path) {
                Ok(f) => f,
                Err(e) => {
                    errors.push(io(e));
                    return PartRead::default();
                }
            };
            let received = modified(&file);
            let limit = match part {
                Part::Whole { .. } => None,
                Part::Lines { start, end } => match seek_to_line(&mut file, start) {
                    Ok(at) => Some(end.saturating_sub(at)),
                    Err(e) => {
                        errors.push(io(e));
                        return PartRead::default();
                    }
                },
            };
            let reader = BufReader::with_capacity(READ_BUFFER, file);
            if kind == InputKind::Json {
                read_json(path, reader, on_event, errors);
            } else {
                return read_lines(path, kind, received, reader, limit, on_event, errors);
            }
        }
    }
    PartRead::default()
}

/// Bytes read from a file at once.
const READ_BUFFER: usize = 256 << 10;

/// Moves `file` to the first line that starts at or after `start` (a line starts at 0 or
/// after a `\n`); returns that offset.
fn seek_to_line(file: &mut std::fs::File, start: u64) -> std::io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    if start == 0 {
        return Ok(0);
    }
    file.seek(SeekFrom::Start(start - 1))?;
    let mut at = start - 1;
    let mut buf = [0u8; 8 << 10];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => return Ok(at), // the end of the file: the part is empty
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
            at += i as u64 + 1;
            file.seek(SeekFrom::Start(at))?;
            return Ok(at);
        }
        at += n as u64;
    }
}

/// [`read_events`] over bytes in memory, as if they were the file `path` (which is only used
/// in events and errors): the fuzz targets' entry point. Captures are read from files only.
pub fn read_events_from_bytes(
    path: &Path,
    kind: InputKind,
    data: &[u8],
    on_event: &mut dyn FnMut(u64, InputEvent<'_>),
    errors: &mut Vec<Error>,
) {
    match kind {
        InputKind::Evtx => match evtx::EvtxParser::from_buffer(data.to_vec()) {
            Ok(parser) => read_evtx(path, parser, 1, on_event, errors),
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
            read_lines(path, kind, received, data, None, on_event, errors);
        }
    }
}

/// serde_json's account of why `text` is not JSON (the engine's parser accepts what
/// serde_json accepts, and serde_json's messages are the ones users know), and the line of
/// `text` it is on (1-based); the engine parser's own when serde_json finds nothing wrong.
/// Only for texts that failed: parsed into a `Value`, whose recursion limit `IgnoredAny`
/// does not have.
fn json_error(text: &str, engine: serde_json::Error) -> (String, usize) {
    match serde_json::from_str::<Json>(text) {
        Err(e) => (e.to_string(), e.line().max(1)),
        Ok(_) => (engine.to_string(), 1),
    }
}

/// Parses `text` with the engine's parser and hands it on; a text that does not parse is
/// an error at `line` (the error's own line within `text` added when `whole_message` is
/// false, with its position then left out of the message).
fn parse_and_send(
    path: &Path,
    record: u64,
    text: &str,
    line: u64,
    whole_message: bool,
    on_event: &mut dyn FnMut(u64, InputEvent<'_>),
    errors: &mut Vec<Error>,
) -> bool {
    match JsonEvent::parse(text) {
        Ok(event) => {
            on_event(
                record,
                InputEvent::Parsed {
                    text,
                    event: &event,
                },
            );
            true
        }
        Err(e) => {
            let (mut reason, at) = json_error(text, e);
            let mut line = line;
            if !whole_message {
                line += at as u64 - 1;
                if let Some((head, _)) = reason.rsplit_once(" at line ") {
                    reason.truncate(head.len());
                }
            }
            errors.push(Error::Parse {
                path: path.to_path_buf(),
                line: Some(line),
                reason,
            });
            false
        }
    }
}

/// A `.json` file: one event, an array of events (read one element at a time, so memory is
/// bounded by the largest event, not the file), or several values back to back. Each event's
/// text is found by a scan that only follows strings and brackets, then parsed with the
/// engine's parser. A syntax error ends the file: the rest cannot be resynchronised.
fn read_json(
    path: &Path,
    reader: impl std::io::Read,
    on_event: &mut dyn FnMut(u64, InputEvent<'_>),
    errors: &mut Vec<Error>,
) {
    let mut scan = JsonScan::new(reader);
    let mut record = 0;
    let fail = |errors: &mut Vec<Error>, scan: &mut JsonScan<_>, reason: &str| {
        errors.push(match scan.io_error.take() {
            Some(source) => Error::Io {
                path: path.to_path_buf(),
                source,
            },
            None => Error::Parse {
                path: path.to_path_buf(),
                line: Some(scan.line),
                reason: reason.to_string(),
            },
        })
    };
    let mut text = Vec::new();
    loop {
        scan.skip_ws();
        let in_array = match scan.peek() {
            None => break,
            Some(b'[') => {
                scan.bump();
                true
            }
            Some(_) => false,
        };
        let mut first = true;
        loop {
            if in_array {
                scan.skip_ws();
                match scan.peek() {
                    Some(b']') if first => {
                        scan.bump();
                        break;
                    }
                    None => {
                        return fail(errors, &mut scan, "EOF while parsing a list");
                    }
                    _ => {}
                }
            }
            let line = scan.line;
            let too_long = scan.value(&mut text);
            if scan.io_error.is_some() {
                return fail(errors, &mut scan, "");
            }
            record += 1;
            if too_long {
                errors.push(Error::Parse {
                    path: path.to_path_buf(),
                    line: Some(line),
                    reason: format!("event longer than {} MiB skipped", MAX_LINE_BYTES >> 20),
                });
            } else {
                let Ok(s) = std::str::from_utf8(&text) else {
                    return fail(errors, &mut scan, "invalid UTF-8");
                };
                let sent = parse_and_send(path, record, s, line, false, on_event, errors);
                if !sent {
                    return;
                }
            }
            if !in_array {
                break;
            }
            first = false;
            scan.skip_ws();
            match scan.peek() {
                Some(b',') => scan.bump(),
                Some(b']') => {
                    scan.bump();
                    break;
                }
                Some(_) => return fail(errors, &mut scan, "expected `,` or `]`"),
                None => return fail(errors, &mut scan, "EOF while parsing a list"),
            }
            scan.skip_ws();
            if scan.peek() == Some(b']') {
                return fail(errors, &mut scan, "trailing comma");
            }
        }
    }
}

/// Finds the texts of JSON values in a stream by following strings and brackets only.
struct JsonScan<R> {
    reader: R,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    /// The line of the next byte (1-based).
    line: u64,
    io_error: Option<std::io::Error>,
}

impl<R: std::io::Read> JsonScan<R> {
    fn new(reader: R) -> Self {
        JsonScan {
            reader,
            buf: vec![0; 64 << 10].into_boxed_slice(),
            pos: 0,
            len: 0,
            line: 1,
            io_error: None,
        }
    }

    fn peek(&mut self) -> Option<u8> {
        if self.pos == self.len {
            if self.io_error.is_some() {
                return None;
            }
            self.pos = 0;
            self.len = loop {
                match self.reader.read(&mut self.buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.io_error = Some(e);
                        break 0;
                    }
                }
            };
        }
        (self.pos < self.len).then(|| self.buf[self.pos])
    }

    fn bump(&mut self) {
        if self.buf.get(self.pos) == Some(&b'\n') {
            self.line += 1;
        }
        self.pos += 1;
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.bump();
        }
    }

    /// The text of the value that starts here into `out` (up to the end of the input when
    /// it does not end: the parser then says what is missing); whether it was longer than
    /// [`MAX_LINE_BYTES`] (then `out` is left empty and the value read past).
    fn value(&mut self, out: &mut Vec<u8>) -> bool {
        out.clear();
        let mut too_long = false;
        let mut keep = |out: &mut Vec<u8>, b: u8| {
            if !too_long {
                if out.len() >= MAX_LINE_BYTES {
                    too_long = true;
                    *out = Vec::new();
                } else {
                    out.push(b);
                }
            }
        };
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        while let Some(b) = self.peek() {
            if in_string {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
            } else {
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' if depth > 0 => depth -= 1,
                    // A scalar ends where a delimiter or whitespace starts.
                    b'}' | b']' | b',' | b' ' | b'\t' | b'\n' | b'\r' if depth == 0 => break,
                    _ => {}
                }
            }
            keep(out, b);
            self.bump();
            if depth == 0 && !in_string && matches!(b, b'}' | b']' | b'"') {
                break;
            }
        }
        too_long
    }
}

/// Text and JSON lines files, one event per non-empty line, up to `limit` bytes (the lines
/// that start within them) when given; returns the lines read.
fn read_lines(
    path: &Path,
    kind: InputKind,
    received: DateTime<Utc>,
    mut reader: impl BufRead,
    limit: Option<u64>,
    on_event: &mut dyn FnMut(u64, InputEvent<'_>),
    errors: &mut Vec<Error>,
) -> PartRead {
    let parse = |line: Option<u64>, reason: String| Error::Parse {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    let mut offset = 0u64;
    loop {
        if limit.is_some_and(|limit| offset >= limit) {
            break;
        }
        buf.clear();
        let (too_long, read) = match read_bounded_line(&mut reader, &mut buf, MAX_LINE_BYTES) {
            Ok(None) => break,
            Ok(Some(line)) => line,
            Err(source) => {
                errors.push(Error::Io {
                    path: path.to_path_buf(),
                    source,
                });
                break;
            }
        };
        offset += read as u64;
        line_no += 1;
        if too_long {
            errors.push(parse(
                Some(line_no),
                format!("line longer than {} MiB skipped", MAX_LINE_BYTES >> 20),
            ));
            continue;
        }
        let line = match std::str::from_utf8(&buf) {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(&buf),
        };
        let line = line.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() {
            continue;
        }
        if kind == InputKind::Text {
            on_event(
                line_no,
                InputEvent::Value(&text_event(path, line, received)),
            );
            continue;
        }
        parse_and_send(path, line_no, line, line_no, true, on_event, errors);
    }
    PartRead { lines: line_no }
}

/// Reads one line (with its `\n`) into `buf`; `None` at the end of the input, else whether
/// the line was longer than `max` (then `buf` is left empty and the line is read past) and
/// the bytes read.
fn read_bounded_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<(bool, usize)>> {
    let (mut read, mut too_long) = (0usize, false);
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok((read > 0).then_some((too_long, read)));
        }
        let (n, done) = match memchr::memchr(b'\n', available) {
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
            return Ok(Some((too_long, read)));
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
fn read_capture(
    path: &Path,
    on_event: &mut dyn FnMut(u64, InputEvent<'_>),
    errors: &mut Vec<Error>,
) {
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
    for (i, event) in summary.events.iter().enumerate() {
        on_event(i as u64 + 1, InputEvent::Value(event));
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

/// The records of an EVTX file, chunks rendered by `threads` threads; a damaged chunk or
/// record is reported and the rest read.
fn read_evtx<T: std::io::Read + std::io::Seek>(
    path: &Path,
    parser: evtx::EvtxParser<T>,
    threads: usize,
    on_event: &mut dyn FnMut(u64, InputEvent<'_>),
    errors: &mut Vec<Error>,
) {
    // One thread per file when the hunt has files enough for its threads; a large file
    // alone gets the threads it would leave idle, to render its chunks (in record order).
    let settings = evtx::ParserSettings::new()
        .num_threads(threads.max(1))
        .separate_json_attributes(false);
    let mut parser = parser.with_configuration(settings);
    // Records rendered as JSON text by the evtx crate, parsed once by the engine's parser
    // (`records_json_value` would parse the same text into a `serde_json::Value`).
    for record in parser.records_json() {
        match record {
            Ok(r) => match JsonEvent::parse(&r.data) {
                Ok(event) => on_event(
                    r.event_record_id,
                    InputEvent::Parsed {
                        text: &r.data,
                        event: &event,
                    },
                ),
                Err(e) => errors.push(Error::Parse {
                    path: path.to_path_buf(),
                    line: None,
                    reason: format!("bad EVTX record {}: {e}", r.event_record_id),
                }),
            },
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
