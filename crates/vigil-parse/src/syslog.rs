//! Syslog: RFC 3164 ("BSD", as in `/var/log/syslog`) and RFC 5424 messages, and the
//! RFC 6587 framing of syslog over TCP.
//!
//! [`parse`] takes one UDP datagram (or TCP frame); [`to_event`] turns the message into a
//! normalized event and runs the content parsers on its text (sshd, PAM, sudo and su into
//! `event.dataset: auth`, kernel firewall lines into `firewall`, audit records into
//! `auditd`). [`Framer`] splits a TCP byte stream into frames without doing any I/O.
//!
//! RFC 3164 times carry neither year nor zone: they are taken as UTC, in the year that puts
//! them closest before the receive time (a `Dec 31` line received on `Jan 1` is last year's).
//!
//! ```
//! use vigil_parse::syslog;
//!
//! let received = chrono::Utc::now();
//! let msg = syslog::parse(b"<38>Nov 23 10:00:00 bastion-1 sshd[812]: Accepted publickey for alice from 10.0.4.7 port 61022 ssh2", received)?;
//! assert_eq!(msg.facility, Some(4));
//! assert_eq!(msg.appname.as_deref(), Some("sshd"));
//! let event = syslog::to_event(&msg);
//! assert_eq!(event["event"]["action"], "ssh_login");
//! assert_eq!(event["user"]["name"], "alice");
//!
//! let mut framer = syslog::Framer::new(64 * 1024);
//! framer.push(b"34 <13>1 - host app - - - first frame<13>second frame\n");
//! assert_eq!(framer.next_frame().unwrap()?, b"<13>1 - host app - - - first frame");
//! assert_eq!(framer.next_frame().unwrap()?, b"<13>second frame");
//! assert!(framer.next_frame().is_none());
//! # Ok::<(), vigil_parse::Error>(())
//! ```

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use serde_json::{Map, Value as Json, json};
use vigil_core::event::{self, fields};

use crate::{Error, Result, auditd, auth, cisco, firewall};

/// One syslog message, RFC 3164 or RFC 5424. Fields a message does not have (or has as the
/// NILVALUE `-`) are `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct SyslogMessage {
    /// Facility code (0 kern ... 23 local7), from `<PRI>`.
    pub facility: Option<u8>,
    /// Severity (0 emergency ... 7 debug), from `<PRI>`.
    pub severity: Option<u8>,
    /// `Some(1)` for RFC 5424 messages, `None` for RFC 3164.
    pub version: Option<u8>,
    /// When the message says it happened.
    pub timestamp: Option<DateTime<Utc>>,
    /// When it was received (the event's time when `timestamp` is `None`).
    pub received: DateTime<Utc>,
    pub hostname: Option<String>,
    /// APP-NAME, or the TAG of RFC 3164 (`sshd` in `sshd[812]:`).
    pub appname: Option<String>,
    /// PROCID, or the pid of RFC 3164 (`812` in `sshd[812]:`).
    pub procid: Option<String>,
    /// MSGID (RFC 5424 only).
    pub msgid: Option<String>,
    /// STRUCTURED-DATA elements (RFC 5424 only), in order.
    pub structured_data: Vec<SdElement>,
    /// The message text, without a leading byte-order mark.
    pub msg: String,
    /// The whole message as received (lossy UTF-8).
    pub original: String,
}

/// One RFC 5424 SD-ELEMENT: `[id name="value" ...]`, values unescaped.
#[derive(Debug, Clone, PartialEq)]
pub struct SdElement {
    pub id: String,
    pub params: Vec<(String, String)>,
}

const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

const SEVERITIES: [&str; 8] = [
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "informational",
    "debug",
];

/// The name of a facility code (`4` is `auth`).
pub fn facility_name(code: u8) -> Option<&'static str> {
    FACILITIES.get(code as usize).copied()
}

/// The name of a severity (`3` is `error`).
pub fn severity_name(code: u8) -> Option<&'static str> {
    SEVERITIES.get(code as usize).copied()
}

