//! The ingestion pipeline: normalized events in, stored events and alerts out.
//!
//! Two stages joined by a short channel, so detection of one batch overlaps with storing
//! the previous one:
//!
//! ```text
//! submit ─► [queue: bounded] ─► detect (blocking thread; correlations per org, in order)
//!                                  └─► [4] ─► store events + batch id + raised or folded
//!                                             alerts (one transaction) ─► reply
//! ```
//!
//! SQLite has one writer, so the store stage is the serial part: everything that can be
//! done before it is done in the detect stage (on its own thread, overlapping the previous
//! batch's write): the stored columns are extracted and each document is serialised to its
//! JSON text there, once, and the documents are dropped there too.
//!
//! The queue is the back-pressure point: `try_submit` fails at once when it is full (HTTP
//! ingest answers 503 with Retry-After), `submit` waits (syslog over TCP then stops reading).
//! Nothing is dropped silently: every refusal is counted and answered. Memory is bounded in
//! bytes, not batches: a job carries its [`Reservation`] of the ingest memory budget
//! (`budget.rs`) through both stages and gives it back once its events are stored.
//!
//! Shutdown ([`PipelineTask::drain`]): once every producer has stopped, the queue is
//! closed (later submissions are refused like a full queue) and both stages run until every
//! job queued before that is stored, then end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use chrono::Duration;
use serde_json::Value as Json;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use vigil_core::event::{self, fields};
use vigil_store::{AppendOutcome, Detection, DetectionOutcome, EventStore, NewEvent};

use super::budget::{MemoryBudget, Reservation};
use super::detect::{Correlations, Rules};
use crate::metrics::{ALERT_PROCESSING_DURATION, ALERTS_CREATED, SECURITY_EVENTS};

/// Pipeline settings.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Batches waiting for detection before submitters are refused.
    pub queue_capacity: usize,
    /// Fold repeated detections (same rule and key) into the open alert.
    pub dedup: bool,
    pub dedup_window: Duration,
    /// Batches waiting while none finished for this long: the pipeline is stalled (`/ready`).
    pub stall_after: std::time::Duration,
    /// Bytes batches in flight may hold (`ingest.memory_budget_bytes`).
    pub memory_budget_bytes: u64,
}

/// What a job's sender learns.
pub type JobResult = Result<AppendOutcome, String>;

/// A batch of normalized events of one organization.
pub struct Job {
    pub org: Uuid,
    pub batch: Option<Uuid>,
    /// How the events arrived (`agent`, `api`, `loki`, `syslog`, `local`): metrics label
    /// and the stored events' channel.
    pub channel: &'static str,
    pub events: Vec<Json>,
    pub reply: Option<oneshot::Sender<JobResult>>,
    /// The job's share of the memory budget, held until its events are stored.
    pub reservation: Option<Reservation>,
}

/// The queue was full.
pub struct Overloaded(pub Job);

/// Handle to the running pipeline; cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    tx: mpsc::Sender<Job>,
    budget: MemoryBudget,
    counts: Arc<Counts>,
    progress: Arc<Progress>,
    stall_after: std::time::Duration,
}

/// Events in the queue and events stored, for the shutdown log.
#[derive(Default)]
struct Counts {
    queued: AtomicU64,
    stored: AtomicU64,
}

/// The running stages, owned by the server: [`PipelineTask::drain`] at shutdown.
pub struct PipelineTask {
    close: CancellationToken,
    detect: tokio::task::JoinHandle<()>,
    store: tokio::task::JoinHandle<()>,
    counts: Arc<Counts>,
}

/// What a drain did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Events waiting in the queue when it was closed.
    pub queued: u64,
    /// Events stored from the moment the queue was closed.
    pub stored: u64,
}

