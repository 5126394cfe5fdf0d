//! Bidirectional flows: packets keyed by (transport, lower endpoint, higher endpoint),
//! counted per direction, ended by idle and active timeouts or TCP FIN/RST, and yielded as
//! [`Flow`] records carrying the DNS, HTTP and TLS transactions seen in them.
//!
//! Feed packets with [`FlowTable::add_packet`] (or [`FlowTable::add_decoded`]), take ended
//! flows with [`FlowTable::drain_finished`], and call [`FlowTable::flush`] at the end.
//! Times are the packets' capture times, so replaying a file behaves like capturing live.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::time::Duration;

use crate::capture::Packet;
use crate::decode::{self, Decoded, FragmentId, Transport, tcp_flags};
use crate::{dns, http, tls};

/// How flows end and what is looked at in them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowConfig {
    /// A flow without packets for this long ends; `None`: never.
    pub idle_timeout: Option<Duration>,
    /// A flow longer than this ends and the next packet starts a new one; `None`: never.
    pub active_timeout: Option<Duration>,
    /// End TCP flows on RST, or once both sides sent FIN (after `close_grace`, so the last
    /// ACKs still count to them).
    pub tcp_close: bool,
    /// How long a closed TCP flow still takes packets (not a SYN) before it ends.
    pub close_grace: Duration,
    /// Parse DNS, HTTP and TLS.
    pub app_layer: bool,
    /// At most this many DNS transactions and HTTP requests are kept per flow.
    pub max_transactions: usize,
    /// Payload-carrying packets per direction looked at for HTTP, TLS and DNS over TCP
    /// (DNS over UDP: every packet, up to `max_transactions`).
    pub inspect_packets: u32,
}

impl Default for FlowConfig {
    /// Idle 60 s, active 5 min, TCP close on, application data on.
    fn default() -> Self {
        FlowConfig {
            idle_timeout: Some(Duration::from_secs(60)),
            active_timeout: Some(Duration::from_secs(300)),
            tcp_close: true,
            close_grace: Duration::from_secs(2),
            app_layer: true,
            max_transactions: 64,
            inspect_packets: 8,
        }
    }
}

impl FlowConfig {
    /// No timeouts and no TCP close: one flow per key for the whole capture (how tshark's
    /// conversation tables count).
    pub fn no_timeouts() -> Self {
        FlowConfig {
            idle_timeout: None,
            active_timeout: None,
            tcp_close: false,
            ..FlowConfig::default()
        }
    }
}

/// An address and port (port 0 for protocols without ports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ip {
            IpAddr::V4(ip) => write!(f, "{ip}:{}", self.port),
            IpAddr::V6(ip) => write!(f, "[{ip}]:{}", self.port),
        }
    }
}

/// A flow's key: direction-free, the lower endpoint first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub transport: Transport,
    pub lower: Endpoint,
    pub higher: Endpoint,
}

impl FlowKey {
    /// The key of a packet from `a` to `b`, and whether `a` is the lower endpoint.
    pub fn new(transport: Transport, a: Endpoint, b: Endpoint) -> (FlowKey, bool) {
        if a <= b {
            (
                FlowKey {
                    transport,
                    lower: a,
                    higher: b,
                },
                true,
            )
        } else {
            (
                FlowKey {
                    transport,
                    lower: b,
                    higher: a,
                },
                false,
            )
        }
    }
}

/// Counters of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DirectionStats {
    pub packets: u64,
    /// Sum of the frames' lengths on the wire.
    pub bytes: u64,
    /// OR of the TCP flags sent ([`tcp_flags`]).
    pub tcp_flags: u16,
}

/// Why a flow ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    IdleTimeout,
    ActiveTimeout,
    /// RST, or FIN from both sides.
    TcpClose,
    /// The input ended ([`FlowTable::flush`]).
    EndOfInput,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::IdleTimeout => "idle_timeout",
            EndReason::ActiveTimeout => "active_timeout",
            EndReason::TcpClose => "tcp_close",
            EndReason::EndOfInput => "end_of_input",
        }
    }
}

