//! Feature vectors from normalized events (`docs/EVENTS.md`). Every feature is defined in
//! `docs/ML.md`; the names here are the ones models, alerts and the API use.
//!
//! Three feature sets:
//!
//! * [`FeatureSet::Flow`]: one vector per `network.flow` event;
//! * [`FeatureSet::Network`]: per entity (agent id, else host name) per time window, from
//!   its `network.flow` and `network.dns` events;
//! * [`FeatureSet::Host`]: per entity per time window, from its `host.metrics` events.
//!
//! Windows follow event time: `[k w, (k + 1) w)` for width `w`. A window closes when an
//! event of the same entity and set falls at or after its end, or when [`Windows::flush`]
//! is called with a time past its end; a late event (before the open window) is counted in
//! the open window rather than lost.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use vigil_core::event;

/// Which vectors a model scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureSet {
    Flow,
    Network,
    Host,
}

/// Feature names of [`FeatureSet::Flow`].
pub const FLOW_FEATURES: [&str; 8] = [
    "bytes_out",
    "bytes_in",
    "packets_out",
    "packets_in",
    "duration_s",
    "mean_packet_size",
    "syn_only",
    "rst_in",
];

/// Feature names of [`FeatureSet::Network`].
pub const NETWORK_FEATURES: [&str; 14] = [
    "flows",
    "bytes_out",
    "bytes_in",
    "packets_out",
    "packets_in",
    "mean_duration_s",
    "distinct_dst_ports",
    "distinct_dst_ips",
    "syn_only_ratio",
    "rst_ratio",
    "mean_packet_size",
    "dns_queries",
    "dns_mean_query_length",
    "dns_mean_query_entropy",
];

/// Feature names of [`FeatureSet::Host`].
pub const HOST_FEATURES: [&str; 6] = [
    "cpu_usage",
    "memory_used_pct",
    "process_count",
    "load_1",
    "net_in_bytes_per_sec",
    "net_out_bytes_per_sec",
];

impl FeatureSet {
    pub const ALL: [FeatureSet; 3] = [FeatureSet::Flow, FeatureSet::Network, FeatureSet::Host];

    pub fn as_str(self) -> &'static str {
        match self {
            FeatureSet::Flow => "flow",
            FeatureSet::Network => "network",
            FeatureSet::Host => "host",
        }
    }

    pub fn feature_names(self) -> &'static [&'static str] {
        match self {
            FeatureSet::Flow => &FLOW_FEATURES,
            FeatureSet::Network => &NETWORK_FEATURES,
            FeatureSet::Host => &HOST_FEATURES,
        }
    }

    pub fn dimension(self) -> usize {
        self.feature_names().len()
    }
}

impl std::fmt::Display for FeatureSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for FeatureSet {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        FeatureSet::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| crate::Error::Param {
                name: "feature_set",
                message: format!("'{s}' is not one of flow, network, host"),
            })
    }
}

/// Who a vector describes: the event's `agent.id`, else its `host.name`.
pub fn entity(doc: &Json) -> Option<&str> {
    event::get_str(doc, "agent.id")
        .or_else(|| event::get_str(doc, "host.name"))
        .filter(|s| !s.is_empty())
}

fn num(doc: &Json, path: &str) -> f64 {
    event::get(doc, path)
        .and_then(Json::as_f64)
        .filter(|v| v.is_finite())
        .unwrap_or(0.0)
}

fn has_flag(doc: &Json, path: &str, flag: &str) -> bool {
    event::get(doc, path)
        .and_then(Json::as_array)
        .is_some_and(|a| a.iter().any(|f| f.as_str() == Some(flag)))
}