/// Parses one datagram (or TCP frame): RFC 5424 when `<PRI>` is followed by version `1`,
/// else RFC 3164. Lenient where RFC 3164 asks relays to be (no PRI, no timestamp: the text
/// is the message); an error for an empty message, a bad PRI or a malformed RFC 5424 header.
pub fn parse(datagram: &[u8], received: DateTime<Utc>) -> Result<SyslogMessage> {
    let text = String::from_utf8_lossy(datagram);
    let text = text.trim_end_matches(['\n', '\r', '\0']);
    parse_str(text, received, false)
}

/// A line from a syslog file: like [`parse`], but without a PRI the line must start with a
/// timestamp to count as syslog.
pub(crate) fn parse_line_text(line: &str, received: DateTime<Utc>) -> Result<SyslogMessage> {
    parse_str(line, received, true)
}

fn parse_str(text: &str, received: DateTime<Utc>, need_header: bool) -> Result<SyslogMessage> {
    if text.trim().is_empty() {
        return Err(Error::Empty);
    }
    let mut msg = SyslogMessage {
        facility: None,
        severity: None,
        version: None,
        timestamp: None,
        received,
        hostname: None,
        appname: None,
        procid: None,
        msgid: None,
        structured_data: Vec::new(),
        msg: String::new(),
        original: text.to_owned(),
    };
    let mut rest = text;
    let has_pri = rest.starts_with('<');
    if has_pri {
        let end = rest[1..]
            .find('>')
            .filter(|&e| e <= 3)
            .ok_or_else(|| Error::Priority(rest.chars().take(6).collect()))?;
        let digits = &rest[1..1 + end];
        let pri: u16 = digits
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| digits.parse().ok())
            .flatten()
            .filter(|&p| p <= 191 && !(digits.len() > 1 && digits.starts_with('0')))
            .ok_or_else(|| Error::Priority(format!("<{digits}>")))?;
        msg.facility = Some((pri / 8) as u8);
        msg.severity = Some((pri % 8) as u8);
        rest = &rest[end + 2..];
        if let Some(after) = rest.strip_prefix("1 ") {
            parse_5424(after, &mut msg)?;
            return Ok(msg);
        }
    }
    match parse_time(rest, received) {
        Some((time, after)) => {
            msg.timestamp = time;
            rest = after;
        }
        None if need_header && !has_pri => {
            return Err(Error::Rfc5424(
                "no syslog header: expected <PRI> or a timestamp".into(),
            ));
        }
        None => {
            // RFC 3164 4.3.2: no timestamp, so no hostname either; a leading tag is kept.
            if let Some((app, pid, text)) = tag(rest) {
                msg.appname = Some(app.to_owned());
                msg.procid = pid.map(str::to_owned);
                rest = text;
            }
            msg.msg = rest.to_owned();
            return Ok(msg);
        }
    }
    let (first, after) = split_space(rest);
    if let Some((app, pid, text)) = tag(rest) {
        msg.appname = Some(app.to_owned());
        msg.procid = pid.map(str::to_owned);
        rest = text;
    } else if !first.is_empty() {
        msg.hostname = Some(first.to_owned());
        rest = after;
        if let Some((app, pid, text)) = tag(rest) {
            msg.appname = Some(app.to_owned());
            msg.procid = pid.map(str::to_owned);
            rest = text;
        }
    }
    msg.msg = rest.to_owned();
    Ok(msg)
}

fn split_space(s: &str) -> (&str, &str) {
    match s.find(' ') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    }
}

