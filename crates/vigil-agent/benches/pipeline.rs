//! Throughput of the agent's pipeline: tail a file -> batch -> gzip -> an in-process
//! transport, and of batch encoding alone.
//!
//! `cargo bench -p vigil-agent --bench pipeline`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use uuid::Uuid;
use vigil_agent::transport::{EncodedBatch, SendOutcome, Transport};
use vigil_agent::{Agent, AgentConfig};
use vigil_core::event::Heartbeat;

/// Accepts everything, counting events (decoding each batch as an embedded server would).
#[derive(Default)]
struct Sink(AtomicU64);

#[async_trait]
impl Transport for Sink {
    async fn send_batch(&self, batch: &EncodedBatch) -> SendOutcome {
        let decoded = batch.decode().expect("valid batch");
        self.0
            .fetch_add(decoded.events.len() as u64, Ordering::Relaxed);
        SendOutcome::Accepted(None)
    }
    async fn heartbeat(&self, _: &Heartbeat) -> SendOutcome {
        SendOutcome::Accepted(None)
    }
}

const LINES: u64 = 20_000;

fn line(i: u64) -> String {
    format!(
        "Nov 23 10:00:{:02} web-1 sshd[{}]: Failed password for invalid user admin{} from 203.0.113.{} port {} ssh2",
        i % 60,
        1000 + i % 5000,
        i % 97,
        i % 250,
        40000 + i % 20000
    )
}

fn pipeline(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("agent");
    group.sample_size(10);
    group.throughput(Throughput::Elements(LINES));
    group.bench_function("tail_batch_gzip_ship_20k_lines", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = std::env::temp_dir().join(format!("vigil-bench-{}", Uuid::new_v4()));
                std::fs::create_dir_all(&dir).unwrap();
                let log = dir.join("auth.log");
                let text: String = (0..LINES).map(|i| line(i) + "\n").collect();
                std::fs::write(&log, text).unwrap();
                let mut cfg = AgentConfig::default();
                cfg.metrics.enabled = false;
                cfg.processes.enabled = false;
                cfg.logs.paths = vec![log.to_string_lossy().into_owned()];
                cfg.logs.start_at_end = false;
                cfg.logs.poll_interval_ms = 10;
                cfg.shipper.flush_interval_ms = 10;
                let sink = Arc::new(Sink::default());
                let agent =
                    Agent::with_transport(cfg, &dir.join("state"), Uuid::nil(), sink.clone())
                        .unwrap();
                let start = Instant::now();
                rt.block_on(async {
                    let handle = agent.spawn();
                    while sink.0.load(Ordering::Relaxed) < LINES {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    total += start.elapsed();
                    handle.shutdown().await.unwrap();
                });
                let _ = std::fs::remove_dir_all(&dir);
            }
            total
        })
    });
    let events: Vec<Vec<u8>> = (0..500)
        .map(|i| {
            serde_json::to_vec(&serde_json::json!({
                "@timestamp": "2026-11-23T10:00:00.000000Z",
                "message": line(i), "event": {"original": line(i)},
                "log": {"file": {"path": "/var/log/auth.log"}},
                "host": {"name": "web-1"}, "agent": {"id": Uuid::nil(), "name": "web-1"},
            }))
            .unwrap()
        })
        .collect();
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("encode_gzip_batch_500_events", |b| {
        b.iter(|| EncodedBatch::encode(Uuid::nil(), &events).unwrap())
    });
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
