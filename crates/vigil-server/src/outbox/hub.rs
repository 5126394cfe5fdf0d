//! In-process delivery of alert events: the [`LiveHub`] broadcast that stream clients
//! subscribe to, the [`Fanout`] that carries dispatched events to every replica's hub, and
//! the [`OutboxSink`]s (webhooks, ...) the dispatcher hands each batch to.

use std::sync::Arc;

use tokio::sync::broadcast;
use vigil_core::AlertEvent;

/// One broadcast of alert events in this process. A receiver that falls more than
/// `capacity` events behind gets `RecvError::Lagged` (the stream answers with a resync)
/// instead of the hub buffering without bound.
pub struct LiveHub {
    tx: broadcast::Sender<Arc<AlertEvent>>,
}

impl LiveHub {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self { tx }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<AlertEvent>> {
        self.tx.subscribe()
    }

    /// Hands the event to every current receiver (none listening is fine).
    pub fn deliver(&self, e: Arc<AlertEvent>) {
        let _ = self.tx.send(e);
    }

    /// Receivers subscribed now.
    pub fn receivers(&self) -> usize {
        self.tx.receiver_count()
    }
}

/// Carries dispatched events to the hubs that should see them: this process's only
/// ([`LocalFanout`]), or every replica's through Redis pub/sub.
#[async_trait::async_trait]
pub trait Fanout: Send + Sync {
    async fn publish(&self, events: &[AlertEvent]) -> anyhow::Result<()>;
}

/// The single-process fanout: publishing is delivering into the hub.
pub struct LocalFanout(pub Arc<LiveHub>);

#[async_trait::async_trait]
impl Fanout for LocalFanout {
    async fn publish(&self, events: &[AlertEvent]) -> anyhow::Result<()> {
        // Nobody listening (no stream client): no copies to make.
        if self.0.receivers() == 0 {
            return Ok(());
        }
        for e in events {
            self.0.deliver(Arc::new(e.clone()));
        }
        Ok(())
    }
}

/// A destination that must get every event at least once (webhook deliveries, ...). A
/// batch may come again after an error or a crash, with the same event ids, so `accept`
/// must be idempotent; an error leaves the whole batch undispatched and it is retried on
/// the next round.
#[async_trait::async_trait]
pub trait OutboxSink: Send + Sync {
    fn name(&self) -> &'static str;
    async fn accept(&self, events: &[AlertEvent]) -> anyhow::Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_fanout_delivers_into_every_receiver_of_the_hub() {
        let hub = Arc::new(LiveHub::new(8));
        let mut a = hub.subscribe();
        let mut b = hub.subscribe();
        assert_eq!(hub.receivers(), 2);
        let e: AlertEvent = serde_json::from_value(serde_json::json!({
            "schema": 1, "id": uuid::Uuid::nil(), "seq": 7, "kind": "alert.created",
            "org_id": uuid::Uuid::nil(), "occurred_at": "2026-01-01T00:00:00Z", "actor": "x",
            "alert": {"id": uuid::Uuid::nil(), "alert_id": "A", "org_id": uuid::Uuid::nil(),
                "title": "t", "description": "", "severity": "low", "status": "open",
                "source": "user", "event_type": "generic", "timestamp": "2026-01-01T00:00:00Z",
                "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
                "metadata": {}, "attack_technique_id": null, "confidence_score": null,
                "agent_id": null, "tags": [], "observables": [], "resolution_notes": null,
                "acknowledged_by": null, "acknowledged_at": null, "closed_by": null,
                "closed_at": null},
            "changes": []
        }))
        .unwrap();
        LocalFanout(hub.clone()).publish(&[e]).await.unwrap();
        assert_eq!(a.recv().await.unwrap().seq, 7);
        assert_eq!(b.recv().await.unwrap().seq, 7);
    }
}
