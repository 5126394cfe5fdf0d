use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::{SIGNATURE_HEADERS, WebhookConfig, WebhookError};

const SECRET_PREFIX: &str = "whsec_";

/// An endpoint's signing key. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

impl WebhookSecret {
    /// `whsec_` followed by standard base64 (padding optional) of 24 to 64 bytes, as the
    /// specification asks.
    pub fn parse(s: &str) -> Result<Self, WebhookError> {
        let b64 = s
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or_else(|| WebhookError::InvalidSecret("a secret starts with whsec_".into()))?;
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(b64.trim_end_matches('='))
            .map_err(|e| WebhookError::InvalidSecret(format!("not base64 after whsec_: {e}")))?;
        if !(24..=64).contains(&bytes.len()) {
            return Err(WebhookError::InvalidSecret(format!(
                "{} bytes after whsec_; the specification asks for 24 to 64",
                bytes.len()
            )));
        }
        Ok(Self(bytes))
    }

    /// 32 random bytes from the operating system.
    pub fn generate() -> Self {
        use rand::RngCore;
        let mut b = vec![0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut b);
        Self(b)
    }

    /// The `whsec_...` text (to show once, or to keep encrypted).
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", B64.encode(&self.0))
    }

    /// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.0);
        let mut ctx = ring::hmac::Context::with_key(&key);
        ctx.update(id.as_bytes());
        ctx.update(b".");
        ctx.update(timestamp.to_string().as_bytes());
        ctx.update(b".");
        ctx.update(body);
        format!("v1,{}", B64.encode(ctx.sign().as_ref()))
    }
}

/// One signed request to send.
#[derive(Debug, Clone)]
pub struct WebhookRequest<'a> {
    pub url: &'a str,
    pub secret: &'a WebhookSecret,
    /// `webhook-id`: the event id, the same on every attempt (receivers deduplicate on it).
    pub id: &'a str,
    /// `webhook-timestamp`, Unix seconds of this attempt.
    pub timestamp: i64,
    pub body: &'a [u8],
    /// Custom headers (already validated with [`validate_header`]).
    pub headers: &'a [(String, String)],
    pub timeout: Duration,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// A 2xx.
    Delivered,
    /// 410 Gone: the receiver asks never to be called again; the endpoint is disabled.
    Gone,
    /// Any other answer, a timeout or a connection error: try again later.
    Failed,
    /// The SSRF guard refused the destination; nothing was sent.
    Refused,
}

impl WebhookOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookOutcome::Delivered => "delivered",
            WebhookOutcome::Gone => "gone",
            WebhookOutcome::Failed => "failed",
            WebhookOutcome::Refused => "refused",
        }
    }
}

/// The result of one attempt.
#[derive(Debug, Clone)]
pub struct WebhookAttempt {
    pub outcome: WebhookOutcome,
    /// The response status, when there was a response.
    pub status: Option<u16>,
    /// From sending to the end of the response (or the failure).
    pub latency: Duration,
    /// The receiver's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
    /// Why it failed, for a person (status and the start of the body, or the error).
    pub error: Option<String>,
}

/// Sends signed webhooks; one per process (cheap to clone), connections reused.
#[derive(Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
    config: Arc<WebhookConfig>,
}

impl WebhookClient {
    pub fn new(config: WebhookConfig) -> Result<Self, WebhookError> {
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(config.user_agent.clone())
            .dns_resolver(Arc::new(GuardedResolver {
                allow_private: config.allow_private_destinations,
            }))
            .build()
            .map_err(|e| WebhookError::Client(e.to_string()))?;
        Ok(Self {
            http,
            config: Arc::new(config),
        })
    }

    pub fn config(&self) -> &WebhookConfig {
        &self.config
    }

    /// Checks a URL before it is saved: `http` or `https`, a host, no credentials in it, and
    /// (SSRF guard on) a host that is or resolves only to public addresses.
    pub async fn check_destination(&self, url: &str) -> Result<(), WebhookError> {
        let (host, port) = parse_url(url)?;
        if self.config.allow_private_destinations {
            return Ok(());
        }
        resolve_checked(&host, port, false).await.map(|_| ())
    }

