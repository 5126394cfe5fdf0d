//! How batches and heartbeats reach the server.
//!
//! [`Transport`] is the seam between the agent and the server: [`HttpTransport`] speaks the
//! HTTP contract (`POST /api/v1/ingest/events`, gzip, Bearer credential); a server that embeds
//! the agent can implement it in-process. Outcomes are classified here once ([`SendOutcome`])
//! so the shipper's retry logic does not depend on HTTP.

mod http;

pub use http::{HttpTransport, register};

use std::io::{Read, Write};
use std::time::Duration;

use async_trait::async_trait;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use uuid::Uuid;
use vigil_core::event::{Heartbeat, IngestBatch, IngestReceipt};

use crate::error::{Error, Result};

/// A batch ready to send: its id, event count and gzip-compressed JSON `IngestBatch` body.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedBatch {
    pub batch_id: Uuid,
    pub event_count: u32,
    pub gzip_body: Vec<u8>,
}

impl EncodedBatch {
    /// Encodes already-serialized events (each a JSON object) as one gzip body.
    pub fn encode(batch_id: Uuid, events: &[Vec<u8>]) -> Result<Self> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        let gz = |e: std::io::Error| Error::Transport(format!("gzip: {e}"));
        write!(enc, "{{\"batch_id\":\"{batch_id}\",\"events\":[").map_err(gz)?;
        for (i, ev) in events.iter().enumerate() {
            if i > 0 {
                enc.write_all(b",").map_err(gz)?;
            }
            enc.write_all(ev).map_err(gz)?;
        }
        enc.write_all(b"]}").map_err(gz)?;
        Ok(EncodedBatch {
            batch_id,
            event_count: events.len() as u32,
            gzip_body: enc.finish().map_err(gz)?,
        })
    }

    /// Decompresses and parses the body (in-process transports, splitting a batch).
    pub fn decode(&self) -> Result<IngestBatch> {
        let mut json = Vec::new();
        GzDecoder::new(&self.gzip_body[..])
            .read_to_end(&mut json)
            .map_err(|e| Error::Transport(format!("gunzip batch {}: {e}", self.batch_id)))?;
        Ok(serde_json::from_slice(&json)?)
    }
}

/// What happened to one send, already classified for the retry logic.
#[derive(Debug, Clone, PartialEq)]
pub enum SendOutcome {
    /// 2xx: the server has it (possibly as a duplicate).
    Accepted(Option<IngestReceipt>),
    /// 429/503/5xx or a connection error: try again later, after `after` when the server said.
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// 401: the credential is not (or no longer) valid. Stop sending.
    Unauthorized(String),
    /// 413: the batch is too big; split it.
    TooLarge,
    /// Any other 4xx: the server will never take this batch; drop it.
    Rejected { status: u16, message: String },
}

/// Sends batches and heartbeats to a Vigil server.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Sends one batch; the same `batch_id` is used on every retry.
    async fn send_batch(&self, batch: &EncodedBatch) -> SendOutcome;
    /// Sends a heartbeat (liveness + latest metrics).
    async fn heartbeat(&self, heartbeat: &Heartbeat) -> SendOutcome;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let id = Uuid::new_v4();
        let events = vec![br#"{"a":1}"#.to_vec(), br#"{"message":"x"}"#.to_vec()];
        let b = EncodedBatch::encode(id, &events).unwrap();
        let back = b.decode().unwrap();
        assert_eq!(back.batch_id, id);
        assert_eq!(back.events.len(), 2);
        assert_eq!(back.events[1]["message"], "x");
        let bad = EncodedBatch {
            gzip_body: b"not gzip".to_vec(),
            ..b
        };
        assert!(bad.decode().is_err());
    }
}