impl PipelineTask {
    /// Closes the queue (later submissions are refused) and waits until every job queued
    /// before is stored. Call it after the producers (HTTP, syslog, local agent) stopped:
    /// what they handed over is then written before the store closes.
    pub async fn drain(&mut self) -> Drained {
        let queued = self.counts.queued.load(Ordering::Relaxed);
        let stored_before = self.counts.stored.load(Ordering::Relaxed);
        self.close.cancel();
        let _ = (&mut self.detect).await;
        let _ = (&mut self.store).await;
        Drained {
            queued,
            stored: self.counts.stored.load(Ordering::Relaxed) - stored_before,
        }
    }

    /// Events still queued (after a drain that ran out of time: what is dropped).
    pub fn queued(&self) -> u64 {
        self.counts.queued.load(Ordering::Relaxed)
    }

    /// Stops both stages where they are (the drain ran out of time); a job's sender is
    /// told it failed (its reply is dropped), so an unstored batch is never acknowledged.
    pub fn abort(&self) {
        self.detect.abort();
        self.store.abort();
    }
}

/// How far the pipeline has come, for `/ready`: a wedged store or detect stage shows as
/// batches waiting while none finishes.
struct Progress {
    epoch: Instant,
    accepted: AtomicU64,
    /// Stored, refused by the store, or lost to a panic: answered either way.
    finished: AtomicU64,
    /// Milliseconds after `epoch` of the last finish, or of the submission that found the
    /// pipeline idle (the wait starts there, not at a finish an hour ago).
    moved_ms: AtomicU64,
}

impl Progress {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            accepted: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            moved_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn accepted(&self) {
        let before = self.accepted.fetch_add(1, Ordering::AcqRel);
        if before == self.finished.load(Ordering::Acquire) {
            self.moved_ms.store(self.now_ms(), Ordering::Release);
        }
    }

    fn finished(&self) {
        self.moved_ms.store(self.now_ms(), Ordering::Release);
        self.finished.fetch_add(1, Ordering::AcqRel);
    }
}

/// Why the pipeline is not healthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PipelineHealth {
    Ok,
    /// Batches have waited this long with none finishing.
    Stalled {
        waiting: u64,
        for_secs: u64,
    },
    /// The stages have ended (nothing will be stored).
    Stopped,
}

struct Detected {
    org: Uuid,
    batch: Option<Uuid>,
    channel: &'static str,
    /// The job's events, ready to store (document already serialised).
    events: Vec<NewEvent>,
    reply: Option<oneshot::Sender<JobResult>>,
    detections: Vec<Detection>,
    /// Feature vectors closed by this batch (stored after its events).
    ml_rows: Vec<vigil_store::NewFeatureRow>,
    started: Instant,
    reservation: Option<Reservation>,
}

impl Pipeline {
    /// Starts both stages; they end after [`PipelineTask::drain`] (or when every
    /// `Pipeline` clone is dropped) once the queue is empty.
    pub fn start(
        events: Arc<dyn EventStore>,
        rules: Arc<Rules>,
        ml: Arc<crate::ml::MlEngine>,
        config: PipelineConfig,
    ) -> (Self, PipelineTask) {
        let budget = MemoryBudget::new(config.memory_budget_bytes);
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let (dtx, drx) = mpsc::channel(4);
        let ml_store = ml.store().clone();
        let close = CancellationToken::new();
        let counts = Arc::new(Counts::default());
        let progress = Arc::new(Progress::new());
        let stall_after = config.stall_after;
        let detect = tokio::spawn(detect_stage(
            rx,
            close.clone(),
            counts.clone(),
            dtx,
            rules,
            ml,
            progress.clone(),
        ));
        let store = tokio::spawn(store_stage(
            drx,
            counts.clone(),
            events,
            ml_store,
            config,
            progress.clone(),
        ));
        let task = PipelineTask {
            close,
            detect,
            store,
            counts: counts.clone(),
        };
        (
            Self {
                tx,
                budget,
                counts,
                progress,
                stall_after,
            },
            task,
        )
    }

    /// The memory budget every submitter reserves from before it builds a job.
    pub fn budget(&self) -> &MemoryBudget {
        &self.budget
    }