/// `app[pid]: text`, `app: text` or `app[pid] text`: (app, pid, text after one space).
fn tag(s: &str) -> Option<(&str, Option<&str>, &str)> {
    let (token, after) = split_space(s);
    let (head, colon) = match token.strip_suffix(':') {
        Some(h) => (h, true),
        None => (token, false),
    };
    let (app, pid) = match head.find('[') {
        Some(i) if head.ends_with(']') => (&head[..i], Some(&head[i + 1..head.len() - 1])),
        Some(_) => return None,
        None if colon => (head, None),
        None => return None,
    };
    let ok_name = !app.is_empty()
        && app.len() <= 64
        && !app.contains([':', '=', '"', '[', ']'])
        && app.bytes().all(|b| b.is_ascii_graphic());
    let ok_pid = pid.is_none_or(|p| !p.is_empty() && !p.contains(['[', ']']));
    (ok_name && ok_pid).then_some((app, pid, after))
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// A leading `Mmm dd hh:mm:ss` (optionally `.fraction`, optionally with a year before or
/// after the time) or RFC 3339 time; returns the time (None when it names no real date)
/// and the text after it and one space.
pub(crate) fn parse_time(
    s: &str,
    received: DateTime<Utc>,
) -> Option<(Option<DateTime<Utc>>, &str)> {
    let b = s.as_bytes();
    if b.len() >= 10 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' {
        let (token, rest) = split_space(s);
        let time = DateTime::parse_from_rfc3339(token)
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .or_else(|| {
                chrono::NaiveDateTime::parse_from_str(token, "%Y-%m-%dT%H:%M:%S%.f")
                    .ok()
                    .map(|n| n.and_utc())
            })?;
        return Some((Some(time), rest));
    }
    if b.len() < 15 || b[3] != b' ' {
        return None;
    }
    let month = MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(&s[..3]))? as u32
        + 1;
    let mut rest = s[4..].trim_start_matches(' ');
    let day_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    if day_len == 0 || day_len > 2 {
        return None;
    }
    let day: u32 = rest[..day_len].parse().ok()?;
    rest = rest[day_len..].strip_prefix(' ')?;
    let mut year = None;
    if rest.len() > 5
        && rest.as_bytes()[..4].iter().all(u8::is_ascii_digit)
        && rest.as_bytes()[4] == b' '
    {
        year = rest[..4].parse::<i32>().ok();
        rest = &rest[5..];
    }
    let clock = rest.as_bytes();
    if clock.len() < 8
        || clock[2] != b':'
        || clock[5] != b':'
        || ![0, 1, 3, 4, 6, 7]
            .iter()
            .all(|&i| clock[i].is_ascii_digit())
    {
        return None;
    }
    let (h, m, sec): (u32, u32, u32) = (
        rest[0..2].parse().ok()?,
        rest[3..5].parse().ok()?,
        rest[6..8].parse().ok()?,
    );
    rest = &rest[8..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let digits = &frac[..n.min(9)];
        nanos = digits.parse::<u32>().ok()? * 10u32.pow(9 - digits.len() as u32);
        rest = &frac[n..];
    }
    if year.is_none()
        && rest.len() >= 5
        && rest.as_bytes()[0] == b' '
        && rest.as_bytes()[1..5].iter().all(u8::is_ascii_digit)
        && rest.as_bytes().get(5).is_none_or(|&c| c == b' ')
    {
        year = rest[1..5].parse().ok();
        rest = &rest[5..];
    }
    let rest = match rest.strip_prefix(' ') {
        Some(r) => r,
        None if rest.is_empty() => rest,
        None => return None,
    };
    let at = |y: i32| {
        NaiveDate::from_ymd_opt(y, month, day)
            .and_then(|d| d.and_hms_nano_opt(h, m, sec, nanos))
            .map(|n| n.and_utc())
    };
    let time = match year {
        Some(y) => at(y),
        None => {
            let y = received.year();
            match at(y) {
                Some(t) if t > received + TimeDelta::days(1) => at(y - 1),
                Some(t) => Some(t),
                // Feb 29 of a year that has none: last leap year is the closest guess.
                None => (1..=8).find_map(|k| at(y - k)),
            }
        }
    };
    Some((time, rest))
}

fn nil(s: &str) -> Option<String> {
    (s != "-").then(|| s.to_owned())
}

/// Everything after `<PRI>1 `.
fn parse_5424(s: &str, msg: &mut SyslogMessage) -> Result<()> {
    let bad = |what: &str| Error::Rfc5424(what.to_owned());
    let mut rest = s;
    let mut field = |name: &str| -> Result<String> {
        let (token, after) = split_space(rest);
        if token.is_empty() {
            return Err(bad(&format!("missing {name}")));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad(&format!("bad {name} {token:?}")));
        }
        rest = after;
        Ok(token.to_owned())
    };
    let ts = field("TIMESTAMP")?;
    let hostname = field("HOSTNAME")?;
    let appname = field("APP-NAME")?;
    let procid = field("PROCID")?;
    let msgid = field("MSGID")?;
    msg.version = Some(1);
    msg.timestamp = match ts.as_str() {
        "-" => None,
        t => Some(
            DateTime::parse_from_rfc3339(t)
                .map_err(|e| bad(&format!("bad TIMESTAMP {t:?}: {e}")))?
                .with_timezone(&Utc),
        ),
    };
    msg.hostname = nil(&hostname);
    msg.appname = nil(&appname);
    msg.procid = nil(&procid);
    msg.msgid = nil(&msgid);
    let (sd, text) = parse_sd(rest)?;
    msg.structured_data = sd;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    msg.msg = text.to_owned();
    Ok(())
}

