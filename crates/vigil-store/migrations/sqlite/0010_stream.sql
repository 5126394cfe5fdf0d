-- One-time tickets for opening the live stream (`POST /api/v1/stream/ticket`): a browser
-- cannot put an Authorization header on a WebSocket, and a JWT in the URL ends up in logs.
-- Kept in the database, not in memory, so a ticket issued by one replica opens the stream on
-- another. Only the SHA-256 of the ticket is stored. Keep in step with the other backend's
-- 0010_stream.sql.
CREATE TABLE stream_tickets (
    token_hash  BLOB PRIMARY KEY,
    user_id     BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    session_id  BLOB NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    org_id      BLOB NOT NULL REFERENCES organizations(id),
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    -- Set when the ticket opened a stream; a used ticket never opens another.
    used_at     TEXT
);
CREATE INDEX stream_tickets_expires ON stream_tickets(expires_at);