    /// Whether batches are moving: stopped stages, or batches waiting longer than
    /// `stall_after` with none finishing, are unhealthy.
    pub fn health(&self) -> PipelineHealth {
        if self.tx.is_closed() {
            return PipelineHealth::Stopped;
        }
        let p = &self.progress;
        let finished = p.finished.load(Ordering::Acquire);
        let waiting = p.accepted.load(Ordering::Acquire).saturating_sub(finished);
        let idle_ms = p
            .now_ms()
            .saturating_sub(p.moved_ms.load(Ordering::Acquire));
        if waiting > 0 && u128::from(idle_ms) > self.stall_after.as_millis() {
            return PipelineHealth::Stalled {
                waiting,
                for_secs: idle_ms / 1000,
            };
        }
        PipelineHealth::Ok
    }

    /// Queues a job, or gives it back at once when the queue is full.
    pub fn try_submit(&self, job: Job) -> Result<(), Overloaded> {
        let n = job.events.len() as u64;
        let channel = job.channel;
        // Counted before the send, so the detect stage never subtracts first.
        self.counts.queued.fetch_add(n, Ordering::Relaxed);
        match self.tx.try_send(job) {
            Ok(()) => {
                self.progress.accepted();
                metrics::counter!(SECURITY_EVENTS, "source" => channel, "outcome" => "received")
                    .increment(n);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job)) => {
                self.counts.queued.fetch_sub(n, Ordering::Relaxed);
                metrics::counter!(SECURITY_EVENTS, "source" => channel, "outcome" => "refused")
                    .increment(n);
                Err(Overloaded(job))
            }
        }
    }

    /// Queues a job, waiting for room.
    pub async fn submit(&self, job: Job) -> Result<(), Overloaded> {
        let n = job.events.len() as u64;
        let channel = job.channel;
        self.counts.queued.fetch_add(n, Ordering::Relaxed);
        match self.tx.send(job).await {
            Ok(()) => {
                self.progress.accepted();
                metrics::counter!(SECURITY_EVENTS, "source" => channel, "outcome" => "received")
                    .increment(n);
                Ok(())
            }
            Err(mpsc::error::SendError(job)) => {
                self.counts.queued.fetch_sub(n, Ordering::Relaxed);
                Err(Overloaded(job))
            }
        }
    }
}

async fn detect_stage(
    mut rx: mpsc::Receiver<Job>,
    close: CancellationToken,
    counts: Arc<Counts>,
    out: mpsc::Sender<Detected>,
    rules: Arc<Rules>,
    ml: Arc<crate::ml::MlEngine>,
    progress: Arc<Progress>,
) {
    let mut state = Some(Correlations::default());
    let mut closed = false;
    loop {
        let job = tokio::select! {
            biased;
            _ = close.cancelled(), if !closed => {
                // No new jobs; the ones already queued are still received below.
                rx.close();
                closed = true;
                continue;
            }
            job = rx.recv() => job,
        };
        let Some(job) = job else {
            break;
        };
        counts
            .queued
            .fetch_sub(job.events.len() as u64, Ordering::Relaxed);
        let started = Instant::now();
        let rules = rules.clone();
        let ml = ml.clone();
        let mut corr = state.take().unwrap_or_default();
        let joined = tokio::task::spawn_blocking(move || {
            let mut detections = Vec::new();
            for doc in &job.events {
                detections.extend(corr.detect(&rules, job.org, doc));
            }
            let scored = ml.observe_batch(job.org, &job.events);
            detections.extend(scored.detections);
            let Job {
                org,
                batch,
                channel,
                events,
                reply,
                reservation,
            } = job;
            let stored: Vec<NewEvent> = events.iter().map(new_event).collect();
            // The documents are freed here rather than on the writer's path.
            drop(events);
            let detected = Detected {
                org,
                batch,
                channel,
                events: stored,
                reply,
                detections,
                ml_rows: scored.rows,
                started,
                reservation,
            };
            (corr, detected)
        })
        .await;
        match joined {
            Ok((corr, detected)) => {
                state = Some(corr);
                if out.send(detected).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                // A panic in a rule must not stop ingestion; the job's sender gets an error
                // (and will retry), correlation state starts over.
                tracing::error!(error = %e, "detection failed");
                progress.finished();
            }
        }
    }
}