/// STRUCTURED-DATA and the text after it (and its separating space).
fn parse_sd(s: &str) -> Result<(Vec<SdElement>, &str)> {
    let bad = |what: String| Error::Rfc5424(what);
    if s.is_empty() {
        return Err(bad("missing STRUCTURED-DATA".into()));
    }
    if let Some(rest) = s.strip_prefix('-') {
        return match rest.strip_prefix(' ') {
            Some(text) => Ok((Vec::new(), text)),
            None if rest.is_empty() => Ok((Vec::new(), "")),
            None => Err(bad("STRUCTURED-DATA `-` not followed by a space".into())),
        };
    }
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(r) = rest.strip_prefix('[') {
        let name_end = |r: &str| r.find([' ', ']', '=', '"']).unwrap_or(r.len());
        let end = name_end(r);
        let id = &r[..end];
        if id.is_empty() {
            return Err(bad("empty SD-ID".into()));
        }
        let mut element = SdElement {
            id: id.to_owned(),
            params: Vec::new(),
        };
        let mut r = &r[end..];
        loop {
            if let Some(after) = r.strip_prefix(']') {
                r = after;
                break;
            }
            let Some(after) = r.strip_prefix(' ') else {
                return Err(bad(format!("unterminated SD-ELEMENT [{id}")));
            };
            let end = name_end(after);
            let name = &after[..end];
            let after = &after[end..];
            let Some(after) = after.strip_prefix("=\"") else {
                return Err(bad(format!(
                    "SD-PARAM {name:?} in [{id}] is not name=\"value\""
                )));
            };
            if name.is_empty() {
                return Err(bad(format!("empty SD-PARAM name in [{id}]")));
            }
            let mut value = String::new();
            let mut chars = after.char_indices();
            let mut close = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, e @ ('"' | '\\' | ']'))) => value.push(e),
                        Some((_, e)) => {
                            value.push('\\');
                            value.push(e);
                        }
                        None => break,
                    },
                    '"' => {
                        close = Some(i);
                        break;
                    }
                    c => value.push(c),
                }
            }
            let Some(close) = close else {
                return Err(bad(format!("unterminated value of {name:?} in [{id}]")));
            };
            element.params.push((name.to_owned(), value));
            r = &after[close + 1..];
        }
        out.push(element);
        rest = r;
    }
    match rest.strip_prefix(' ') {
        Some(text) => Ok((out, text)),
        None if rest.is_empty() => Ok((out, "")),
        None => Err(bad(format!(
            "unexpected {:?} after STRUCTURED-DATA",
            rest.chars().take(10).collect::<String>()
        ))),
    }
}

/// The message as a normalized event: `event.dataset` `syslog`, or `auth` / `firewall` /
/// `auditd` / `cisco.ios` when a content parser recognises the text (see `docs/EVENTS.md`).
pub fn to_event(msg: &SyslogMessage) -> Json {
    to_event_as(msg, false)
}

