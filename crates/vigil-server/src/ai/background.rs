//! Background work of the AI side: auto-triage of new high and critical alerts (one round,
//! run by the periodic job `ai.auto_triage`) and the Loki forwarder (a loop of `vigil
//! serve`). Both are off by default; the forwarder stops with the server: on the shutdown
//! signal it finishes the page it is on and returns, before the store closes.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use vigil_core::{AlertFilter, AlertSortField, AlertStatus, Severity};
use vigil_integrations::loki::events_to_streams;
use vigil_store::DynStore;

use super::Ai;
use crate::metrics::LOKI_FORWARDED;

/// Batches of 1000 events the forwarder pushes per organization and round.
const MAX_PAGES: usize = 20;

/// Starts the Loki forwarder when configured (auto-triage is the periodic job
/// `ai.auto_triage`, see [`auto_triage_round`]).
pub fn spawn(
    ai: &Ai,
    cfg: &crate::config::Config,
    store: &DynStore,
    shutdown: &CancellationToken,
) -> Vec<(&'static str, tokio::task::JoinHandle<()>)> {
    let mut tasks = Vec::new();
    if cfg.loki.forward
        && let Some(loki) = &ai.loki
    {
        tasks.push((
            "loki-forwarder",
            tokio::spawn(forward(
                loki.clone(),
                store.clone(),
                Duration::from_secs(cfg.loki.forward_interval_secs),
                shutdown.clone(),
            )),
        ));
    }
    tasks
}

/// Triages the open high and critical alerts created since `since` that have no triage yet
/// (the newest 50 per organization), once each: an alert with a stored triage is skipped,
/// so running this twice does no extra model calls. Returns the triages stored; a model
/// failure leaves the alert for the next round.
pub async fn auto_triage_round(
    ai: &Ai,
    store: &DynStore,
    since: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<usize> {
    let mut stored = 0;
    for org in store.list_orgs().await? {
        let filter = AlertFilter {
            severities: vec![Severity::High, Severity::Critical],
            statuses: vec![AlertStatus::Open],
            sort: AlertSortField::CreatedAt,
            descending: true,
            limit: 50,
            ..Default::default()
        };
        let page = store.list_alerts(org.id, &filter).await?;
        for a in page.items.into_iter().filter(|a| a.created_at >= since) {
            if store
                .list_triage(org.id, a.id)
                .await?
                .is_some_and(|t| !t.is_empty())
            {
                continue;
            }
            match super::triage::triage_alert(ai, store, org.id, a.id, "auto-triage").await {
                Ok(_) => {
                    stored += 1;
                    tracing::info!(alert = %a.id, "auto-triage stored");
                }
                // Tried again next round (the model may be back by then).
                Err(e) => tracing::warn!(alert = %a.id, error = %e, "auto-triage failed"),
            }
        }
    }
    Ok(stored)
}

/// The smallest UUIDv7 of instant `t`: every id generated at or after `t` sorts above it.
fn v7_floor(t: chrono::DateTime<chrono::Utc>) -> uuid::Uuid {
    let ms = u64::try_from(t.timestamp_millis()).unwrap_or(0);
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    b[6] = 0x70;
    b[8] = 0x80;
    uuid::Uuid::from_bytes(b)
}

/// Pushes events to Loki in the order they were stored (by id, UUIDv7 given at storage
/// time), per organization (labelled `org`), so late-arriving events with old timestamps
/// are forwarded too. Starts with events stored 5 minutes before the server started (Loki
/// drops an entry identical to one it has); a failed push is retried next round with the
/// same events.
async fn forward(
    loki: vigil_integrations::loki::LokiClient,
    store: DynStore,
    every: Duration,
    shutdown: CancellationToken,
) {
    let start = v7_floor(vigil_core::now() - chrono::Duration::minutes(5));
    let mut cursor = std::collections::HashMap::<uuid::Uuid, uuid::Uuid>::new();
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Ok(orgs) = store.list_orgs().await else {
            continue;
        };
        for org in orgs {
            // Up to MAX_PAGES batches per organization and round.
            for _ in 0..MAX_PAGES {
                if shutdown.is_cancelled() {
                    return;
                }
                let after = *cursor.get(&org.id).unwrap_or(&start);
                let items = match store.events_after(org.id, Some(after), 1000).await {
                    Ok(i) => i,
                    Err(e) => {
                        tracing::warn!(error = %e, "loki forwarder: cannot read events");
                        break;
                    }
                };
                let Some(last) = items.last().map(|e| e.id) else {
                    break;
                };
                let mut streams = events_to_streams(
                    items
                        .iter()
                        .map(|e| (e.timestamp, e.channel.as_str(), &e.doc)),
                );
                for s in &mut streams {
                    s.labels.insert("org".into(), org.name.clone());
                }
                match loki.push(&streams).await {
                    Ok(()) => {
                        metrics::counter!(LOKI_FORWARDED).increment(items.len() as u64);
                        cursor.insert(org.id, last);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "loki forwarder: push failed; retrying next round");
                        break;
                    }
                }
                if items.len() < 1000 {
                    break;
                }
            }
        }
    }
}
