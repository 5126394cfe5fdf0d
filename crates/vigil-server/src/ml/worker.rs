//! The ML worker, a background task of `vigil serve`: closes idle windows (scoring them),
//! retrains every organization's models every `ml.retrain_interval_secs`, and purges
//! vectors older than `ml.history_hours`. Ends with the server: on the shutdown signal it
//! finishes the round it is in and returns, before the store closes.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use vigil_store::DynStore;

use super::MlEngine;

pub async fn run(
    engine: Arc<MlEngine>,
    store: DynStore,
    dedup_window: chrono::Duration,
    shutdown: CancellationToken,
) {
    let cfg = engine.config().clone();
    if !cfg.enabled {
        return;
    }
    let mut flush = tokio::time::interval(Duration::from_secs(cfg.flush_interval_secs.max(1)));
    let every = Duration::from_secs(cfg.retrain_interval_secs.max(1));
    let mut retrain = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let grace = chrono::Duration::seconds(i64::try_from(cfg.window_grace_secs).unwrap_or(0));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = flush.tick() => {
                engine
                    .flush_and_record(&store, vigil_core::now() - grace, dedup_window)
                    .await;
            }
            _ = retrain.tick(), if cfg.retrain_interval_secs > 0 => {
                retrain_all(&engine, &store)
                    .instrument(tracing::info_span!("ml_retrain"))
                    .await;
            }
        }
    }
}

async fn retrain_all(engine: &MlEngine, store: &DynStore) {
    match store.list_orgs().await {
        Ok(orgs) => {
            for org in orgs {
                if let Err(e) = engine.retrain(org.id).await {
                    tracing::warn!(error = %e, org = %org.id, "ml retrain failed");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "ml retrain: cannot list organizations"),
    }
    let hours = i64::try_from(engine.config().history_hours).unwrap_or(168);
    if let Err(e) = engine
        .store()
        .purge_features(vigil_core::now() - chrono::Duration::hours(hours))
        .await
    {
        tracing::warn!(error = %e, "ml feature purge failed");
    }
}