/// [`to_event`]; with `auth_file` every line gets `event.dataset: auth` (it came from `auth.log`).
pub(crate) fn to_event_as(msg: &SyslogMessage, auth_file: bool) -> Json {
    let time = msg.timestamp.unwrap_or(msg.received);
    let mut ev = json!({
        "@timestamp": event::format_timestamp(time),
        "event": {"dataset": "syslog", "original": msg.original},
        "message": msg.msg,
    });
    let mut syslog = Map::new();
    if let Some(f) = msg.facility {
        let mut o = json!({"code": f});
        if let Some(n) = facility_name(f) {
            o["name"] = n.into();
        }
        syslog.insert("facility".into(), o);
    }
    if let Some(s) = msg.severity {
        let mut o = json!({"code": s});
        if let Some(n) = severity_name(s) {
            o["name"] = n.into();
        }
        syslog.insert("severity".into(), o);
        ev["event"]["severity"] = s.into();
    }
    if let Some(v) = msg.version {
        syslog.insert("version".into(), v.to_string().into());
    }
    for (key, value) in [
        ("hostname", &msg.hostname),
        ("appname", &msg.appname),
        ("procid", &msg.procid),
        ("msgid", &msg.msgid),
    ] {
        if let Some(v) = value {
            syslog.insert(key.into(), v.as_str().into());
        }
    }
    if !msg.structured_data.is_empty() {
        let mut sd = Map::new();
        for element in &msg.structured_data {
            let params: Map<String, Json> = element
                .params
                .iter()
                .map(|(k, v)| (k.clone(), Json::from(v.as_str())))
                .collect();
            sd.insert(element.id.clone(), params.into());
        }
        syslog.insert("structured_data".into(), sd.into());
    }
    ev["log"] = json!({ "syslog": syslog });
    if let Some(host) = &msg.hostname {
        event::set(&mut ev, fields::HOST_NAME, host.as_str().into());
    }
    if let Some(app) = &msg.appname {
        // OpenSSH 9.8+ logs from per-connection `sshd-session`/`sshd-auth` processes; the
        // detection rules (and people) know them as sshd.
        let name = match app.as_str() {
            "sshd-session" | "sshd-auth" => "sshd",
            a => a,
        };
        event::set(&mut ev, fields::PROCESS_NAME, name.into());
    }
    if let Some(pid) = msg.procid.as_deref().and_then(|p| p.parse::<u64>().ok()) {
        event::set(&mut ev, fields::PROCESS_PID, pid.into());
    }
    let app = event::get_str(&ev, fields::PROCESS_NAME)
        .unwrap_or("")
        .to_owned();
    let text = msg.msg.as_str();
    let dataset = if auth::parse_into(&app, text, &mut ev) {
        "auth"
    } else if (app == "kernel" || app.is_empty()) && firewall::parse_into(text, &mut ev) {
        "firewall"
    } else if auditd::parse_into(text, &mut ev) {
        "auditd"
    } else if cisco_message(msg, text, &mut ev) {
        "cisco.ios"
    } else if auth_file || auth::is_auth_program(&app) {
        "auth"
    } else {
        "syslog"
    };
    ev["event"]["dataset"] = dataset.into();
    ev
}

/// A Cisco system message inside syslog. Devices send `<189>123: *Mar 1 ...: %SYS-5-X: ...`
/// or `<189>Mar 1 ... host %SYS-5-X: ...`, where an RFC 3164 reading takes the sequence
/// number or the tag for the program name: that name is dropped then.
fn cisco_message(msg: &SyslogMessage, text: &str, ev: &mut Json) -> bool {
    let app = msg.appname.as_deref().unwrap_or("");
    let tag_as_app = app.starts_with('%');
    let found = if tag_as_app {
        cisco::parse_into(&format!("{app}: {text}"), ev, msg.received)
    } else {
        cisco::parse_into(text, ev, msg.received)
    };
    let sequence_as_app = !app.is_empty() && app.bytes().all(|b| b.is_ascii_digit());
    if found && (tag_as_app || sequence_as_app) {
        if let Some(process) = ev.get_mut("process").and_then(Json::as_object_mut) {
            process.remove("name");
            process.remove("pid");
            if process.is_empty() {
                ev.as_object_mut().map(|o| o.remove("process"));
            }
        }
        if sequence_as_app && let Ok(n) = app.parse::<u64>() {
            event::set(ev, "event.sequence", n.into());
        }
    }
    found
}

/// Sans-IO framing of syslog over TCP (RFC 6587): octet counting (`123 <34>1 ...`) and
/// LF-terminated frames, detected per frame (octet counting when a frame starts with a
/// length, a space and `<`). A frame longer than `max_len` is an error, after which the
/// framer drops everything up to the next LF and goes on from there.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    start: usize,
    max_len: usize,
    discarding: bool,
}

