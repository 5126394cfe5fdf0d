//! The live alert stream: `GET /api/v1/stream` as a WebSocket, or as Server-Sent Events with
//! `Accept: text/event-stream` (handlers and OpenAPI in `api/stream.rs`; protocol for
//! clients in `docs/STREAM.md`).
//!
//! ```text
//!  outbox ─► OutboxDispatcher ─► Fanout ─► LiveHub (broadcast of Arc<AlertEvent>, outbox/hub.rs)
//!                                              │ one task: encode each event's alert frame once
//!                                              ▼
//!                                  StreamHub (broadcast of Arc<Encoded>)
//!              ┌───────────────────────────────┼──── one receiver per client
//!              ▼                               ▼
//!   client pump (client.rs): org, filter, replay from OutboxStore::after, session checks,
//!              │ bounded mpsc (stream.client_buffer); full → frames dropped, one `resync`
//!              ▼
//!   writer: ws.rs (text frames, pings, client messages) │ sse.rs (events, keep-alive comments)
//! ```
//!
//! Memory per client is bounded: the broadcast rings are shared, a client's own queue holds
//! at most `client_buffer` frames (pointers to the shared encoded text), and a client that
//! falls further behind gets a `resync` frame instead (so does one whose broadcast receiver
//! lagged). A stream closes when its session ends or its user is disabled (checked every
//! `stream.auth_check_secs`, and at once when this process ends sessions), and at shutdown.
//!
//! Close codes (WebSocket close frame; SSE: a last `close` event with the same fields):
//!
//! | code | reason | when |
//! |---|---|---|
//! | 1001 | `server shutting down` | the server stops (reconnect elsewhere with `after=`) |
//! | 4001 | `session ended` | logout, revocation, password or role change, session expiry |
//! | 4003 | `user disabled` | the user was disabled or deleted |

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use vigil_core::AlertEvent;

mod client;
pub mod config;
pub mod filter;
pub mod frame;
pub(crate) mod sse;
pub(crate) mod ws;

pub use config::StreamConfig;
pub use filter::StreamFilter;
pub use frame::{ClientMessage, ResyncReason, ServerFrame};

/// Why the server ends a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseReason {
    pub code: u16,
    pub reason: &'static str,
}

pub const CLOSE_SHUTDOWN: CloseReason = CloseReason {
    code: 1001,
    reason: "server shutting down",
};
pub const CLOSE_SESSION_ENDED: CloseReason = CloseReason {
    code: 4001,
    reason: "session ended",
};
pub const CLOSE_USER_DISABLED: CloseReason = CloseReason {
    code: 4003,
    reason: "user disabled",
};
pub const CLOSE_INTERNAL: CloseReason = CloseReason {
    code: 1011,
    reason: "internal error",
};

/// An event with its alert frame, encoded once for every client.
#[derive(Debug)]
pub struct Encoded {
    pub event: Arc<AlertEvent>,
    /// `{"type":"alert","cursor":"<seq>","event":{...}}`
    pub frame: Utf8Bytes,
}

impl Encoded {
    pub fn new(event: Arc<AlertEvent>) -> Self {
        let frame = ServerFrame::Alert {
            cursor: frame::cursor(event.seq),
            event: event.clone(),
        }
        .to_text();
        Self { event, frame }
    }
}

/// What the stream hub broadcasts.
#[derive(Debug, Clone)]
pub(crate) enum Item {
    Event(Arc<Encoded>),
    /// The hub itself fell behind the live hub: every client resyncs.
    Gap,
}

/// Broadcasts encoded events to the stream clients of this process.
pub struct StreamHub {
    tx: broadcast::Sender<Item>,
}

impl StreamHub {
    /// Starts the encoding task on `live`'s events; it ends with `shutdown`.
    pub fn start(
        live: &crate::outbox::LiveHub,
        capacity: usize,
        shutdown: CancellationToken,
    ) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let (tx, _) = broadcast::channel(capacity.max(16));
        let hub = Arc::new(Self { tx: tx.clone() });
        let mut rx = live.subscribe();
        let task = tokio::spawn(async move {
            loop {
                let got = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    got = rx.recv() => got,
                };
                match got {
                    // No client, no encoding.
                    Ok(_) if tx.receiver_count() == 0 => {}
                    Ok(event) => {
                        let _ = tx.send(Item::Event(Arc::new(Encoded::new(event))));
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(skipped = n, "stream hub fell behind the live hub");
                        let _ = tx.send(Item::Gap);
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        (hub, task)
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Item> {
        self.tx.subscribe()
    }

    /// Connected clients (subscribed receivers) of this process.
    pub fn clients(&self) -> usize {
        self.tx.receiver_count()
    }
}
