//! Log parsers that turn text lines, syslog datagrams and Loki pushes into Vigil's normalized
//! events (`docs/EVENTS.md`).
//!
//! [`parse_line`] takes one line of any supported format — syslog (RFC 3164 and 5424) with
//! the sshd, PAM, sudo and su messages of `auth.log` (and the authentication failures of
//! Dropbear, ProFTPD, vsftpd, Pure-FTPd, Postfix and Dovecot), auditd records, nginx/apache access
//! logs, iptables/nftables kernel lines, Cisco IOS system messages, JSON objects — and never fails: a line it does not
//! recognise still becomes an event with `message`, `event.original` and `@timestamp`.
//! [`syslog`] parses datagrams and splits TCP streams into frames, [`loki`] decodes the Loki
//! push API, and [`parse_reader`] reads whole files (JSON arrays, JSON lines or text).
//!
//! ```
//! use vigil_parse::{LineContext, parse_line};
//!
//! let ctx = LineContext::new(chrono::Utc::now()).with_path("/var/log/auth.log");
//! let event = parse_line(
//!     "Nov 23 10:00:00 bastion-1 sshd[812]: Failed password for root from 203.0.113.9 port 52144 ssh2",
//!     &ctx,
//! );
//! assert_eq!(event["event"]["dataset"], "auth");
//! assert_eq!(event["event"]["outcome"], "failure");
//! assert_eq!(event["source"]["ip"], "203.0.113.9");
//! assert_eq!(event["host"]["name"], "bastion-1");
//! assert_eq!(event["message"], "Failed password for root from 203.0.113.9 port 52144 ssh2");
//! ```

mod access;
mod auditd;
mod auth;
mod cisco;
mod error;
mod firewall;
mod json;
pub mod loki;
mod reader;
pub mod syslog;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde_json::{Value as Json, json};
use vigil_core::event::{self, fields};

pub use error::{Error, Result};
pub use reader::parse_reader;

/// Where a line came from: used for format hints (`audit.log`, `access.log`, `auth.log`),
/// `host.name` and `log.file.path` when the line does not say, and `@timestamp` when it has
/// no time of its own (also the year of RFC 3164 times, which have none).
#[derive(Debug, Clone)]
pub struct LineContext<'a> {
    /// The file the line was read from, if any.
    pub path: Option<&'a str>,
    /// The host that sent or stored the line, if known.
    pub host: Option<&'a str>,
    /// When the line was received.
    pub received: DateTime<Utc>,
    /// The line's format; `None` or `Some(Format::Auto)` detects it per line.
    pub format: Option<Format>,
}

impl<'a> LineContext<'a> {
    /// A context with only a receive time: the format is detected per line.
    pub fn new(received: DateTime<Utc>) -> Self {
        Self {
            path: None,
            host: None,
            received,
            format: None,
        }
    }

    /// The same context with a file path.
    pub fn with_path(mut self, path: &'a str) -> Self {
        self.path = Some(path);
        self
    }

    /// The same context with a host name.
    pub fn with_host(mut self, host: &'a str) -> Self {
        self.host = Some(host);
        self
    }

    /// The same context with a format.
    pub fn with_format(mut self, format: Format) -> Self {
        self.format = Some(format);
        self
    }
}

/// A line format. `Auto` detects it per line by its shape and the file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Auto,
    /// Syslog, RFC 3164 (as in `/var/log/syslog`) or RFC 5424; sshd/sudo/su/PAM, kernel
    /// firewall and audit messages inside are parsed too.
    Syslog,
    /// Syslog lines from `auth.log` / `secure`: every line gets `event.dataset: auth`.
    Auth,
    /// auditd's `audit.log`.
    Auditd,
    /// nginx access log (combined or common).
    Nginx,
    /// Apache access log (combined or common).
    Apache,
    /// iptables/nftables `LOG` lines, bare or inside syslog.
    Firewall,
    /// One JSON object per line.
    Json,
}

