//! Decoding one captured frame down to the transport layer with `etherparse`, without
//! allocating: link layer (Ethernet with VLAN tags, Linux cooked v1/v2, BSD loopback, raw
//! IP), IPv4/IPv6 (with extension headers), TCP/UDP/ICMP/ICMPv6 and any other IP protocol
//! by number.
//!
//! IP fragments: the first fragment carries the ports and is decoded like a whole packet;
//! later fragments come back with [`Decoded::fragment`] set and ports 0, and the flow table
//! maps them to their datagram's flow through the first fragment's identification.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{
    EtherType, IpAuthHeaderSlice, IpNumber, Ipv6ExtensionsSlice, Ipv6FragmentHeaderSlice,
    Ipv6RawExtHeaderSlice, LaxIpPayloadSlice, LaxNetSlice, LaxSlicedPacket, TransportSlice,
};

use crate::capture::LinkType;

/// The transport protocol of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
    /// Any other IP protocol, by number.
    Other(u8),
}

impl Transport {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Transport::Tcp => 6,
            Transport::Udp => 17,
            Transport::Icmp => 1,
            Transport::Icmpv6 => 58,
            Transport::Other(n) => n,
        }
    }

    fn from_number(n: u8) -> Self {
        match n {
            6 => Transport::Tcp,
            17 => Transport::Udp,
            1 => Transport::Icmp,
            58 => Transport::Icmpv6,
            n => Transport::Other(n),
        }
    }

    /// The name used in `network.transport` (`tcp`, `udp`, `icmp`, `ipv6-icmp`, or the
    /// protocol number for others).
    pub fn name(self) -> std::borrow::Cow<'static, str> {
        match self {
            Transport::Tcp => "tcp".into(),
            Transport::Udp => "udp".into(),
            Transport::Icmp => "icmp".into(),
            Transport::Icmpv6 => "ipv6-icmp".into(),
            Transport::Other(n) => n.to_string().into(),
        }
    }
}

/// TCP flag bits as in the TCP header's flags byte (plus NS in bit 8).
pub mod tcp_flags {
    pub const FIN: u16 = 0x01;
    pub const SYN: u16 = 0x02;
    pub const RST: u16 = 0x04;
    pub const PSH: u16 = 0x08;
    pub const ACK: u16 = 0x10;
    pub const URG: u16 = 0x20;
    pub const ECE: u16 = 0x40;
    pub const CWR: u16 = 0x80;
    pub const NS: u16 = 0x100;
}

/// Where a non-first IP fragment belongs: matched to its first fragment by these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentId {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    pub id: u32,
}

/// Fragment information of a fragmented IP datagram's piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    pub id: FragmentId,
    /// True for the piece at offset 0 (which carries the transport header).
    pub first: bool,
}

/// A decoded packet: addresses, ports, TCP flags and transport payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded<'a> {
    pub transport: Transport,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// 0 for protocols without ports and for non-first fragments.
    pub src_port: u16,
    pub dst_port: u16,
    /// TCP flags ([`tcp_flags`]), 0 for other protocols.
    pub tcp_flags: u16,
    /// The transport payload as captured (possibly cut by the snap length).
    pub payload: &'a [u8],
    /// Set when the packet is a piece of a fragmented IP datagram.
    pub fragment: Option<Fragment>,
}

/// Why a frame was not decoded to an IP packet (not an error: ARP, LLDP, truncated
/// frames ... simply have no flow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// A link type this decoder does not know.
    UnsupportedLink(LinkType),
    /// Not IPv4/IPv6 (ARP, LLDP, ...), or the link header names an unknown protocol.
    NotIp,
    /// Too short or malformed to read the IP header.
    Malformed,
}

