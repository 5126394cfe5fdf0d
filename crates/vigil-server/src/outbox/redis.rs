//! Fan-out across replicas over Redis pub/sub (`[redis] url`).
//!
//! The dispatcher of whichever replica claimed an outbox batch PUBLISHes each event (the
//! [`AlertEvent`] JSON) on `{prefix}:{org}:alerts`; every replica runs one subscriber
//! (PSUBSCRIBE `{prefix}:*:alerts`) that delivers what it hears into its own [`LiveHub`],
//! its own publications included. So a stream client on any replica sees every event once,
//! whichever replica wrote or dispatched it.
//!
//! Pub/sub keeps nothing: an event published while a subscriber is disconnected does not
//! reach that replica's hub. The subscriber reconnects by itself (backoff 250 ms doubling
//! to 5 s) and stream clients resume from the outbox by cursor, so they lose nothing
//! either. A failed PUBLISH fails the dispatch round and the batch is dispatched again.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;
use vigil_core::AlertEvent;

use super::{Fanout, LiveHub};

/// The channel of `org`'s events.
pub fn channel(prefix: &str, org: uuid::Uuid) -> String {
    format!("{prefix}:{org}:alerts")
}

/// PUBLISHes dispatched events to every replica.
pub struct RedisFanout {
    conn: ConnectionManager,
    prefix: String,
}

impl RedisFanout {
    pub fn new(conn: ConnectionManager, prefix: &str) -> Self {
        Self {
            conn,
            prefix: prefix.to_owned(),
        }
    }
}

#[async_trait::async_trait]
impl Fanout for RedisFanout {
    async fn publish(&self, events: &[AlertEvent]) -> anyhow::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for e in events {
            pipe.cmd("PUBLISH")
                .arg(channel(&self.prefix, e.org_id))
                .arg(serde_json::to_string(e)?)
                .ignore();
        }
        let mut conn = self.conn.clone();
        let () = pipe
            .query_async(&mut conn)
            .await
            .context("redis: PUBLISH alert events")?;
        Ok(())
    }
}

/// Delivers every replica's published events into `hub`.
pub struct RedisSubscriber {
    client: redis::Client,
    pattern: String,
    hub: Arc<LiveHub>,
}

impl RedisSubscriber {
    pub fn new(url: &str, prefix: &str, hub: Arc<LiveHub>) -> anyhow::Result<Self> {
        Ok(Self {
            client: redis::Client::open(url).map_err(|e| anyhow::anyhow!("redis.url: {e}"))?,
            pattern: format!("{prefix}:*:alerts"),
            hub,
        })
    }

    async fn subscribe(&self) -> anyhow::Result<redis::aio::PubSub> {
        let mut pubsub =
            tokio::time::timeout(Duration::from_secs(5), self.client.get_async_pubsub())
                .await
                .context("redis: connecting the subscriber timed out")?
                .context("redis: connecting the subscriber")?;
        pubsub
            .psubscribe(&self.pattern)
            .await
            .context("redis: PSUBSCRIBE")?;
        Ok(pubsub)
    }

    /// Subscribes (so no event published after this returns is missed), then spawns the
    /// task that delivers into the hub until `shutdown`, reconnecting with backoff.
    pub async fn start(
        self,
        shutdown: CancellationToken,
    ) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let first = self.subscribe().await?;
        tracing::info!(
            pattern = self.pattern,
            "subscribed to alert events of every replica"
        );
        Ok(tokio::spawn(self.run(first, shutdown)))
    }

    async fn run(self, first: redis::aio::PubSub, shutdown: CancellationToken) {
        let mut pubsub = Some(first);
        let mut backoff = Duration::from_millis(250);
        loop {
            let Some(mut ps) = pubsub.take() else {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                match self.subscribe().await {
                    Ok(ps) => {
                        tracing::info!(pattern = self.pattern, "alert event subscription restored");
                        backoff = Duration::from_millis(250);
                        pubsub = Some(ps);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "alert event subscription down");
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
                continue;
            };
            let mut messages = ps.on_message();
            loop {
                let msg = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    m = messages.next() => m,
                };
                let Some(msg) = msg else {
                    tracing::warn!("alert event subscription lost; reconnecting");
                    break;
                };
                match serde_json::from_slice::<AlertEvent>(msg.get_payload_bytes()) {
                    Ok(e) => self.hub.deliver(Arc::new(e)),
                    Err(e) => tracing::warn!(
                        error = %e,
                        channel = msg.get_channel_name(),
                        "alert event from Redis not understood; skipped"
                    ),
                }
            }
        }
    }
}
