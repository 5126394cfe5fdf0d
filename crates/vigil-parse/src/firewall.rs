//! iptables / nftables `LOG` lines (from the kernel, usually through syslog or `dmesg`):
//!
//! ```text
//! [ 1234.567890] [UFW BLOCK] IN=eth0 OUT= MAC=... SRC=203.0.113.9 DST=10.0.0.5 LEN=60 ... PROTO=TCP SPT=51234 DPT=22 ... SYN URGP=0
//! ```
//!
//! into `event.dataset: firewall` with `source.*`, `destination.*`, `network.transport`, and
//! the log prefix (`UFW BLOCK`) as `event.action` and `rule.name`.

use serde_json::{Value as Json, json};
use vigil_core::event::{self, fields};

/// Adds the fields of a firewall log line to `ev`; false when `text` is not one.
pub(crate) fn parse_into(text: &str, ev: &mut Json) -> bool {
    // The prefix is whatever comes before ` IN=` (or at the start); `SRC=` must follow.
    let start = if text.starts_with("IN=") {
        0
    } else {
        match text.find(" IN=") {
            Some(i) => i + 1,
            None => return false,
        }
    };
    let body = &text[start..];
    if !body.contains(" SRC=") {
        return false;
    }
    let mut prefix = text[..start].trim();
    // Kernel time stamp as dmesg prints it: `[ 1234.567890]`.
    if let Some(rest) = prefix.strip_prefix('[')
        && let Some((stamp, after)) = rest.split_once(']')
        && stamp
            .trim()
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.')
    {
        prefix = after.trim();
    }
    let prefix = prefix
        .strip_prefix('[')
        .and_then(|p| p.strip_suffix(']'))
        .unwrap_or(prefix)
        .trim()
        .trim_end_matches(':')
        .trim();

    let mut flags = Vec::new();
    let mut get = std::collections::HashMap::new();
    for word in body.split_whitespace() {
        match word.split_once('=') {
            Some((k, v)) => {
                get.entry(k).or_insert(v);
            }
            None if word.bytes().all(|b| b.is_ascii_uppercase()) => flags.push(word),
            None => {}
        }
    }
    let nonempty = |k: &str| get.get(k).copied().filter(|v: &&str| !v.is_empty());
    event::set(ev, fields::CATEGORY, json!(["network"]));
    let lower = prefix.to_ascii_lowercase();
    let kind = if ["drop", "block", "reject", "deny"]
        .iter()
        .any(|w| lower.contains(w))
    {
        "denied"
    } else if ["accept", "allow", "pass"]
        .iter()
        .any(|w| lower.contains(w))
    {
        "allowed"
    } else {
        "connection"
    };
    event::set(ev, fields::TYPE, json!(["connection", kind]));
    if !prefix.is_empty() {
        event::set(ev, fields::ACTION, prefix.into());
        event::set(ev, "rule.name", prefix.into());
    }
    if let Some(v) = nonempty("SRC") {
        event::set(ev, fields::SOURCE_IP, v.into());
    }
    if let Some(v) = nonempty("DST") {
        event::set(ev, fields::DESTINATION_IP, v.into());
    }
    if let Some(p) = nonempty("SPT").and_then(|p| p.parse::<u16>().ok()) {
        event::set(ev, fields::SOURCE_PORT, p.into());
    }
    if let Some(p) = nonempty("DPT").and_then(|p| p.parse::<u16>().ok()) {
        event::set(ev, fields::DESTINATION_PORT, p.into());
    }
    if let Some(proto) = nonempty("PROTO") {
        let proto = match proto {
            "ICMPv6" | "ICMPV6" => "ipv6-icmp".to_owned(),
            p => p.to_ascii_lowercase(),
        };
        event::set(ev, "network.transport", proto.into());
    }
    if let Some(len) = nonempty("LEN").and_then(|l| l.parse::<u64>().ok()) {
        event::set(ev, "network.bytes", len.into());
    }
    let (inif, outif) = (nonempty("IN"), nonempty("OUT"));
    if let Some(i) = inif {
        event::set(ev, "observer.ingress.interface.name", i.into());
    }
    if let Some(o) = outif {
        event::set(ev, "observer.egress.interface.name", o.into());
    }
    let direction = match (inif, outif) {
        (Some(_), None) => "inbound",
        (None, Some(_)) => "outbound",
        _ => "unknown",
    };
    event::set(ev, "network.direction", direction.into());
    // MAC= is destination MAC, source MAC, ethertype (14 bytes) on Ethernet.
    if let Some(mac) = nonempty("MAC") {
        let octets: Vec<&str> = mac.split(':').collect();
        if octets.len() == 14 {
            event::set(
                ev,
                "destination.mac",
                octets[..6].join("-").to_ascii_uppercase().into(),
            );
            event::set(
                ev,
                "source.mac",
                octets[6..12].join("-").to_ascii_uppercase().into(),
            );
        }
    }
    if !flags.is_empty() {
        let tcp: Vec<Json> = flags
            .iter()
            .filter(|f| {
                matches!(
                    **f,
                    "SYN" | "ACK" | "FIN" | "RST" | "PSH" | "URG" | "ECE" | "CWR"
                )
            })
            .map(|f| Json::from(*f))
            .collect();
        if !tcp.is_empty() {
            event::set(ev, "tcp.flags", Json::Array(tcp));
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use crate::{Format, LineContext, parse_line};

    fn line(s: &str) -> serde_json::Value {
        parse_line(
            s,
            &LineContext::new("2026-11-23T12:00:00Z".parse().unwrap()),
        )
    }

    #[test]
    fn ufw_block_through_syslog() {
        let e = line(
            "Nov 23 10:00:00 fw-1 kernel: [ 1234.567890] [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:ab:cd:ef:08:00 SRC=203.0.113.9 DST=10.0.0.5 LEN=60 TOS=0x00 PREC=0x00 TTL=52 ID=54321 DF PROTO=TCP SPT=51234 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0",
        );
        assert_eq!(e["event"]["dataset"], "firewall");
        assert_eq!(e["event"]["action"], "UFW BLOCK");
        assert_eq!(e["rule"]["name"], "UFW BLOCK");
        assert_eq!(
            e["event"]["type"],
            serde_json::json!(["connection", "denied"])
        );
        assert_eq!(e["source"]["ip"], "203.0.113.9");
        assert_eq!(e["source"]["port"], 51234);
        assert_eq!(e["destination"]["ip"], "10.0.0.5");
        assert_eq!(e["destination"]["port"], 22);
        assert_eq!(e["network"]["transport"], "tcp");
        assert_eq!(e["network"]["direction"], "inbound");
        assert_eq!(e["source"]["mac"], "52-54-00-AB-CD-EF");
        assert_eq!(e["tcp"]["flags"], serde_json::json!(["SYN"]));
        assert_eq!(e["host"]["name"], "fw-1");
        assert_eq!(e["process"]["name"], "kernel");
    }

    #[test]
    fn bare_nftables_line_and_forced_format() {
        let ctx =
            LineContext::new("2026-11-23T12:00:00Z".parse().unwrap()).with_format(Format::Firewall);
        let e = parse_line(
            "nft-drop-out: IN= OUT=eth0 SRC=10.0.0.5 DST=198.51.100.1 LEN=84 PROTO=UDP SPT=5353 DPT=53 LEN=64",
            &ctx,
        );
        assert_eq!(e["event"]["dataset"], "firewall");
        assert_eq!(e["event"]["action"], "nft-drop-out");
        assert_eq!(e["network"]["transport"], "udp");
        assert_eq!(e["network"]["direction"], "outbound");
        assert_eq!(e["network"]["bytes"], 84);
        let e = line("IN=eth0 OUT= SRC=192.0.2.1 DST=192.0.2.2 LEN=84 PROTO=ICMP TYPE=8 CODE=0");
        assert_eq!(e["event"]["dataset"], "firewall");
        assert_eq!(e["network"]["transport"], "icmp");
        assert!(e["event"].get("action").is_none());
        assert!(crate::parse_line_strict("hello", &ctx).is_err());
    }
}