/// Decodes a frame of link type `link`.
pub fn decode(link: LinkType, frame: &[u8]) -> Result<Decoded<'_>, Skip> {
    let sliced = match link {
        LinkType::ETHERNET => LaxSlicedPacket::from_ethernet(frame).map_err(|_| Skip::Malformed)?,
        LinkType::RAW | LinkType::IPV4 | LinkType::IPV6 => {
            LaxSlicedPacket::from_ip(frame).map_err(|_| Skip::Malformed)?
        }
        LinkType::LINUX_SLL => {
            let proto = frame.get(14..16).ok_or(Skip::Malformed)?;
            let ether_type = u16::from_be_bytes([proto[0], proto[1]]);
            LaxSlicedPacket::from_ether_type(EtherType(ether_type), &frame[16..])
        }
        LinkType::LINUX_SLL2 => {
            let proto = frame.get(0..2).ok_or(Skip::Malformed)?;
            let ether_type = u16::from_be_bytes([proto[0], proto[1]]);
            let rest = frame.get(20..).ok_or(Skip::Malformed)?;
            LaxSlicedPacket::from_ether_type(EtherType(ether_type), rest)
        }
        LinkType::NULL | LinkType::LOOP => {
            let fam = frame.get(0..4).ok_or(Skip::Malformed)?;
            // NULL uses the writer's byte order; the family is small, so whichever
            // reading is small is the right one.
            let le = u32::from_le_bytes([fam[0], fam[1], fam[2], fam[3]]);
            let be = u32::from_be_bytes([fam[0], fam[1], fam[2], fam[3]]);
            let family = if link == LinkType::LOOP {
                be
            } else {
                le.min(be)
            };
            match family {
                2 | 24 | 28 | 30 => {}
                _ => return Err(Skip::NotIp),
            }
            LaxSlicedPacket::from_ip(&frame[4..]).map_err(|_| Skip::Malformed)?
        }
        other => return Err(Skip::UnsupportedLink(other)),
    };
    let (src, dst, ip_payload, fragment) = match &sliced.net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let h = v4.header();
            let src = IpAddr::V4(Ipv4Addr::from(h.source()));
            let dst = IpAddr::V4(Ipv4Addr::from(h.destination()));
            let fragment = h.is_fragmenting_payload().then(|| Fragment {
                id: FragmentId {
                    src,
                    dst,
                    protocol: h.protocol().0,
                    id: h.identification() as u32,
                },
                first: h.fragments_offset().value() == 0,
            });
            (src, dst, v4.payload(), fragment)
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let h = v6.header();
            let src = IpAddr::V6(Ipv6Addr::from(h.source()));
            let dst = IpAddr::V6(Ipv6Addr::from(h.destination()));
            let fragment = ipv6_fragment_header(v6.extensions()).map(|(id, first)| Fragment {
                id: FragmentId {
                    src,
                    dst,
                    protocol: v6.payload().ip_number.0,
                    id,
                },
                first,
            });
            (src, dst, v6.payload(), fragment)
        }
        _ => return Err(Skip::NotIp),
    };
    let mut d = Decoded {
        transport: Transport::from_number(ip_payload.ip_number.0),
        src,
        dst,
        src_port: 0,
        dst_port: 0,
        tcp_flags: 0,
        payload: &[],
        fragment,
    };
    if fragment.is_some_and(|f| !f.first) {
        // A later fragment has no transport header, whatever its bytes look like (etherparse
        // 0.19 may try to read one: see `ipv6_fragment_header`).
        return Ok(d);
    }
    match &sliced.transport {
        Some(TransportSlice::Tcp(t)) => {
            d.src_port = t.source_port();
            d.dst_port = t.destination_port();
            d.tcp_flags = tcp_flag_bits(t.header_slice());
            d.payload = t.payload();
        }
        Some(TransportSlice::Udp(u)) => {
            d.src_port = u.source_port();
            d.dst_port = u.destination_port();
            d.payload = u.payload();
        }
        Some(TransportSlice::Icmpv4(_)) | Some(TransportSlice::Icmpv6(_)) => {}
        None => {
            // etherparse leaves fragments and cut-off transport headers undecoded; the first
            // fragment (or a cut TCP/UDP header) still tells the ports when they were captured.
            if fragment.is_none_or(|f| f.first) {
                first_fragment_ports(ip_payload, &mut d);
            }
        }
    }
    Ok(d)
}

