//! Flow extraction throughput: read + decode + flow table + DNS/HTTP/TLS parsing, from a
//! pcap in memory, on one core, reported as packets/s (criterion "elem/s").
//!
//! - `shared_replay`: every packet of the shared captures (`VIGIL_SHARED_DATA`), rewritten
//!   to Ethernet and replayed 100 times with a different client address and a later time
//!   per replay (so flows are new each time and old ones expire).
//! - `synthetic`: a generated capture of HTTP-over-TCP and DNS-over-UDP conversations.
//!
//! Run: `cargo bench -p vigil-net --bench flows` (2026-11-23, 2-core shared VM, load ~2:
//! shared_replay 5.26 M packets/s, synthetic 2.57 M packets/s).
//! `FLOWS_ITERATIONS=10 target/release/deps/flows-*` also prints CPU-time throughput.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group};
use etherparse::PacketBuilder;
use vigil_net::{CaptureReader, FlowConfig, FlowTable, LinkType};

/// A little-endian microsecond pcap of Ethernet frames.
struct PcapWriter {
    out: Vec<u8>,
    packets: u64,
}

impl PcapWriter {
    fn new() -> Self {
        let mut out = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        out.extend([0; 8]);
        out.extend(262_144u32.to_le_bytes());
        out.extend(1u32.to_le_bytes());
        PcapWriter { out, packets: 0 }
    }

    fn push(&mut self, ts_ns: i64, frame: &[u8], orig_len: u32) {
        let us = ts_ns / 1000;
        self.out.extend(((us / 1_000_000) as u32).to_le_bytes());
        self.out.extend(((us % 1_000_000) as u32).to_le_bytes());
        self.out.extend((frame.len() as u32).to_le_bytes());
        self.out.extend(orig_len.to_le_bytes());
        self.out.extend(frame);
        self.packets += 1;
    }
}

/// The frame as Ethernet, when its link type can be rewritten.
fn to_ethernet(link: LinkType, data: &[u8]) -> Option<Vec<u8>> {
    let (ether_type, payload): (u16, &[u8]) = match link {
        LinkType::ETHERNET => return Some(data.to_vec()),
        LinkType::RAW | LinkType::IPV4 | LinkType::IPV6 => {
            let v = data.first()? >> 4;
            (if v == 6 { 0x86dd } else { 0x0800 }, data)
        }
        LinkType::LINUX_SLL => (u16::from_be_bytes([data[14], data[15]]), data.get(16..)?),
        LinkType::NULL => {
            let fam = data.first()?;
            (if *fam == 2 { 0x0800 } else { 0x86dd }, data.get(4..)?)
        }
        _ => return None,
    };
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    f.extend(ether_type.to_be_bytes());
    f.extend(payload);
    Some(f)
}

