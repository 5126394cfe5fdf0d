//! Outgoing webhooks' state: endpoints per organization, one delivery per (endpoint, event)
//! with its retry state and lease, and the log of attempts. Its own trait like
//! [`crate::MlStore`]; the SQL is `common_webhooks.rs`, compiled for each backend. Calls made
//! for a user take the org; the delivery machinery (claim, attempt) works across orgs.
//!
//! The signing secret is stored as the caller hands it over (the server encrypts it) and is
//! read only by [`WebhookStore::endpoint_secret`] and [`WebhookStore::attempt_context`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use vigil_core::Severity;

use crate::Result;

/// An endpoint as shown (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebhookEndpoint {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub url: String,
    pub enabled: bool,
    /// Why it was disabled (`410 Gone from the receiver`, or by whom).
    pub disabled_reason: Option<String>,
    /// Only alerts of this severity or higher; none: all.
    pub min_severity: Option<Severity>,
    /// Only alerts from these sources; empty: all.
    pub sources: Vec<String>,
    /// Only alerts carrying at least one of these tags; empty: all.
    pub tags: Vec<String>,
    /// Only these event kinds (`alert.created`, ...); empty: all.
    pub event_kinds: Vec<String>,
    /// Extra request headers, `[name, value]`.
    pub headers: Vec<(String, String)>,
    pub timeout_ms: u64,
    /// Written from `[[webhooks.endpoints]]`; change it in the file, not through the API.
    pub from_config: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An endpoint to create or (from the config file) to write.
#[derive(Debug, Clone)]
pub struct NewWebhookEndpoint {
    pub name: String,
    pub url: String,
    /// Already encrypted by the caller.
    pub secret: String,
    pub enabled: bool,
    pub min_severity: Option<Severity>,
    pub sources: Vec<String>,
    pub tags: Vec<String>,
    pub event_kinds: Vec<String>,
    pub headers: Vec<(String, String)>,
    pub timeout_ms: u64,
    pub from_config: bool,
}

/// Changes to an endpoint; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct WebhookEndpointUpdate {
    pub name: Option<String>,
    pub url: Option<String>,
    /// Enabling clears the reason; disabling sets it.
    pub enabled: Option<(bool, Option<String>)>,
    pub min_severity: Option<Option<Severity>>,
    pub sources: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
    pub event_kinds: Option<Vec<String>>,
    pub headers: Option<Vec<(String, String)>>,
    pub timeout_ms: Option<u64>,
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookDeliveryStatus {
    /// Waiting for its next attempt (or for an earlier change of the same alert).
    Pending,
    /// An attempt is running under a lease (or its owner died; the lease runs out).
    Delivering,
    Delivered,
    /// Given up after the maximum age, or the endpoint answered 410.
    Dead,
}

impl WebhookDeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivering => "delivering",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "delivering" => Self::Delivering,
            "delivered" => Self::Delivered,
            "dead" => Self::Dead,
            _ => return None,
        })
    }
}

/// A delivery as shown in the log (without the payload).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebhookDelivery {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    /// The `webhook-id` header: the event's id, the same on every attempt.
    pub event_id: Uuid,
    pub alert_id: Uuid,
    pub seq: i64,
    /// `alert.created`, `alert.status_changed`, ...
    pub kind: String,
    pub status: WebhookDeliveryStatus,
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The HTTP status of the last attempt, when it got an answer.
    pub last_status_code: Option<u16>,
    pub last_latency_ms: Option<u64>,
    pub last_error: Option<String>,
    /// When it was delivered or given up.
    pub finished_at: Option<DateTime<Utc>>,
}

/// A delivery to create: one event for one endpoint.
#[derive(Debug, Clone)]
pub struct NewWebhookDelivery {
    pub org_id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub alert_id: Uuid,
    pub seq: i64,
    pub kind: String,
    /// The request body (the event's JSON), sent as it is on every attempt.
    pub payload: String,
}

/// Everything one attempt needs.
#[derive(Debug, Clone)]
pub struct WebhookAttemptContext {
    pub delivery: WebhookDelivery,
    pub payload: String,
    /// When the maximum age started counting.
    pub age_from: DateTime<Utc>,
    pub endpoint: WebhookEndpoint,
    /// As stored (encrypted).
    pub secret: String,
}

/// What an attempt found, to record.
#[derive(Debug, Clone)]
pub struct WebhookAttemptRecord {
    pub at: DateTime<Utc>,
    /// `delivered`, `gone`, `failed`, `refused`.
    pub outcome: String,
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
    pub next: WebhookNext,
}

/// What happens to the delivery after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookNext {
    Delivered,
    /// Try again at this time.
    Retry(DateTime<Utc>),
    Dead,
    /// Dead, and the endpoint is disabled with this reason (410 Gone).
    DisableEndpoint(String),
}

/// One row of the attempt log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebhookAttemptLog {
    pub attempted_at: DateTime<Utc>,
    pub outcome: String,
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
}

