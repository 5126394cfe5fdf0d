//! Packet capture (`[capture]`): live packets from an interface through libpcap (built with
//! the `live` feature), turned into flow, DNS, HTTP and TLS events by `vigil-net`. Capture
//! runs on its own blocking thread; finished flows are handed to the shipper like any
//! other events. Without the `live` feature, or without CAP_NET_RAW, the source says so
//! once and stops; the rest of the agent goes on.

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

/// Captures until `stop` is set; sends each finished flow's events.
fn capture_loop(
    cfg: CaptureConfig,
    tx: mpsc::Sender<Json>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::result::Result<(), String> {
    let live = LiveConfig {
        interface: cfg.interface.clone(),
        promiscuous: cfg.promiscuous,
        snaplen: cfg.snaplen,
        filter: cfg.bpf_filter.clone(),
        read_timeout_ms: 250,
    };
    let mut capture = LiveCapture::open(&live).map_err(|e| e.to_string())?;
    let mut table = FlowTable::new(cfg.flow_config());
    let mut last_expire = Instant::now();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        match capture.next_packet() {
            Ok(Some(p)) => table.add_packet(&p),
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
        if last_expire.elapsed() >= Duration::from_secs(1) {
            table.expire(now_ns());
            last_expire = Instant::now();
            for flow in table.drain_finished() {
                for ev in vigil_net::events::flow_events(&flow) {
                    if tx.blocking_send(ev).is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
    table.flush();
    for flow in table.drain_finished() {
        for ev in vigil_net::events::flow_events(&flow) {
            if tx.blocking_send(ev).is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

#[async_trait]
impl Source for CaptureSource {
    fn name(&self) -> &'static str {
        "capture"
    }

    async fn run(self: Box<Self>, mut ctx: SourceContext) -> Result<()> {
        let (tx, mut rx) = mpsc::channel::<Json>(1024);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cfg = self.config.clone();
        let thread_stop = stop.clone();
        let worker = tokio::task::spawn_blocking(move || capture_loop(cfg, tx, thread_stop));
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
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
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
        match worker.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::warn!(interface = %self.config.interface, error = %e, "packet capture is off");
                Ok(())
            }
            Err(e) => Err(crate::error::Error::Transport(format!(
                "capture thread: {e}"
            ))),
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
