//! The JSON messages of the stream, both ways. Server frames are the same on WebSocket (one
//! text message each) and SSE (`event: <type>`, `data: <frame>`, and `id: <cursor>` on
//! alert frames).

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vigil_core::AlertEvent;

use super::filter::StreamFilter;

/// A cursor: an outbox sequence number, as a string (`"1042"`).
pub fn cursor(seq: i64) -> String {
    seq.to_string()
}

/// Parses a cursor given by a client (`after=`, `Last-Event-ID`, `subscribe.after`).
pub fn parse_cursor(s: &str) -> Result<i64, String> {
    s.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| {
            format!(
                "cursor '{}' is not a non-negative integer (take it from a frame's cursor)",
                s.chars().take(32).collect::<String>()
            )
        })
}

/// A frame the server sends.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// An alert changed. `event` is the webhook document (schema v1); `cursor` resumes the
    /// stream after this event (`after=<cursor>`). Delivery is at least once: a frame may
    /// repeat around a reconnect, deduplicate on `event.id`.
    Alert {
        cursor: String,
        #[schema(value_type = AlertEvent)]
        event: Arc<AlertEvent>,
    },
    /// Frames were skipped: the client fell behind (`lagged`), more events were missed than
    /// a reconnect replays (`replay_limit`), or they could not be read (`replay_failed`).
    /// Reload what you show (`GET /api/v1/alerts`); the stream goes on live after `cursor`.
    Resync {
        cursor: String,
        reason: ResyncReason,
    },
    /// The subscription is active (after any replay); live frames follow. `cursor` is where
    /// the stream stands.
    Ready { cursor: String },
    /// Answer to a client `ping` message.
    Pong,
    /// A client message was refused (`invalid_message`, `invalid_filter`, `busy`: subscribe
    /// messages sent faster than they are served); the connection and the previous
    /// subscription stay.
    Error { code: &'static str, message: String },
    /// SSE only, last: why the stream ends (WebSocket sends a close frame with the same
    /// code and reason).
    Close { code: u16, reason: &'static str },
}

/// Why a `resync` frame was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResyncReason {
    Lagged,
    ReplayLimit,
    ReplayFailed,
}

impl ServerFrame {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Alert { .. } => "alert",
            Self::Resync { .. } => "resync",
            Self::Ready { .. } => "ready",
            Self::Pong => "pong",
            Self::Error { .. } => "error",
            Self::Close { .. } => "close",
        }
    }

    pub fn to_text(&self) -> Utf8Bytes {
        // Serialising these types cannot fail (string keys, no maps with other keys).
        Utf8Bytes::from(serde_json::to_string(self).unwrap_or_default())
    }
}

/// A message a WebSocket client sends.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Starts (or replaces) the subscription. `after`: replay the events after this cursor
    /// first (also `?after=` on the URL).
    Subscribe {
        #[serde(default)]
        filter: StreamFilter,
        #[serde(default)]
        after: Option<String>,
    },
    /// Answered with a `pong` frame (browsers cannot send WebSocket pings).
    Ping,
}