    /// One attempt: signs, sends, reads (a bounded part of) the answer and classifies it.
    pub async fn send(&self, req: &WebhookRequest<'_>) -> WebhookAttempt {
        let started = Instant::now();
        let failed = |outcome, error: String| WebhookAttempt {
            outcome,
            status: None,
            latency: started.elapsed(),
            retry_after: None,
            error: Some(error),
        };
        let (host, port) = match parse_url(req.url) {
            Ok(hp) => hp,
            Err(e) => return failed(WebhookOutcome::Failed, e.to_string()),
        };
        // A literal IP address never reaches the resolver: checked here. A name is checked
        // here too (for a clear error) and again by the resolver the connection uses.
        if !self.config.allow_private_destinations
            && let Err(e) = resolve_checked(&host, port, false).await
        {
            let outcome = match e {
                WebhookError::DestinationRefused { .. } => WebhookOutcome::Refused,
                _ => WebhookOutcome::Failed,
            };
            return failed(outcome, e.to_string());
        }
        let mut headers = HeaderMap::new();
        for (name, value) in req.headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.append(n, v);
            }
        }
        // Inserted last: these replace anything of the same name.
        let signature = req.secret.sign(req.id, req.timestamp, req.body);
        for (name, value) in [
            ("webhook-id", req.id.to_string()),
            ("webhook-timestamp", req.timestamp.to_string()),
            ("webhook-signature", signature),
            ("content-type", "application/json".to_string()),
        ] {
            match HeaderValue::from_str(&value) {
                Ok(v) => {
                    headers.insert(HeaderName::from_static(name), v);
                }
                Err(e) => return failed(WebhookOutcome::Failed, format!("header {name}: {e}")),
            }
        }
        let sent = self
            .http
            .post(req.url)
            .headers(headers)
            .timeout(req.timeout)
            .body(req.body.to_vec())
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                let refused = refusal_in(&e);
                return match refused {
                    Some(r) => failed(WebhookOutcome::Refused, r),
                    None => failed(WebhookOutcome::Failed, describe(&e, req.timeout)),
                };
            }
        };
        if !self.config.allow_private_destinations
            && let Some(peer) = resp.remote_addr()
            && let Some(reason) = destination_refusal(peer.ip())
        {
            return failed(
                WebhookOutcome::Refused,
                WebhookError::DestinationRefused {
                    host,
                    addr: peer.ip(),
                    reason,
                }
                .to_string(),
            );
        }
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        let mut body_error = None;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) => {
                    let room = self.config.max_response_bytes.saturating_sub(body.len());
                    body.extend_from_slice(&c[..c.len().min(room)]);
                    if room <= c.len() {
                        break;
                    }
                }
                Err(e) => {
                    body_error = Some(describe(&e, req.timeout));
                    break;
                }
            }
        }
        let latency = started.elapsed();
        let (outcome, error) = match status {
            200..=299 => (WebhookOutcome::Delivered, None),
            410 => (WebhookOutcome::Gone, Some(answer(status, &body))),
            _ => (WebhookOutcome::Failed, Some(answer(status, &body))),
        };
        // A 2xx whose body broke off still counts: the receiver accepted it.
        let error = error.or(body_error.filter(|_| outcome != WebhookOutcome::Delivered));
        WebhookAttempt {
            outcome,
            status: Some(status),
            latency,
            retry_after,
            error,
        }
    }
}

/// "HTTP 500: <start of the body>".
fn answer(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {}", crate::truncate(text, 200))
    }
}

fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {} ms", timeout.as_millis());
    }
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// The guard's refusal somewhere in a request error's causes.
fn refusal_in(e: &reqwest::Error) -> Option<String> {
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(w) = s.downcast_ref::<WebhookError>()
            && matches!(w, WebhookError::DestinationRefused { .. })
        {
            return Some(w.to_string());
        }
        src = s.source();
    }
    None
}

/// Host and port of an `http`/`https` URL without credentials.
fn parse_url(url: &str) -> Result<(String, u16), WebhookError> {
    let bad = |message: &str| WebhookError::InvalidUrl {
        url: crate::truncate(url, 200),
        message: message.into(),
    };
    let u = reqwest::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad(
            "credentials in the URL are not allowed; use a custom header",
        ));
    }
    let host = u
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = u.port_or_known_default().ok_or_else(|| bad("no port"))?;
    Ok((host, port))
}

/// The addresses of `host` (a name or a literal), refused when any is internal (unless
/// `allow_private`): one public and one internal address would let a rebinding name reach
/// the inside on the next lookup.
async fn resolve_checked(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, WebhookError> {
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| WebhookError::Resolve {
                host: host.to_string(),
                message: e.to_string(),
            })?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(WebhookError::Resolve {
            host: host.to_string(),
            message: "no addresses".into(),
        });
    }
    if !allow_private {
        for a in &addrs {
            if let Some(reason) = destination_refusal(a.ip()) {
                return Err(WebhookError::DestinationRefused {
                    host: host.to_string(),
                    addr: a.ip(),
                    reason,
                });
            }
        }
    }
    Ok(addrs)
}

/// The resolver of the client's connections: the addresses connected to are the addresses
/// checked.
struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = resolve_checked(&host, 0, allow_private).await?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// Why an address is not a public destination (`None`: it is).
pub fn destination_refusal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_refusal(v4),
        IpAddr::V6(v6) => v6_refusal(v6),
    }
}