/// Shannon entropy of a string's characters, in bits per character.
pub fn shannon_entropy(s: &str) -> f64 {
    // A BTreeMap, not a HashMap: the terms are summed in character order, so the same
    // string gives the same bits in every process (a HashMap's random order changed the
    // last bits, and with them the forests trained on these values).
    let mut counts: std::collections::BTreeMap<char, usize> = std::collections::BTreeMap::new();
    let mut n = 0usize;
    for c in s.chars() {
        *counts.entry(c).or_default() += 1;
        n += 1;
    }
    if n == 0 {
        return 0.0;
    }
    let n = n as f64;
    counts
        .values()
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// The [`FeatureSet::Flow`] vector of a `network.flow` event (None for other events).
pub fn flow_features(doc: &Json) -> Option<Vec<f64>> {
    if event::get_str(doc, "event.dataset") != Some("network.flow") {
        return None;
    }
    let bytes = num(doc, "network.bytes");
    let packets = num(doc, "network.packets");
    let tcp = event::get_str(doc, "network.transport") == Some("tcp");
    let syn_only = tcp
        && has_flag(doc, "source.tcp_flags", "SYN")
        && !has_flag(doc, "source.tcp_flags", "ACK");
    let rst_in = tcp && has_flag(doc, "destination.tcp_flags", "RST");
    Some(vec![
        num(doc, "source.bytes"),
        num(doc, "destination.bytes"),
        num(doc, "source.packets"),
        num(doc, "destination.packets"),
        num(doc, "event.duration") / 1e9,
        if packets > 0.0 { bytes / packets } else { 0.0 },
        f64::from(u8::from(syn_only)),
        f64::from(u8::from(rst_in)),
    ])
}

/// Most distinct ports / IPs a window remembers (the count saturates there).
const DISTINCT_CAP: usize = 65_536;

#[derive(Debug, Default, Clone)]
struct NetworkAcc {
    flows: f64,
    bytes_out: f64,
    bytes_in: f64,
    packets_out: f64,
    packets_in: f64,
    duration_s: f64,
    ports: HashSet<u64>,
    ips: HashSet<String>,
    tcp: f64,
    syn_only: f64,
    rst: f64,
    bytes: f64,
    packets: f64,
    dns: f64,
    dns_len: f64,
    dns_entropy: f64,
}

#[derive(Debug, Default, Clone)]
struct HostAcc {
    n: f64,
    sums: [f64; 6],
}

#[derive(Debug, Clone)]
enum Acc {
    Network(Box<NetworkAcc>),
    Host(HostAcc),
}

impl Acc {
    fn new(set: FeatureSet) -> Self {
        match set {
            FeatureSet::Host => Acc::Host(HostAcc::default()),
            _ => Acc::Network(Box::default()),
        }
    }

    fn add(&mut self, doc: &Json, dataset: &str) {
        match self {
            Acc::Network(a) if dataset == "network.flow" => {
                a.flows += 1.0;
                a.bytes_out += num(doc, "source.bytes");
                a.bytes_in += num(doc, "destination.bytes");
                a.packets_out += num(doc, "source.packets");
                a.packets_in += num(doc, "destination.packets");
                a.duration_s += num(doc, "event.duration") / 1e9;
                a.bytes += num(doc, "network.bytes");
                a.packets += num(doc, "network.packets");
                if let Some(p) = event::get(doc, "destination.port").and_then(Json::as_u64)
                    && a.ports.len() < DISTINCT_CAP
                {
                    a.ports.insert(p);
                }
                if let Some(ip) = event::get_str(doc, "destination.ip")
                    && a.ips.len() < DISTINCT_CAP
                    && !a.ips.contains(ip)
                {
                    a.ips.insert(ip.to_owned());
                }
                if event::get_str(doc, "network.transport") == Some("tcp") {
                    a.tcp += 1.0;
                    if has_flag(doc, "source.tcp_flags", "SYN")
                        && !has_flag(doc, "source.tcp_flags", "ACK")
                    {
                        a.syn_only += 1.0;
                    }
                    if has_flag(doc, "destination.tcp_flags", "RST")
                        || has_flag(doc, "source.tcp_flags", "RST")
                    {
                        a.rst += 1.0;
                    }
                }
            }
            Acc::Network(a) => {
                if let Some(q) = event::get_str(doc, "dns.question.name") {
                    a.dns += 1.0;
                    a.dns_len += q.chars().count() as f64;
                    a.dns_entropy += shannon_entropy(q);
                }
            }
            Acc::Host(h) => {
                let mut net_in = 0.0;
                let mut net_out = 0.0;
                if let Some(ifaces) = event::get(doc, "system.network").and_then(Json::as_array) {
                    for i in ifaces {
                        net_in += num(i, "in.bytes_per_sec");
                        net_out += num(i, "out.bytes_per_sec");
                    }
                }
                let v = [
                    num(doc, "host.cpu.usage"),
                    num(doc, "system.memory.used.pct"),
                    num(doc, "system.process.count"),
                    num(doc, "system.load.1"),
                    net_in,
                    net_out,
                ];
                h.n += 1.0;
                for (s, x) in h.sums.iter_mut().zip(v) {
                    *s += x;
                }
            }
        }
    }

    fn values(&self) -> Vec<f64> {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        match self {
            Acc::Network(a) => vec![
                a.flows,
                a.bytes_out,
                a.bytes_in,
                a.packets_out,
                a.packets_in,
                ratio(a.duration_s, a.flows),
                a.ports.len() as f64,
                a.ips.len() as f64,
                ratio(a.syn_only, a.tcp),
                ratio(a.rst, a.tcp),
                ratio(a.bytes, a.packets),
                a.dns,
                ratio(a.dns_len, a.dns),
                ratio(a.dns_entropy, a.dns),
            ],
            Acc::Host(h) => h.sums.iter().map(|s| ratio(*s, h.n)).collect(),
        }
    }
}

/// A finished feature vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub entity: String,
    pub set: FeatureSet,
    /// Window start (for a flow: the flow's start).
    pub start: DateTime<Utc>,
    pub values: Vec<f64>,
}

