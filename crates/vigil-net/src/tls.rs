//! TLS ClientHello from the start of a TCP payload: the server name (SNI) and the offered
//! ALPN protocols. Only the first record is looked at; a hello cut by the segment end gives
//! what was read before the cut.

/// What a ClientHello tells.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientHello {
    /// `server_name` extension, host name entry.
    pub server_name: Option<String>,
    /// `application_layer_protocol_negotiation` offers, in order (`h2`, `http/1.1`).
    pub alpn: Vec<String>,
    /// The legacy `client_version` (0x0303 for TLS 1.2 and 1.3).
    pub version: u16,
}

/// Parses a ClientHello at the start of `payload`, when it starts one.
pub fn parse_client_hello(payload: &[u8]) -> Option<ClientHello> {
    // Record: handshake (22), version 3.x; handshake: client_hello (1).
    if payload.len() < 9 || payload[0] != 22 || payload[1] != 3 || payload[5] != 1 {
        return None;
    }
    let hs = &payload[9..];
    let version = u16::from_be_bytes([*hs.first()?, *hs.get(1)?]);
    let mut hello = ClientHello {
        version,
        ..ClientHello::default()
    };
    let mut at = 2 + 32; // version, random
    let sid = *hs.get(at)? as usize;
    at += 1 + sid;
    let suites = be16(hs, at)? as usize;
    at += 2 + suites;
    let comp = *hs.get(at)? as usize;
    at += 1 + comp;
    let ext_len = be16(hs, at)? as usize;
    at += 2;
    let end = (at + ext_len).min(hs.len());
    while at + 4 <= end {
        let ty = be16(hs, at)?;
        let len = be16(hs, at + 2)? as usize;
        let data = &hs[at + 4..(at + 4 + len).min(end)];
        match ty {
            0 => hello.server_name = sni(data),
            16 => hello.alpn = alpn(data),
            _ => {}
        }
        at += 4 + len;
    }
    Some(hello)
}

fn sni(data: &[u8]) -> Option<String> {
    let mut at = 2; // list length
    while at + 3 <= data.len() {
        let kind = data[at];
        let len = be16(data, at + 1)? as usize;
        let name = data.get(at + 3..at + 3 + len)?;
        if kind == 0 {
            return Some(String::from_utf8_lossy(name).into_owned());
        }
        at += 3 + len;
    }
    None
}

fn alpn(data: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = 2;
    while let Some(&len) = data.get(at) {
        let Some(p) = data.get(at + 1..at + 1 + len as usize) else {
            break;
        };
        out.push(String::from_utf8_lossy(p).into_owned());
        at += 1 + len as usize;
        if out.len() >= 16 {
            break;
        }
    }
    out
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(sni: &str) -> Vec<u8> {
        let mut ext = Vec::new();
        ext.extend([0, 0]);
        let entry_len = sni.len() + 3;
        ext.extend(((entry_len + 2) as u16).to_be_bytes());
        ext.extend((entry_len as u16).to_be_bytes());
        ext.push(0);
        ext.extend((sni.len() as u16).to_be_bytes());
        ext.extend(sni.as_bytes());
        ext.extend([0, 16, 0, 14, 0, 12, 2, b'h', b'2', 8]);
        ext.extend(b"http/1.1");
        let mut body = vec![3, 3];
        body.extend([0; 32]);
        body.push(0); // session id
        body.extend([0, 2, 0x13, 0x01]);
        body.extend([1, 0]);
        body.extend((ext.len() as u16).to_be_bytes());
        body.extend(ext);
        let mut hs = vec![1, 0];
        hs.extend((body.len() as u16).to_be_bytes());
        hs.extend(body);
        let mut rec = vec![22, 3, 1];
        rec.extend((hs.len() as u16).to_be_bytes());
        rec.extend(hs);
        rec
    }

    #[test]
    fn sni_and_alpn() {
        let h = parse_client_hello(&hello("example.org")).unwrap();
        assert_eq!(h.server_name.as_deref(), Some("example.org"));
        assert_eq!(h.alpn, ["h2", "http/1.1"]);
        assert_eq!(h.version, 0x0303);
    }

    #[test]
    fn cut_hellos_do_not_panic() {
        let full = hello("a.example");
        for cut in 0..full.len() {
            let _ = parse_client_hello(&full[..cut]);
        }
        assert_eq!(parse_client_hello(b"GET / HTTP/1.1\r\n"), None);
    }
}
