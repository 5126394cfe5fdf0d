//! pcapng reading (every shared capture rewritten as pcapng in both byte orders, with
//! several interfaces, resolutions and simple packet blocks) and damaged captures.

use std::collections::BTreeMap;

use vigil_net::capture::{CaptureFormat, CaptureReader};
use vigil_net::flow::FlowKey;
use vigil_net::{Error, FlowConfig, read_flows, summarize_file};

use crate::helpers;

/// Writes pcapng blocks in one byte order.
struct NgWriter {
    big: bool,
    out: Vec<u8>,
}

impl NgWriter {
    fn u16(&self, v: u16) -> [u8; 2] {
        if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn u32(&self, v: u32) -> [u8; 4] {
        if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn block(&mut self, ty: u32, body: &[u8]) {
        let padded = body.len().div_ceil(4) * 4;
        let len = (12 + padded) as u32;
        let (t, l) = (self.u32(ty), self.u32(len));
        self.out.extend(t);
        self.out.extend(l);
        self.out.extend(body);
        self.out.extend(vec![0; padded - body.len()]);
        self.out.extend(l);
    }
    fn section(&mut self) {
        let mut b = self.u32(0x1a2b_3c4d).to_vec();
        b.extend(self.u16(1));
        b.extend(self.u16(0));
        b.extend((-1i64).to_le_bytes());
        self.block(0x0a0d_0d0a, &b);
    }
    /// An interface with `tsresol` (None: default microseconds).
    fn interface(&mut self, link: u16, tsresol: Option<u8>) {
        let mut b = self.u16(link).to_vec();
        b.extend(self.u16(0));
        b.extend(self.u32(262_144));
        // A comment option first, so options are walked, not just read at a fixed place.
        b.extend(self.u16(1));
        b.extend(self.u16(5));
        b.extend(b"hello\0\0\0");
        if let Some(r) = tsresol {
            b.extend(self.u16(9));
            b.extend(self.u16(1));
            b.extend([r, 0, 0, 0]);
        }
        b.extend(self.u16(0));
        b.extend(self.u16(0));
        self.block(1, &b);
    }
    fn enhanced(&mut self, iface: u32, units: u64, data: &[u8], orig: u32) {
        let mut b = self.u32(iface).to_vec();
        b.extend(self.u32((units >> 32) as u32));
        b.extend(self.u32(units as u32));
        b.extend(self.u32(data.len() as u32));
        b.extend(self.u32(orig));
        b.extend(data);
        self.block(6, &b);
    }
    fn simple(&mut self, data: &[u8], orig: u32) {
        let mut b = self.u32(orig).to_vec();
        b.extend(data);
        self.block(3, &b);
    }
}

/// (key -> (packets, bytes)), total packets.
fn flow_counts(data: &[u8]) -> (BTreeMap<FlowKey, (u64, u64)>, u64) {
    let (flows, stats, error) = read_flows(data, &FlowConfig::no_timeouts());
    assert!(error.is_none(), "{error:?}");
    let mut m = BTreeMap::new();
    for f in flows {
        let e: &mut (u64, u64) = m.entry(f.key).or_default();
        e.0 += f.packets();
        e.1 += f.bytes();
    }
    (m, stats.packets)
}

#[test]
fn every_shared_capture_reads_the_same_as_pcapng() {
    let Some(dir) = helpers::pcap_dir() else {
        return;
    };
    for (n, path) in helpers::pcaps(&dir).iter().enumerate() {
        let data = std::fs::read(path).unwrap();
        let packets: Vec<_> = CaptureReader::new(&data)
            .unwrap()
            .map(|p| p.unwrap())
            .collect();
        let big = n % 2 == 1;
        let mut w = NgWriter {
            big,
            out: Vec::new(),
        };
        w.section();
        // Interface 0 is unused (another link type); packets go to interface 1, written
        // in nanoseconds (tsresol 9) or 2^-30 s units (tsresol 0x80|30).
        w.interface(147, None);
        let pow2 = n % 3 == 0;
        w.interface(packets[0].link.0, Some(if pow2 { 0x80 | 30 } else { 9 }));
        for p in &packets {
            let ns = p.timestamp_ns as u64;
            let units = if pow2 {
                ((ns as u128) << 30).div_ceil(1_000_000_000) as u64
            } else {
                ns
            };
            w.enhanced(1, units, p.data, p.orig_len);
        }
        let ng = w.out;
        let mut reader = CaptureReader::new(&ng).unwrap();
        assert_eq!(reader.format(), CaptureFormat::PcapNg);
        for want in &packets {
            let got = reader.next().unwrap().unwrap();
            assert_eq!(
                (got.data, got.orig_len, got.link),
                (want.data, want.orig_len, want.link)
            );
            assert_eq!(got.timestamp_ns, want.timestamp_ns, "{}", path.display());
        }
        assert!(reader.next().is_none());
        assert_eq!(flow_counts(&ng), flow_counts(&data), "{}", path.display());
    }
}

#[test]
fn simple_packet_blocks_and_a_second_section() {
    let Some(data) = helpers::capture("http-protocol-inspect-v2.pcap") else {
        return;
    };
    let packets: Vec<_> = CaptureReader::new(&data)
        .unwrap()
        .map(|p| p.unwrap())
        .collect();
    let mut w = NgWriter {
        big: true,
        out: Vec::new(),
    };
    let half = packets.len() / 2;
    w.section();
    w.interface(packets[0].link.0, None);
    for p in &packets[..half] {
        w.simple(p.data, p.orig_len);
    }
    // A new section forgets the interfaces of the one before.
    w.section();
    w.interface(packets[0].link.0, Some(6));
    for p in &packets[half..] {
        w.enhanced(0, (p.timestamp_ns / 1000) as u64, p.data, p.orig_len);
    }
    assert_eq!(flow_counts(&w.out), flow_counts(&data));
}

#[test]
fn truncated_captures_keep_the_packets_before_the_cut() {
    let Some(data) = helpers::capture("http-protocol-inspect-v2.pcap") else {
        return;
    };
    let all: Vec<_> = CaptureReader::new(&data)
        .unwrap()
        .map(|p| p.unwrap())
        .collect();
    // Record starts: 24, then each record is 16 + its captured length.
    let mut starts = vec![24usize];
    for p in &all {
        starts.push(starts.last().unwrap() + 16 + p.data.len());
    }
    assert_eq!(*starts.last().unwrap(), data.len());
    for (i, &cut) in [starts[10] + 7, starts[20] + 16 + 3, starts[30] - 1]
        .iter()
        .enumerate()
    {
        let out: Vec<_> = CaptureReader::new(&data[..cut]).unwrap().collect();
        let ok = out.iter().filter(|p| p.is_ok()).count();
        let expected_ok = [10, 20, 29][i];
        assert_eq!(ok, expected_ok, "cut at {cut}");
        let err = out.last().unwrap().as_ref().unwrap_err();
        assert_eq!(
            err.offset(),
            Some(starts[expected_ok] as u64 + if i == 0 { 0 } else { 16 })
        );
        assert!(matches!(err, Error::Truncated { .. }), "{err}");
        let (flows, stats, error) = read_flows(&data[..cut], &FlowConfig::no_timeouts());
        assert!(error.is_some());
        assert_eq!(stats.packets, expected_ok as u64);
        assert_eq!(
            flows.iter().map(|f| f.packets()).sum::<u64>(),
            expected_ok as u64
        );
    }
}

#[test]
fn garbled_pcapng_blocks_name_their_offset() {
    let mut w = NgWriter {
        big: false,
        out: Vec::new(),
    };
    w.section();
    w.interface(1, None);
    let shb_idb = w.out.len();
    w.enhanced(0, 1, &[0; 60], 60);
    w.enhanced(3, 1, &[0; 60], 60); // interface 3 was never described
    let out: Vec<_> = CaptureReader::new(&w.out).unwrap().collect();
    assert_eq!(out.len(), 2);
    let err = out[1].as_ref().unwrap_err();
    assert!(err.to_string().contains("interface 3"), "{err}");
    let second = shb_idb + 12 + 20 + 60;
    assert_eq!(err.offset(), Some(second as u64 + 8));

    // A block length that is not a multiple of 4.
    let mut bad = w.out.clone();
    bad[shb_idb + 4] = 81;
    let out: Vec<_> = CaptureReader::new(&bad).unwrap().collect();
    let err = out[0].as_ref().unwrap_err();
    assert_eq!(err.offset(), Some(shb_idb as u64 + 4));
    assert!(err.to_string().contains("byte offset"), "{err}");
}

#[test]
fn summarize_file_reports_the_path() {
    let dir = std::env::temp_dir().join(format!("vigil-net-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("junk.pcap");
    std::fs::write(&path, b"this is not a capture at all").unwrap();
    let err = summarize_file(&path, &FlowConfig::default()).unwrap_err();
    assert!(err.to_string().contains("junk.pcap"), "{err}");
    assert!(err.to_string().contains("magic"), "{err}");
    let err = summarize_file(&dir.join("missing.pcap"), &FlowConfig::default()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unknown_link_types_are_counted_not_guessed() {
    let mut w = NgWriter {
        big: false,
        out: Vec::new(),
    };
    w.section();
    w.interface(147, None); // LINKTYPE_USER0
    w.interface(1, None);
    w.enhanced(0, 1, &[0x45; 40], 40);
    w.enhanced(0, 2, &[0x45; 40], 40);
    w.enhanced(1, 3, &[0; 10], 10); // too short for Ethernet
    let (flows, stats, error) = read_flows(&w.out, &FlowConfig::default());
    assert!(error.is_none() && flows.is_empty());
    assert_eq!(stats.packets, 3);
    assert_eq!(stats.unsupported_link, 2);
    assert_eq!(stats.unknown_link, Some(vigil_net::LinkType(147)));
    assert_eq!(stats.malformed, 1);
}
