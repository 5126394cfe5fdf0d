//! Startup and shutdown: `Application::build(config) -> port() -> run_until_stopped()`.
//!
//! Shutdown (mini-redis style): one `CancellationToken` is shared by every task. When the
//! stop signal comes it is cancelled and the server drains, bounded by
//! `server.shutdown_grace_secs`:
//!
//! 1. the producers stop taking work: HTTP stops accepting and finishes in-flight requests;
//!    the syslog listeners stop accepting and reading, and queue the messages already read;
//!    the local agent flushes what it holds;
//! 2. the pipeline's queue is closed and every batch in it is stored;
//! 3. the background loops (job scheduler and runner, ML worker, Loki forwarder, outbox
//!    dispatcher) finish the round or the jobs they are in;
//! 4. the store closes.
//!
//! What did not finish in time is aborted (a batch not stored is never acknowledged) and
//! logged; either way `run_until_stopped` returns `Ok` once the store is closed.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, Request, header};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use vigil_core::Role;
use vigil_store::{DynStore, NewUser};

use crate::auth::{JwtKeys, hash_password, load_or_create_jwt_secret, random_token};
use crate::config::{Config, Secret};
use crate::middleware::{self, RateLimiter};
use crate::state::{AppState, Inner};

/// How long closing the store may wait for connections still in use at shutdown.
const STORE_CLOSE_WAIT: Duration = Duration::from_secs(5);

/// The first administrator, created on first start with an empty database.
#[derive(Debug, Clone)]
pub struct BootstrapAdmin {
    pub org: String,
    pub username: String,
    /// Set when the password was generated (shown once, never stored in clear).
    pub generated_password: Option<String>,
}

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    bootstrap: Option<BootstrapAdmin>,
    /// The one shutdown signal every task below watches.
    shutdown: CancellationToken,
    pipeline: crate::ingest::PipelineTask,
    syslog: Option<crate::syslog::SyslogTasks>,
    /// Loops that live as long as the server (retention, ML worker, AI jobs), by name.
    background: Vec<(&'static str, tokio::task::JoinHandle<()>)>,
    syslog_addrs: SyslogAddrs,
    /// The agent watching this host (`ingest.local_agent`).
    local_agent: Option<vigil_agent::AgentHandle>,
}

/// Where the syslog listeners are bound (those configured).
#[derive(Debug, Clone, Copy, Default)]
pub struct SyslogAddrs {
    pub udp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub tls: Option<SocketAddr>,
}

/// The organization syslog events go to: the configured one, else `default`, else the first.
async fn syslog_org(store: &DynStore, name: Option<&str>) -> anyhow::Result<uuid::Uuid> {
    if let Some(name) = name {
        return Ok(store
            .get_org_by_name(name)
            .await?
            .ok_or_else(|| anyhow::anyhow!("syslog.org: no organization named '{name}'"))?
            .id);
    }
    if let Some(o) = store.get_org_by_name("default").await? {
        return Ok(o.id);
    }
    store
        .list_orgs()
        .await?
        .first()
        .map(|o| o.id)
        .ok_or_else(|| anyhow::anyhow!("syslog: no organization exists yet"))
}

