//! Packet capture (`[capture]`): live packets from an interface through libpcap (built with
//! the `live` feature), turned into flow, DNS, HTTP and TLS events by `vigil-net`. Capture
//! runs on its own blocking thread; finished flows are handed to the shipper like any
//! other events. Without the `live` feature, or without CAP_NET_RAW, the source says so
//! once and stops; the rest of the agent goes on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use tokio::sync::mpsc;
use vigil_net::{FlowConfig, FlowTable, LiveCapture, LiveConfig};

use super::{Source, SourceContext};
use crate::error::Result;

/// Packet capture settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    /// Off by default: capture needs CAP_NET_RAW and a build with the `live` feature.
    pub enabled: bool,
    /// Interface to capture on (`any` for all).
    pub interface: String,
    /// Promiscuous mode (needs CAP_NET_ADMIN too).
    pub promiscuous: bool,
    /// A BPF filter, e.g. `not port 22`.
    pub bpf_filter: Option<String>,
    /// Bytes kept per packet.
    pub snaplen: i32,
    /// A flow without packets for this long is reported.
    pub idle_timeout_secs: u64,
    /// A flow longer than this is reported and continues as a new one.
    pub active_timeout_secs: u64,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            enabled: false,
            interface: "any".into(),
            promiscuous: false,
            bpf_filter: None,
            snaplen: 65535,
            idle_timeout_secs: 60,
            active_timeout_secs: 300,
        }
    }
}

impl CaptureConfig {
    fn flow_config(&self) -> FlowConfig {
        FlowConfig {
            idle_timeout: Some(Duration::from_secs(self.idle_timeout_secs.max(1))),
            active_timeout: Some(Duration::from_secs(self.active_timeout_secs.max(1))),
            ..FlowConfig::default()
        }
    }
}

/// The capture source.
pub struct CaptureSource {
    config: CaptureConfig,
}

impl CaptureSource {
    pub fn new(config: CaptureConfig) -> Self {
        CaptureSource { config }
    }
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// How long one read of the capture waits for a packet: the capture thread notices `stop`
/// (and ends idle flows) at least this often, with or without traffic.
const READ_TIMEOUT_MS: i32 = 250;

/// How often idle flows are ended while capturing.
const EXPIRE_EVERY: Duration = Duration::from_secs(1);

/// How often the packet counters are logged (at debug level).
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Sends the finished flows' events; false when the receiver is gone.
fn ship_finished(table: &mut FlowTable, tx: &mpsc::Sender<Json>, reported: &mut u64) -> bool {
    for flow in table.drain_finished() {
        *reported += 1;
        for ev in vigil_net::events::flow_events(&flow) {
            if tx.blocking_send(ev).is_err() {
                return false;
            }
        }
    }
    true
}

/// Captures until `stop` is set (or the receiver is gone); sends each finished flow's events.
fn capture_loop(
    cfg: CaptureConfig,
    tx: mpsc::Sender<Json>,
    stop: Arc<AtomicBool>,
) -> std::result::Result<(), String> {
    let live = LiveConfig {
        interface: cfg.interface.clone(),
        promiscuous: cfg.promiscuous,
        snaplen: cfg.snaplen,
        filter: cfg.bpf_filter.clone(),
        read_timeout_ms: READ_TIMEOUT_MS,
    };
    let mut capture = LiveCapture::open(&live).map_err(|e| e.to_string())?;
    tracing::info!(
        interface = %cfg.interface,
        filter = cfg.bpf_filter.as_deref().unwrap_or("(none)"),
        promiscuous = cfg.promiscuous,
        link = capture.link().0,
        "packet capture opened"
    );
    let mut table = FlowTable::new(cfg.flow_config());
    let mut reported = 0u64;
    let mut last_expire = Instant::now();
    let mut last_log = Instant::now();
    while !stop.load(Ordering::Relaxed) && !tx.is_closed() {
        match capture.next_packet() {
            Ok(Some(p)) => table.add_packet(&p),
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
        if last_expire.elapsed() >= EXPIRE_EVERY {
            // Packet timestamps are wall-clock time: end flows idle since by the same clock.
            table.expire(now_ns());
            last_expire = Instant::now();
            if !ship_finished(&mut table, &tx, &mut reported) {
                return Ok(());
            }
        }
        if last_log.elapsed() >= LOG_EVERY {
            log_counters(&cfg.interface, &table, reported);
            last_log = Instant::now();
        }
    }
    table.flush();
    ship_finished(&mut table, &tx, &mut reported);
    log_counters(&cfg.interface, &table, reported);
    tracing::info!(interface = %cfg.interface, "packet capture closed");
    Ok(())
}

fn log_counters(interface: &str, table: &FlowTable, reported: u64) {
    let s = table.stats();
    tracing::debug!(
        interface,
        packets = s.packets,
        flow_packets = s.flow_packets,
        not_ip = s.not_ip,
        malformed = s.malformed,
        unsupported_link = s.unsupported_link,
        flows = s.flows,
        active_flows = table.active(),
        flows_reported = reported,
        "packet capture counters"
    );
}

/// Sets the capture thread's stop flag when dropped: also when the source's task is
/// cancelled rather than stopped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[async_trait]
impl Source for CaptureSource {
    fn name(&self) -> &'static str {
        "capture"
    }

    async fn run(self: Box<Self>, mut ctx: SourceContext) -> Result<()> {
        let (tx, mut rx) = mpsc::channel::<Json>(1024);
        let stop = Arc::new(AtomicBool::new(false));
        let cfg = self.config.clone();
        let thread_stop = stop.clone();
        let _guard = StopOnDrop(stop.clone());
        // A thread of its own, not `spawn_blocking`: a runtime torn down without a shutdown
        // (a panicking test, say) waits for its blocking tasks, and would wait for a capture
        // nobody stops; this thread ends once it sees the stop flag or the channel closed.
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("vigil-capture".into())
            .spawn(move || {
                let _ = done_tx.send(capture_loop(cfg, tx, thread_stop));
            })
            .map_err(|e| crate::error::Error::Capture(format!("starting the thread: {e}")))?;
        loop {
            tokio::select! {
                ev = rx.recv() => match ev {
                    Some(mut ev) => {
                        ctx.host.stamp(&mut ev);
                        if !ctx.events.send(ev, None).await {
                            break;
                        }
                    }
                    None => break,
                },
                _ = ctx.shutdown.wait() => {
                    stop.store(true, Ordering::Relaxed);
                    // Drain what the capture thread flushes on its way out.
                    while let Some(mut ev) = rx.recv().await {
                        ctx.host.stamp(&mut ev);
                        if !ctx.events.send(ev, None).await {
                            break;
                        }
                    }
                    break;
                }
            }
        }
        // The capture thread may still be running (the shipper went away): stop it, and
        // let a send it is blocked in fail.
        stop.store(true, Ordering::Relaxed);
        drop(rx);
        match done_rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::warn!(interface = %self.config.interface, error = %e, "packet capture is off");
                Ok(())
            }
            Err(_) => Err(crate::error::Error::Capture(
                "the capture thread panicked".into(),
            )),
        }
    }
}

/// `vigil-agent capture --read FILE`: a capture file's events, as the live source would
/// produce them (flows, DNS, HTTP, TLS), without timeouts cutting flows.
pub fn read_file(
    path: &std::path::Path,
) -> std::result::Result<(Vec<Json>, Option<String>), String> {
    let summary =
        vigil_net::summarize_file(path, &FlowConfig::no_timeouts()).map_err(|e| e.to_string())?;
    Ok((summary.events, summary.error.map(|e| e.to_string())))
}