fn v4_refusal(a: Ipv4Addr) -> Option<&'static str> {
    let [o0, o1, o2, _] = a.octets();
    Some(match () {
        _ if a.is_unspecified() || o0 == 0 => "unspecified (0.0.0.0/8)",
        _ if a.is_loopback() => "loopback",
        _ if a.is_private() => "private (RFC 1918)",
        _ if a.is_link_local() => "link-local (169.254.0.0/16, cloud metadata)",
        _ if o0 == 100 && (64..128).contains(&o1) => "shared address space (100.64.0.0/10)",
        _ if o0 == 192 && o1 == 0 && o2 == 0 => "IETF protocol assignments (192.0.0.0/24)",
        _ if o0 == 198 && (18..20).contains(&o1) => "benchmarking (198.18.0.0/15)",
        _ if a.is_multicast() => "multicast",
        _ if a.is_broadcast() => "broadcast",
        _ if o0 >= 240 => "reserved (240.0.0.0/4)",
        _ => return None,
    })
}

fn v6_refusal(a: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = a.to_ipv4_mapped() {
        return v4_refusal(v4).map(|_| "an IPv4-mapped internal address");
    }
    let s = a.segments();
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address inside.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return v4_refusal(v4).map(|_| "a NAT64 address of an internal IPv4 address");
    }
    if s[0] == 0x2002 {
        let v4 = Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
        return v4_refusal(v4).map(|_| "a 6to4 address of an internal IPv4 address");
    }
    Some(match () {
        _ if a.is_unspecified() => "unspecified (::)",
        _ if a.is_loopback() => "loopback (::1)",
        // ::a.b.c.d, the deprecated IPv4-compatible form.
        _ if s[..6] == [0, 0, 0, 0, 0, 0] => "an IPv4-compatible address (::/96)",
        _ if (s[0] & 0xfe00) == 0xfc00 => "unique-local (fc00::/7)",
        _ if (s[0] & 0xffc0) == 0xfe80 => "link-local (fe80::/10)",
        _ if (s[0] & 0xffc0) == 0xfec0 => "site-local (fec0::/10)",
        _ if a.is_multicast() => "multicast (ff00::/8)",
        _ if s[0] == 0x2001 && s[1] == 0x0db8 => "documentation (2001:db8::/32)",
        _ => return None,
    })
}

/// A custom header an endpoint may send: a valid name that is not one the signature or
/// the transport owns, and a valid value.
pub fn validate_header(name: &str, value: &str) -> Result<(), WebhookError> {
    let lower = name.trim().to_ascii_lowercase();
    HeaderName::from_bytes(lower.as_bytes())
        .map_err(|_| WebhookError::InvalidHeader(format!("'{name}' is not a header name")))?;
    const OWNED: [&str; 7] = [
        "content-type",
        "content-length",
        "host",
        "transfer-encoding",
        "connection",
        "te",
        "upgrade",
    ];
    if SIGNATURE_HEADERS.contains(&lower.as_str()) || OWNED.contains(&lower.as_str()) {
        return Err(WebhookError::InvalidHeader(format!(
            "'{name}' is set by Vigil and cannot be overridden"
        )));
    }
    HeaderValue::from_str(value).map_err(|_| {
        WebhookError::InvalidHeader(format!(
            "the value of '{name}' has characters a header cannot carry"
        ))
    })?;
    Ok(())
}

/// `Retry-After` as a wait from `now`: delay-seconds or an HTTP date (RFC 9110 10.2.3).
pub fn parse_retry_after(v: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    Some(
        (at.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_and_bad_ones_are_refused() {
        let s = WebhookSecret::generate();
        let text = s.expose();
        assert!(text.starts_with("whsec_"));
        assert_eq!(WebhookSecret::parse(&text).unwrap(), s);
        assert_ne!(WebhookSecret::generate(), s);
        assert!(WebhookSecret::parse("whsec_c2hvcnQ=").is_err()); // 5 bytes
        assert!(WebhookSecret::parse("whsec_!!!").is_err());
        assert!(!format!("{s:?}").contains(&text[6..]));
    }

    #[test]
    fn internal_addresses_are_refused() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
        ] {
            let ip: IpAddr = a.parse().unwrap();
            assert!(destination_refusal(ip).is_some(), "{a} should be refused");
        }
        for a in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            let ip: IpAddr = a.parse().unwrap();
            assert_eq!(destination_refusal(ip), None, "{a} is public");
        }
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 31 Dec 2025 00:00:30 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn signature_headers_cannot_be_overridden() {
        assert!(validate_header("X-Team", "secops").is_ok());
        for n in ["webhook-signature", "Webhook-Id", "content-type", "Host"] {
            assert!(validate_header(n, "x").is_err(), "{n}");
        }
        assert!(validate_header("bad header", "x").is_err());
        assert!(validate_header("X-A", "a\nb").is_err());
    }

    #[test]
    fn urls_must_be_http_without_credentials() {
        assert_eq!(
            parse_url("https://example.com/h").unwrap(),
            ("example.com".into(), 443)
        );
        assert_eq!(
            parse_url("http://[::1]:8080/").unwrap(),
            ("::1".into(), 8080)
        );
        assert!(parse_url("ftp://example.com").is_err());
        assert!(parse_url("https://u:p@example.com").is_err());
        assert!(parse_url("not a url").is_err());
    }
}