/// Where endpoints and deliveries are kept.
#[async_trait::async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    /// A name already used in the org is a `Conflict`.
    async fn create_endpoint(&self, org: Uuid, e: NewWebhookEndpoint) -> Result<WebhookEndpoint>;
    async fn list_endpoints(&self, org: Uuid) -> Result<Vec<WebhookEndpoint>>;
    async fn get_endpoint(&self, org: Uuid, id: Uuid) -> Result<Option<WebhookEndpoint>>;
    async fn get_endpoint_by_name(&self, org: Uuid, name: &str) -> Result<Option<WebhookEndpoint>>;
    /// Enabled endpoints of every org (the sink matches events against them).
    async fn enabled_endpoints(&self) -> Result<Vec<WebhookEndpoint>>;
    async fn update_endpoint(
        &self,
        org: Uuid,
        id: Uuid,
        update: WebhookEndpointUpdate,
    ) -> Result<WebhookEndpoint>;
    /// The stored (encrypted) secret.
    async fn endpoint_secret(&self, org: Uuid, id: Uuid) -> Result<Option<String>>;
    async fn set_endpoint_secret(&self, org: Uuid, id: Uuid, secret: &str) -> Result<()>;
    /// Deletes the endpoint with its deliveries and attempts.
    async fn delete_endpoint(&self, org: Uuid, id: Uuid) -> Result<()>;
    /// Config-file endpoints not in `keep` are deleted; returns how many.
    async fn delete_config_endpoints_except(&self, keep: &[Uuid]) -> Result<u64>;

    /// Inserts deliveries; one that exists for (endpoint, event) is left as it is.
    /// Returns how many were new.
    async fn insert_deliveries(&self, deliveries: &[NewWebhookDelivery]) -> Result<u64>;
    /// Enabled endpoints with a delivery due at `now` (pending, or a lease run out).
    async fn due_endpoints(&self, now: DateTime<Utc>) -> Result<Vec<Uuid>>;
    /// Deliveries of an endpoint under a live lease at `now` (attempts claimed and not yet
    /// recorded, in any process): what a job-queue submitter counts against the endpoint's
    /// concurrency.
    async fn leased_deliveries(&self, endpoint: Uuid, now: DateTime<Utc>) -> Result<u64>;
    /// Leases up to `limit` due deliveries of one endpoint to `owner`, oldest due first,
    /// skipping a delivery while an earlier change of the same alert is unfinished (per-alert
    /// order). Rows leased by another live owner are skipped.
    async fn claim_deliveries(
        &self,
        endpoint: Uuid,
        owner: &str,
        limit: u32,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>>;
    /// Moves a live lease from `from` to `to` (extended to `now + lease`); `false` when
    /// `from` no longer holds a live lease on an unfinished delivery. A job takes its claim
    /// over this way, so a second run of the same job (the queue handing it out again while
    /// the first still runs) finds the lease gone and does nothing.
    async fn transfer_lease(
        &self,
        id: Uuid,
        from: &str,
        to: &str,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// Leases one delivery to `owner` if it is due or already leased to `owner` (a job
    /// handler's entry point). `None`: finished, or leased by someone else.
    async fn lease_delivery(
        &self,
        id: Uuid,
        owner: &str,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<WebhookAttemptContext>>;
    /// Records an attempt of a delivery leased by `owner` and moves it on; `false` when
    /// the lease was lost meanwhile (nothing recorded).
    async fn record_attempt(
        &self,
        id: Uuid,
        owner: &str,
        attempt: WebhookAttemptRecord,
    ) -> Result<bool>;
    /// The deliveries of an endpoint, newest first; `before` is the last id of the
    /// previous page.
    async fn list_deliveries(
        &self,
        org: Uuid,
        endpoint: Uuid,
        status: Option<WebhookDeliveryStatus>,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>>;
    async fn get_delivery(&self, org: Uuid, id: Uuid) -> Result<Option<WebhookDelivery>>;
    async fn list_attempts(&self, org: Uuid, delivery: Uuid) -> Result<Vec<WebhookAttemptLog>>;
    /// Sends a finished (or pending) delivery again now, with a fresh maximum age.
    async fn redeliver(&self, org: Uuid, id: Uuid, now: DateTime<Utc>) -> Result<WebhookDelivery>;
    /// Every dead delivery of the endpoint that died at or after `since`, again; returns
    /// how many.
    async fn redeliver_dead_since(
        &self,
        org: Uuid,
        endpoint: Uuid,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64>;
    /// Deletes delivered and dead deliveries (with their attempts) finished before
    /// `before`; returns how many.
    async fn prune_deliveries(&self, before: DateTime<Utc>) -> Result<u64>;
    /// Deliveries by status, across every org (metrics, tests).
    async fn delivery_counts(&self) -> Result<Vec<(WebhookDeliveryStatus, u64)>>;
}