impl Application {
    /// Connects and migrates the store, creates the first admin when there are no users
    /// (with `admin_password`, or a random one), loads keys and binds the listener.
    pub async fn build(config: Config, admin_password: Option<Secret>) -> anyhow::Result<Self> {
        let url = config.database_url();
        let store = vigil_store::connect(&url, config.database.max_connections)
            .await
            .map_err(|e| anyhow::anyhow!("database {}: {e}", vigil_store::redact_url(&url)))?;
        store.migrate().await?;
        let bootstrap = bootstrap_admin(&store, admin_password).await?;
        let secret = load_or_create_jwt_secret(config.auth.jwt_secret.expose(), &config.data_dir)?;
        let listener = TcpListener::bind((config.server.host.as_str(), config.server.port))
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen on {}:{}: {e}",
                    config.server.host,
                    config.server.port
                )
            })?;
        let rules = std::sync::Arc::new(crate::ingest::detect::Rules::load(
            &config.ingest.rule_dirs,
            config.ingest.min_alert_level,
        )?);
        let events = store.event_store();
        let ml = crate::ml::MlEngine::start(config.ml.clone(), &store).await?;
        let shutdown = CancellationToken::new();
        let (pipeline, pipeline_task) = crate::ingest::Pipeline::start(
            events.clone(),
            rules,
            ml.clone(),
            crate::ingest::PipelineConfig {
                queue_capacity: config.ingest.queue_capacity,
                dedup: config.ingest.dedup,
                dedup_window: chrono::Duration::seconds(
                    i64::try_from(config.ingest.dedup_window_secs).unwrap_or(i64::MAX / 1000),
                ),
                stall_after: std::time::Duration::from_secs(config.ingest.stall_secs.max(1)),
                memory_budget_bytes: config.ingest.memory_budget_bytes,
            },
        );
        // Without Redis this process runs every job; with it, `vigil worker` does (unless
        // jobs.run_in_server), and this server reloads the models the workers train.
        let runs_jobs = config.redis.url.is_empty() || config.jobs.run_in_server;
        let ml_worker = tokio::spawn(crate::ml::worker::run(
            ml.clone(),
            store.clone(),
            chrono::Duration::seconds(
                i64::try_from(config.ingest.dedup_window_secs).unwrap_or(i64::MAX / 1000),
            ),
            !runs_jobs,
            shutdown.clone(),
        ));
        let mut background = vec![("ml-worker", ml_worker)];
        let syslog = crate::syslog::SyslogListeners::bind(&config.syslog).await?;
        let syslog_addrs = SyslogAddrs {
            udp: syslog.udp_addr(),
            tcp: syslog.tcp_addr(),
            tls: syslog.tls_addr(),
        };
        let syslog = if syslog_addrs.udp.is_some()
            || syslog_addrs.tcp.is_some()
            || syslog_addrs.tls.is_some()
        {
            let org = syslog_org(&store, config.syslog.org.as_deref()).await?;
            let tasks = syslog.spawn(
                pipeline.clone(),
                org,
                config.syslog.max_message_bytes,
                config.ingest.max_future_skew_secs,
                shutdown.clone(),
            );
            tracing::info!(udp = ?syslog_addrs.udp, tcp = ?syslog_addrs.tcp, tls = ?syslog_addrs.tls, "syslog listening");
            Some(tasks)
        } else {
            None
        };
        // Before any loop that records metrics (the outbox dispatcher's first round).
        let metrics = crate::metrics::install();
        let webhooks = crate::webhooks::Webhooks::new(&store, &config.webhooks, &secret)?;
        webhooks.sync_config_endpoints(&store).await?;
        let jobs = crate::jobs::connect(&config).await?;
        // With Redis, deliveries are `webhook.deliver` jobs (run by `vigil worker`).
        let submit: std::sync::Arc<dyn crate::webhooks::DeliverySubmit> =
            if config.redis.url.is_empty() {
                std::sync::Arc::new(crate::webhooks::LocalSubmit::new(webhooks.clone()))
            } else {
                std::sync::Arc::new(crate::webhooks::JobSubmit::new(
                    webhooks.clone(),
                    jobs.clone(),
                ))
            };
        let scheduler = crate::webhooks::scheduler::Scheduler::new(webhooks.clone(), submit);
        background.push(("webhooks", tokio::spawn(scheduler.run(shutdown.clone()))));
        let hub = std::sync::Arc::new(crate::outbox::LiveHub::new(crate::outbox::HUB_CAPACITY));
        // With Redis, events reach this hub through the subscriber like every replica's.
        let fanout: std::sync::Arc<dyn crate::outbox::Fanout> = if config.redis.url.is_empty() {
            std::sync::Arc::new(crate::outbox::LocalFanout(hub.clone()))
        } else {
            let url = config.redis.url.expose();
            let subscriber =
                crate::outbox::RedisSubscriber::new(url, &config.redis.key_prefix, hub.clone())?;
            background.push((
                "redis-subscriber",
                subscriber.start(shutdown.clone()).await?,
            ));
            std::sync::Arc::new(crate::outbox::RedisFanout::new(
                crate::jobs::redis::connect(url).await?,
                &config.redis.key_prefix,
            ))
        };
        let sinks: Vec<std::sync::Arc<dyn crate::outbox::OutboxSink>> = vec![std::sync::Arc::new(
            crate::webhooks::WebhookSink::new(webhooks.clone()),
        )];
        let dispatcher = crate::outbox::OutboxDispatcher::new(
            store.outbox_store(),
            fanout,
            sinks,
            config.outbox.clone(),
        );
        background.push(("outbox", tokio::spawn(dispatcher.run(shutdown.clone()))));
        let ai = crate::ai::Ai::from_config(&config)?;
        background.extend(crate::ai::background::spawn(
            &ai, &config, &store, &shutdown,
        ));
        let (stream, stream_encoder) =
            crate::stream::StreamHub::start(&hub, crate::outbox::HUB_CAPACITY, shutdown.clone());
        background.push(("stream", stream_encoder));
        let job_ctx = crate::jobs::JobContext {
            config: std::sync::Arc::new(config.clone()),
            store: store.clone(),
            ml: ml.clone(),
            ai: ai.clone(),
            webhooks: webhooks.clone(),
            jobs: jobs.clone(),
        };
        background.extend(crate::jobs::start(&job_ctx, runs_jobs, "serve", &shutdown).await?);
        let rl = &config.rate_limit;
        let state = AppState::new(Inner {
            events,
            pipeline,
            ml,
            api_limiter: RateLimiter::new(rl.requests_per_second, rl.burst),
            login_limiter: RateLimiter::new(rl.login_per_minute / 60.0, rl.login_burst),
            ingest_limiter: RateLimiter::new(
                config.ingest.rate_limit_per_credential,
                config.ingest.rate_limit_burst,
            ),
            // Failed ingest authentications per IP get the interactive API's rate.
            ingest_auth_limiter: RateLimiter::new(rl.requests_per_second, rl.burst),
            jwt: JwtKeys::new(&secret),
            stream,
            shutdown: shutdown.clone(),
            sessions: crate::state::SessionCache::new(Duration::from_secs(
                config.auth.session_cache_secs,
            )),
            metrics,
            ai,
            webhooks,
            jobs,
            hub,
            store,
            config,
        });
        let local_agent = if state.config.ingest.local_agent {
            let org = syslog_org(&state.store, None).await?;
            match crate::local_agent::start(
                &state.config.data_dir,
                state.store.clone(),
                state.pipeline.clone(),
                org,
                state.config.ingest.max_future_skew_secs,
            )
            .await
            {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(error = %e, "local agent not started");
                    None
                }
            }
        } else {
            None
        };
        let router = build_router(state.clone());
        Ok(Self {
            local_agent,
            listener,
            router,
            state,
            bootstrap,
            shutdown,
            pipeline: pipeline_task,
            syslog,
            background,
            syslog_addrs,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Bound syslog listeners (port 0 in the config picks a free one).
    pub fn syslog_addrs(&self) -> SyslogAddrs {
        self.syslog_addrs
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn store(&self) -> DynStore {
        self.state.store.clone()
    }

    /// The hub dispatched alert events are delivered into.
    pub fn hub(&self) -> std::sync::Arc<crate::outbox::LiveHub> {
        self.state.hub.clone()
    }

    /// The admin created at this start, if any.
    pub fn bootstrap(&self) -> Option<&BootstrapAdmin> {
        self.bootstrap.as_ref()
    }

    /// Serves until `shutdown` completes, then drains (see the module doc) for at most
    /// `server.shutdown_grace_secs` and closes the database.
    pub async fn run_until_stopped(
        mut self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let grace = Duration::from_secs(self.state.config.server.shutdown_grace_secs);
        let token = self.shutdown.clone();
        let serve = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(token.clone().cancelled_owned());
        let mut serve = std::pin::pin!(serve.into_future());
        let mut served = None;
        tokio::select! {
            r = &mut serve => served = Some(r),
            _ = shutdown => {}
        }
        tracing::info!(
            grace_secs = grace.as_secs(),
            "shutting down: draining in-flight requests, syslog messages and queued batches"
        );
        token.cancel();
        let deadline = tokio::time::Instant::now() + grace;
        let local_agent = self.local_agent.take();
        let drain = async {
            // 1. Producers stop taking work and hand over what they hold.
            let http = async {
                if served.is_none() {
                    served = Some((&mut serve).await);
                }
            };
            let syslog = async {
                if let Some(s) = &self.syslog {
                    s.wait().await;
                }
            };
            let agent = async {
                if let Some(agent) = local_agent {
                    // Flushes what the local agent still holds into the pipeline (or its buffer).
                    if let Err(e) = agent.shutdown().await {
                        tracing::warn!(error = %e, "local agent shutdown");
                    }
                }
            };
            tokio::join!(http, syslog, agent);
            // 2. Everything queued is stored.
            let drained = self.pipeline.drain().await;
            // 3. Background loops finish their round.
            for (_, task) in &mut self.background {
                let _ = task.await;
            }
            drained
        };
        let drained = tokio::time::timeout_at(deadline, drain).await;
        for r in self.syslog.iter().flat_map(|s| s.report()) {
            tracing::info!(
                listener = r.listener,
                received = r.received,
                queued = r.queued,
                stored = r.stored,
                refused = r.refused,
                invalid = r.invalid,
                incomplete_bytes = r.incomplete_bytes,
                "syslog drained"
            );
        }
        match drained {
            Ok(d) => tracing::info!(
                queued_events = d.queued,
                stored_events = d.stored,
                "pipeline drained"
            ),
            Err(_) => {
                let pending = unfinished(&self.background);
                tracing::warn!(
                    grace_secs = grace.as_secs(),
                    http_finished = served.is_some(),
                    dropped_queued_events = self.pipeline.queued(),
                    background_pending = ?pending,
                    "shutdown grace period over: aborting what is left (unstored batches were not acknowledged)"
                );
                self.pipeline.abort();
                for (_, task) in &self.background {
                    task.abort();
                }
            }
        }
        close_store(&self.state.store).await;
        match served {
            Some(Err(e)) => Err(e.into()),
            _ => Ok(()),
        }
    }
}

/// The last step of a shutdown (`vigil serve`, `vigil worker`): closes the store and logs
/// `stopped`. Closing waits for connections still checked out; a request or job left
/// running past the grace period may hold one, so this wait is bounded too.
pub(crate) async fn close_store(store: &DynStore) {
    if tokio::time::timeout(STORE_CLOSE_WAIT, store.close())
        .await
        .is_err()
    {
        tracing::warn!(
            wait_secs = STORE_CLOSE_WAIT.as_secs(),
            "store close: connections still in use; exiting without waiting for them"
        );
    }
    tracing::info!("stopped");
}

/// The names of the tasks still running.
pub(crate) fn unfinished(
    tasks: &[(&'static str, tokio::task::JoinHandle<()>)],
) -> Vec<&'static str> {
    tasks
        .iter()
        .filter(|(_, t)| !t.is_finished())
        .map(|(name, _)| *name)
        .collect()
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called (inside
/// the runtime), not when the future is first polled: call it before the server answers
/// anything, so a signal sent as soon as `/health` answers is never the default action
/// (which ends the process with the signal, not exit code 0).
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            let (mut term, mut int) = match (term, int) {
                (Ok(t), Ok(i)) => (t, i),
                (t, i) => {
                    let e = t.err().or(i.err());
                    tracing::warn!(error = ?e, "cannot install SIGTERM/SIGINT handlers; Ctrl-C only");
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
            tokio::select! {
                _ = term.recv() => tracing::info!(signal = "SIGTERM", "stop requested"),
                _ = int.recv() => tracing::info!(signal = "SIGINT", "stop requested"),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Creates org `default` and user `admin` when the database has no users.
pub async fn bootstrap_admin(
    store: &DynStore,
    password: Option<Secret>,
) -> anyhow::Result<Option<BootstrapAdmin>> {
    if store.count_users().await? > 0 {
        return Ok(None);
    }
    let org = match store.get_org_by_name("default").await? {
        Some(o) => o,
        None => store.create_org("default").await?,
    };
    let (password, generated) = match password.filter(|p| !p.is_empty()) {
        Some(p) => {
            vigil_core::validate_password(p.expose())
                .map_err(|e| anyhow::anyhow!("VIGIL_ADMIN_PASSWORD: {e}"))?;
            (p.expose().to_string(), None)
        }
        None => {
            let p = random_token();
            (p.clone(), Some(p))
        }
    };
    let hash = hash_password(password)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    store
        .create_user(NewUser {
            org_id: org.id,
            username: "admin".into(),
            email: None,
            password_hash: hash,
            role: Role::Admin,
        })
        .await?;
    Ok(Some(BootstrapAdmin {
        org: org.name,
        username: "admin".into(),
        generated_password: generated,
    }))
}

fn build_router(state: AppState) -> Router {
    let cfg = &state.config.server;
    let request_id = HeaderName::from_static("x-request-id");
    let mut router = crate::api::routes()
        .layer(DefaultBodyLimit::max(cfg.body_limit_bytes))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::timeout,
        ))
        .layer(axum::middleware::from_fn(middleware::track_metrics))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::rate_limit,
        ));
    if !cfg.cors_origins.is_empty() {
        let origins: Vec<HeaderValue> = cfg
            .cors_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
            .collect();
        router = router.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([
                    Method::GET,
                    Method::POST,
                    Method::PATCH,
                    Method::PUT,
                    Method::DELETE,
                ])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
                .allow_credentials(true)
                .max_age(Duration::from_secs(600)),
        );
    }
    let debug = cfg.debug;
    router
        .layer(axum::middleware::from_fn(middleware::security_headers))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http()
                // Always an INFO span, so anything logged while handling a request (warnings,
                // internal error ids) carries its request id.
                .make_span_with(|req: &Request<_>| {
                    let rid = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %rid)
                })
                // One access-log line per request with API_DEBUG; otherwise only at debug level.
                .on_request(())
                .on_response(DefaultOnResponse::new().level(if debug { Level::INFO } else { Level::DEBUG })),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}
