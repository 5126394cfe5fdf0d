//! Vigil's network sensor: capture files in, flow / DNS / HTTP / TLS events out.
//!
//! - [`capture`]: a pure-Rust pcap and pcapng reader (no libpcap needed to read files).
//! - [`decode`]: frames to addresses, ports, TCP flags and payload with `etherparse`.
//! - [`flow`]: the bidirectional flow table with idle/active timeouts and TCP close.
//! - [`dns`], [`http`], [`tls`]: bounded parsers looking at the first bytes of payloads.
//! - [`events`]: flows and transactions as normalized events (`docs/EVENTS.md`).
//! - [`live`]: live capture through libpcap, behind the `live` cargo feature.
//!
//! ```
//! use vigil_net::{FlowConfig, summarize_bytes};
//!
//! // A pcap holding one raw-IPv4 UDP packet 10.0.0.1:5000 -> 10.0.0.2:53.
//! let mut pcap = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
//! pcap.extend(65535u32.to_le_bytes());
//! pcap.extend(101u32.to_le_bytes());
//! let ip = [
//!     0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
//!     0x13, 0x88, 0, 53, 0, 8, 0, 0,
//! ];
//! pcap.extend(1_700_000_000u32.to_le_bytes());
//! pcap.extend(0u32.to_le_bytes());
//! pcap.extend((ip.len() as u32).to_le_bytes());
//! pcap.extend((ip.len() as u32).to_le_bytes());
//! pcap.extend(ip);
//!
//! let summary = summarize_bytes(&pcap, &FlowConfig::default());
//! assert!(summary.error.is_none());
//! let flow = &summary.events[0];
//! assert_eq!(flow["event"]["dataset"], "network.flow");
//! assert_eq!(flow["source"]["ip"], "10.0.0.1");
//! assert_eq!(flow["destination"]["port"], 53);
//! assert_eq!(flow["network"]["transport"], "udp");
//! assert_eq!(flow["network"]["bytes"], 28);
//! assert_eq!(flow["@timestamp"], "2023-11-14T22:13:20.000000Z");
//! ```

pub mod capture;
pub mod decode;
pub mod dns;
mod error;
pub mod events;
pub mod flow;
pub mod http;
pub mod live;
pub mod tls;

use std::path::Path;

use serde_json::Value as Json;

pub use capture::{CaptureReader, LinkType, Packet};
pub use error::{Error, Result};
pub use flow::{Flow, FlowConfig, FlowKey, FlowTable, TableStats};
pub use live::{LiveCapture, LiveConfig};

/// What a capture held.
#[derive(Debug)]
pub struct Summary {
    /// Per flow (in the order flows ended): its `network.flow` event, then its DNS, HTTP
    /// and TLS events.
    pub events: Vec<Json>,
    /// Flows found.
    pub flows: usize,
    pub stats: TableStats,
    /// The reading error that stopped the capture early; everything before it is counted.
    pub error: Option<Error>,
}

/// Reads every packet of a capture in memory through a flow table set up by `cfg`, then
/// ends the remaining flows. A reading error stops reading and is returned beside the
/// flows of the packets read before it.
pub fn read_flows(data: &[u8], cfg: &FlowConfig) -> (Vec<Flow>, TableStats, Option<Error>) {
    let mut table = FlowTable::new(cfg.clone());
    let mut flows = Vec::new();
    let mut error = None;
    match CaptureReader::new(data) {
        Ok(reader) => {
            for packet in reader {
                match packet {
                    Ok(p) => table.add_packet(&p),
                    Err(e) => error = Some(e),
                }
                flows.extend(table.drain_finished());
            }
        }
        Err(e) => error = Some(e),
    }
    table.flush();
    flows.extend(table.drain_finished());
    (flows, table.stats(), error)
}

/// The events of a capture in memory (see [`read_flows`]).
pub fn summarize_bytes(data: &[u8], cfg: &FlowConfig) -> Summary {
    let (flows, stats, error) = read_flows(data, cfg);
    Summary {
        events: flows.iter().flat_map(events::flow_events).collect(),
        flows: flows.len(),
        stats,
        error,
    }
}

/// The events of a capture file: what `vigil-agent capture --read FILE` prints. Fails when
/// the file cannot be read or is no capture at all; a capture damaged later gives the
/// events before the damage and the error in [`Summary::error`] (with the path).
pub fn summarize_file(path: &Path, cfg: &FlowConfig) -> Result<Summary> {
    let data = capture::read_file(path)?;
    CaptureReader::new(&data).map_err(|e| Error::InFile {
        path: path.to_path_buf(),
        source: Box::new(e),
    })?;
    let mut summary = summarize_bytes(&data, cfg);
    summary.error = summary.error.map(|e| Error::InFile {
        path: path.to_path_buf(),
        source: Box::new(e),
    });
    Ok(summary)
}
