//! Outgoing webhooks: from outbox events to signed HTTP requests that are never lost.
//!
//! ```text
//! OutboxDispatcher ─► WebhookSink::accept(events)          (sink.rs; idempotent)
//!        every enabled endpoint of the event's org whose filters match
//!        └─► webhook_deliveries row per (endpoint, event): INSERT ... ON CONFLICT DO NOTHING
//! Scheduler (scheduler.rs; woken by new rows and finished attempts, else every poll_ms)
//!        due endpoints → per endpoint: claim up to its free slots (lease; per-alert order:
//!        a change waits while an earlier change of the same alert is unfinished)
//!        └─► DeliverySubmit::submit (in-process: a task under the endpoint's semaphore;
//!            with a job queue: the `webhook.deliver` job)
//! Webhooks::deliver_one(delivery, lease owner)       (one attempt, the job handler's unit)
//!        lease → decrypt secret → sign + send (vigil_integrations::webhooks) → classify
//!        → record the attempt: delivered | retry at (backoff, Retry-After) | dead (maximum
//!          age) | dead + endpoint disabled (410)
//! ```
//!
//! A crash anywhere repeats work instead of losing it: events stay in the outbox until the
//! sink has written their deliveries, and a delivery whose owner died is claimed again when
//! its lease runs out. Receivers deduplicate on `webhook-id` (the event id).

pub mod config;
pub mod scheduler;
pub mod secrets;
pub mod sink;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;
use vigil_core::Severity;
use vigil_integrations::webhooks::{
    WebhookAttempt, WebhookClient, WebhookOutcome, WebhookRequest, WebhookRetryPolicy,
    WebhookSecret,
};
use vigil_store::{
    DynStore, NewWebhookEndpoint, WebhookAttemptRecord, WebhookEndpoint, WebhookEndpointUpdate,
    WebhookNext, WebhookStore,
};

pub use config::{WebhookEndpointConfig, WebhooksConfig};
pub use scheduler::{DeliveryJob, DeliverySubmit, JobSubmit, LocalSubmit};
pub use secrets::SecretBox;
pub use sink::{WebhookEvent, WebhookSink};

/// Extra time a lease has beyond the endpoint's timeout.
const LEASE_MARGIN: Duration = Duration::from_secs(10);

/// Validated filters of an endpoint.
#[derive(Debug, Clone, Default)]
pub struct EndpointFilters {
    pub min_severity: Option<Severity>,
    pub sources: Vec<String>,
    pub event_kinds: Vec<String>,
}

