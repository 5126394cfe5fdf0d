//! Finds due deliveries and hands them to a [`DeliverySubmit`]: per endpoint, at most as
//! many as it has free slots, so an endpoint that hangs holds its own slots and nobody
//! else's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Webhooks;

/// How often finished deliveries past their retention are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// One claimed delivery to attempt.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DeliveryJob {
    pub delivery_id: Uuid,
    pub endpoint_id: Uuid,
    /// The lease owner the claim was made for (one per scheduler round, so a job left over
    /// from an earlier claim of the same delivery is a no-op); the attempt runs under it.
    pub lease_owner: String,
}

/// Where claimed deliveries go: in-process tasks ([`LocalSubmit`]), or a job queue (the
/// `webhook.deliver` job, whose handler calls [`Webhooks::deliver_one`]).
#[async_trait::async_trait]
pub trait DeliverySubmit: Send + Sync {
    /// Deliveries of `endpoint` this submitter takes now (the scheduler claims no more).
    async fn capacity(&self, endpoint: Uuid) -> usize;
    async fn submit(&self, job: DeliveryJob) -> anyhow::Result<()>;
}

/// The in-process default: a task per delivery under the endpoint's semaphore and the
/// process-wide one.
pub struct LocalSubmit {
    webhooks: Webhooks,
    per_endpoint: usize,
    total: Arc<Semaphore>,
    endpoints: Mutex<HashMap<Uuid, Arc<Semaphore>>>,
    tasks: Mutex<tokio::task::JoinSet<()>>,
}

impl LocalSubmit {
    pub fn new(webhooks: Webhooks) -> Self {
        let c = webhooks.config();
        Self {
            per_endpoint: c.max_concurrency_per_endpoint,
            total: Arc::new(Semaphore::new(c.max_in_flight)),
            webhooks,
            endpoints: Mutex::default(),
            tasks: Mutex::default(),
        }
    }

    fn semaphore(&self, endpoint: Uuid) -> Arc<Semaphore> {
        let mut m = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(endpoint)
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_endpoint)))
            .clone()
    }

    fn permits(&self, endpoint: Uuid) -> Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)> {
        let ep = self.semaphore(endpoint).try_acquire_owned().ok()?;
        let total = self.total.clone().try_acquire_owned().ok()?;
        Some((ep, total))
    }

    /// Waits for the attempts in flight (bounded by the caller's deadline).
    pub async fn drain(&self) {
        let mut set = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        while set.join_next().await.is_some() {}
    }
}

#[async_trait::async_trait]
impl DeliverySubmit for LocalSubmit {
    async fn capacity(&self, endpoint: Uuid) -> usize {
        self.semaphore(endpoint)
            .available_permits()
            .min(self.total.available_permits())
    }

    async fn submit(&self, job: DeliveryJob) -> anyhow::Result<()> {
        let Some(permits) = self.permits(job.endpoint_id) else {
            // Cannot happen when the scheduler claimed within capacity; the lease runs out
            // and the delivery is claimed again.
            anyhow::bail!("no free slot for endpoint {}", job.endpoint_id);
        };
        let webhooks = self.webhooks.clone();
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move {
            let _permits = permits;
            if let Err(e) = webhooks.deliver_one(job.delivery_id, &job.lease_owner).await {
                tracing::warn!(delivery = %job.delivery_id, error = %e, "webhook attempt not recorded; retried when its lease runs out");
            }
        });
        Ok(())
    }
}

/// With a job queue (`[redis] url`): each claimed delivery becomes a `webhook.deliver` job
/// that `vigil worker` runs ([`Webhooks::deliver_one`], then more of the endpoint's due
/// deliveries: [`Webhooks::deliver_due`]). An endpoint gets at most
/// `webhooks.max_concurrency_per_endpoint` deliveries under a live lease across every
/// process, so one endpoint cannot flood the queue; the database lease stays the guard
/// against delivering twice.
pub struct JobSubmit {
    webhooks: Webhooks,
    jobs: Arc<dyn crate::jobs::JobQueue>,
}