/// The identification and "offset is 0" of the last fragment header among an IPv6 packet's
/// extension headers, read with bounds-checked slices; `None` when there is none, or when it
/// is an atomic fragment (offset 0, no more fragments: the packet is whole).
///
/// Not etherparse's `Ipv6ExtensionsSlice` iterator: it trusts that the slice holds every
/// header the next-header chain names, but after lax parsing stopped at a bad header (a
/// hop-by-hop header after a fragment header, say) the chain still names it and the
/// iterator reads it past the end of the slice with `get_unchecked`. Nor etherparse 0.19's
/// `fragment_offset`/`more_fragments`/`is_payload_fragmented`: they read the offset and the
/// M flag from the wrong bits (fixed upstream in 0.20), so a real first fragment (bytes
/// 2..4 = `00 01`) looked like one at offset 1.
fn ipv6_fragment_header(exts: &Ipv6ExtensionsSlice<'_>) -> Option<(u32, bool)> {
    let mut next = exts.first_header();
    let mut rest = exts.slice();
    let mut found = None;
    while let Some(number) = next {
        let (len, after) = match number {
            IpNumber::IPV6_FRAGMENTATION_HEADER => {
                let Ok(f) = Ipv6FragmentHeaderSlice::from_slice(rest) else {
                    break;
                };
                // RFC 8200 4.5: a big-endian word, the offset in its top 13 bits, M in bit 0.
                let word = u16::from_be_bytes([f.slice()[2], f.slice()[3]]);
                let (offset, more) = (word >> 3, word & 1 == 1);
                found = (offset != 0 || more).then(|| (f.identification(), offset == 0));
                (f.slice().len(), f.next_header())
            }
            IpNumber::IPV6_HEADER_HOP_BY_HOP
            | IpNumber::IPV6_ROUTE_HEADER
            | IpNumber::IPV6_DESTINATION_OPTIONS => {
                let Ok(h) = Ipv6RawExtHeaderSlice::from_slice(rest) else {
                    break;
                };
                (h.slice().len(), h.next_header())
            }
            IpNumber::AUTHENTICATION_HEADER => {
                let Ok(h) = IpAuthHeaderSlice::from_slice(rest) else {
                    break;
                };
                (h.slice().len(), h.next_header())
            }
            _ => break,
        };
        rest = &rest[len..];
        next = Some(after);
    }
    found
}

fn tcp_flag_bits(header: &[u8]) -> u16 {
    match header.get(12..14) {
        Some(b) => ((b[0] as u16 & 1) << 8) | b[1] as u16,
        None => 0,
    }
}