impl EndpointFilters {
    pub fn parse(
        min_severity: Option<&str>,
        sources: &[String],
        event_kinds: &[String],
    ) -> Result<Self, String> {
        let min_severity = min_severity
            .map(|s| s.parse::<Severity>().map_err(|e| e.to_string()))
            .transpose()?;
        let sources = sources
            .iter()
            .map(|s| {
                s.parse::<vigil_core::AlertSource>()
                    .map(|v| v.as_str().to_string())
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let event_kinds = event_kinds
            .iter()
            .map(|k| {
                k.parse::<vigil_core::AlertEventKind>()
                    .map(|k| k.as_str().to_string())
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            min_severity,
            sources,
            event_kinds,
        })
    }
}

/// `"Name: value"` lines as validated (name, value) pairs.
pub fn parse_header_lines(lines: &[String]) -> Result<Vec<(String, String)>, String> {
    lines
        .iter()
        .map(|l| {
            let (n, v) = l
                .split_once(':')
                .ok_or_else(|| format!("header '{l}' is not 'Name: value'"))?;
            let (n, v) = (n.trim().to_string(), v.trim().to_string());
            vigil_integrations::webhooks::validate_header(&n, &v).map_err(|e| e.to_string())?;
            Ok((n, v))
        })
        .collect()
}

/// Whether an endpoint wants an event.
pub fn matches(e: &WebhookEndpoint, ev: &WebhookEvent) -> bool {
    e.enabled
        && e.org_id == ev.org_id
        && (e.event_kinds.is_empty() || e.event_kinds.contains(&ev.kind))
        && e.min_severity.is_none_or(|m| ev.severity >= m)
        && (e.sources.is_empty() || e.sources.contains(&ev.source))
        && (e.tags.is_empty() || e.tags.iter().any(|t| ev.tags.contains(t)))
}

/// The webhook machinery of one process; cheap to clone.
#[derive(Clone)]
pub struct Webhooks(Arc<Inner>);

struct Inner {
    store: Arc<dyn WebhookStore>,
    client: WebhookClient,
    secrets: SecretBox,
    config: WebhooksConfig,
    policy: WebhookRetryPolicy,
    /// Wakes the scheduler (new deliveries, a finished attempt).
    wake: Arc<tokio::sync::Notify>,
}

/// What `deliver_one` did.
#[derive(Debug, Clone)]
pub enum DeliverOutcome {
    /// Finished, or leased by another owner: nothing to do.
    Skipped,
    Attempted {
        attempt: WebhookAttempt,
        next: WebhookNext,
    },
}

impl DeliverOutcome {
    /// Whether the attempt reached the receiver and was accepted.
    pub fn delivered(&self) -> bool {
        matches!(
            self,
            Self::Attempted {
                next: WebhookNext::Delivered,
                ..
            }
        )
    }
}

impl Webhooks {
    pub fn new(
        store: &DynStore,
        config: &WebhooksConfig,
        jwt_secret: &[u8],
    ) -> anyhow::Result<Self> {
        let client = WebhookClient::new(vigil_integrations::webhooks::WebhookConfig {
            allow_private_destinations: config.allow_private_destinations,
            ..Default::default()
        })?;
        Ok(Self(Arc::new(Inner {
            store: store.webhook_store(),
            client,
            secrets: SecretBox::from_jwt_secret(jwt_secret),
            policy: WebhookRetryPolicy {
                base: Duration::from_millis(config.retry_base_ms),
                max_delay: Duration::from_secs(config.retry_max_secs.max(1)),
                max_age: Duration::from_secs(config.max_age_secs),
            },
            config: config.clone(),
            wake: Arc::new(tokio::sync::Notify::new()),
        })))
    }

    pub fn store(&self) -> &Arc<dyn WebhookStore> {
        &self.0.store
    }

    pub fn config(&self) -> &WebhooksConfig {
        &self.0.config
    }

    pub fn secrets(&self) -> &SecretBox {
        &self.0.secrets
    }

    /// Wakes the scheduler now.
    pub fn wake(&self) {
        self.0.wake.notify_one();
    }

    pub(crate) fn wake_handle(&self) -> Arc<tokio::sync::Notify> {
        self.0.wake.clone()
    }

    /// The request timeout of an endpoint.
    pub fn timeout_of(&self, e: &WebhookEndpoint) -> Duration {
        if e.timeout_ms == 0 {
            Duration::from_secs(self.0.config.default_timeout_secs)
        } else {
            Duration::from_millis(e.timeout_ms)
        }
    }

    /// How long a claim on a delivery of `e` lasts: its timeout plus a margin.
    pub fn lease_of(&self, e: &WebhookEndpoint) -> Duration {
        self.timeout_of(e) + LEASE_MARGIN
    }

    /// The lease a job takes when it does not know the endpoint: the longest timeout allowed
    /// plus the margin.
    pub fn job_lease(&self) -> Duration {
        Duration::from_secs(config::MAX_TIMEOUT_SECS) + LEASE_MARGIN
    }

    /// Checks a URL before it is saved (scheme, host, SSRF guard).
    pub async fn check_destination(
        &self,
        url: &str,
    ) -> Result<(), vigil_integrations::webhooks::WebhookError> {
        self.0.client.check_destination(url).await
    }

    /// One attempt of one delivery, leased to `owner` (the scheduler's claim, or the job's
    /// owner). Records the attempt and moves the delivery on.
    pub async fn deliver_one(&self, id: Uuid, owner: &str) -> anyhow::Result<DeliverOutcome> {
        let store = &self.0.store;
        let now = Utc::now();
        // A job taking a fresh lease does not know the endpoint's timeout yet: the longest
        // allowed. A claim by the scheduler (same owner) keeps its own, if longer.
        let lease = self.job_lease();
        let Some(ctx) = store.lease_delivery(id, owner, lease, now).await? else {
            return Ok(DeliverOutcome::Skipped);
        };
        let span = tracing::info_span!("webhook_delivery", delivery = %id, endpoint = %ctx.endpoint.id,
            event = %ctx.delivery.event_id, attempt = ctx.delivery.attempts + 1);
        tracing::Instrument::instrument(self.attempt(id, owner, ctx), span).await
    }

    /// Attempts more due deliveries of `endpoint`, one at a time, each under a lease of its
    /// own, until none is due, one is not delivered, `max` were made or `budget` has
    /// passed; returns how many.
    /// A `webhook.deliver` job calls it after its own delivery, so a worker keeps its slot
    /// of the endpoint busy without waiting for a replica's next scheduler round.
    pub async fn deliver_due(
        &self,
        endpoint: Uuid,
        max: usize,
        budget: Duration,
    ) -> anyhow::Result<usize> {
        let started = tokio::time::Instant::now();
        let lease = self.job_lease();
        let mut made = 0;
        while made < max && started.elapsed() < budget {
            let owner = format!("chain:{}", Uuid::new_v4().simple());
            let claimed = self
                .0
                .store
                .claim_deliveries(endpoint, &owner, 1, lease, Utc::now())
                .await?;
            let Some(id) = claimed.first() else { break };
            let outcome = self.deliver_one(*id, &owner).await?;
            made += 1;
            // A failing (or gone) endpoint waits for its backoff and the scheduler.
            if !outcome.delivered() {
                break;
            }
        }
        Ok(made)
    }

    /// The attempt of a leased delivery, recorded.
    async fn attempt(
        &self,
        id: Uuid,
        owner: &str,
        ctx: vigil_store::WebhookAttemptContext,
    ) -> anyhow::Result<DeliverOutcome> {
        let store = &self.0.store;
        let attempt = match self.0.secrets.open(ctx.endpoint.org_id, &ctx.secret) {
            Ok(secret) => {
                let timestamp = Utc::now().timestamp();
                self.0
                    .client
                    .send(&WebhookRequest {
                        url: &ctx.endpoint.url,
                        secret: &secret,
                        id: &ctx.delivery.event_id.to_string(),
                        timestamp,
                        body: ctx.payload.as_bytes(),
                        headers: &ctx.endpoint.headers,
                        timeout: self.timeout_of(&ctx.endpoint),
                    })
                    .await
            }
            Err(e) => WebhookAttempt {
                outcome: WebhookOutcome::Failed,
                status: None,
                latency: Duration::ZERO,
                retry_after: None,
                error: Some(e.to_string()),
            },
        };
        let finished = Utc::now();
        let next = match attempt.outcome {
            WebhookOutcome::Delivered => WebhookNext::Delivered,
            WebhookOutcome::Gone => {
                WebhookNext::DisableEndpoint("the receiver answered 410 Gone".into())
            }
            WebhookOutcome::Failed | WebhookOutcome::Refused => self
                .0
                .policy
                .next_attempt(
                    ctx.age_from,
                    finished,
                    ctx.delivery.attempts + 1,
                    attempt.retry_after,
                )
                .map_or(WebhookNext::Dead, WebhookNext::Retry),
        };
        record_metrics(&attempt, &next);
        match &next {
            WebhookNext::Delivered => {
                tracing::debug!(status = ?attempt.status, latency_ms = attempt.latency.as_millis() as u64, "webhook delivered")
            }
            WebhookNext::Retry(at) => {
                tracing::info!(status = ?attempt.status, error = attempt.error.as_deref().unwrap_or(""), next_attempt_at = %at, "webhook attempt failed; will retry")
            }
            WebhookNext::Dead => {
                tracing::warn!(status = ?attempt.status, error = attempt.error.as_deref().unwrap_or(""), "webhook delivery dead (maximum age reached)")
            }
            WebhookNext::DisableEndpoint(_) => {
                tracing::warn!(url = %ctx.endpoint.url, "webhook endpoint answered 410 Gone; disabled")
            }
        }
        let recorded = store
            .record_attempt(
                id,
                owner,
                WebhookAttemptRecord {
                    at: finished,
                    outcome: attempt.outcome.as_str().to_string(),
                    status_code: attempt.status,
                    latency_ms: u64::try_from(attempt.latency.as_millis()).unwrap_or(u64::MAX),
                    error: attempt.error.clone(),
                    next: next.clone(),
                },
            )
            .await?;
        if !recorded {
            tracing::warn!("webhook lease lost during the attempt; another owner repeats it");
        }
        self.wake();
        Ok(DeliverOutcome::Attempted { attempt, next })
    }

    /// Sends a test event to an endpoint through the same signing and sending path
    /// (nothing is stored).
    pub async fn send_test(
        &self,
        endpoint: &WebhookEndpoint,
        actor: &str,
    ) -> anyhow::Result<WebhookAttempt> {
        let stored = self
            .0
            .store
            .endpoint_secret(endpoint.org_id, endpoint.id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("endpoint not found"))?;
        let secret = self.0.secrets.open(endpoint.org_id, &stored)?;
        let id = Uuid::now_v7();
        let body = serde_json::json!({
            "schema": 1,
            "id": id,
            "kind": "webhook.test",
            "org_id": endpoint.org_id,
            "occurred_at": vigil_core::now(),
            "actor": actor,
            "endpoint": {"id": endpoint.id, "name": endpoint.name},
        })
        .to_string();
        let attempt = self
            .0
            .client
            .send(&WebhookRequest {
                url: &endpoint.url,
                secret: &secret,
                id: &id.to_string(),
                timestamp: Utc::now().timestamp(),
                body: body.as_bytes(),
                headers: &endpoint.headers,
                timeout: self.timeout_of(endpoint),
            })
            .await;
        metrics::counter!(crate::metrics::WEBHOOK_DELIVERIES, "result" => "test").increment(1);
        Ok(attempt)
    }

    /// Writes the `[[webhooks.endpoints]]` of the config file (by org and name) and removes
    /// config endpoints no longer listed.
    pub async fn sync_config_endpoints(&self, store: &DynStore) -> anyhow::Result<()> {
        let mut keep = Vec::new();
        for c in &self.0.config.endpoints {
            let org = store
                .get_org_by_name(&c.org)
                .await?
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "webhooks.endpoints '{}': no organization named '{}'",
                        c.name,
                        c.org
                    )
                })?
                .id;
            let filters =
                EndpointFilters::parse(c.min_severity.as_deref(), &c.sources, &c.event_kinds)
                    .map_err(anyhow::Error::msg)?;
            let headers = parse_header_lines(&c.headers).map_err(anyhow::Error::msg)?;
            if let Err(e) = self.check_destination(&c.url).await {
                // Kept (DNS may change); every attempt is checked again and refused.
                tracing::warn!(endpoint = %c.name, error = %e, "webhook endpoint from the config file refused by the SSRF guard");
            }
            let secret = WebhookSecret::parse(c.secret.expose())?;
            let sealed = self.0.secrets.seal(org, &secret)?;
            let timeout_ms = c.timeout_secs.unwrap_or(self.0.config.default_timeout_secs) * 1000;
            let wh = &self.0.store;
            let id = match wh.get_endpoint_by_name(org, &c.name).await? {
                Some(existing) => {
                    wh.update_endpoint(
                        org,
                        existing.id,
                        WebhookEndpointUpdate {
                            name: None,
                            url: Some(c.url.clone()),
                            enabled: (existing.enabled != c.enabled || !c.enabled)
                                .then(|| (c.enabled, Some("disabled in the config file".into()))),
                            min_severity: Some(filters.min_severity),
                            sources: Some(filters.sources),
                            tags: Some(c.tags.clone()),
                            event_kinds: Some(filters.event_kinds),
                            headers: Some(headers),
                            timeout_ms: Some(timeout_ms),
                        },
                    )
                    .await?;
                    wh.set_endpoint_secret(org, existing.id, &sealed).await?;
                    existing.id
                }
                None => {
                    wh.create_endpoint(
                        org,
                        NewWebhookEndpoint {
                            name: c.name.clone(),
                            url: c.url.clone(),
                            secret: sealed,
                            enabled: c.enabled,
                            min_severity: filters.min_severity,
                            sources: filters.sources,
                            tags: c.tags.clone(),
                            event_kinds: filters.event_kinds,
                            headers,
                            timeout_ms,
                            from_config: true,
                        },
                    )
                    .await?
                    .id
                }
            };
            keep.push(id);
        }
        let removed = self.0.store.delete_config_endpoints_except(&keep).await?;
        if !keep.is_empty() || removed > 0 {
            tracing::info!(
                endpoints = keep.len(),
                removed,
                "webhook endpoints from the config file"
            );
        }
        Ok(())
    }
}

fn record_metrics(attempt: &WebhookAttempt, next: &WebhookNext) {
    let result = match next {
        WebhookNext::Delivered => "delivered",
        WebhookNext::Retry(_) => "retry",
        WebhookNext::Dead => "dead",
        WebhookNext::DisableEndpoint(_) => "gone",
    };
    metrics::counter!(crate::metrics::WEBHOOK_DELIVERIES, "result" => result).increment(1);
    metrics::histogram!(crate::metrics::WEBHOOK_DELIVERY_DURATION)
        .record(attempt.latency.as_secs_f64());
}