/// A DNS query and its response, as far as seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsTransaction {
    pub id: u16,
    /// True when the initiator asked (the usual case).
    pub client_is_initiator: bool,
    pub query_ns: Option<i64>,
    pub response_ns: Option<i64>,
    /// From the query, or from the response when the query was not seen.
    pub question: Option<dns::DnsQuestion>,
    /// From the response.
    pub rcode: Option<u8>,
    pub answers: Vec<dns::DnsAnswer>,
}

/// An HTTP request and its response status, as far as seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTransaction {
    pub request: http::HttpRequest,
    pub client_is_initiator: bool,
    pub request_ns: i64,
    pub status: Option<u16>,
}

/// A TLS ClientHello seen in the flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsHello {
    pub hello: tls::ClientHello,
    pub client_is_initiator: bool,
    pub ns: i64,
}

/// An ended flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    pub key: FlowKey,
    /// The sender of the first packet, or of the SYN.
    pub initiator: Endpoint,
    pub responder: Endpoint,
    pub first_ns: i64,
    pub last_ns: i64,
    /// Initiator to responder.
    pub forward: DirectionStats,
    /// Responder to initiator.
    pub reverse: DirectionStats,
    pub end: EndReason,
    pub dns: Vec<DnsTransaction>,
    pub http: Vec<HttpTransaction>,
    pub tls: Vec<TlsHello>,
}

impl Flow {
    pub fn transport(&self) -> Transport {
        self.key.transport
    }
    pub fn packets(&self) -> u64 {
        self.forward.packets + self.reverse.packets
    }
    pub fn bytes(&self) -> u64 {
        self.forward.bytes + self.reverse.bytes
    }
    pub fn duration(&self) -> Duration {
        Duration::from_nanos(self.last_ns.saturating_sub(self.first_ns).max(0) as u64)
    }
    /// `dns`, `http` or `tls` when such data was seen.
    pub fn app_protocol(&self) -> Option<&'static str> {
        if !self.dns.is_empty() {
            Some("dns")
        } else if !self.http.is_empty() {
            Some("http")
        } else if !self.tls.is_empty() {
            Some("tls")
        } else {
            None
        }
    }
}

/// Counters of everything fed to a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableStats {
    /// Every packet given.
    pub packets: u64,
    /// Packets counted in a flow.
    pub flow_packets: u64,
    /// Not IP (ARP, LLDP ...): no flow.
    pub not_ip: u64,
    /// Too short or malformed to read an IP header.
    pub malformed: u64,
    /// Of a link type the decoder does not know ([`TableStats::unknown_link`] names one).
    pub unsupported_link: u64,
    /// The last unknown link type seen.
    pub unknown_link: Option<crate::capture::LinkType>,
    /// Flows started.
    pub flows: u64,
}

struct State {
    flow: Flow,
    /// Whether the initiator is `key.lower`.
    initiator_is_lower: bool,
    fin_forward: bool,
    fin_reverse: bool,
    closed: bool,
    inspected_forward: u32,
    inspected_reverse: u32,
}