impl Format {
    /// Every format, in the order of their names.
    pub const ALL: [Format; 8] = [
        Format::Auto,
        Format::Syslog,
        Format::Auth,
        Format::Auditd,
        Format::Nginx,
        Format::Apache,
        Format::Firewall,
        Format::Json,
    ];

    /// The format's name, as `FromStr` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Syslog => "syslog",
            Format::Auth => "auth",
            Format::Auditd => "auditd",
            Format::Nginx => "nginx",
            Format::Apache => "apache",
            Format::Firewall => "firewall",
            Format::Json => "json",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        Format::ALL
            .into_iter()
            .find(|f| f.name() == lower)
            .ok_or_else(|| {
                let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
                format!("unknown format {s:?}: expected one of {}", names.join(", "))
            })
    }
}

/// Parses one line into a normalized event. Never fails: an unrecognised line becomes
/// `{event.dataset: "syslog" (or "raw" when clearly not syslog), message, event.original,
/// @timestamp = ctx.received}`.
pub fn parse_line(line: &str, ctx: &LineContext) -> Json {
    let line = trim_eol(line);
    match parse_line_strict(line, ctx) {
        Ok(event) => event,
        Err(_) => {
            let dataset = if syslogish(ctx) { "syslog" } else { "raw" };
            fallback(line, dataset, ctx)
        }
    }
}

/// Like [`parse_line`], but a line that is not in the format `ctx.format` names is an
/// [`Error::Line`] (with line number 0) saying why. With `Auto` (or no format) only an
/// empty line is an error; any other line becomes an event.
pub fn parse_line_strict(line: &str, ctx: &LineContext) -> Result<Json> {
    let line = trim_eol(line);
    let bad = |reason: String| Error::Line { line: 0, reason };
    if line.trim().is_empty() {
        return Err(bad("empty line".into()));
    }
    let requested = ctx.format.unwrap_or(Format::Auto);
    let format = match requested {
        Format::Auto => detect(line, ctx.path),
        f => f,
    };
    let strict = requested != Format::Auto;
    let event = match format {
        Format::Json => match json::parse(line, ctx) {
            Some(event) => event,
            None if strict => return Err(bad("not a JSON object".into())),
            None => fallback(line, "raw", ctx),
        },
        Format::Auditd => auditd::parse_line(line, ctx.received)
            .map_err(|e| bad(format!("not an auditd record: {e}")))?,
        Format::Nginx | Format::Apache => access::parse(line, format, ctx.received)
            .map_err(|e| bad(format!("not a {format} access log line: {e}")))?,
        Format::Firewall => firewall_line(line, ctx)
            .ok_or_else(|| bad("not an iptables/nftables log line (no IN=, SRC=)".into()))?,
        Format::Syslog | Format::Auth | Format::Auto => {
            match syslog::parse_line_text(line, ctx.received) {
                Ok(msg) => syslog::to_event_as(&msg, format == Format::Auth),
                Err(e) if strict => return Err(bad(format!("not a syslog line: {e}"))),
                Err(_) => match firewall_line(line, ctx).or_else(|| cisco_line(line, ctx)) {
                    Some(event) => event,
                    None => {
                        let dataset = if syslogish(ctx) { "syslog" } else { "raw" };
                        fallback(line, dataset, ctx)
                    }
                },
            }
        }
    };
    Ok(finish(event, ctx))
}

/// A bare firewall line (`dmesg`, `journalctl -k`), or one inside syslog.
fn firewall_line(line: &str, ctx: &LineContext) -> Option<Json> {
    if let Ok(msg) = syslog::parse_line_text(line, ctx.received) {
        let event = syslog::to_event(&msg);
        return (event::get_str(&event, fields::DATASET) == Some("firewall")).then_some(event);
    }
    let mut event = base(line, "firewall", ctx.received);
    firewall::parse_into(line, &mut event).then_some(event)
}

