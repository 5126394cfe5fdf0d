//! The live stream's state: one-time tickets that open `GET /api/v1/stream` without a JWT
//! in the URL. Its own trait like [`crate::MlStore`]; the SQL implementation is
//! `common_stream.rs`, compiled for each backend. Tickets live in the database so a ticket
//! issued by one replica opens the stream on another; only their SHA-256 is kept.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::Result;

/// A ticket to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewStreamTicket {
    /// SHA-256 of the ticket text.
    pub token_hash: Vec<u8>,
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub org_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Whom a redeemed ticket was issued to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamTicket {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub org_id: Uuid,
}

/// Where stream tickets are kept.
#[async_trait::async_trait]
pub trait StreamStore: Send + Sync + 'static {
    /// Stores a ticket, and deletes the tickets that expired before its creation.
    async fn create_ticket(&self, ticket: NewStreamTicket) -> Result<()>;
    /// Marks the ticket used and says whom it was issued to, when it exists, was never used
    /// and has not expired at `now`; `None` otherwise. One statement, so of two concurrent
    /// redemptions (on any replicas) exactly one gets the ticket.
    async fn redeem_ticket(
        &self,
        token_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<StreamTicket>>;
}