struct Open {
    start_ms: i64,
    acc: Acc,
}

/// Open windows per (key, entity, feature set); `K` separates tenants (the server uses
/// the organization id).
pub struct Windows<K> {
    width_ms: i64,
    open: HashMap<(K, String, FeatureSet), Open>,
    max_open: usize,
}

impl<K: Clone + Eq + Hash> Windows<K> {
    /// Windows `width_secs` wide; at most `max_open` open at once (past that, the oldest
    /// closes early).
    pub fn new(width_secs: u64, max_open: usize) -> Self {
        Self {
            width_ms: (width_secs.max(1) as i64).saturating_mul(1000),
            open: HashMap::new(),
            max_open: max_open.max(1),
        }
    }

    pub fn width_secs(&self) -> u64 {
        (self.width_ms / 1000) as u64
    }

    /// Windows open now.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    fn sample(&self, k: &(K, String, FeatureSet), o: &Open) -> (K, Sample) {
        (
            k.0.clone(),
            Sample {
                entity: k.1.clone(),
                set: k.2,
                start: DateTime::from_timestamp_millis(o.start_ms).unwrap_or_default(),
                values: o.acc.values(),
            },
        )
    }

    /// Takes one event: returns its flow vector (for a flow) and any window it closed.
    pub fn observe(&mut self, key: &K, doc: &Json) -> Vec<(K, Sample)> {
        let mut out = Vec::new();
        let Some(dataset) = event::get_str(doc, "event.dataset") else {
            return out;
        };
        let set = match dataset {
            "network.flow" | "network.dns" => FeatureSet::Network,
            "host.metrics" => FeatureSet::Host,
            _ => return out,
        };
        let Some(who) = entity(doc) else {
            return out;
        };
        let Some(time) = event::timestamp(doc) else {
            return out;
        };
        let t = time.timestamp_millis();
        if let Some(v) = flow_features(doc) {
            out.push((
                key.clone(),
                Sample {
                    entity: who.to_owned(),
                    set: FeatureSet::Flow,
                    start: time,
                    values: v,
                },
            ));
        }
        let k = (key.clone(), who.to_owned(), set);
        let start = t.div_euclid(self.width_ms) * self.width_ms;
        if let Some(o) = self.open.get(&k)
            && start > o.start_ms
        {
            out.push(self.sample(&k, o));
            self.open.remove(&k);
        }
        if !self.open.contains_key(&k) && self.open.len() >= self.max_open {
            // Bounded memory: close the oldest window now.
            if let Some(oldest) = self
                .open
                .iter()
                .min_by_key(|(_, o)| o.start_ms)
                .map(|(k, _)| k.clone())
                && let Some(o) = self.open.remove(&oldest)
            {
                out.push(self.sample(&oldest, &o));
            }
        }
        self.open
            .entry(k)
            .or_insert_with(|| Open {
                start_ms: start,
                acc: Acc::new(set),
            })
            .acc
            .add(doc, dataset);
        out
    }

    /// Closes every window that ends at or before `now`.
    pub fn flush(&mut self, now: DateTime<Utc>) -> Vec<(K, Sample)> {
        let now = now.timestamp_millis();
        let done: Vec<_> = self
            .open
            .iter()
            .filter(|(_, o)| o.start_ms.saturating_add(self.width_ms) <= now)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out: Vec<(K, Sample)> = done
            .into_iter()
            .filter_map(|k| {
                let o = self.open.remove(&k)?;
                Some(self.sample(&k, &o))
            })
            .collect();
        out.sort_by_key(|(_, s)| s.start);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn flow(t: &str, port: u16, src_flags: &[&str], dst_flags: &[&str]) -> Json {
        json!({"@timestamp": t, "event": {"dataset": "network.flow", "duration": 2_000_000_000i64},
               "host": {"name": "h1"}, "network": {"transport": "tcp", "bytes": 300, "packets": 3},
               "source": {"ip": "10.0.0.1", "bytes": 200, "packets": 2, "tcp_flags": src_flags},
               "destination": {"ip": "10.0.0.2", "port": port, "bytes": 100, "packets": 1,
                               "tcp_flags": dst_flags}})
    }

    #[test]
    fn flow_vector() {
        let v =
            flow_features(&flow("2026-01-01T00:00:00Z", 80, &["SYN"], &["RST", "ACK"])).unwrap();
        assert_eq!(v, [200.0, 100.0, 2.0, 1.0, 2.0, 100.0, 1.0, 1.0]);
        let v =
            flow_features(&flow("2026-01-01T00:00:00Z", 80, &["SYN", "ACK"], &["ACK"])).unwrap();
        assert_eq!(&v[6..], [0.0, 0.0]);
        assert!(flow_features(&json!({"event": {"dataset": "auth"}})).is_none());
    }

    #[test]
    fn windows_close_on_a_later_event_and_on_flush() {
        let mut w: Windows<u8> = Windows::new(60, 100);
        assert_eq!(
            w.observe(&1, &flow("2026-01-01T00:00:01Z", 80, &["SYN"], &["RST"]))
                .len(),
            1
        );
        w.observe(
            &1,
            &flow("2026-01-01T00:00:30Z", 81, &["SYN", "ACK"], &["ACK"]),
        );
        w.observe(
            &1,
            &flow("2026-01-01T00:00:31Z", 81, &["SYN", "ACK"], &["ACK"]),
        );
        let dns = json!({"@timestamp": "2026-01-01T00:00:40Z", "event": {"dataset": "network.dns"},
                         "host": {"name": "h1"}, "dns": {"question": {"name": "aaaa"}}});
        w.observe(&1, &dns);
        let closed = w.observe(&1, &flow("2026-01-01T00:01:00Z", 82, &["SYN"], &[]));
        let windows: Vec<_> = closed
            .iter()
            .filter(|(_, s)| s.set == FeatureSet::Network)
            .collect();
        assert_eq!(windows.len(), 1);
        let s = &windows[0].1;
        assert_eq!(s.entity, "h1");
        assert_eq!(s.start.to_rfc3339(), "2026-01-01T00:00:00+00:00");
        let named: HashMap<_, _> = NETWORK_FEATURES.iter().zip(&s.values).collect();
        assert_eq!(*named[&"flows"], 3.0);
        assert_eq!(*named[&"distinct_dst_ports"], 2.0);
        assert!((*named[&"syn_only_ratio"] - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(*named[&"dns_queries"], 1.0);
        assert_eq!(*named[&"dns_mean_query_length"], 4.0);
        assert_eq!(*named[&"dns_mean_query_entropy"], 0.0);
        let t = DateTime::parse_from_rfc3339("2026-01-01T00:02:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(w.flush(t).len(), 1);
        assert_eq!(w.open_count(), 0);
    }

    #[test]
    fn host_metrics_average_over_the_window() {
        let mut w: Windows<u8> = Windows::new(60, 100);
        for (t, cpu) in [("2026-01-01T00:00:00Z", 0.2), ("2026-01-01T00:00:10Z", 0.4)] {
            w.observe(&0, &json!({"@timestamp": t, "event": {"dataset": "host.metrics"},
                "agent": {"id": "a1"}, "host": {"cpu": {"usage": cpu}},
                "system": {"memory": {"used": {"pct": 0.5}}, "process": {"count": 100},
                           "load": {"1": 1.5},
                           "network": [{"in": {"bytes_per_sec": 10.0}, "out": {"bytes_per_sec": 1.0}},
                                       {"in": {"bytes_per_sec": 5.0}, "out": {"bytes_per_sec": 2.0}}]}}));
        }
        let t = DateTime::parse_from_rfc3339("2026-01-01T00:05:00Z")
            .unwrap()
            .to_utc();
        let out = w.flush(t);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1.entity, "a1");
        let v = &out[0].1.values;
        assert!((v[0] - 0.3).abs() < 1e-12);
        assert_eq!(&v[1..], [0.5, 100.0, 1.5, 15.0, 3.0]);
    }

    #[test]
    fn entropy() {
        assert_eq!(shannon_entropy("aaaa"), 0.0);
        assert!((shannon_entropy("abcd") - 2.0).abs() < 1e-12);
    }

    #[test]
    fn entropy_is_the_same_float_for_the_same_letters_in_any_order() {
        let names = [
            "mail.example.org",
            "gro.elpmaxe.liam",
            "x7f3kq9z.tunnel.example.net",
            "ten.elpmaxe.lennut.z9qk3f7x",
        ];
        for pair in names.chunks(2) {
            let a = shannon_entropy(pair[0]);
            for _ in 0..50 {
                assert_eq!(a.to_bits(), shannon_entropy(pair[0]).to_bits());
                assert_eq!(a.to_bits(), shannon_entropy(pair[1]).to_bits());
            }
        }
    }
}
