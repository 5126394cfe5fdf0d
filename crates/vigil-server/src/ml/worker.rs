//! The ML worker, a background task of `vigil serve`: closes idle windows (scoring them)
//! every `ml.flush_interval_secs`. Retraining is the periodic job `ml.retrain`
//! ([`retrain_all`], run by whichever process runs jobs); a server that does not run jobs
//! itself (`[redis] url` without `jobs.run_in_server`) reloads the stored models every
//! [`RELOAD_EVERY`] instead, to pick up what the workers trained. Ends with the server: on
//! the shutdown signal it finishes the round it is in and returns, before the store closes.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use vigil_store::DynStore;

use super::MlEngine;

/// How often a server that runs no jobs reloads models trained elsewhere.
pub const RELOAD_EVERY: Duration = Duration::from_secs(60);

pub async fn run(
    engine: Arc<MlEngine>,
    store: DynStore,
    dedup_window: chrono::Duration,
    reload_models: bool,
    shutdown: CancellationToken,
) {
    let cfg = engine.config().clone();
    if !cfg.enabled {
        return;
    }
    let mut flush = tokio::time::interval(Duration::from_secs(cfg.flush_interval_secs.max(1)));
    let mut reload =
        tokio::time::interval_at(tokio::time::Instant::now() + RELOAD_EVERY, RELOAD_EVERY);
    let grace = chrono::Duration::seconds(i64::try_from(cfg.window_grace_secs).unwrap_or(0));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = flush.tick() => {
                engine
                    .flush_and_record(&store, vigil_core::now() - grace, dedup_window)
                    .await;
            }
            _ = reload.tick(), if reload_models => {
                reload_all(&engine, &store).await;
            }
        }
    }
}

async fn reload_all(engine: &MlEngine, store: &DynStore) {
    match store.list_orgs().await {
        Ok(orgs) => {
            for org in orgs {
                if let Err(e) = engine.load(org.id).await {
                    tracing::warn!(error = %e, org = %org.id, "ml model reload failed");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "ml model reload: cannot list organizations"),
    }
}

/// Retrains every organization's models and purges vectors past `ml.history_hours`.
/// Fails only when nothing could be done (the organizations cannot be listed, or every
/// organization failed), so the job is retried.
pub async fn retrain_all(engine: &MlEngine, store: &DynStore) -> anyhow::Result<()> {
    async {
        let orgs = store.list_orgs().await?;
        let mut failed = 0;
        let mut last_error = None;
        for org in &orgs {
            if let Err(e) = engine.retrain(org.id).await {
                tracing::warn!(error = %e, org = %org.id, "ml retrain failed");
                failed += 1;
                last_error = Some(e);
            }
        }
        let hours = i64::try_from(engine.config().history_hours).unwrap_or(168);
        if let Err(e) = engine
            .store()
            .purge_features(vigil_core::now() - chrono::Duration::hours(hours))
            .await
        {
            tracing::warn!(error = %e, "ml feature purge failed");
        }
        match last_error {
            Some(e) if failed == orgs.len() => Err(e),
            _ => Ok(()),
        }
    }
    .instrument(tracing::info_span!("ml_retrain"))
    .await
}