impl Framer {
    /// A framer that refuses frames longer than `max_len` bytes.
    pub fn new(max_len: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            max_len: max_len.max(1),
            discarding: false,
        }
    }

    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete frame, if there is one (an error for a frame that is too long).
    pub fn next_frame(&mut self) -> Option<Result<Vec<u8>>> {
        loop {
            let data = &self.buf[self.start..];
            if self.discarding {
                match data.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        self.start += i + 1;
                        self.discarding = false;
                        continue;
                    }
                    None => {
                        self.start = self.buf.len();
                        return None;
                    }
                }
            }
            let skip = data
                .iter()
                .take_while(|&&b| matches!(b, b'\n' | b'\r' | b'\0'))
                .count();
            if skip > 0 {
                self.start += skip;
                continue;
            }
            if data.is_empty() {
                return None;
            }
            match self.octet_count(data) {
                OctetCount::Frame(digits, len) => {
                    if len > self.max_len {
                        self.start += digits + 1;
                        self.discarding = true;
                        return Some(Err(Error::FrameTooLong {
                            len,
                            max: self.max_len,
                        }));
                    }
                    if data.len() < digits + 1 + len {
                        return None;
                    }
                    let frame = data[digits + 1..digits + 1 + len].to_vec();
                    self.start += digits + 1 + len;
                    return Some(Ok(frame));
                }
                OctetCount::NeedMore => return None,
                OctetCount::No => {}
            }
            match data.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let mut frame = &data[..i];
                    self.start += i + 1;
                    if let Some(f) = frame.strip_suffix(b"\r") {
                        frame = f;
                    }
                    if frame.len() > self.max_len {
                        return Some(Err(Error::FrameTooLong {
                            len: frame.len(),
                            max: self.max_len,
                        }));
                    }
                    return Some(Ok(frame.to_vec()));
                }
                None if data.len() > self.max_len => {
                    let len = data.len();
                    self.start = self.buf.len();
                    self.discarding = true;
                    return Some(Err(Error::FrameTooLong {
                        len,
                        max: self.max_len,
                    }));
                }
                None => return None,
            }
        }
    }

    /// At the end of the stream: the next complete frame, else what is left as a last
    /// frame (an error when the stream ended inside an octet-counted frame). Call it until
    /// it returns `None`.
    pub fn finish(&mut self) -> Option<Result<Vec<u8>>> {
        if let Some(frame) = self.next_frame() {
            return Some(frame);
        }
        if self.discarding {
            self.start = self.buf.len();
            self.discarding = false;
            return None;
        }
        let data = &self.buf[self.start..];
        if data.is_empty() {
            return None;
        }
        let result = match self.octet_count(data) {
            OctetCount::Frame(digits, len) => Err(Error::Truncated {
                expected: len,
                got: data.len() - digits - 1,
            }),
            _ => {
                let frame = data.strip_suffix(b"\r").unwrap_or(data);
                if frame.len() > self.max_len {
                    Err(Error::FrameTooLong {
                        len: frame.len(),
                        max: self.max_len,
                    })
                } else {
                    Ok(frame.to_vec())
                }
            }
        };
        self.buf.clear();
        self.start = 0;
        Some(result)
    }

    fn octet_count(&self, data: &[u8]) -> OctetCount {
        if !matches!(data[0], b'1'..=b'9') {
            return OctetCount::No;
        }
        let digits = data.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > 10 {
            return OctetCount::No;
        }
        match data.get(digits) {
            None => OctetCount::NeedMore,
            Some(b' ') => match data.get(digits + 1) {
                None => OctetCount::NeedMore,
                Some(b'<') => {
                    let len = std::str::from_utf8(&data[..digits])
                        .ok()
                        .and_then(|d| d.parse::<usize>().ok())
                        .unwrap_or(usize::MAX);
                    OctetCount::Frame(digits, len)
                }
                Some(_) => OctetCount::No,
            },
            Some(_) => OctetCount::No,
        }
    }
}

enum OctetCount {
    /// (number of length digits, frame length)
    Frame(usize, usize),
    NeedMore,
    No,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received() -> DateTime<Utc> {
        "2026-11-23T12:00:00Z".parse().unwrap()
    }

    fn p(s: &str) -> SyslogMessage {
        parse(s.as_bytes(), received()).unwrap()
    }