/// The stored columns of one event; the text columns are capped at 4096 characters.
pub fn new_event(doc: &Json) -> NewEvent {
    let text = |p: &str| event::get_str(doc, p).map(|s| event::truncate_chars(s, 4096).to_owned());
    NewEvent::with_doc(
        event::timestamp(doc).unwrap_or_else(vigil_core::now),
        text(fields::HOST_NAME),
        text(fields::DATASET),
        text(fields::MESSAGE).or_else(|| text(fields::ORIGINAL)),
        doc,
    )
}

async fn store_stage(
    mut rx: mpsc::Receiver<Detected>,
    counts: Arc<Counts>,
    events: Arc<dyn EventStore>,
    ml_store: Arc<dyn vigil_store::MlStore>,
    config: PipelineConfig,
    progress: Arc<Progress>,
) {
    while let Some(Detected {
        org,
        batch,
        channel,
        events: docs,
        reply,
        mut detections,
        ml_rows,
        started,
        reservation,
    }) = rx.recv().await
    {
        let n = docs.len() as u64;
        if !config.dedup {
            for d in &mut detections {
                d.dedup_key = None;
            }
        }
        let raised: Vec<(String, String)> = detections
            .iter()
            .map(|d| {
                (
                    d.alert.source.as_str().to_owned(),
                    d.alert.severity.as_str().to_owned(),
                )
            })
            .collect();
        // Events, batch id and alerts in one transaction: a batch is acknowledged only with
        // its alerts, and a failed one is answered as such, so its resend is stored whole
        // (with the alerts written apart, a failure after the events lost them for good:
        // the resend was a duplicate).
        let result = match events
            .append_batch(
                org,
                batch,
                channel,
                docs,
                detections,
                config.dedup_window,
                vigil_core::now(),
            )
            .await
        {
            Ok((outcome, _)) if outcome.duplicate => {
                metrics::counter!(SECURITY_EVENTS, "source" => channel, "outcome" => "duplicate")
                    .increment(n);
                Ok(outcome)
            }
            Ok((outcome, outcomes)) => {
                counts.stored.fetch_add(n, Ordering::Relaxed);
                metrics::counter!(SECURITY_EVENTS, "source" => channel, "outcome" => "stored")
                    .increment(n);
                // Best effort: feature vectors only tune the models; losing a batch's worth
                // does not lose anything acknowledged.
                if let Err(e) = ml_store.append_features(org, ml_rows).await {
                    tracing::error!(error = %e, %org, "ml feature vectors could not be stored");
                }
                if !raised.is_empty() {
                    metrics::counter!(SECURITY_EVENTS, "source" => channel, "outcome" => "alerted")
                        .increment(outcomes.len() as u64);
                    for (o, (source, severity)) in outcomes.iter().zip(raised) {
                        if matches!(o, DetectionOutcome::Created(_)) {
                            metrics::counter!(ALERTS_CREATED, "source" => source, "severity" => severity)
                                .increment(1);
                        }
                    }
                    metrics::histogram!(ALERT_PROCESSING_DURATION)
                        .record(started.elapsed().as_secs_f64());
                }
                Ok(outcome)
            }
            Err(e) => {
                metrics::counter!(SECURITY_EVENTS, "source" => channel, "outcome" => "failed")
                    .increment(n);
                tracing::error!(error = %e, %org, "batch could not be stored");
                Err("events could not be stored".to_owned())
            }
        };
        // The batch's memory is gone (documents freed in the detect stage, stored text
        // consumed by the write): its budget goes back before the sender hears of it.
        drop(reservation);
        progress.finished();
        if let Some(reply) = reply {
            let _ = reply.send(result);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(n: usize) -> Job {
        Job {
            org: Uuid::nil(),
            batch: None,
            channel: "api",
            events: vec![Json::Null; n],
            reply: None,
            reservation: None,
        }
    }

    #[test]
    fn stored_text_is_capped_by_characters() {
        assert_eq!(event::truncate_chars("héllo", 2), "hé");
        assert_eq!(event::truncate_chars("héllo", 5), "héllo");
        assert_eq!(event::truncate_chars("", 3), "");
        let doc = serde_json::json!({"message": "é".repeat(5000), "host": {"name": "h"}});
        let e = new_event(&doc);
        assert_eq!(e.message.as_deref().map(|m| m.chars().count()), Some(4096));
        assert_eq!(e.host.as_deref(), Some("h"));
        assert_eq!(serde_json::from_str::<Json>(&e.doc).unwrap(), doc);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_gives_the_job_back() {
        // A pipeline whose detection stage is not consuming: the queue fills up.
        let (tx, mut rx) = mpsc::channel(2);
        let p = Pipeline {
            tx,
            counts: Default::default(),
            progress: Arc::new(Progress::new()),
            stall_after: std::time::Duration::from_secs(60),
            budget: MemoryBudget::new(1 << 20),
        };
        assert!(p.try_submit(job(1)).is_ok());
        assert!(p.try_submit(job(2)).is_ok());
        let Err(Overloaded(back)) = p.try_submit(job(3)) else {
            panic!("a full queue must refuse");
        };
        assert_eq!(back.events.len(), 3, "the refused job comes back whole");
        // `submit` waits for room instead, and goes through once there is some.
        let waiting = tokio::spawn({
            let p = p.clone();
            async move { p.submit(job(4)).await.is_ok() }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        assert_eq!(rx.recv().await.unwrap().events.len(), 1);
        assert!(waiting.await.unwrap());
        // A stopped pipeline refuses too.
        drop(rx);
        assert!(p.try_submit(job(5)).is_err());
        assert!(p.submit(job(6)).await.is_err());
    }

    #[tokio::test]
    async fn a_drain_stores_every_queued_job_and_then_refuses() {
        use vigil_store::Backend;
        use vigil_store::testing::TestDb;
        let db = TestDb::new(Backend::Sqlite).await.expect("sqlite test db");
        let org = db.store.create_org("default").await.unwrap().id;
        let ml = crate::ml::MlEngine::start(Default::default(), &db.store)
            .await
            .unwrap();
        let (p, mut task) = Pipeline::start(
            db.store.event_store(),
            Arc::new(Rules::load(&[], vigil_detect::Level::Low).unwrap()),
            ml,
            PipelineConfig {
                queue_capacity: 64,
                dedup: true,
                dedup_window: Duration::seconds(60),
                stall_after: std::time::Duration::from_secs(60),
                memory_budget_bytes: 64 << 20,
            },
        );
        let mut replies = Vec::new();
        for _ in 0..20 {
            let (tx, rx) = oneshot::channel();
            let events = vec![serde_json::json!({"message": "queued before the drain"}); 50];
            let job = Job {
                org,
                reply: Some(tx),
                events,
                ..job(0)
            };
            assert!(p.try_submit(job).is_ok());
            replies.push(rx);
        }
        // Straight away: most of the 20 jobs are still queued.
        let drained = task.drain().await;
        assert_eq!(task.queued(), 0);
        for rx in replies {
            assert_eq!(rx.await.unwrap().unwrap().stored, 50);
        }
        assert!(
            drained.stored <= 1000 && drained.queued <= 1000,
            "{drained:?}"
        );
        let page = db.store.events_after(org, None, 5000).await.unwrap();
        assert_eq!(page.len(), 1000);
        // A closed queue refuses, as a full one does.
        assert!(p.try_submit(Job { org, ..job(1) }).is_err());
        assert!(p.submit(Job { org, ..job(1) }).await.is_err());
    }
}
