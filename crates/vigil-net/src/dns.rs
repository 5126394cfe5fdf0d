//! DNS messages (RFC 1035): header, first question and answer records, with name
//! compression. Bounded: at most [`MAX_ANSWERS`] answers and [`MAX_POINTERS`] compression
//! hops per name; anything malformed gives `None` or stops the answer list.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Answers kept per message.
pub const MAX_ANSWERS: usize = 32;
/// Compression pointers followed per name (a loop guard).
pub const MAX_POINTERS: usize = 16;

/// A parsed DNS message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsMessage {
    pub id: u16,
    /// QR bit: a response.
    pub response: bool,
    /// RCODE (low 4 bits of the flags).
    pub rcode: u8,
    /// The first question, when there is one.
    pub question: Option<DnsQuestion>,
    /// Answer-section records (at most [`MAX_ANSWERS`]).
    pub answers: Vec<DnsAnswer>,
}

/// A question: name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsQuestion {
    /// The name without the trailing dot, as sent (case kept).
    pub name: String,
    pub qtype: u16,
}

/// One answer record, its data as text (addresses, names, TXT strings; hex for others).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsAnswer {
    pub name: String,
    pub rtype: u16,
    pub ttl: u32,
    pub data: String,
}

/// Parses a DNS message (the UDP payload, or a TCP message without its length prefix).
pub fn parse(msg: &[u8]) -> Option<DnsMessage> {
    if msg.len() < 12 {
        return None;
    }
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    let qd = u16::from_be_bytes([msg[4], msg[5]]) as usize;
    let an = u16::from_be_bytes([msg[6], msg[7]]) as usize;
    let opcode = (flags >> 11) & 0xf;
    // Standard queries, inverse queries, status, notify, update; others are not DNS.
    if opcode > 5 || qd > 16 {
        return None;
    }
    let mut at = 12;
    let mut question = None;
    for i in 0..qd {
        let (name, next) = read_name(msg, at)?;
        let qtype = u16::from_be_bytes([*msg.get(next)?, *msg.get(next + 1)?]);
        msg.get(next + 3)?;
        at = next + 4;
        if i == 0 {
            question = Some(DnsQuestion { name, qtype });
        }
    }
    let mut answers = Vec::new();
    for _ in 0..an.min(MAX_ANSWERS) {
        let Some((answer, next)) = read_record(msg, at) else {
            break;
        };
        answers.push(answer);
        at = next;
    }
    Some(DnsMessage {
        id,
        response: flags & 0x8000 != 0,
        rcode: (flags & 0xf) as u8,
        question,
        answers,
    })
}

fn read_record(msg: &[u8], at: usize) -> Option<(DnsAnswer, usize)> {
    let (name, at) = read_name(msg, at)?;
    let fixed = msg.get(at..at + 10)?;
    let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
    let len = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
    let start = at + 10;
    let rdata = msg.get(start..start + len)?;
    let data = match rtype {
        1 if len == 4 => Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]).to_string(),
        28 if len == 16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(rdata);
            Ipv6Addr::from(a).to_string()
        }
        2 | 5 | 12 | 39 => read_name(msg, start)?.0,
        15 if len >= 3 => read_name(msg, start + 2)?.0,
        16 => {
            let mut out = String::new();
            let mut i = 0;
            while i < rdata.len() {
                let n = rdata[i] as usize;
                let s = rdata.get(i + 1..i + 1 + n)?;
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(&String::from_utf8_lossy(s));
                i += 1 + n;
            }
            out
        }
        33 if len >= 7 => {
            let port = u16::from_be_bytes([rdata[4], rdata[5]]);
            format!("{} {}", read_name(msg, start + 6)?.0, port)
        }
        _ => {
            let mut hex = String::with_capacity(len * 2);
            for b in rdata.iter().take(256) {
                let _ = write!(hex, "{b:02x}");
            }
            hex
        }
    };
    Some((
        DnsAnswer {
            name,
            rtype,
            ttl,
            data,
        },
        start + len,
    ))
}