/// A Cisco IOS system message as a syslog server writes it to a file (no syslog header).
fn cisco_line(line: &str, ctx: &LineContext) -> Option<Json> {
    let tag = cisco::find_tag(line)?;
    let mut event = base(line, "cisco.ios", ctx.received);
    cisco::add_fields(line, &tag, &mut event, ctx.received);
    Some(event)
}

/// Adds what the context knows and the line did not say.
pub(crate) fn finish(mut event: Json, ctx: &LineContext) -> Json {
    if let Some(host) = ctx.host {
        event::set_default(&mut event, fields::HOST_NAME, host.into());
    }
    if let Some(path) = ctx.path {
        event::set_default(&mut event, fields::LOG_FILE_PATH, path.into());
    }
    event::set_default(
        &mut event,
        fields::TIMESTAMP,
        event::format_timestamp(ctx.received).into(),
    );
    event
}

/// The event of a line no parser recognised.
fn fallback(line: &str, dataset: &str, ctx: &LineContext) -> Json {
    finish(base(line, dataset, ctx.received), ctx)
}

/// `{@timestamp, event.dataset, message, event.original}`: what every text event starts as.
pub(crate) fn base(line: &str, dataset: &str, time: DateTime<Utc>) -> Json {
    json!({
        "@timestamp": event::format_timestamp(time),
        "event": {"dataset": dataset, "original": line},
        "message": line,
    })
}

/// Whether lines of this context are syslog even when they do not look like it.
fn syslogish(ctx: &LineContext) -> bool {
    matches!(ctx.format, Some(Format::Syslog | Format::Auth))
        || ctx.path.is_some_and(|p| {
            let name = file_name(p);
            [
                "syslog", "messages", "auth", "secure", "kern", "daemon", "user",
            ]
            .iter()
            .any(|n| name.starts_with(n))
        })
}

fn file_name(path: &str) -> String {
    path.rsplit(['/', '\\'])
        .next()
        .unwrap_or(path)
        .to_ascii_lowercase()
}

/// The format of one line, by its shape first and then by the file name.
pub fn detect(line: &str, path: Option<&str>) -> Format {
    let t = line.trim_start();
    if t.starts_with('{') {
        return Format::Json;
    }
    if auditd::looks_like(t) {
        return Format::Auditd;
    }
    let name = path.map(file_name).unwrap_or_default();
    let dir = path.unwrap_or("").to_ascii_lowercase();
    if access::looks_like(t) {
        if dir.contains("apache") || dir.contains("httpd") {
            return Format::Apache;
        }
        return Format::Nginx;
    }
    if name.starts_with("auth") || name.starts_with("secure") {
        return Format::Auth;
    }
    Format::Syslog
}

fn trim_eol(line: &str) -> &str {
    line.trim_end_matches(['\n', '\r'])
}

/// Seconds (with a fraction) since the epoch as a time.
pub(crate) fn epoch_time(secs: i64, nanos: u32) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(secs, nanos)
}

