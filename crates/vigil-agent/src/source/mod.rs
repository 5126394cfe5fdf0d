//! Event sources: anything that produces events for the shipper.
//!
//! A [`Source`] runs until the shared shutdown signal fires and pushes [`Record`]s through an
//! [`EventSender`]. A record may carry an [`Ack`]: the shipper calls its [`AckSink`] once the
//! batch holding the record is durable (accepted by the server or written to the disk buffer),
//! which is how the log tailer persists offsets without losing or re-sending a line.
//! Packet capture (`vigil-net`) or any other sensor plugs in by implementing [`Source`].

pub mod capture;
pub mod metrics;
pub mod process;
pub mod tail;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value as Json;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::error::Result;

/// Receives progress once the records carrying it are durable.
pub trait AckSink: Send + Sync + 'static {
    /// `acks` are `(key, position)` pairs, at most one per key: the highest position whose
    /// record is durable. Called in the order records were sent.
    fn commit(&self, acks: &[(u64, u64)]);
}

/// A position to commit once a record is durable.
#[derive(Clone)]
pub struct Ack {
    pub sink: Arc<dyn AckSink>,
    pub key: u64,
    pub position: u64,
}

/// One event and, optionally, what to acknowledge when it is durable.
pub struct Record {
    pub event: Json,
    pub ack: Option<Ack>,
}

/// The shipper's inbox; cloned into every source.
#[derive(Clone)]
pub struct EventSender {
    tx: mpsc::Sender<Record>,
}

impl EventSender {
    pub(crate) fn new(tx: mpsc::Sender<Record>) -> Self {
        EventSender { tx }
    }

    /// Sends an event, waiting when the shipper is behind. False when the shipper is gone.
    pub async fn send(&self, event: Json, ack: Option<Ack>) -> bool {
        self.tx.send(Record { event, ack }).await.is_ok()
    }
}

/// A cloneable shutdown signal: `wait()` returns once shutdown was requested.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    /// A signal and the sender that fires it.
    pub fn new() -> (watch::Sender<bool>, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (tx, Shutdown { rx })
    }

    /// True once shutdown was requested.
    pub fn is_requested(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves when shutdown is requested (or the sender is dropped).
    pub async fn wait(&mut self) {
        let _ = self.rx.wait_for(|v| *v).await;
    }

    /// Sleeps for `d` or until shutdown; true when shutdown was requested.
    pub async fn sleep(&mut self, d: std::time::Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => self.is_requested(),
            _ = self.wait() => true,
        }
    }
}

/// What every event from this host carries.
#[derive(Debug, Clone)]
pub struct HostInfo {
    pub hostname: String,
    pub agent_id: Uuid,
    pub agent_name: String,
}

impl HostInfo {
    /// Sets `host.name`, `agent.id`, `agent.name` and `host.os.type`.
    pub fn stamp(&self, event: &mut Json) {
        use vigil_core::event::set;
        set(event, "host.name", Json::from(self.hostname.as_str()));
        set(event, "host.os.type", Json::from(std::env::consts::OS));
        set(event, "agent.id", Json::from(self.agent_id.to_string()));
        set(event, "agent.name", Json::from(self.agent_name.as_str()));
    }
}

/// Everything a source gets when it starts.
pub struct SourceContext {
    pub events: EventSender,
    pub shutdown: Shutdown,
    pub host: HostInfo,
}

/// A producer of events, run as its own task until shutdown.
#[async_trait]
pub trait Source: Send + 'static {
    /// A short name for logs (`"tail"`, `"process"`, `"metrics"`, `"capture"`).
    fn name(&self) -> &'static str;
    /// Runs until `ctx.shutdown` fires; returning early is logged (an error as an error).
    async fn run(self: Box<Self>, ctx: SourceContext) -> Result<()>;
}
