//! `vigil worker`: runs the jobs of the Redis queue (`[redis] url` is required), next to
//! any number of `vigil serve` replicas on the same database and Redis. It serves only
//! `/health` and `/metrics` on `[worker] host:port`.
//!
//! Same startup and shutdown as the server: `Worker::build(config) -> port() ->
//! run_until_stopped(signal)`; on SIGTERM/SIGINT it stops taking jobs, lets the running ones
//! finish within `server.shutdown_grace_secs`, closes the store and exits 0. A job cut off
//! by the grace period (or by SIGKILL) is not lost: Redis hands it to another worker after
//! `jobs.visibility_timeout_secs`.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use vigil_server::{config::Config, worker::Worker};
//! let mut config = Config::load(None)?;
//! config.redis.url = vigil_server::config::Secret::new("redis://127.0.0.1:6379");
//! config.worker.port = 0;
//! let worker = Worker::build(config).await?;
//! println!("worker metrics on port {}", worker.port());
//! worker.run_until_stopped(vigil_server::shutdown_signal()).await
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use vigil_store::DynStore;

use crate::config::Config;
use crate::jobs::{JobContext, JobQueue};

pub struct Worker {
    listener: TcpListener,
    store: DynStore,
    jobs: Arc<dyn JobQueue>,
    metrics: PrometheusHandle,
    grace: Duration,
    shutdown: CancellationToken,
    tasks: Vec<(&'static str, tokio::task::JoinHandle<()>)>,
}

#[derive(Clone)]
struct WorkerState {
    jobs: Arc<dyn JobQueue>,
    metrics: PrometheusHandle,
}

impl Worker {
    /// Connects the store (migrating it, as `vigil serve` does), Redis and the job
    /// handlers' dependencies, binds `[worker] host:port` and starts the runner.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        if config.redis.url.is_empty() {
            anyhow::bail!(
                "vigil worker runs the jobs of the Redis queue: set [redis] url (VIGIL_REDIS__URL); without Redis, vigil serve runs every job itself"
            );
        }
        let url = config.database_url();
        let store = vigil_store::connect(&url, config.database.max_connections)
            .await
            .map_err(|e| anyhow::anyhow!("database {}: {e}", vigil_store::redact_url(&url)))?;
        store.migrate().await?;
        let listener = TcpListener::bind((config.worker.host.as_str(), config.worker.port))
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen on {}:{}: {e}",
                    config.worker.host,
                    config.worker.port
                )
            })?;
        let metrics = crate::metrics::install();
        let ml = crate::ml::MlEngine::start(config.ml.clone(), &store).await?;
        let ai = crate::ai::Ai::from_config(&config)?;
        let jobs = crate::jobs::connect(&config).await?;
        // The same secret as the replicas: it opens the endpoints' sealed signing secrets.
        if config.auth.jwt_secret.is_empty() {
            tracing::warn!(
                "auth.jwt_secret is not set: this worker's secret (in its data_dir) must equal the replicas' or webhook deliveries fail to open their signing secrets"
            );
        }
        let secret = crate::auth::load_or_create_jwt_secret(
            config.auth.jwt_secret.expose(),
            &config.data_dir,
        )?;
        let webhooks = crate::webhooks::Webhooks::new(&store, &config.webhooks, &secret)?;
        let shutdown = CancellationToken::new();
        let grace = Duration::from_secs(config.server.shutdown_grace_secs);
        let ctx = JobContext {
            config: Arc::new(config),
            store: store.clone(),
            ml,
            ai,
            webhooks,
            jobs: jobs.clone(),
        };
        let tasks = crate::jobs::start(&ctx, true, "worker", &shutdown).await?;
        Ok(Self {
            listener,
            store,
            jobs,
            metrics,
            grace,
            shutdown,
            tasks,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves `/health` and `/metrics` and runs jobs until `shutdown` completes, then lets
    /// running jobs finish (bounded by `server.shutdown_grace_secs`) and closes the store.
    pub async fn run_until_stopped(
        mut self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let token = self.shutdown.clone();
        let router = Router::new()
            .route("/health", get(health))
            .route("/metrics", get(metrics))
            .with_state(WorkerState {
                jobs: self.jobs.clone(),
                metrics: self.metrics.clone(),
            });
        let serve = axum::serve(self.listener, router)
            .with_graceful_shutdown(token.clone().cancelled_owned());
        let mut serve = std::pin::pin!(serve.into_future());
        let mut served = None;
        tokio::select! {
            r = &mut serve => served = Some(r),
            _ = shutdown => {}
        }
        tracing::info!(
            grace_secs = self.grace.as_secs(),
            "worker shutting down: finishing running jobs"
        );
        token.cancel();
        let deadline = tokio::time::Instant::now() + self.grace;
        let drain = async {
            if served.is_none() {
                served = Some((&mut serve).await);
            }
            for (_, task) in &mut self.tasks {
                let _ = task.await;
            }
        };
        if tokio::time::timeout_at(deadline, drain).await.is_err() {
            let pending = crate::app::unfinished(&self.tasks);
            tracing::warn!(
                grace_secs = self.grace.as_secs(),
                pending = ?pending,
                "shutdown grace period over: aborting running jobs (another worker takes them after the visibility timeout)"
            );
            for (_, task) in &self.tasks {
                task.abort();
            }
        }
        crate::app::close_store(&self.store).await;
        match served {
            Some(Err(e)) => Err(e.into()),
            _ => Ok(()),
        }
    }
}

/// `{"status": "ok", "role": "worker", "redis": "ok" | "unavailable", "jobs_pending": n}`.
async fn health(State(state): State<WorkerState>) -> impl IntoResponse {
    let pending = state.jobs.pending().await;
    axum::Json(serde_json::json!({
        "status": "ok",
        "role": "worker",
        "version": env!("CARGO_PKG_VERSION"),
        "redis": if pending.is_ok() { "ok" } else { "unavailable" },
        "jobs_pending": pending.ok(),
    }))
}

async fn metrics(State(state): State<WorkerState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
