//! Every job kind and its handler, registered in one place ([`handlers`]), and the periodic
//! ones ([`periodic`]). Each handler is idempotent: running a job twice does no harm.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use vigil_store::DynStore;

use super::{Job, JobError, JobHandler, JobQueue, Periodic};
use crate::config::Config;

/// Purges stored events older than `ingest.retention_days`. Payload `{}`.
pub const RETENTION_PURGE: &str = "retention.purge";
/// Retrains every organization's ML models. Payload `{}`.
pub const ML_RETRAIN: &str = "ml.retrain";
/// Triages new open high/critical alerts. Payload `{"since": RFC 3339}`: alerts created
/// before it are left alone.
pub const AI_AUTO_TRIAGE: &str = "ai.auto_triage";
/// One attempt of a claimed webhook delivery, then more of its endpoint's due deliveries.
/// Payload: [`crate::webhooks::DeliveryJob`]. A job whose delivery is finished, or no longer
/// under the claim's live lease, does nothing.
pub const WEBHOOK_DELIVER: &str = "webhook.deliver";

/// Deliveries a `webhook.deliver` job makes after its own, at most (and for at most
/// [`WEBHOOK_CHAIN_BUDGET`]).
const WEBHOOK_CHAIN_MAX: usize = 256;
const WEBHOOK_CHAIN_BUDGET: Duration = Duration::from_secs(5);

/// What handlers may use; built by `vigil serve` and `vigil worker` alike.
#[derive(Clone)]
pub struct JobContext {
    pub config: Arc<Config>,
    pub store: DynStore,
    pub ml: Arc<crate::ml::MlEngine>,
    pub ai: crate::ai::Ai,
    pub webhooks: crate::webhooks::Webhooks,
    /// For handlers that enqueue follow-up jobs.
    pub jobs: Arc<dyn JobQueue>,
}

/// Every handler, by kind.
pub fn handlers(ctx: &JobContext) -> Vec<Arc<dyn JobHandler>> {
    vec![
        Arc::new(RetentionPurge(ctx.clone())),
        Arc::new(MlRetrain(ctx.clone())),
        Arc::new(AutoTriage(ctx.clone())),
        Arc::new(WebhookDeliver(ctx.clone())),
    ]
}

/// The periodic jobs the configuration turns on. `started` is when this process started
/// (auto-triage leaves older alerts alone, as it always did).
pub fn periodic(
    config: &Config,
    ai: &crate::ai::Ai,
    started: chrono::DateTime<chrono::Utc>,
) -> Vec<Periodic> {
    let mut jobs = vec![Periodic {
        kind: RETENTION_PURGE,
        every: Duration::from_secs(config.jobs.retention_interval_secs.max(1)),
        payload: serde_json::json!({}),
        skip_first: false,
    }];
    if config.ml.enabled && config.ml.retrain_interval_secs > 0 {
        jobs.push(Periodic {
            kind: ML_RETRAIN,
            every: Duration::from_secs(config.ml.retrain_interval_secs),
            payload: serde_json::json!({}),
            skip_first: true,
        });
    }
    if config.ollama.auto_triage && ai.llm.is_some() {
        jobs.push(Periodic {
            kind: AI_AUTO_TRIAGE,
            every: Duration::from_secs(config.ollama.auto_triage_interval_secs.max(1)),
            payload: serde_json::json!({ "since": started }),
            skip_first: false,
        });
    }
    jobs
}

struct RetentionPurge(JobContext);

#[async_trait]
impl JobHandler for RetentionPurge {
    fn kind(&self) -> &'static str {
        RETENTION_PURGE
    }

    async fn run(&self, _job: &Job) -> Result<(), JobError> {
        let days = self.0.config.ingest.retention_days;
        let before = vigil_core::now() - chrono::Duration::days(i64::from(days));
        let n = self
            .0
            .store
            .event_store()
            .purge_events(before)
            .await
            .map_err(JobError::retry)?;
        if n > 0 {
            tracing::info!(deleted = n, days, "old events purged");
        }
        Ok(())
    }
}

struct MlRetrain(JobContext);

#[async_trait]
impl JobHandler for MlRetrain {
    fn kind(&self) -> &'static str {
        ML_RETRAIN
    }

    async fn run(&self, _job: &Job) -> Result<(), JobError> {
        if !self.0.ml.config().enabled {
            return Ok(());
        }
        crate::ml::worker::retrain_all(&self.0.ml, &self.0.store)
            .await
            .map_err(JobError::retry)
    }
}

struct AutoTriage(JobContext);

#[derive(Deserialize)]
struct AutoTriagePayload {
    since: chrono::DateTime<chrono::Utc>,
}

#[async_trait]
impl JobHandler for AutoTriage {
    fn kind(&self) -> &'static str {
        AI_AUTO_TRIAGE
    }

    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let p: AutoTriagePayload =
            serde_json::from_value(job.payload.clone()).map_err(JobError::fatal)?;
        if self.0.ai.llm.is_none() {
            return Err(JobError::Fatal("no model configured ([ollama] url)".into()));
        }
        crate::ai::background::auto_triage_round(&self.0.ai, &self.0.store, p.since)
            .await
            .map(|_| ())
            .map_err(JobError::retry)
    }
}

struct WebhookDeliver(JobContext);

impl WebhookDeliver {
    /// Well within the visibility timeout, so the queue does not hand the job to another
    /// runner while it is still chaining.
    fn chain_budget(&self) -> Duration {
        let visibility = Duration::from_secs(self.0.config.jobs.visibility_timeout_secs);
        WEBHOOK_CHAIN_BUDGET.min(visibility / 2)
    }
}

#[async_trait]
impl JobHandler for WebhookDeliver {
    fn kind(&self) -> &'static str {
        WEBHOOK_DELIVER
    }

    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let d: crate::webhooks::DeliveryJob =
            serde_json::from_value(job.payload.clone()).map_err(JobError::fatal)?;
        let webhooks = &self.0.webhooks;
        // This run takes the claim over under an owner of its own: a run of the same job
        // started while this one is still going (the queue's visibility timeout) finds the
        // claim's owner gone and does nothing; so does a run after the lease ran out (the
        // scheduler claims the delivery again).
        let run_owner = format!("{}:{}", d.lease_owner, uuid::Uuid::new_v4().simple());
        let taken = webhooks
            .store()
            .transfer_lease(
                d.delivery_id,
                &d.lease_owner,
                &run_owner,
                webhooks.job_lease(),
                chrono::Utc::now(),
            )
            .await
            .map_err(JobError::retry)?;
        if !taken {
            tracing::debug!(delivery = %d.delivery_id, "webhook delivery no longer leased to this job; nothing to do");
            return Ok(());
        }
        let outcome = webhooks
            .deliver_one(d.delivery_id, &run_owner)
            .await
            .map_err(JobError::retry)?;
        if outcome.delivered() {
            // The delivery itself is recorded: a failure here only leaves work to the
            // scheduler, so it is logged, not retried.
            if let Err(e) = webhooks
                .deliver_due(d.endpoint_id, WEBHOOK_CHAIN_MAX, self.chain_budget())
                .await
            {
                tracing::warn!(endpoint = %d.endpoint_id, error = %e, "further webhook deliveries of the endpoint left to the scheduler");
            }
        }
        Ok(())
    }
}