/// Reads a possibly compressed name at `at`; returns it (no trailing dot, `.` for the root)
/// and the offset after it in the original position.
fn read_name(msg: &[u8], mut at: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    let mut end = None;
    let mut hops = 0;
    loop {
        let len = *msg.get(at)? as usize;
        match len & 0xc0 {
            0x00 => {
                if len == 0 {
                    if name.is_empty() {
                        name.push('.');
                    }
                    return Some((name, end.unwrap_or(at + 1)));
                }
                let label = msg.get(at + 1..at + 1 + len)?;
                if !name.is_empty() {
                    name.push('.');
                }
                for &b in label {
                    if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                        name.push(b as char);
                    } else {
                        let _ = write!(name, "\\{b:03}");
                    }
                }
                if name.len() > 1024 {
                    return None;
                }
                at += 1 + len;
            }
            0xc0 => {
                hops += 1;
                if hops > MAX_POINTERS {
                    return None;
                }
                let target = ((len & 0x3f) << 8) | *msg.get(at + 1)? as usize;
                end.get_or_insert(at + 2);
                at = target;
            }
            _ => return None,
        }
    }
}

/// The mnemonic of a record type (`A`, `AAAA`, ...), or `TYPE<n>`.
pub fn type_name(t: u16) -> std::borrow::Cow<'static, str> {
    let s = match t {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        13 => "HINFO",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        35 => "NAPTR",
        39 => "DNAME",
        41 => "OPT",
        43 => "DS",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        64 => "SVCB",
        65 => "HTTPS",
        99 => "SPF",
        252 => "AXFR",
        255 => "ANY",
        257 => "CAA",
        _ => return format!("TYPE{t}").into(),
    };
    s.into()
}

/// The name of a response code (`NOERROR`, `NXDOMAIN`, ...), or `RCODE<n>`.
pub fn rcode_name(r: u8) -> std::borrow::Cow<'static, str> {
    let s = match r {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        _ => return format!("RCODE{r}").into(),
    };
    s.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response() -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
        m.extend(b"\x03www\x07example\x03com\x00");
        m.extend([0, 1, 0, 1]);
        // CNAME www.example.com -> web.example.com (compressed)
        m.extend([0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 6]);
        m.extend(b"\x03web");
        m.extend([0xc0, 16]);
        // A web.example.com -> 93.184.216.34
        let web = 12 + 17 + 4 + 12;
        m.extend([
            0xc0, web as u8, 0, 1, 0, 1, 0, 0, 1, 0, 0, 4, 93, 184, 216, 34,
        ]);
        m
    }

    #[test]
    fn answers_with_compression() {
        let m = parse(&response()).unwrap();
        assert!(m.response);
        assert_eq!(m.id, 0x1234);
        let q = m.question.unwrap();
        assert_eq!((q.name.as_str(), q.qtype), ("www.example.com", 1));
        assert_eq!(m.answers.len(), 2);
        assert_eq!(m.answers[0].data, "web.example.com");
        assert_eq!(m.answers[1].name, "web.example.com");
        assert_eq!(m.answers[1].data, "93.184.216.34");
        assert_eq!(m.answers[1].ttl, 256);
    }

    #[test]
    fn pointer_loops_and_truncation_do_not_panic() {
        let mut m = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1];
        assert_eq!(parse(&m), None);
        m.truncate(5);
        assert_eq!(parse(&m), None);
        let full = response();
        for cut in 0..full.len() {
            let _ = parse(&full[..cut]);
        }
        // Cut inside the answers: the question survives, answers stop.
        let m = parse(&full[..full.len() - 3]).unwrap();
        assert_eq!(m.answers.len(), 1);
    }

    #[test]
    fn names_of_types_and_codes() {
        assert_eq!(type_name(28), "AAAA");
        assert_eq!(type_name(4242), "TYPE4242");
        assert_eq!(rcode_name(3), "NXDOMAIN");
    }
}