fn first_fragment_ports<'a>(ip: &LaxIpPayloadSlice<'a>, d: &mut Decoded<'a>) {
    let p = ip.payload;
    if !matches!(ip.ip_number, IpNumber::TCP | IpNumber::UDP) || p.len() < 4 {
        return;
    }
    d.src_port = u16::from_be_bytes([p[0], p[1]]);
    d.dst_port = u16::from_be_bytes([p[2], p[3]]);
    if ip.ip_number == IpNumber::TCP {
        d.tcp_flags = tcp_flag_bits(p);
        let hlen = p.get(12).map_or(0, |b| (b >> 4) as usize * 4);
        d.payload = p.get(hlen.max(20)..).unwrap_or(&[]);
    } else {
        d.payload = p.get(8..).unwrap_or(&[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn udp_frame() -> Vec<u8> {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .single_vlan(etherparse::VlanId::try_new(7).unwrap())
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(5353, 53);
        let mut v = Vec::new();
        b.write(&mut v, b"hello").unwrap();
        v
    }

    #[test]
    fn vlan_tagged_udp() {
        let f = udp_frame();
        let d = decode(LinkType::ETHERNET, &f).unwrap();
        assert_eq!(d.transport, Transport::Udp);
        assert_eq!(d.src, IpAddr::from([10, 0, 0, 1]));
        assert_eq!((d.src_port, d.dst_port), (5353, 53));
        assert_eq!(d.payload, b"hello");
        assert_eq!(d.fragment, None);
    }

    #[test]
    fn tcp_flags_and_raw_ipv6() {
        let b = PacketBuilder::ipv6([1; 16], [2; 16], 64)
            .tcp(1000, 80, 1, 100)
            .syn()
            .ack(5);
        let mut v = Vec::new();
        b.write(&mut v, b"").unwrap();
        let d = decode(LinkType::RAW, &v).unwrap();
        assert_eq!(d.transport, Transport::Tcp);
        assert_eq!(d.tcp_flags, tcp_flags::SYN | tcp_flags::ACK);
        let mut sll = vec![0u8; 14];
        sll.extend(0x86ddu16.to_be_bytes());
        sll.extend(&v);
        assert_eq!(decode(LinkType::LINUX_SLL, &sll).unwrap(), d);
        let mut sll2 = 0x86ddu16.to_be_bytes().to_vec();
        sll2.extend([0; 18]);
        sll2.extend(&v);
        assert_eq!(decode(LinkType::LINUX_SLL2, &sll2).unwrap(), d);
        let mut null = 30u32.to_le_bytes().to_vec();
        null.extend(&v);
        assert_eq!(decode(LinkType::NULL, &null).unwrap(), d);
    }

    #[test]
    fn short_and_foreign_frames_are_skipped() {
        assert_eq!(decode(LinkType::ETHERNET, &[1, 2, 3]), Err(Skip::Malformed));
        assert_eq!(
            decode(LinkType(147), &[0; 40]),
            Err(Skip::UnsupportedLink(LinkType(147)))
        );
        let mut arp = vec![0u8; 12];
        arp.extend(0x0806u16.to_be_bytes());
        arp.extend([0; 28]);
        assert_eq!(decode(LinkType::ETHERNET, &arp), Err(Skip::NotIp));
    }

    #[test]
    fn ipv4_fragments_carry_their_id() {
        let mut ip = vec![
            0x45, 0, 0, 48, 0x12, 0x34, 0x20, 0x00, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        ip.extend(1234u16.to_be_bytes());
        ip.extend(53u16.to_be_bytes());
        ip.extend([0; 24]);
        let d = decode(LinkType::RAW, &ip).unwrap();
        let f = d.fragment.unwrap();
        assert!(f.first);
        assert_eq!(f.id.id, 0x1234);
        assert_eq!((d.src_port, d.dst_port), (1234, 53));
        ip[6] = 0x00;
        ip[7] = 0x03; // offset 24 bytes, last fragment
        let d = decode(LinkType::RAW, &ip).unwrap();
        assert!(!d.fragment.unwrap().first);
        assert_eq!((d.src_port, d.dst_port), (0, 0));
    }

    /// Found by the `pcap_packets` fuzz target: an IPv6 fragment header whose next header is
    /// hop-by-hop (only allowed first), so etherparse's lax parse stops after the fragment
    /// header while the chain still names one more header. Walking the extensions with
    /// etherparse's iterator read that header past the end of the slice (undefined
    /// behaviour, a `get_unchecked` precondition panic in debug builds).
    #[test]
    fn ipv6_fragment_followed_by_a_misplaced_hop_by_hop_header() {
        #[rustfmt::skip]
        let ip = [
            0x60, 0x2e, 0x02, 0x0b, 0x00, 0x00, 44, 0x06, // payload length 0, next: fragment
            0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // source
            0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x41, // destination
            0x00, 0x75, 0x67, 0x20, 0x32, 0x30, 0x32, 0x32, // fragment, next: hop-by-hop (0)
            0x20, 0x30, 0x37, 0x3a, 0x32, 0x32, 0x3a, 0x35,
        ];
        let d = decode(LinkType::RAW, &ip).unwrap();
        let f = d.fragment.unwrap();
        assert_eq!(f.id.id, 0x3230_3232);
        assert!(!f.first, "offset 0x6720 >> 3");
        let mut null = 30u32.to_le_bytes().to_vec();
        null.extend(ip);
        assert_eq!(decode(LinkType::NULL, &null).unwrap(), d);
    }

    #[test]
    fn ipv6_fragment_after_other_extension_headers() {
        let b = PacketBuilder::ipv6([1; 16], [2; 16], 64).udp(1000, 53);
        let mut v = Vec::new();
        b.write(&mut v, b"x").unwrap();
        let udp = v.split_off(40);
        v[6] = 60;
        // A destination-options header (8 bytes), then a fragment header whose bytes 2..4
        // are set below.
        v.extend([44, 0, 0, 0, 0, 0, 0, 0]);
        v.extend([17, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef]);
        v.extend(&udp);
        let len = (v.len() - 40) as u16;
        v[4..6].copy_from_slice(&len.to_be_bytes());
        let with_offset_word = |word: u16| {
            let mut v = v.clone();
            v[50..52].copy_from_slice(&word.to_be_bytes());
            v
        };

        // First fragment (offset 0, M set): ports from the UDP header that follows.
        let first = with_offset_word(0x0001);
        let d = decode(LinkType::RAW, &first).unwrap();
        let f = d.fragment.unwrap();
        assert_eq!(f.id.id, 0xdead_beef);
        assert!(f.first);
        assert_eq!((d.src_port, d.dst_port), (1000, 53));
        // A later fragment (offset 4 = 32 bytes, the last one; etherparse 0.19 took this for
        // an unfragmented packet): no ports, whatever the bytes look like.
        let last = with_offset_word(4 << 3);
        let d = decode(LinkType::RAW, &last).unwrap();
        assert!(!d.fragment.unwrap().first);
        assert_eq!((d.src_port, d.dst_port, d.payload), (0, 0, &[][..]));
        // An atomic fragment (offset 0, no M) is a whole packet.
        let atomic = with_offset_word(0);
        let d = decode(LinkType::RAW, &atomic).unwrap();
        assert_eq!(d.fragment, None);
        assert_eq!((d.src_port, d.dst_port), (1000, 53));
    }
}
