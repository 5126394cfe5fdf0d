//! Flows and their DNS, HTTP and TLS transactions as normalized events (`docs/EVENTS.md`,
//! `crates/vigil-detect/pipelines/network.yml`): `event.dataset` is `network.flow`,
//! `network.dns`, `network.http` or `network.tls`.
//!
//! Every event carries the flow fields: `source.*` is the initiator (for a transaction:
//! the side that asked), `destination.*` the other side, `network.transport`,
//! `network.bytes`/`network.packets` (both directions) and `source.bytes`/`packets`,
//! `destination.bytes`/`packets`. `@timestamp` is the flow's start.

use chrono::{DateTime, Utc};
use serde_json::{Value as Json, json};
use vigil_core::event::{format_timestamp, set};

use crate::decode::tcp_flags;
use crate::dns;
use crate::flow::{DirectionStats, DnsTransaction, Endpoint, Flow, HttpTransaction, TlsHello};

/// The flow event followed by one event per DNS transaction, HTTP request and TLS hello.
pub fn flow_events(flow: &Flow) -> Vec<Json> {
    let mut out = Vec::with_capacity(1 + flow.dns.len() + flow.http.len() + flow.tls.len());
    out.push(flow_event(flow));
    out.extend(flow.dns.iter().map(|t| dns_event(flow, t)));
    out.extend(flow.http.iter().map(|t| http_event(flow, t)));
    out.extend(flow.tls.iter().map(|t| tls_event(flow, t)));
    out
}

/// The `network.flow` event of a flow.
pub fn flow_event(flow: &Flow) -> Json {
    let mut e = base(flow, true, "network.flow");
    set(&mut e, "event.type", json!(["connection", "end"]));
    set(&mut e, "event.action", json!("network_flow"));
    set(&mut e, "event.start", json!(ts(flow.first_ns)));
    set(&mut e, "event.end", json!(ts(flow.last_ns)));
    set(
        &mut e,
        "event.duration",
        json!(flow.last_ns.saturating_sub(flow.first_ns).max(0)),
    );
    set(&mut e, "event.reason", json!(flow.end.as_str()));
    if let Some(p) = flow.app_protocol() {
        set(&mut e, "network.protocol", json!(p));
    }
    if flow.transport() == crate::decode::Transport::Tcp {
        set(
            &mut e,
            "source.tcp_flags",
            json!(flag_names(flow.forward.tcp_flags)),
        );
        set(
            &mut e,
            "destination.tcp_flags",
            json!(flag_names(flow.reverse.tcp_flags)),
        );
    }
    let msg = format!(
        "{} flow {} -> {}: {} packets, {} bytes",
        flow.transport().name(),
        flow.initiator,
        flow.responder,
        flow.packets(),
        flow.bytes()
    );
    set(&mut e, "message", json!(msg));
    e
}

/// The `network.dns` event of one DNS transaction of `flow`.
pub fn dns_event(flow: &Flow, t: &DnsTransaction) -> Json {
    let mut e = base(flow, t.client_is_initiator, "network.dns");
    set(
        &mut e,
        "event.type",
        json!(["connection", "protocol", "info"]),
    );
    set(&mut e, "event.action", json!("dns_query"));
    set(&mut e, "network.protocol", json!("dns"));
    set(&mut e, "dns.id", json!(t.id));
    set(
        &mut e,
        "dns.type",
        json!(if t.response_ns.is_some() {
            "answer"
        } else {
            "query"
        }),
    );
    let mut msg = String::from("dns");
    if let Some(q) = &t.question {
        set(&mut e, "dns.question.name", json!(q.name));
        set(&mut e, "dns.question.type", json!(dns::type_name(q.qtype)));
        msg = format!("dns {} {}", dns::type_name(q.qtype), q.name);
    }
    if let Some(r) = t.rcode {
        set(&mut e, "dns.response_code", json!(dns::rcode_name(r)));
        msg.push_str(&format!(" -> {}", dns::rcode_name(r)));
    }
    if !t.answers.is_empty() {
        let data: Vec<&str> = t.answers.iter().map(|a| a.data.as_str()).collect();
        let types: Vec<_> = t.answers.iter().map(|a| dns::type_name(a.rtype)).collect();
        let names: Vec<&str> = t.answers.iter().map(|a| a.name.as_str()).collect();
        let ttls: Vec<u32> = t.answers.iter().map(|a| a.ttl).collect();
        let ips: Vec<&str> = t
            .answers
            .iter()
            .filter(|a| a.rtype == 1 || a.rtype == 28)
            .map(|a| a.data.as_str())
            .collect();
        msg.push_str(&format!(" {}", data.join(",")));
        set(&mut e, "dns.answers.data", json!(data));
        set(&mut e, "dns.answers.type", json!(types));
        set(&mut e, "dns.answers.name", json!(names));
        set(&mut e, "dns.answers.ttl", json!(ttls));
        if !ips.is_empty() {
            set(&mut e, "dns.resolved_ip", json!(ips));
        }
    }
    set(&mut e, "message", json!(msg));
    e
}

