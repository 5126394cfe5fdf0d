//! What one byte of ingest batch JSON costs in memory while the batch is in flight: the
//! decoded body, the parsed batch, the normalized documents and the stored columns and
//! text, measured as peak live heap (a counting allocator), per event and per byte of
//! JSON. The server's charges (`EVENT_COST`, `PARSED_PER_BYTE` in `src/ingest/budget.rs`)
//! are these, rounded up.
//!
//! Run: `cargo run --release -p vigil-server --example ingest_cost`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use vigil_core::event::IngestBatch;
use vigil_server::ingest::normalize::{Origin, Received, normalize};
use vigil_server::ingest::pipeline::new_event;

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if new > l.size() {
            let now = LIVE.fetch_add(new - l.size(), Ordering::Relaxed) + new - l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        } else {
            LIVE.fetch_sub(l.size() - new, Ordering::Relaxed);
        }
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Raw log lines as agents ship them (the mix of `vigil bench ingest`).
fn raw(i: usize) -> Value {
    let line = match i % 4 {
        0 => format!(
            "Nov 23 10:00:{:02} web-{} sshd[{}]: Failed password for invalid user u{} from 203.0.113.{} port {} ssh2",
            i % 60,
            i % 50,
            1000 + i,
            i % 997,
            i % 16,
            1024 + i
        ),
        1 => format!(
            "10.0.{}.{} - - [23/Nov/2026:10:00:{:02} +0000] \"GET /api/items/{i} HTTP/1.1\" 200 {} \"-\" \"Mozilla/5.0\"",
            (i >> 8) & 255,
            i & 255,
            i % 60,
            200 + i % 5000
        ),
        2 => format!(
            "Nov 23 10:00:{:02} web-{} kernel: [UFW BLOCK] IN=eth0 OUT= MAC=00 SRC=10.0.0.{} DST=10.0.0.1 LEN=60 PROTO=TCP SPT={} DPT=22 WINDOW=64240 SYN",
            i % 60,
            i % 50,
            i % 255,
            1024 + i
        ),
        _ => format!(
            "Nov 23 10:00:{:02} web-{} systemd[1]: Started Session {i} of user deploy.",
            i % 60,
            i % 50
        ),
    };
    json!({"message": line, "log": {"file": {"path": "/var/log/syslog"}}})
}

/// Events already in the stored shape.
fn normalized(i: usize) -> Value {
    json!({"@timestamp": "2026-11-23T10:00:00Z", "event": {"dataset": "syslog"},
           "host": {"name": format!("web-{}", i % 50)}, "process": {"name": "systemd"},
           "message": format!("Started Session {i} of user deploy.")})
}

/// Over the batch's JSON size: the live heap of a batch waiting in the queue (its
/// normalized documents), and the peak while it goes through the server's steps.
fn cost(make: fn(usize) -> Value, n: usize) -> (usize, f64, f64) {
    let events: Vec<Value> = (0..n).map(make).collect();
    let body = serde_json::to_vec(&json!({"batch_id": uuid::Uuid::now_v7(), "events": events}))
        .expect("serialises");
    drop(events);
    let len = body.len();
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    // The steps of `POST /api/v1/ingest/events` and the pipeline, in order; what each
    // step frees is freed where the server frees it.
    let batch: IngestBatch = serde_json::from_slice(&body).expect("a batch");
    drop(body);
    let received = Received::new(vigil_core::now());
    let docs: Vec<Value> = batch
        .events
        .into_iter()
        .filter_map(|d| normalize(d, &received, &Origin::default()).ok())
        .collect();
    let queued = LIVE.load(Ordering::Relaxed) - base;
    let stored: Vec<_> = docs.iter().map(new_event).collect();
    drop(docs);
    drop(stored);
    let peak = PEAK.load(Ordering::Relaxed) - base;
    // The body itself was live at the start of the measurement.
    (
        len,
        queued as f64 / len as f64,
        (peak + len) as f64 / len as f64,
    )
}

fn main() {
    for (name, make) in [
        ("raw log lines", raw as fn(usize) -> Value),
        ("normalized", normalized),
    ] {
        for n in [1_000, 10_000] {
            let (len, queued, peak) = cost(make, n);
            println!(
                "{name:>14}, {n:>6} events, {len:>9} bytes of JSON: queued {queued:.1} bytes \
                 per byte, peak {peak:.1} ({:.0} bytes per event)",
                peak * len as f64 / n as f64
            );
        }
    }
}
