//! The outbox sink: every event × every enabled endpoint of its org whose filters match →
//! one delivery row. Idempotent (unique (endpoint, event)), so the dispatcher may hand the
//! same events over again after a crash.

use uuid::Uuid;
use vigil_core::{AlertEvent, Severity};
use vigil_store::NewWebhookDelivery;

use super::{Webhooks, matches};

/// What the sink needs of an outbox event: the fields filters look at, and the body.
#[derive(Debug, Clone)]
pub struct WebhookEvent {
    pub id: Uuid,
    pub seq: i64,
    pub org_id: Uuid,
    /// `alert.created`, ...
    pub kind: String,
    pub alert_id: Uuid,
    pub severity: Severity,
    pub source: String,
    pub tags: Vec<String>,
    /// The event's JSON (schema v1), sent as the request body.
    pub payload: String,
}

impl WebhookEvent {
    /// The view of an outbox event; its JSON is the body.
    pub fn from_alert_event(e: &AlertEvent) -> anyhow::Result<Self> {
        Ok(Self {
            id: e.id,
            seq: e.seq,
            org_id: e.org_id,
            kind: e.kind.as_str().to_string(),
            alert_id: e.alert.id,
            severity: e.alert.severity,
            source: e.alert.source.as_str().to_string(),
            tags: e.alert.tags.clone(),
            payload: serde_json::to_string(e)?,
        })
    }
}

/// Turns outbox events into deliveries.
#[derive(Clone)]
pub struct WebhookSink {
    webhooks: Webhooks,
}

impl WebhookSink {
    pub fn new(webhooks: Webhooks) -> Self {
        Self { webhooks }
    }

    /// Writes the deliveries of `events`; returns how many were new.
    pub async fn accept_events(&self, events: &[WebhookEvent]) -> anyhow::Result<u64> {
        if events.is_empty() {
            return Ok(0);
        }
        let store = self.webhooks.store();
        let endpoints = store.enabled_endpoints().await?;
        if endpoints.is_empty() {
            return Ok(0);
        }
        let mut rows = Vec::new();
        for ev in events {
            for ep in endpoints.iter().filter(|ep| matches(ep, ev)) {
                rows.push(NewWebhookDelivery {
                    org_id: ev.org_id,
                    endpoint_id: ep.id,
                    event_id: ev.id,
                    alert_id: ev.alert_id,
                    seq: ev.seq,
                    kind: ev.kind.clone(),
                    payload: ev.payload.clone(),
                });
            }
        }
        let new = store.insert_deliveries(&rows).await?;
        if new > 0 {
            self.webhooks.wake();
        }
        Ok(new)
    }
}

#[async_trait::async_trait]
impl crate::outbox::OutboxSink for WebhookSink {
    fn name(&self) -> &'static str {
        "webhooks"
    }

    async fn accept(&self, events: &[AlertEvent]) -> anyhow::Result<()> {
        let events = events
            .iter()
            .map(WebhookEvent::from_alert_event)
            .collect::<anyhow::Result<Vec<_>>>()?;
        self.accept_events(&events).await.map(|_| ())
    }
}