    #[test]
    fn rfc3164_with_pri_host_and_pid() {
        let m = p("<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8");
        assert_eq!((m.facility, m.severity), (Some(4), Some(2)));
        assert_eq!(m.timestamp, Some("2026-10-11T22:14:15Z".parse().unwrap()));
        assert_eq!(m.hostname.as_deref(), Some("mymachine"));
        assert_eq!(m.appname.as_deref(), Some("su"));
        assert_eq!(m.procid, None);
        assert_eq!(m.msg, "'su root' failed for lonvick on /dev/pts/8");
        let m = p("<38>Nov  3 09:05:01 web-1 CRON[4242]: (root) CMD (run-parts /etc/cron.hourly)");
        assert_eq!(m.timestamp, Some("2026-11-03T09:05:01Z".parse().unwrap()));
        assert_eq!(m.appname.as_deref(), Some("CRON"));
        assert_eq!(m.procid.as_deref(), Some("4242"));
        assert_eq!(m.msg, "(root) CMD (run-parts /etc/cron.hourly)");
    }

    #[test]
    fn rfc3164_without_host_with_year_and_fraction() {
        let m = p("<13>Nov 23 10:00:00 sshd[12]: hello");
        assert_eq!(m.hostname, None);
        assert_eq!(m.appname.as_deref(), Some("sshd"));
        let m = p("<13>Nov 23 2025 10:00:00 fw01 kernel: x");
        assert_eq!(m.timestamp, Some("2025-11-23T10:00:00Z".parse().unwrap()));
        assert_eq!(m.hostname.as_deref(), Some("fw01"));
        let m = p("<13>Nov 23 10:00:00.250 h app: x");
        assert_eq!(
            m.timestamp,
            Some("2026-11-23T10:00:00.250Z".parse().unwrap())
        );
        let m = p("<13>Nov 23 10:00:00 h just text");
        assert_eq!(m.hostname.as_deref(), Some("h"));
        assert_eq!(m.appname, None);
        assert_eq!(m.msg, "just text");
    }

    #[test]
    fn rfc3164_year_is_the_one_before_the_receive_time() {
        let jan: DateTime<Utc> = "2027-01-01T00:05:00Z".parse().unwrap();
        let m = parse(b"Dec 31 23:59:00 h app: x", jan).unwrap();
        assert_eq!(m.timestamp, Some("2026-12-31T23:59:00Z".parse().unwrap()));
        let m = parse(b"Feb 29 10:00:00 h app: x", received()).unwrap();
        assert_eq!(m.timestamp, Some("2024-02-29T10:00:00Z".parse().unwrap()));
    }

    #[test]
    fn rfc3164_relayed_without_timestamp_keeps_the_text() {
        let m = p("<13>sshd[7]: no time");
        assert_eq!(m.appname.as_deref(), Some("sshd"));
        assert_eq!(m.msg, "no time");
        assert_eq!(m.timestamp, None);
        let m = p("plain text, no pri");
        assert_eq!(m.facility, None);
        assert_eq!(m.msg, "plain text, no pri");
        assert!(parse_line_text("plain text", received()).is_err());
    }

    #[test]
    fn rfc3339_time_as_rsyslog_writes_it() {
        let m = parse_line_text(
            "2026-11-23T10:00:00.123456+01:00 web-1 sshd[99]: Connection closed",
            received(),
        )
        .unwrap();
        assert_eq!(
            m.timestamp,
            Some("2026-11-23T09:00:00.123456Z".parse().unwrap())
        );
        assert_eq!(m.hostname.as_deref(), Some("web-1"));
        assert_eq!(m.procid.as_deref(), Some("99"));
    }