/// Whether `s` is an IPv4 or IPv6 address.
pub(crate) fn is_ip(s: &str) -> bool {
    s.parse::<std::net::IpAddr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> LineContext<'static> {
        LineContext::new("2026-11-23T12:00:00Z".parse().unwrap())
    }

    #[test]
    fn cisco_messages_bare_or_in_syslog_become_cisco_ios_events() {
        let c = ctx();
        for (line, command, user) in [
            (
                "172.16.5.10 6705: Feb 17 13:40:03.673: %PARSER-5-CFGLOG_LOGGEDCMD: User:admin  logged command:no shutdown",
                Some("no shutdown"),
                Some("admin"),
            ),
            (
                "<189>6705: Feb 17 13:40:03.673: %SYS-5-CONFIG_I: Configured from console by admin on vty0",
                None,
                None,
            ),
            (
                "<189>Feb 17 13:40:03 sw1 %PARSER-5-CFGLOG_LOGGEDCMD: User:bob  logged command:no logging",
                Some("no logging"),
                Some("bob"),
            ),
        ] {
            let ev = parse_line(line, &c);
            assert_eq!(ev["event"]["dataset"], "cisco.ios", "{ev}");
            assert_eq!(ev["cisco"]["ios"]["command"].as_str(), command, "{ev}");
            assert_eq!(ev["user"]["name"].as_str(), user, "{ev}");
            // Neither the sequence number nor the tag is taken for a program.
            assert!(ev["process"]["name"].is_null(), "{ev}");
            assert_eq!(ev["event"]["original"], line);
        }
        let ev = parse_line("<189>6705: Feb 17 13:40:03.673: %SYS-5-CONFIG_I: x", &c);
        assert_eq!(ev["event"]["sequence"], 6705);
        assert_eq!(
            parse_line("<189>Feb 17 13:40:03 sw1 %PARSER-5-CFGLOG_LOGGEDCMD: x", &c)["host"]["name"],
            "sw1"
        );
    }

    #[test]
    fn formats_round_trip_through_their_names() {
        for f in Format::ALL {
            assert_eq!(f.to_string().parse::<Format>(), Ok(f));
        }
        assert_eq!("NGINX".parse::<Format>(), Ok(Format::Nginx));
        let err = "csv".parse::<Format>().unwrap_err();
        assert!(err.contains("unknown format \"csv\""), "{err}");
    }

    #[test]
    fn unrecognised_lines_are_raw_or_syslog_by_context() {
        let e = parse_line("hello world", &ctx());
        assert_eq!(e["event"]["dataset"], "raw");
        assert_eq!(e["message"], "hello world");
        assert_eq!(e["event"]["original"], "hello world");
        assert_eq!(e["@timestamp"], "2026-11-23T12:00:00.000000Z");
        let e = parse_line("hello world", &ctx().with_path("/var/log/messages"));
        assert_eq!(e["event"]["dataset"], "syslog");
        assert_eq!(e["log"]["file"]["path"], "/var/log/messages");
        let e = parse_line("hello world\r\n", &ctx().with_format(Format::Syslog));
        assert_eq!(e["event"]["dataset"], "syslog");
        assert_eq!(e["message"], "hello world");
    }

    #[test]
    fn strict_parsing_names_the_format_that_did_not_match() {
        let err = parse_line_strict("hello", &ctx().with_format(Format::Nginx)).unwrap_err();
        assert!(
            err.to_string().contains("not a nginx access log line"),
            "{err}"
        );
        let err = parse_line_strict("hello", &ctx().with_format(Format::Json)).unwrap_err();
        assert!(err.to_string().contains("not a JSON object"), "{err}");
        assert!(parse_line_strict("hello", &ctx()).is_ok());
        assert!(parse_line_strict("  ", &ctx()).is_err());
    }

    #[test]
    fn detection_uses_shape_then_path() {
        assert_eq!(detect(r#"{"a":1}"#, None), Format::Json);
        assert_eq!(
            detect(
                "type=SYSCALL msg=audit(1700000000.123:456): arch=c000003e syscall=59",
                None
            ),
            Format::Auditd
        );
        let access = r#"203.0.113.9 - - [23/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 12 "-" "curl/8.0""#;
        assert_eq!(detect(access, None), Format::Nginx);
        assert_eq!(
            detect(access, Some("/var/log/httpd/access_log")),
            Format::Apache
        );
        assert_eq!(
            detect("Nov 23 10:00:00 h sshd[1]: x", Some("/var/log/secure")),
            Format::Auth
        );
        assert_eq!(detect("Nov 23 10:00:00 h cron[1]: x", None), Format::Syslog);
    }

    #[test]
    fn context_host_fills_in_but_does_not_override() {
        let c = ctx().with_host("collector");
        let e = parse_line("Nov 23 10:00:00 web-1 cron[1]: x", &c);
        assert_eq!(e["host"]["name"], "web-1");
        let e = parse_line("no host here", &c);
        assert_eq!(e["host"]["name"], "collector");
    }
}
