//! HTTP/1.x from the start of a TCP payload: a request line with its `Host`,
//! `User-Agent` and `Referer` headers, or a status line. Only the bytes of one segment are
//! looked at; headers cut by the segment end are simply missing.

/// A request line and the headers of interest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpRequest {
    pub method: String,
    /// The request target as sent (`/a/b?c`, or an absolute URL to a proxy).
    pub target: String,
    /// `1.0`, `1.1`.
    pub version: String,
    pub host: Option<String>,
    pub user_agent: Option<String>,
    pub referrer: Option<String>,
}

/// Longest request or status line looked at.
const MAX_LINE: usize = 8192;

/// Parses a request at the start of `payload`, when it is one.
pub fn parse_request(payload: &[u8]) -> Option<HttpRequest> {
    // Cheap rejection first: requests start with an upper-case method token.
    if !payload.first()?.is_ascii_uppercase() {
        return None;
    }
    let (line, mut rest) = split_line(payload)?;
    let mut parts = line.splitn(3, |&b| b == b' ');
    let method = parts.next()?;
    let target = parts.next()?;
    let version = parts.next()?.strip_prefix(b"HTTP/")?;
    if method.is_empty()
        || method.len() > 24
        || !method
            .iter()
            .all(|b| b.is_ascii_uppercase() || *b == b'-' || *b == b'_')
        || target.is_empty()
        || !matches!(version, b"1.0" | b"1.1" | b"0.9")
    {
        return None;
    }
    let mut req = HttpRequest {
        method: text(method),
        target: text(target),
        version: text(version),
        ..HttpRequest::default()
    };
    while let Some((header, next)) = split_line(rest) {
        rest = next;
        if header.is_empty() {
            break;
        }
        let Some(colon) = header.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = &header[..colon];
        let value = text(header[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"host") {
            req.host.get_or_insert(value);
        } else if name.eq_ignore_ascii_case(b"user-agent") {
            req.user_agent.get_or_insert(value);
        } else if name.eq_ignore_ascii_case(b"referer") {
            req.referrer.get_or_insert(value);
        }
    }
    Some(req)
}

/// The status code of a response starting at `payload` (`HTTP/1.1 200 OK`).
pub fn parse_status(payload: &[u8]) -> Option<u16> {
    let rest = payload.strip_prefix(b"HTTP/1.")?;
    let code = rest.get(2..5)?;
    if rest.get(1) != Some(&b' ') || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

/// The next CRLF- or LF-terminated line (without its terminator) and what follows.
fn split_line(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let window = &b[..b.len().min(MAX_LINE)];
    let nl = window.iter().position(|&c| c == b'\n')?;
    let line = &b[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Some((line, &b[nl + 1..]))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Path, query and extension of a request target (`/a/b.php?x=1` → `/a/b.php`, `x=1`,
/// `php`); an absolute URL target (to a proxy) is cut after its authority first.
pub fn split_target(target: &str) -> (&str, Option<&str>, Option<&str>) {
    let mut t = target;
    if let Some(pos) = t.find("://") {
        let after = &t[pos + 3..];
        t = after.find('/').map_or("/", |i| &after[i..]);
    }
    let (path, query) = match t.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (t, None),
    };
    let path = path.split('#').next().unwrap_or(path);
    let last = path.rsplit('/').next().unwrap_or("");
    let ext = last
        .rsplit_once('.')
        .map(|(_, e)| e)
        .filter(|e| !e.is_empty() && e.len() <= 16);
    (path, query, ext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_with_headers() {
        let r = parse_request(
            b"GET /x/y.php?id=1 HTTP/1.1\r\nHost: example.com:8080\r\nuser-agent: curl/8\r\nReferer: http://a/\r\n\r\nbody",
        )
        .unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.target, "/x/y.php?id=1");
        assert_eq!(r.version, "1.1");
        assert_eq!(r.host.as_deref(), Some("example.com:8080"));
        assert_eq!(r.user_agent.as_deref(), Some("curl/8"));
        assert_eq!(r.referrer.as_deref(), Some("http://a/"));
        assert_eq!(
            split_target(&r.target),
            ("/x/y.php", Some("id=1"), Some("php"))
        );
    }

    #[test]
    fn not_http() {
        assert_eq!(parse_request(b"\x16\x03\x01"), None);
        assert_eq!(parse_request(b"GET / SMTP/1.0\r\n"), None);
        assert_eq!(parse_request(b"EHLO mail\r\n"), None);
        assert_eq!(parse_request(b"GET /no-newline HTTP/1.1"), None);
        assert_eq!(parse_status(b"HTTP/1.0 404 Not Found\r\n"), Some(404));
        assert_eq!(parse_status(b"HTTP/1.1 2x0"), None);
        assert_eq!(
            split_target("http://h.example/a.js#frag"),
            ("/a.js", None, Some("js"))
        );
    }
}