impl JobSubmit {
    pub fn new(webhooks: Webhooks, jobs: Arc<dyn crate::jobs::JobQueue>) -> Self {
        Self { webhooks, jobs }
    }
}

#[async_trait::async_trait]
impl DeliverySubmit for JobSubmit {
    async fn capacity(&self, endpoint: Uuid) -> usize {
        let per_endpoint = self.webhooks.config().max_concurrency_per_endpoint;
        match self
            .webhooks
            .store()
            .leased_deliveries(endpoint, chrono::Utc::now())
            .await
        {
            Ok(leased) => {
                per_endpoint.saturating_sub(usize::try_from(leased).unwrap_or(usize::MAX))
            }
            Err(e) => {
                tracing::warn!(endpoint = %endpoint, error = %e, "counting leased webhook deliveries failed; none submitted this round");
                0
            }
        }
    }

    async fn submit(&self, job: DeliveryJob) -> anyhow::Result<()> {
        self.jobs
            .enqueue(
                crate::jobs::handlers::WEBHOOK_DELIVER,
                serde_json::to_value(&job)?,
            )
            .await
    }
}

/// The claim loop of one process.
pub struct Scheduler {
    webhooks: Webhooks,
    submit: Arc<dyn DeliverySubmit>,
    /// Lease owner of this process's claims, followed by the round number.
    owner: String,
    rounds: AtomicU64,
}

impl Scheduler {
    pub fn new(webhooks: Webhooks, submit: Arc<dyn DeliverySubmit>) -> Self {
        Self {
            owner: format!("{}:{}", std::process::id(), Uuid::new_v4().simple()),
            webhooks,
            submit,
            rounds: AtomicU64::new(0),
        }
    }

    /// One round: claims what is due within capacity and submits it; returns how many.
    pub async fn round(&self) -> anyhow::Result<usize> {
        let store = self.webhooks.store();
        let now = chrono::Utc::now();
        let due = store.due_endpoints(now).await?;
        if due.is_empty() {
            return Ok(0);
        }
        let endpoints: HashMap<Uuid, _> = store
            .enabled_endpoints()
            .await?
            .into_iter()
            .map(|e| (e.id, e))
            .collect();
        let owner = format!(
            "{}:{}",
            self.owner,
            self.rounds.fetch_add(1, Ordering::Relaxed)
        );
        let mut submitted = 0;
        for id in due {
            let Some(ep) = endpoints.get(&id) else {
                continue;
            };
            let free = self.submit.capacity(id).await;
            if free == 0 {
                continue;
            }
            let lease = self.webhooks.lease_of(ep);
            let claimed = store
                .claim_deliveries(
                    id,
                    &owner,
                    u32::try_from(free).unwrap_or(u32::MAX),
                    lease,
                    now,
                )
                .await?;
            for delivery_id in claimed {
                self.submit
                    .submit(DeliveryJob {
                        delivery_id,
                        endpoint_id: id,
                        lease_owner: owner.clone(),
                    })
                    .await?;
                submitted += 1;
            }
        }
        Ok(submitted)
    }

    /// Deletes finished deliveries past `webhooks.retention_days`.
    async fn prune(&self) {
        let days = i64::from(self.webhooks.config().retention_days);
        let before = chrono::Utc::now() - chrono::Duration::days(days);
        match self.webhooks.store().prune_deliveries(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "old webhook deliveries deleted"),
            Err(e) => tracing::warn!(error = %e, "pruning webhook deliveries failed"),
        }
    }

    /// Runs rounds until `shutdown`: woken by new deliveries and finished attempts, else
    /// every `webhooks.poll_ms`.
    pub async fn run(self, shutdown: CancellationToken) {
        let wake = self.webhooks.wake_handle();
        let poll = Duration::from_millis(self.webhooks.config().poll_ms);
        let mut pruned_at: Option<tokio::time::Instant> = None;
        loop {
            if let Err(e) = self.round().await {
                tracing::warn!(error = %e, "webhook scheduler round failed; retrying");
            }
            if pruned_at.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                pruned_at = Some(tokio::time::Instant::now());
                self.prune().await;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }
}