/// A fast, non-cryptographic hasher for flow keys (FxHash); capture input is not trusted,
/// but a collision flood only slows the table down, it cannot make it wrong.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut v = [0u8; 8];
            v[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(v));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64)
    }
    fn write_u16(&mut self, i: u16) {
        self.add(i as u64)
    }
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64)
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i)
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64)
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl FxHasher {
    #[inline]
    fn add(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

type FxBuild = BuildHasherDefault<FxHasher>;

/// Most first-fragment port mappings remembered at once.
const MAX_FRAGMENTS: usize = 4096;
/// How often (in capture time) idle flows are looked for.
const SWEEP_EVERY_NS: i64 = 1_000_000_000;

/// The flow table.
pub struct FlowTable {
    cfg: FlowConfig,
    /// Boxed: the map's entries stay small, so growing it and removing from it move little.
    flows: HashMap<FlowKey, Box<State>, FxBuild>,
    fragments: HashMap<FragmentId, (u16, u16), FxBuild>,
    finished: Vec<Flow>,
    now_ns: i64,
    next_sweep_ns: i64,
    stats: TableStats,
}

impl FlowTable {
    pub fn new(cfg: FlowConfig) -> Self {
        FlowTable {
            cfg,
            flows: HashMap::default(),
            fragments: HashMap::default(),
            finished: Vec::new(),
            now_ns: i64::MIN,
            next_sweep_ns: i64::MIN,
            stats: TableStats::default(),
        }
    }

    pub fn config(&self) -> &FlowConfig {
        &self.cfg
    }

    pub fn stats(&self) -> TableStats {
        self.stats
    }

    /// Flows not ended yet.
    pub fn active(&self) -> usize {
        self.flows.len()
    }

    /// Decodes a captured packet and counts it to its flow.
    pub fn add_packet(&mut self, packet: &Packet<'_>) {
        match decode::decode(packet.link, packet.data) {
            Ok(d) => self.add_decoded(packet.timestamp_ns, packet.orig_len, &d),
            Err(skip) => {
                self.stats.packets += 1;
                match skip {
                    decode::Skip::NotIp => self.stats.not_ip += 1,
                    decode::Skip::Malformed => self.stats.malformed += 1,
                    decode::Skip::UnsupportedLink(link) => {
                        self.stats.unsupported_link += 1;
                        self.stats.unknown_link = Some(link);
                    }
                }
                self.advance(packet.timestamp_ns);
            }
        }
    }

    /// Counts a decoded packet of `wire_len` bytes seen at `ts_ns` to its flow.
    pub fn add_decoded(&mut self, ts_ns: i64, wire_len: u32, d: &Decoded<'_>) {
        self.stats.packets += 1;
        self.stats.flow_packets += 1;
        self.advance(ts_ns);
        let (mut sport, mut dport) = (d.src_port, d.dst_port);
        if let Some(f) = d.fragment {
            if f.first {
                if self.fragments.len() >= MAX_FRAGMENTS {
                    self.fragments.clear();
                }
                self.fragments.insert(f.id, (sport, dport));
            } else if let Some(&(s, p)) = self.fragments.get(&f.id) {
                (sport, dport) = (s, p);
            }
        }
        let src = Endpoint {
            ip: d.src,
            port: sport,
        };
        let dst = Endpoint {
            ip: d.dst,
            port: dport,
        };
        let (key, src_is_lower) = FlowKey::new(d.transport, src, dst);
        let flags = d.tcp_flags;
        let is_syn = d.transport == Transport::Tcp
            && flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN;

        // A flow cut by the active timeout goes on with the same initiator.
        let mut carried_initiator = None;
        if let Some(state) = self.flows.get(&key) {
            let f = &state.flow;
            let idle = self
                .cfg
                .idle_timeout
                .is_some_and(|t| ts_ns.saturating_sub(f.last_ns) > nanos(t));
            let active = self
                .cfg
                .active_timeout
                .is_some_and(|t| ts_ns.saturating_sub(f.first_ns) > nanos(t));
            let reopened = state.closed && is_syn;
            let reason = if reopened || (state.closed && idle) {
                Some(EndReason::TcpClose)
            } else if idle {
                Some(EndReason::IdleTimeout)
            } else if active {
                Some(EndReason::ActiveTimeout)
            } else {
                None
            };
            if let Some(reason) = reason
                && let Some(state) = self.flows.remove(&key)
            {
                if reason == EndReason::ActiveTimeout {
                    carried_initiator = Some(state.flow.initiator);
                }
                self.finish(state, reason);
            }
        }

        let cfg = &self.cfg;
        let stats = &mut self.stats;
        let state = self.flows.entry(key).or_insert_with(|| {
            stats.flows += 1;
            // The SYN-ACK's receiver initiated; otherwise the first sender did.
            let syn_ack = d.transport == Transport::Tcp
                && flags & (tcp_flags::SYN | tcp_flags::ACK) == (tcp_flags::SYN | tcp_flags::ACK);
            let sender_initiates = match carried_initiator {
                Some(initiator) => initiator == src,
                None => !syn_ack,
            };
            let (initiator, responder) = if sender_initiates {
                (src, dst)
            } else {
                (dst, src)
            };
            Box::new(State {
                flow: Flow {
                    key,
                    initiator,
                    responder,
                    first_ns: ts_ns,
                    last_ns: ts_ns,
                    forward: DirectionStats::default(),
                    reverse: DirectionStats::default(),
                    end: EndReason::EndOfInput,
                    dns: Vec::new(),
                    http: Vec::new(),
                    tls: Vec::new(),
                },
                initiator_is_lower: sender_initiates == src_is_lower,
                fin_forward: false,
                fin_reverse: false,
                closed: false,
                inspected_forward: 0,
                inspected_reverse: 0,
            })
        });
        let forward = src_is_lower == state.initiator_is_lower;
        let flow = &mut state.flow;
        flow.last_ns = flow.last_ns.max(ts_ns);
        flow.first_ns = flow.first_ns.min(ts_ns);
        let dir = if forward {
            &mut flow.forward
        } else {
            &mut flow.reverse
        };
        dir.packets += 1;
        dir.bytes += wire_len as u64;
        dir.tcp_flags |= flags;
        if d.transport == Transport::Tcp && cfg.tcp_close {
            if flags & tcp_flags::RST != 0 {
                state.closed = true;
            }
            if flags & tcp_flags::FIN != 0 {
                if forward {
                    state.fin_forward = true;
                } else {
                    state.fin_reverse = true;
                }
                state.closed |= state.fin_forward && state.fin_reverse;
            }
        }
        if cfg.app_layer && !d.payload.is_empty() && d.fragment.is_none_or(|f| f.first) {
            inspect(cfg, state, forward, ts_ns, d);
        }
    }

    fn finish(&mut self, state: Box<State>, reason: EndReason) {
        let mut state = *state;
        state.flow.end = if state.closed {
            EndReason::TcpClose
        } else {
            reason
        };
        self.finished.push(state.flow);
    }

    /// Moves the clock to `ts_ns` and, once a second of capture time, ends idle flows.
    fn advance(&mut self, ts_ns: i64) {
        self.now_ns = self.now_ns.max(ts_ns);
        if self.now_ns < self.next_sweep_ns {
            return;
        }
        self.next_sweep_ns = self.now_ns.saturating_add(SWEEP_EVERY_NS);
        if self.cfg.idle_timeout.is_none() && !self.cfg.tcp_close {
            return;
        }
        self.expire(self.now_ns);
    }

    /// Ends every flow idle (or closed and past its grace) at `now_ns`. Called by the table
    /// itself as packets arrive; call it on a timer when capturing live and traffic stops.
    pub fn expire(&mut self, now_ns: i64) {
        let idle = self.cfg.idle_timeout.map(nanos);
        let grace = nanos(self.cfg.close_grace);
        let expired = |s: &State| {
            let quiet = now_ns.saturating_sub(s.flow.last_ns);
            if s.closed && quiet > grace {
                Some(EndReason::TcpClose)
            } else if idle.is_some_and(|t| quiet > t) {
                Some(EndReason::IdleTimeout)
            } else {
                None
            }
        };
        let mut ended: Vec<(Box<State>, EndReason)> = self
            .flows
            .extract_if(|_, s| expired(s).is_some())
            .filter_map(|(_, s)| expired(&s).map(|r| (s, r)))
            .collect();
        ended.sort_by_key(|(s, _)| (s.flow.last_ns, s.flow.key));
        for (s, r) in ended {
            self.finish(s, r);
        }
    }

    /// Flows that ended so far, oldest end first.
    pub fn drain_finished(&mut self) -> std::vec::Drain<'_, Flow> {
        self.finished.drain(..)
    }

    /// Ends every flow (the input ended); they follow in [`drain_finished`](Self::drain_finished),
    /// in order of their first packet.
    pub fn flush(&mut self) {
        let mut rest: Vec<Box<State>> = self.flows.drain().map(|(_, s)| s).collect();
        self.finished.reserve(rest.len());
        rest.sort_by_key(|s| (s.flow.first_ns, s.flow.key));
        for s in rest {
            self.finish(s, EndReason::EndOfInput);
        }
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Looks at a payload for DNS, HTTP or TLS.
fn inspect(cfg: &FlowConfig, state: &mut State, forward: bool, ts_ns: i64, d: &Decoded<'_>) {
    let dns_port = d.src_port == 53 || d.dst_port == 53;
    if d.transport == Transport::Udp {
        if dns_port
            && state.flow.dns.len() < cfg.max_transactions
            && let Some(m) = dns::parse(d.payload)
        {
            add_dns(&mut state.flow, m, forward, ts_ns);
        }
        return;
    }
    if d.transport != Transport::Tcp {
        return;
    }
    let seen = if forward {
        &mut state.inspected_forward
    } else {
        &mut state.inspected_reverse
    };
    if *seen >= cfg.inspect_packets {
        return;
    }
    *seen += 1;
    let flow = &mut state.flow;
    let p = d.payload;
    if dns_port {
        // DNS over TCP: a 2-byte length, then the message (only when it starts the segment).
        if p.len() > 2
            && flow.dns.len() < cfg.max_transactions
            && let Some(m) = dns::parse(&p[2..])
        {
            add_dns(flow, m, forward, ts_ns);
        }
        return;
    }
    if let Some(code) = http::parse_status(p) {
        // The oldest request of the other side still waiting for its status.
        if let Some(t) = flow
            .http
            .iter_mut()
            .find(|t| t.status.is_none() && t.client_is_initiator != forward)
        {
            t.status = Some(code);
        }
    } else if let Some(request) = http::parse_request(p) {
        if flow.http.len() < cfg.max_transactions {
            flow.http.push(HttpTransaction {
                request,
                client_is_initiator: forward,
                request_ns: ts_ns,
                status: None,
            });
        }
    } else if flow.tls.is_empty()
        && let Some(hello) = tls::parse_client_hello(p)
    {
        flow.tls.push(TlsHello {
            hello,
            client_is_initiator: forward,
            ns: ts_ns,
        });
    }
}

fn add_dns(flow: &mut Flow, m: dns::DnsMessage, forward: bool, ts_ns: i64) {
    if m.response {
        let pending = flow.dns.iter_mut().rev().find(|t| {
            t.id == m.id
                && t.response_ns.is_none()
                && t.client_is_initiator != forward
                && (m.question.is_none() || t.question == m.question)
        });
        if let Some(t) = pending {
            t.response_ns = Some(ts_ns);
            t.rcode = Some(m.rcode);
            t.answers = m.answers;
            return;
        }
        flow.dns.push(DnsTransaction {
            id: m.id,
            client_is_initiator: !forward,
            query_ns: None,
            response_ns: Some(ts_ns),
            question: m.question,
            rcode: Some(m.rcode),
            answers: m.answers,
        });
    } else {
        flow.dns.push(DnsTransaction {
            id: m.id,
            client_is_initiator: forward,
            query_ns: Some(ts_ns),
            response_ns: None,
            question: m.question,
            rcode: None,
            answers: Vec::new(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn pkt(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, flags: u16) -> Decoded<'static> {
        Decoded {
            transport: Transport::Tcp,
            src: IpAddr::V4(Ipv4Addr::from(src)),
            dst: IpAddr::V4(Ipv4Addr::from(dst)),
            src_port: sport,
            dst_port: dport,
            tcp_flags: flags,
            payload: &[],
            fragment: None,
        }
    }

    const S: i64 = 1_000_000_000;

    #[test]
    fn syn_ack_receiver_is_the_initiator() {
        let mut t = FlowTable::new(FlowConfig::no_timeouts());
        let c = [10, 0, 0, 9];
        let s = [10, 0, 0, 1];
        t.add_decoded(
            0,
            60,
            &pkt(s, 80, c, 40000, tcp_flags::SYN | tcp_flags::ACK),
        );
        t.add_decoded(1, 54, &pkt(c, 40000, s, 80, tcp_flags::ACK));
        t.flush();
        let flows: Vec<_> = t.drain_finished().collect();
        assert_eq!(flows.len(), 1);
        let f = &flows[0];
        assert_eq!(f.initiator.port, 40000);
        assert_eq!(f.forward.bytes, 54);
        assert_eq!(f.reverse.bytes, 60);
        assert_eq!(f.reverse.tcp_flags, tcp_flags::SYN | tcp_flags::ACK);
        assert_eq!(f.end, EndReason::EndOfInput);
    }

    #[test]
    fn idle_and_active_timeouts_start_new_flows() {
        let cfg = FlowConfig {
            idle_timeout: Some(Duration::from_secs(10)),
            active_timeout: Some(Duration::from_secs(30)),
            tcp_close: false,
            ..FlowConfig::default()
        };
        let mut t = FlowTable::new(cfg);
        let a = pkt([1, 1, 1, 1], 1000, [2, 2, 2, 2], 22, tcp_flags::ACK);
        // 0..=35 s every 5 s: the active timeout cuts at 30 s.
        for i in 0..8 {
            t.add_decoded(i * 5 * S, 100, &a);
        }
        let ended: Vec<_> = t.drain_finished().collect();
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].end, EndReason::ActiveTimeout);
        assert_eq!(ended[0].packets(), 7);
        // The server's packet continues the cut flow: the client stays its initiator.
        let reply = pkt([2, 2, 2, 2], 22, [1, 1, 1, 1], 1000, tcp_flags::ACK);
        t.add_decoded(35 * S + 1, 100, &reply);
        // 20 s of silence: the idle timeout ends the second flow when time moves on.
        let other = pkt([3, 3, 3, 3], 1, [4, 4, 4, 4], 2, 0);
        t.add_decoded(56 * S, 60, &other);
        let ended: Vec<_> = t.drain_finished().collect();
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].end, EndReason::IdleTimeout);
        assert_eq!(ended[0].packets(), 2);
        assert_eq!(ended[0].initiator.port, 1000);
        assert_eq!(ended[0].reverse.packets, 1);
        t.flush();
        assert_eq!(t.drain_finished().count(), 1);
        assert_eq!(t.stats().flows, 3);
    }

    #[test]
    fn fin_from_both_sides_closes_after_grace_and_syn_reopens() {
        let mut t = FlowTable::new(FlowConfig::default());
        let c = [10, 0, 0, 9];
        let s = [10, 0, 0, 1];
        t.add_decoded(0, 60, &pkt(c, 5000, s, 443, tcp_flags::SYN));
        t.add_decoded(
            S,
            60,
            &pkt(c, 5000, s, 443, tcp_flags::FIN | tcp_flags::ACK),
        );
        t.add_decoded(
            S,
            60,
            &pkt(s, 443, c, 5000, tcp_flags::FIN | tcp_flags::ACK),
        );
        // the last ACK still counts to the closed flow
        t.add_decoded(S + 1, 54, &pkt(c, 5000, s, 443, tcp_flags::ACK));
        assert_eq!(t.drain_finished().count(), 0);
        // a new SYN on the same ports starts a new connection
        t.add_decoded(S + 2, 60, &pkt(c, 5000, s, 443, tcp_flags::SYN));
        let ended: Vec<_> = t.drain_finished().collect();
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].end, EndReason::TcpClose);
        assert_eq!(ended[0].packets(), 4);
        // RST closes; the grace passes as time moves on
        t.add_decoded(2 * S, 54, &pkt(s, 443, c, 5000, tcp_flags::RST));
        t.add_decoded(10 * S, 54, &pkt([9, 9, 9, 9], 1, s, 2, 0));
        let ended: Vec<_> = t.drain_finished().collect();
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].end, EndReason::TcpClose);
        assert_eq!(ended[0].packets(), 2);
    }
}