/// The `network.http` event of one HTTP request of `flow`.
pub fn http_event(flow: &Flow, t: &HttpTransaction) -> Json {
    let mut e = base(flow, t.client_is_initiator, "network.http");
    set(&mut e, "event.category", json!(["network", "web"]));
    set(
        &mut e,
        "event.type",
        json!(["connection", "protocol", "access"]),
    );
    set(&mut e, "event.action", json!("http_request"));
    set(&mut e, "network.protocol", json!("http"));
    let r = &t.request;
    set(&mut e, "http.request.method", json!(r.method));
    set(&mut e, "http.version", json!(r.version));
    set(&mut e, "url.original", json!(r.target));
    let (path, query, ext) = crate::http::split_target(&r.target);
    set(&mut e, "url.path", json!(path));
    if let Some(q) = query {
        set(&mut e, "url.query", json!(q));
    }
    if let Some(x) = ext {
        set(&mut e, "url.extension", json!(x));
    }
    if let Some(host) = &r.host {
        let domain = host_without_port(host);
        set(&mut e, "url.domain", json!(domain));
        set(&mut e, "destination.domain", json!(domain));
    }
    if let Some(ua) = &r.user_agent {
        set(&mut e, "user_agent.original", json!(ua));
    }
    if let Some(re) = &r.referrer {
        set(&mut e, "http.request.referrer", json!(re));
    }
    if let Some(code) = t.status {
        set(&mut e, "http.response.status_code", json!(code));
    }
    // A proxy request's target is already absolute.
    let host = if r.target.starts_with('/') {
        r.host.as_deref().unwrap_or("")
    } else {
        ""
    };
    let msg = format!(
        "{} {host}{} HTTP/{}{}",
        r.method,
        r.target,
        r.version,
        t.status.map(|c| format!(" -> {c}")).unwrap_or_default()
    );
    set(&mut e, "message", json!(msg));
    e
}

/// The `network.tls` event of a ClientHello of `flow`.
pub fn tls_event(flow: &Flow, t: &TlsHello) -> Json {
    let mut e = base(flow, t.client_is_initiator, "network.tls");
    set(&mut e, "event.type", json!(["connection", "protocol"]));
    set(&mut e, "event.action", json!("tls_client_hello"));
    set(&mut e, "network.protocol", json!("tls"));
    let mut msg = String::from("tls client hello");
    if let Some(sni) = &t.hello.server_name {
        set(&mut e, "tls.server_name", json!(sni));
        set(&mut e, "tls.client.server_name", json!(sni));
        set(&mut e, "destination.domain", json!(sni));
        msg.push_str(&format!(" for {sni}"));
    }
    if !t.hello.alpn.is_empty() {
        set(&mut e, "tls.client.supported_alpn", json!(t.hello.alpn));
    }
    set(&mut e, "message", json!(msg));
    e
}

/// The fields every event of `flow` has; `initiator_is_source` false swaps the sides.
fn base(flow: &Flow, initiator_is_source: bool, dataset: &str) -> Json {
    let (src, dst, src_stats, dst_stats) = if initiator_is_source {
        (flow.initiator, flow.responder, flow.forward, flow.reverse)
    } else {
        (flow.responder, flow.initiator, flow.reverse, flow.forward)
    };
    let mut e = json!({});
    set(&mut e, "@timestamp", json!(ts(flow.first_ns)));
    set(&mut e, "event.kind", json!("event"));
    set(&mut e, "event.dataset", json!(dataset));
    set(&mut e, "event.category", json!(["network"]));
    side(&mut e, "source", src, src_stats);
    side(&mut e, "destination", dst, dst_stats);
    let t = flow.transport();
    set(&mut e, "network.transport", json!(t.name()));
    set(&mut e, "network.iana_number", json!(t.number().to_string()));
    set(
        &mut e,
        "network.type",
        json!(if src.ip.is_ipv4() { "ipv4" } else { "ipv6" }),
    );
    set(&mut e, "network.bytes", json!(flow.bytes()));
    set(&mut e, "network.packets", json!(flow.packets()));
    e
}

fn side(e: &mut Json, name: &str, ep: Endpoint, stats: DirectionStats) {
    set(e, &format!("{name}.ip"), json!(ep.ip.to_string()));
    if ep.port != 0 {
        set(e, &format!("{name}.port"), json!(ep.port));
    }
    set(e, &format!("{name}.bytes"), json!(stats.bytes));
    set(e, &format!("{name}.packets"), json!(stats.packets));
}

fn ts(ns: i64) -> String {
    format_timestamp(DateTime::<Utc>::from_timestamp_nanos(ns))
}

fn host_without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// Names of TCP flags (`SYN`, `ACK`, ...), in header order.
pub fn flag_names(flags: u16) -> Vec<&'static str> {
    const NAMES: [(u16, &str); 9] = [
        (tcp_flags::FIN, "FIN"),
        (tcp_flags::SYN, "SYN"),
        (tcp_flags::RST, "RST"),
        (tcp_flags::PSH, "PSH"),
        (tcp_flags::ACK, "ACK"),
        (tcp_flags::URG, "URG"),
        (tcp_flags::ECE, "ECE"),
        (tcp_flags::CWR, "CWR"),
        (tcp_flags::NS, "NS"),
    ];
    NAMES
        .iter()
        .filter(|(b, _)| flags & b != 0)
        .map(|(_, n)| *n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lose_their_ports() {
        assert_eq!(host_without_port("a.example:8080"), "a.example");
        assert_eq!(host_without_port("[::1]:80"), "::1");
        assert_eq!(host_without_port("a.example"), "a.example");
        assert_eq!(flag_names(0x12), ["SYN", "ACK"]);
    }
}
