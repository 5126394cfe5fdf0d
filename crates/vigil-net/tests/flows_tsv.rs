//! Every shared capture's flows against the `X.flows.tsv` tshark computed beside it: the
//! total packet count and every (proto, endpoints) row's packets and bytes must agree.

use std::collections::BTreeMap;
use std::net::IpAddr;

use vigil_net::decode::Transport;
use vigil_net::{FlowConfig, read_flows};

use crate::helpers;

type Key = (String, (IpAddr, u16), (IpAddr, u16));

fn key(proto: &str, a: (IpAddr, u16), b: (IpAddr, u16)) -> Key {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    (proto.to_owned(), lo, hi)
}

/// tshark's names: `tcp`, `udp`, `icmp`, `icmpv6`, `ip<N>`.
fn proto_name(t: Transport) -> String {
    match t {
        Transport::Tcp => "tcp".into(),
        Transport::Udp => "udp".into(),
        Transport::Icmp => "icmp".into(),
        Transport::Icmpv6 => "icmpv6".into(),
        Transport::Other(n) => format!("ip{n}"),
    }
}

struct Expected {
    packets_total: u64,
    rows: BTreeMap<Key, (u64, u64)>,
}

fn read_tsv(text: &str) -> Result<Expected, String> {
    let mut packets_total = None;
    let mut columns: Vec<&str> = Vec::new();
    let mut rows = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        if let Some(h) = line.strip_prefix("# ") {
            let fields: Vec<&str> = h.split('\t').collect();
            if fields[0] == "packets_total" {
                packets_total = fields.get(1).and_then(|v| v.parse().ok());
            } else {
                columns = fields;
            }
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let v: Vec<&str> = line.split('\t').collect();
        let col = |name: &str| -> Result<&str, String> {
            let i = columns
                .iter()
                .position(|c| *c == name)
                .ok_or(format!("no column {name} in header {columns:?}"))?;
            v.get(i)
                .copied()
                .ok_or(format!("line {}: short row", n + 1))
        };
        let ip = |s: &str| {
            s.parse::<IpAddr>()
                .map_err(|e| format!("line {}: {s}: {e}", n + 1))
        };
        let num = |s: &str| {
            s.parse::<u64>()
                .map_err(|e| format!("line {}: {s}: {e}", n + 1))
        };
        let a = (ip(col("addr_a")?)?, num(col("port_a")?)? as u16);
        let b = (ip(col("addr_b")?)?, num(col("port_b")?)? as u16);
        let k = key(col("proto")?, a, b);
        rows.insert(k, (num(col("packets")?)?, num(col("bytes")?)?));
    }
    Ok(Expected {
        packets_total: packets_total.ok_or("no packets_total line")?,
        rows,
    })
}

/// Captures whose tshark table cannot agree with ours, and why. Keep this empty unless a
/// difference is a deliberate decoding choice.
const PINNED: &[(&str, &str)] = &[];

#[test]
fn every_shared_capture_agrees_with_tshark_conversations() {
    let Some(dir) = helpers::pcap_dir() else {
        return;
    };
    let pcaps = helpers::pcaps(&dir);
    assert!(
        pcaps.len() >= 60,
        "expected the 65 shared captures, found {}",
        pcaps.len()
    );
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut rows = 0;
    for pcap in &pcaps {
        let name = pcap.file_name().unwrap().to_string_lossy().to_string();
        if PINNED.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let tsv_path = pcap.with_extension("flows.tsv");
        let text = std::fs::read_to_string(&tsv_path)
            .unwrap_or_else(|e| panic!("{}: {e}", tsv_path.display()));
        let expected = read_tsv(&text).unwrap_or_else(|e| panic!("{}: {e}", tsv_path.display()));
        rows += expected.rows.len();
        let data = std::fs::read(pcap).unwrap();
        let (flows, stats, error) = read_flows(&data, &FlowConfig::no_timeouts());
        let mut problems = Vec::new();
        if let Some(e) = error {
            problems.push(format!("read error: {e}"));
        }
        if stats.packets != expected.packets_total {
            problems.push(format!(
                "packets_total: ours {} tshark {}",
                stats.packets, expected.packets_total
            ));
        }
        let mut ours: BTreeMap<Key, (u64, u64)> = BTreeMap::new();
        for f in &flows {
            let k = key(
                &proto_name(f.transport()),
                (f.key.lower.ip, f.key.lower.port),
                (f.key.higher.ip, f.key.higher.port),
            );
            let e = ours.entry(k).or_default();
            e.0 += f.packets();
            e.1 += f.bytes();
        }
        for (k, want) in &expected.rows {
            match ours.get(k) {
                None => problems.push(format!("missing {k:?} (tshark {want:?})")),
                Some(got) if got != want => problems.push(format!(
                    "{k:?}: ours {got:?} tshark {want:?} (packets, bytes)"
                )),
                _ => {}
            }
        }
        for (k, got) in &ours {
            if !expected.rows.contains_key(k) {
                problems.push(format!("extra {k:?} {got:?}"));
            }
        }
        if !problems.is_empty() {
            failures.push(format!("{name}:\n    {}", problems.join("\n    ")));
        }
        checked += 1;
    }
    eprintln!("{checked} captures, {rows} tshark conversations compared");
    assert!(rows >= 200, "only {rows} conversations compared");
    assert!(
        failures.is_empty(),
        "{} of {checked} captures disagree with tshark:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
