//! `[stream]`: the live alert stream (`GET /api/v1/stream`).

use serde::{Deserialize, Serialize};

/// The live alert stream: tickets, buffers, pings and session checks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    /// How long a ticket from `POST /api/v1/stream/ticket` can open a stream, seconds
    /// (each ticket opens one).
    pub ticket_ttl_secs: u64,
    /// Frames one client may have waiting; a client further behind gets a `resync` frame
    /// instead of more buffering.
    pub client_buffer: usize,
    /// Seconds between pings (WebSocket ping frames, SSE comments).
    pub ping_secs: u64,
    /// Most events a reconnecting client (`after=<cursor>`) is sent from the database; more
    /// missed than this: a `resync` frame.
    pub replay_limit: u32,
    /// How often an open stream re-checks its session and user, seconds (sessions ended
    /// through this server are noticed at once).
    pub auth_check_secs: u64,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            ticket_ttl_secs: 30,
            client_buffer: 256,
            ping_secs: 20,
            replay_limit: 1000,
            auth_check_secs: 5,
        }
    }
}

impl StreamConfig {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.ticket_ttl_secs == 0
            || self.client_buffer == 0
            || self.ping_secs == 0
            || self.replay_limit == 0
            || self.auth_check_secs == 0
        {
            return Err(
                "stream.ticket_ttl_secs, client_buffer, ping_secs, replay_limit and \
                 auth_check_secs must be > 0"
                    .into(),
            );
        }
        Ok(())
    }
}
