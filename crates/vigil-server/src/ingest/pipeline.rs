//! The ingestion pipeline: normalized events in, stored events and alerts out.
//!
//! Two stages joined by a short channel, so detection of one batch overlaps with storing
//! the previous one:
//!
//! ```text
//! submit ─► [queue: bounded] ─► detect (blocking thread; correlations per org, in order)
//!                                  └─► [4] ─► store events (+ batch id, one transaction)
//!                                               └─► raise or fold alerts ─► reply
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

use std::sync::Arc;
use std::time::Instant;

use chrono::Duration;
use serde_json::Value as Json;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;
use vigil_core::event::{self, fields};
use vigil_store::{AppendOutcome, Detection, DetectionOutcome, DynStore, EventStore, NewEvent};

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
    /// Starts both stages; they end when every `Pipeline` clone is dropped and the queue
    /// has drained.
    pub fn start(
        store: DynStore,
        events: Arc<dyn EventStore>,
        rules: Arc<Rules>,
        ml: Arc<crate::ml::MlEngine>,
        config: PipelineConfig,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let budget = MemoryBudget::new(config.memory_budget_bytes);
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let (dtx, drx) = mpsc::channel(4);
        let ml_store = ml.store().clone();
        let detect = tokio::spawn(detect_stage(rx, dtx, rules, ml));
        let store_task = tokio::spawn(store_stage(drx, store, events, ml_store, config));
        let done = tokio::spawn(async move {
            let _ = detect.await;
            let _ = store_task.await;
        });
        (Self { tx, budget }, done)
    }

    /// The memory budget every submitter reserves from before it builds a job.
    pub fn budget(&self) -> &MemoryBudget {
        &self.budget
    }

    /// Queues a job, or gives it back at once when the queue is full.
    pub fn try_submit(&self, job: Job) -> Result<(), Overloaded> {
        let n = job.events.len() as u64;
        let channel = job.channel;
        match self.tx.try_send(job) {
            Ok(()) => {
                metrics::counter!(SECURITY_EVENTS, "source" => channel, "outcome" => "received")
                    .increment(n);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job)) => {
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
        match self.tx.send(job).await {
            Ok(()) => {
                metrics::counter!(SECURITY_EVENTS, "source" => channel, "outcome" => "received")
                    .increment(n);
                Ok(())
            }
            Err(mpsc::error::SendError(job)) => Err(Overloaded(job)),
        }
    }
}

async fn detect_stage(
    mut rx: mpsc::Receiver<Job>,
    out: mpsc::Sender<Detected>,
    rules: Arc<Rules>,
    ml: Arc<crate::ml::MlEngine>,
) {
    let mut state = Some(Correlations::default());
    while let Some(job) = rx.recv().await {
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
    store: DynStore,
    events: Arc<dyn EventStore>,
    ml_store: Arc<dyn vigil_store::MlStore>,
    config: PipelineConfig,
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
        let result = match events
            .append_events(org, batch, channel, docs, vigil_core::now())
            .await
        {
            Ok(outcome) if outcome.duplicate => {
                metrics::counter!(SECURITY_EVENTS, "source" => channel, "outcome" => "duplicate")
                    .increment(n);
                Ok(outcome)
            }
            Ok(outcome) => {
                metrics::counter!(SECURITY_EVENTS, "source" => channel, "outcome" => "stored")
                    .increment(n);
                if let Err(e) = ml_store.append_features(org, ml_rows).await {
                    tracing::error!(error = %e, %org, "ml feature vectors could not be stored");
                }
                if !config.dedup {
                    for d in &mut detections {
                        d.dedup_key = None;
                    }
                }
                if !detections.is_empty() {
                    let raised: Vec<(String, String)> = detections
                        .iter()
                        .map(|d| {
                            (
                                d.alert.source.as_str().to_owned(),
                                d.alert.severity.as_str().to_owned(),
                            )
                        })
                        .collect();
                    match store
                        .record_detections(org, detections, config.dedup_window)
                        .await
                    {
                        Ok(outcomes) => {
                            metrics::counter!(SECURITY_EVENTS, "source" => channel, "outcome" => "alerted")
                                .increment(outcomes.len() as u64);
                            for (o, (source, severity)) in outcomes.iter().zip(raised) {
                                if matches!(o, DetectionOutcome::Created(_)) {
                                    metrics::counter!(ALERTS_CREATED, "source" => source, "severity" => severity)
                                        .increment(1);
                                }
                            }
                        }
                        Err(e) => tracing::error!(error = %e, %org, "alerts could not be stored"),
                    }
                    metrics::histogram!(ALERT_PROCESSING_DURATION)
                        .record(started.elapsed().as_secs_f64());
                }
                Ok(outcome)
            }
            Err(e) => {
                metrics::counter!(SECURITY_EVENTS, "source" => channel, "outcome" => "failed")
                    .increment(n);
                tracing::error!(error = %e, %org, "events could not be stored");
                Err("events could not be stored".to_owned())
            }
        };
        // The batch's memory is gone (documents freed in the detect stage, stored text
        // consumed by the write): its budget goes back before the sender hears of it.
        drop(reservation);
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
}
