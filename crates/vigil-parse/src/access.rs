//! nginx and Apache access logs, combined (`... "referer" "user agent"`) and common format:
//!
//! ```text
//! 203.0.113.9 - alice [10/Oct/2026:13:55:36 -0700] "GET /a.php?id=1 HTTP/1.1" 200 2326 "http://ref/" "curl/8.0"
//! ```
//!
//! into `event.dataset: network.http` with the fields `pipelines/network.yml` maps the
//! webserver logsource onto (`url.*`, `http.*`, `user_agent.original`, `source.ip`).

use chrono::{DateTime, Utc};
use serde_json::{Value as Json, json};
use vigil_core::event::{self, fields};

use crate::{Format, is_ip};

/// Whether a line has the access log shape `host ident user [time] "`.
pub(crate) fn looks_like(line: &str) -> bool {
    let mut parts = line.splitn(4, ' ');
    let (Some(_), Some(_), Some(_), Some(rest)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    rest.starts_with('[') && rest.find("] \"").is_some_and(|i| i > 20 && i < 40)
}

/// A `"..."` field with `\"`, `\\` and nginx's `\xHH` escapes decoded; returns the value
/// and the text after the closing quote.
fn quoted(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('"')?;
    let bytes = body.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                return Some((String::from_utf8_lossy(&out).into_owned(), &body[i + 1..]));
            }
            b'\\' if i + 1 < bytes.len() => {
                match bytes[i + 1] {
                    b'x' if i + 3 < bytes.len()
                        && bytes[i + 2].is_ascii_hexdigit()
                        && bytes[i + 3].is_ascii_hexdigit() =>
                    {
                        let hex = std::str::from_utf8(&bytes[i + 2..i + 4]).ok()?;
                        out.push(u8::from_str_radix(hex, 16).ok()?);
                        i += 4;
                        continue;
                    }
                    b'"' | b'\\' => out.push(bytes[i + 1]),
                    other => {
                        out.push(b'\\');
                        out.push(other);
                    }
                }
                i += 2;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    None
}

fn dash(s: &str) -> Option<&str> {
    (s != "-" && !s.is_empty()).then_some(s)
}

/// One access log line as an event.
pub(crate) fn parse(line: &str, format: Format, received: DateTime<Utc>) -> Result<Json, String> {
    let mut parts = line.splitn(4, ' ');
    let (Some(client), Some(_ident), Some(user), Some(rest)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("expected `client ident user [time] \"request\" status bytes`".into());
    };
    let rest = rest
        .strip_prefix('[')
        .ok_or("no `[time]` after the user field")?;
    let (time, rest) = rest.split_once("] ").ok_or("unterminated `[time]`")?;
    let time = DateTime::parse_from_str(time, "%d/%b/%Y:%H:%M:%S %z")
        .map_err(|e| format!("bad time {time:?}: {e}"))?
        .with_timezone(&Utc);
    let (request, rest) = quoted(rest).ok_or("no quoted request after the time")?;
    let mut rest = rest.trim_start().split(' ');
    let status = rest.next().ok_or("no status code")?;
    let status: u16 = status
        .parse()
        .ok()
        .filter(|s| (100..=999).contains(s))
        .ok_or_else(|| format!("bad status code {status:?}"))?;
    let bytes = rest.next().ok_or("no response size")?;
    let bytes: Option<u64> = match bytes {
        "-" => None,
        b => Some(b.parse().map_err(|_| format!("bad response size {b:?}"))?),
    };
    let tail = rest.collect::<Vec<_>>().join(" ");
    let (referrer, user_agent) = match quoted(tail.trim_start()) {
        Some((referrer, after)) => (Some(referrer), quoted(after.trim_start()).map(|(ua, _)| ua)),
        None => (None, None),
    };

    let mut ev = crate::base(line, "network.http", received);
    ev["@timestamp"] = event::format_timestamp(time).into();
    event::set(&mut ev, fields::CATEGORY, json!(["web"]));
    event::set(&mut ev, fields::TYPE, json!(["access"]));
    event::set(
        &mut ev,
        fields::OUTCOME,
        if status < 400 { "success" } else { "failure" }.into(),
    );
    event::set(
        &mut ev,
        "event.module",
        match format {
            Format::Apache => "apache",
            _ => "nginx",
        }
        .into(),
    );
    if is_ip(client) {
        event::set(&mut ev, fields::SOURCE_IP, client.into());
    } else if let Some(c) = dash(client) {
        event::set(&mut ev, "source.domain", c.into());
    }
    if let Some(u) = dash(user) {
        event::set(&mut ev, fields::USER_NAME, u.into());
    }
    let mut words = request.split(' ');
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some(method), Some(target), version, None)
            if !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase()) =>
        {
            event::set(&mut ev, "http.request.method", method.into());
            event::set(&mut ev, "url.original", target.into());
            let (path, query) = match target.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (target, None),
            };
            event::set(&mut ev, "url.path", path.into());
            if let Some(q) = query {
                event::set(&mut ev, "url.query", q.into());
            }
            let last = path.rsplit('/').next().unwrap_or("");
            if let Some((stem, ext)) = last.rsplit_once('.')
                && !stem.is_empty()
                && !ext.is_empty()
            {
                event::set(&mut ev, "url.extension", ext.to_ascii_lowercase().into());
            }
            if let Some(v) = version.and_then(|v| v.strip_prefix("HTTP/")) {
                event::set(&mut ev, "http.version", v.into());
            }
        }
        _ => {
            // A scanner's garbage or a TLS handshake sent to the plain port: keep it whole.
            if let Some(r) = dash(&request) {
                event::set(&mut ev, "http.request.body.content", r.into());
            }
        }
    }
    event::set(&mut ev, "http.response.status_code", status.into());
    if let Some(b) = bytes {
        event::set(&mut ev, "http.response.body.bytes", b.into());
    }
    if let Some(r) = referrer.as_deref().and_then(dash) {
        event::set(&mut ev, "http.request.referrer", r.into());
    }
    if let Some(ua) = user_agent.as_deref().and_then(dash) {
        event::set(&mut ev, "user_agent.original", ua.into());
    }
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Json {
        parse(line, Format::Nginx, "2026-11-23T12:00:00Z".parse().unwrap()).unwrap()
    }

    #[test]
    fn combined_format() {
        let e = p(
            r#"203.0.113.9 - alice [10/Oct/2026:13:55:36 -0700] "GET /admin/config.php?id=1%27+OR+1=1 HTTP/1.1" 404 153 "http://example.com/start.html" "Mozilla/5.0 (X11; Linux x86_64) sqlmap/1.7""#,
        );
        assert_eq!(e["event"]["dataset"], "network.http");
        assert_eq!(e["@timestamp"], "2026-10-10T20:55:36.000000Z");
        assert_eq!(e["source"]["ip"], "203.0.113.9");
        assert_eq!(e["user"]["name"], "alice");
        assert_eq!(e["http"]["request"]["method"], "GET");
        assert_eq!(e["url"]["original"], "/admin/config.php?id=1%27+OR+1=1");
        assert_eq!(e["url"]["path"], "/admin/config.php");
        assert_eq!(e["url"]["query"], "id=1%27+OR+1=1");
        assert_eq!(e["url"]["extension"], "php");
        assert_eq!(e["http"]["version"], "1.1");
        assert_eq!(e["http"]["response"]["status_code"], 404);
        assert_eq!(e["http"]["response"]["body"]["bytes"], 153);
        assert_eq!(
            e["http"]["request"]["referrer"],
            "http://example.com/start.html"
        );
        assert_eq!(
            e["user_agent"]["original"],
            "Mozilla/5.0 (X11; Linux x86_64) sqlmap/1.7"
        );
        assert_eq!(e["event"]["outcome"], "failure");
    }

    #[test]
    fn common_format_ipv6_and_dashes() {
        let e = p(r#"2001:db8::1 - - [23/Nov/2026:10:00:00 +0000] "POST /login HTTP/2.0" 302 -"#);
        assert_eq!(e["source"]["ip"], "2001:db8::1");
        assert!(e.get("user").is_none());
        assert_eq!(e["http"]["version"], "2.0");
        assert!(e["http"]["response"].get("body").is_none());
        assert!(e["http"]["request"].get("referrer").is_none());
        assert_eq!(e["event"]["outcome"], "success");
    }

    #[test]
    fn escaped_quotes_and_garbage_requests() {
        let e = p(
            r#"198.51.100.7 - - [23/Nov/2026:10:00:00 +0000] "\x16\x03\x01\x00\xF1\x01" 400 157 "-" "a \"quoted\" agent \x22x\x22""#,
        );
        assert!(e["http"]["request"].get("method").is_none());
        assert_eq!(e["http"]["response"]["status_code"], 400);
        assert_eq!(e["user_agent"]["original"], r#"a "quoted" agent "x""#);
    }

    #[test]
    fn broken_lines_are_errors() {
        let r = |s| parse(s, Format::Apache, "2026-11-23T12:00:00Z".parse().unwrap()).unwrap_err();
        assert!(r("1.2.3.4 - - [nope] \"GET / HTTP/1.1\" 200 1").contains("bad time"));
        assert!(
            r(r#"1.2.3.4 - - [23/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" abc 1"#)
                .contains("bad status")
        );
        assert!(r("short").contains("expected"));
    }
}