    #[test]
    fn rfc5424_with_structured_data_and_bom() {
        let m = p(
            "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"][examplePriority@32473 class=\"high\"] \u{feff}An application event log entry...",
        );
        assert_eq!(
            (m.facility, m.severity, m.version),
            (Some(20), Some(5), Some(1))
        );
        assert_eq!(
            m.timestamp,
            Some("2003-10-11T22:14:15.003Z".parse().unwrap())
        );
        assert_eq!(m.hostname.as_deref(), Some("mymachine.example.com"));
        assert_eq!(m.appname.as_deref(), Some("evntslog"));
        assert_eq!(m.procid, None);
        assert_eq!(m.msgid.as_deref(), Some("ID47"));
        assert_eq!(m.structured_data.len(), 2);
        assert_eq!(m.structured_data[0].id, "exampleSDID@32473");
        assert_eq!(
            m.structured_data[0].params[1],
            ("eventSource".to_owned(), "Application".to_owned())
        );
        assert_eq!(m.msg, "An application event log entry...");
        let e = to_event(&m);
        assert_eq!(
            e["log"]["syslog"]["structured_data"]["examplePriority@32473"]["class"],
            "high"
        );
        assert_eq!(e["log"]["syslog"]["facility"]["name"], "local4");
        assert_eq!(e["log"]["syslog"]["severity"]["name"], "notice");
        assert_eq!(e["@timestamp"], "2003-10-11T22:14:15.003000Z");
    }

    #[test]
    fn rfc5424_nil_values_and_escapes() {
        let m = p("<13>1 - - - - - -");
        assert_eq!(m.timestamp, None);
        assert_eq!(m.hostname, None);
        assert_eq!(m.msg, "");
        let m = p(r#"<13>1 2026-11-23T10:00:00Z h app 42 - [a@1 v="x\"y\\z\]w"] msg"#);
        assert_eq!(m.structured_data[0].params[0].1, r#"x"y\z]w"#);
        assert_eq!(m.procid.as_deref(), Some("42"));
        assert_eq!(m.msg, "msg");
    }

    #[test]
    fn malformed_messages_are_errors_that_say_why() {
        let e = |s: &str| parse(s.as_bytes(), received()).unwrap_err().to_string();
        assert_eq!(e(""), "empty syslog message");
        assert!(e("<192>x").contains("bad syslog priority"));
        assert!(e("<ab>x").contains("bad syslog priority"));
        assert!(e("<13>1 yesterday h a - - -").contains("bad TIMESTAMP"));
        assert!(e("<13>1 - h a - -").contains("missing STRUCTURED-DATA"));
        assert!(e("<13>1 - h a - - [x y=\"1] m").contains("unterminated value"));
        assert!(e("<13>1 - h a - - [x y=1] m").contains("is not name=\"value\""));
    }

    #[test]
    fn framer_octet_counting_and_lf_mixed_across_pushes() {
        let mut f = Framer::new(100);
        let one = b"<13>1 - h a - - - one";
        let stream = [
            format!("{} ", one.len()).into_bytes(),
            one.to_vec(),
            b"<13>two\r\n\n<13>three\n".to_vec(),
        ]
        .concat();
        let mut frames = Vec::new();
        for chunk in stream.chunks(3) {
            f.push(chunk);
            while let Some(frame) = f.next_frame() {
                frames.push(frame.unwrap());
            }
        }
        assert_eq!(
            frames,
            vec![one.to_vec(), b"<13>two".to_vec(), b"<13>three".to_vec()]
        );
        assert!(f.finish().is_none());
    }

    #[test]
    fn framer_resyncs_after_a_frame_that_is_too_long() {
        let mut f = Framer::new(10);
        f.push(b"<13>this is far too long");
        assert!(matches!(
            f.next_frame(),
            Some(Err(Error::FrameTooLong { max: 10, .. }))
        ));
        f.push(b" still the long one\n<13>ok\n");
        assert_eq!(f.next_frame().unwrap().unwrap(), b"<13>ok");
        f.push(b"999 <13>x\n<13>next\n");
        assert!(matches!(
            f.next_frame(),
            Some(Err(Error::FrameTooLong { len: 999, .. }))
        ));
        assert_eq!(f.next_frame().unwrap().unwrap(), b"<13>next");
        assert!(f.next_frame().is_none());
    }

    #[test]
    fn framer_finish_returns_the_tail_or_a_truncation_error() {
        let mut f = Framer::new(100);
        f.push(b"<13>no newline at the end");
        assert!(f.next_frame().is_none());
        assert_eq!(f.finish().unwrap().unwrap(), b"<13>no newline at the end");
        assert!(f.finish().is_none());
        f.push(b"50 <13>short");
        assert!(f.next_frame().is_none());
        let err = f.finish().unwrap().unwrap_err();
        assert_eq!(
            err.to_string(),
            "syslog stream ended inside a frame: expected 50 bytes, got 9"
        );
    }
}