fn shared_replay() -> Option<(Vec<u8>, u64)> {
    let root = vigil_testdata::root();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(root.join("pcap"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .collect();
    paths.sort();
    // Every frame of every capture, with times relative to its capture's start.
    let mut frames: Vec<(i64, Vec<u8>, u32)> = Vec::new();
    for path in &paths {
        let data = std::fs::read(path).ok()?;
        let mut start = None;
        for p in CaptureReader::new(&data).ok()?.flatten() {
            let t0 = *start.get_or_insert(p.timestamp_ns);
            if let Some(f) = to_ethernet(p.link, p.data) {
                let orig = p.orig_len + (f.len() as u32).saturating_sub(p.data.len() as u32);
                frames.push(((p.timestamp_ns - t0).clamp(0, 9_000_000_000), f, orig));
            }
        }
    }
    let mut w = PcapWriter::new();
    for replay in 0..100u32 {
        let base = 1_700_000_000_000_000_000i64 + replay as i64 * 10_000_000_000;
        for (t, frame, orig) in &frames {
            let mut f = frame.clone();
            // A different IPv4 network per replay (both ends), so every replay's flows are new.
            if f.len() >= 34 && f[12..14] == [0x08, 0x00] {
                f[26] ^= replay as u8;
                f[30] ^= replay as u8;
            }
            w.push(base + t, &f, *orig);
        }
    }
    let n = w.packets;
    Some((w.out, n))
}

fn synthetic() -> (Vec<u8>, u64) {
    let mut w = PcapWriter::new();
    let mut ts = 1_700_000_000_000_000_000i64;
    let request =
        b"GET /index.html?q=1 HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: bench/1.0\r\n\r\n";
    let response = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".as_slice(),
        &[b'x'; 1000],
    ]
    .concat();
    let mut buf = Vec::with_capacity(2048);
    for i in 0..20_000u32 {
        let c = [10, (i >> 16) as u8, (i >> 8) as u8, i as u8];
        let s = [192, 0, 2, (i % 200) as u8];
        let cport = 20_000 + (i % 40_000) as u16;
        let mut tcp = |from_client: bool, seq: u32, payload: &[u8], flags: u8| {
            let (src, dst, sp, dp) = if from_client {
                (c, s, cport, 80)
            } else {
                (s, c, 80, cport)
            };
            let mut b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
                .ipv4(src, dst, 64)
                .tcp(sp, dp, seq, 65535);
            if flags & 2 != 0 {
                b = b.syn();
            }
            if flags & 0x10 != 0 {
                b = b.ack(1);
            }
            if flags & 1 != 0 {
                b = b.fin();
            }
            buf.clear();
            b.write(&mut buf, payload).expect("write packet");
            ts += 20_000;
            w.push(ts, &buf, buf.len() as u32);
        };
        tcp(true, 0, &[], 0x02);
        tcp(false, 0, &[], 0x12);
        tcp(true, 1, &[], 0x10);
        tcp(true, 1, request, 0x10);
        tcp(false, 1, &response, 0x10);
        tcp(true, 100, &[], 0x10);
        tcp(true, 100, &[], 0x11);
        tcp(false, 2000, &[], 0x11);
        tcp(true, 101, &[], 0x10);
        // A DNS query and its answer.
        let mut q = vec![(i >> 8) as u8, i as u8, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend(b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
        let mut a = q.clone();
        a[2] = 0x81;
        a[7] = 1;
        a.extend([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 93, 184, 216, 34]);
        for (from_client, msg) in [(true, &q), (false, &a)] {
            let (src, dst, sp, dp) = if from_client {
                (c, [192, 0, 2, 53], cport, 53)
            } else {
                ([192, 0, 2, 53], c, 53, cport)
            };
            buf.clear();
            PacketBuilder::ethernet2([2; 6], [4; 6])
                .ipv4(src, dst, 64)
                .udp(sp, dp)
                .write(&mut buf, msg)
                .expect("write packet");
            ts += 20_000;
            w.push(ts, &buf, buf.len() as u32);
        }
    }
    let n = w.packets;
    (w.out, n)
}

/// Read + decode + flow table + application parsing; returns flows ended.
fn extract(pcap: &[u8]) -> usize {
    let mut table = FlowTable::new(FlowConfig::default());
    let mut flows = 0;
    for packet in CaptureReader::new(pcap).expect("bench capture").flatten() {
        table.add_packet(&packet);
        flows += table.drain_finished().count();
    }
    table.flush();
    flows + table.drain_finished().count()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("flows");
    group.sample_size(10);
    if let Some((pcap, packets)) = shared_replay() {
        group.throughput(Throughput::Elements(packets));
        group.bench_function("shared_replay", |b| b.iter(|| extract(black_box(&pcap))));
    } else {
        eprintln!("shared_replay skipped: shared data not found");
    }
    let (pcap, packets) = synthetic();
    group.throughput(Throughput::Elements(packets));
    group.bench_function("synthetic", |b| b.iter(|| extract(black_box(&pcap))));
    group.finish();
}

criterion_group!(benches, bench);

/// This process's user + system CPU time (Linux `/proc/self/stat`, 10 ms ticks).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// `FLOWS_ITERATIONS=N` runs each input N times without criterion and prints packets per
/// second of wall time; under `perf stat -e task-clock` this gives CPU-time throughput on a
/// busy machine.
fn main() {
    if let Some(n) = std::env::var("FLOWS_ITERATIONS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        let inputs = [
            ("shared_replay", shared_replay()),
            ("synthetic", Some(synthetic())),
        ];
        for (name, input) in inputs {
            let Some((pcap, packets)) = input else {
                continue;
            };
            let start = std::time::Instant::now();
            let cpu_start = cpu_seconds();
            for _ in 0..n {
                black_box(extract(black_box(&pcap)));
            }
            let secs = start.elapsed().as_secs_f64();
            let total = (packets * n as u64) as f64;
            let cpu = cpu_seconds().zip(cpu_start).map(|(b, a)| b - a);
            println!(
                "{name}: {packets} packets x {n}: {:.0} packets/s of wall time, {} of CPU time",
                total / secs,
                cpu.map_or("?".into(), |c| format!("{:.0} packets/s", total / c))
            );
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
