//! Background jobs: auto-triage of new high and critical alerts, and the Loki forwarder.
//! Both are off by default and stop with the server (their tasks are aborted at shutdown).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use vigil_core::{AlertFilter, AlertSortField, AlertStatus, Severity};
use vigil_integrations::loki::events_to_streams;
use vigil_store::{DynStore, EventFilter, EventStore};

use super::Ai;

/// Pages of 1000 events the forwarder reads per organization and round.
const MAX_PAGES: usize = 20;

/// Starts the configured jobs.
pub fn spawn(
    ai: &Ai,
    cfg: &crate::config::Config,
    store: &DynStore,
    events: &Arc<dyn EventStore>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    if cfg.ollama.auto_triage && ai.llm.is_some() {
        tasks.push(tokio::spawn(auto_triage(
            ai.clone(),
            store.clone(),
            Duration::from_secs(cfg.ollama.auto_triage_interval_secs),
        )));
    }
    if cfg.loki.forward
        && let Some(loki) = &ai.loki
    {
        tasks.push(tokio::spawn(forward(
            loki.clone(),
            store.clone(),
            events.clone(),
            Duration::from_secs(cfg.loki.forward_interval_secs),
        )));
    }
    tasks
}

/// Triages open high and critical alerts created after the server started, once each.
async fn auto_triage(ai: Ai, store: DynStore, every: Duration) {
    let started = vigil_core::now();
    let mut done: HashSet<uuid::Uuid> = HashSet::new();
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let orgs = match store.list_orgs().await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "auto-triage: cannot list organizations");
                continue;
            }
        };
        for org in orgs {
            let filter = AlertFilter {
                severities: vec![Severity::High, Severity::Critical],
                statuses: vec![AlertStatus::Open],
                sort: AlertSortField::CreatedAt,
                descending: true,
                limit: 50,
                ..Default::default()
            };
            let Ok(page) = store.list_alerts(org.id, &filter).await else {
                continue;
            };
            for a in page.items.into_iter().filter(|a| a.created_at >= started) {
                if done.contains(&a.id) {
                    continue;
                }
                match store.list_triage(org.id, a.id).await {
                    Ok(Some(t)) if !t.is_empty() => {
                        done.insert(a.id);
                        continue;
                    }
                    Ok(_) => {}
                    Err(_) => continue,
                }
                match super::triage::triage_alert(&ai, &store, org.id, a.id, "auto-triage").await {
                    Ok(_) => {
                        done.insert(a.id);
                        tracing::info!(alert = %a.id, "auto-triage stored");
                    }
                    // Tried again next round (the model may be back by then).
                    Err(e) => tracing::warn!(alert = %a.id, error = %e, "auto-triage failed"),
                }
            }
        }
    }
}

/// Pushes events stored since the last push to Loki, per organization (labelled `org`).
/// Starts from the events arriving after the server started; a failed push is retried
/// with the same events next round.
async fn forward(
    loki: vigil_integrations::loki::LokiClient,
    store: DynStore,
    events: Arc<dyn EventStore>,
    every: Duration,
) {
    let mut since = std::collections::HashMap::<uuid::Uuid, chrono::DateTime<chrono::Utc>>::new();
    let started = vigil_core::now();
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let Ok(orgs) = store.list_orgs().await else {
            continue;
        };
        for org in orgs {
            let from = *since.get(&org.id).unwrap_or(&started);
            let to = vigil_core::now();
            let mut f = EventFilter {
                from: Some(from),
                to: Some(to),
                limit: 1000,
                ..Default::default()
            };
            let mut items = Vec::new();
            let mut failed = false;
            for _ in 0..MAX_PAGES {
                match events.query_events(org.id, &f).await {
                    Ok(p) => {
                        items.extend(p.items);
                        match p.next_cursor {
                            Some(c) => f.cursor = Some(c),
                            None => break,
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "loki forwarder: cannot read events");
                        failed = true;
                        break;
                    }
                }
            }
            if failed {
                continue;
            }
            if f.cursor.is_some() && items.len() >= MAX_PAGES * 1000 {
                tracing::warn!(
                    pushed = items.len(),
                    "loki forwarder: more events than one round pushes; the oldest of this round were skipped"
                );
            }
            if items.is_empty() {
                since.insert(org.id, to);
                continue;
            }
            let next = to;
            let page = vigil_store::EventPage {
                items,
                next_cursor: None,
            };
            let mut streams = events_to_streams(
                page.items
                    .iter()
                    .map(|e| (e.timestamp, e.channel.as_str(), &e.doc)),
            );
            for s in &mut streams {
                s.labels.insert("org".into(), org.name.clone());
            }
            match loki.push(&streams).await {
                Ok(()) => {
                    since.insert(org.id, next);
                }
                Err(e) => tracing::warn!(error = %e, "loki forwarder: push failed; retrying"),
            }
        }
    }
}
