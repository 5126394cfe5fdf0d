//! Startup and shutdown: `Application::build(config) -> port() -> run_until_stopped()`.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, Request, header};
use tokio::net::TcpListener;
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
    /// Tasks that live as long as the server (pipeline, retention, listeners).
    background: Vec<tokio::task::JoinHandle<()>>,
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
        )?);
        let events = store.event_store();
        let ml = crate::ml::MlEngine::start(config.ml.clone(), &store).await?;
        let (pipeline, pipeline_done) = crate::ingest::Pipeline::start(
            store.clone(),
            events.clone(),
            rules,
            ml.clone(),
            crate::ingest::PipelineConfig {
                queue_capacity: config.ingest.queue_capacity,
                dedup: config.ingest.dedup,
                dedup_window: chrono::Duration::seconds(
                    i64::try_from(config.ingest.dedup_window_secs).unwrap_or(i64::MAX / 1000),
                ),
                memory_budget_bytes: config.ingest.memory_budget_bytes,
            },
        );
        let retention = tokio::spawn(purge_old_events(
            events.clone(),
            config.ingest.retention_days,
        ));
        let ml_worker = tokio::spawn(crate::ml::worker::run(
            ml.clone(),
            store.clone(),
            chrono::Duration::seconds(
                i64::try_from(config.ingest.dedup_window_secs).unwrap_or(i64::MAX / 1000),
            ),
        ));
        let mut background = vec![pipeline_done, retention, ml_worker];
        let syslog = crate::syslog::SyslogListeners::bind(&config.syslog).await?;
        let syslog_addrs = SyslogAddrs {
            udp: syslog.udp_addr(),
            tcp: syslog.tcp_addr(),
            tls: syslog.tls_addr(),
        };
        if syslog_addrs.udp.is_some() || syslog_addrs.tcp.is_some() || syslog_addrs.tls.is_some() {
            let org = syslog_org(&store, config.syslog.org.as_deref()).await?;
            background.extend(syslog.spawn(pipeline.clone(), org, config.syslog.max_message_bytes));
            tracing::info!(udp = ?syslog_addrs.udp, tcp = ?syslog_addrs.tcp, tls = ?syslog_addrs.tls, "syslog listening");
        }
        let ai = crate::ai::Ai::from_config(&config)?;
        background.extend(crate::ai::background::spawn(&ai, &config, &store));
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
            sessions: crate::state::SessionCache::new(Duration::from_secs(
                config.auth.session_cache_secs,
            )),
            metrics: crate::metrics::install(),
            ai,
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

    /// The admin created at this start, if any.
    pub fn bootstrap(&self) -> Option<&BootstrapAdmin> {
        self.bootstrap.as_ref()
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish (bounded by
    /// `server.shutdown_grace_secs`) and closes the database.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let grace = Duration::from_secs(self.state.config.server.shutdown_grace_secs);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            let _ = stop_tx.send(true);
        };
        let serve = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signal);
        let mut stopped = stop_rx.clone();
        let deadline = async move {
            let _ = stopped.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            r = serve => r?,
            _ = deadline => tracing::warn!("grace period over; dropping remaining connections"),
        }
        if let Some(agent) = self.local_agent {
            // Flushes what the local agent still holds into the pipeline (or its buffer).
            if let Err(e) = agent.shutdown().await {
                tracing::warn!(error = %e, "local agent shutdown");
            }
        }
        for task in &self.background {
            task.abort();
        }
        self.state.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Deletes events older than the retention period, hourly.
async fn purge_old_events(events: std::sync::Arc<dyn vigil_store::EventStore>, days: u32) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let before = vigil_core::now() - chrono::Duration::days(i64::from(days));
        match events.purge_events(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, days, "old events purged"),
            Err(e) => tracing::warn!(error = %e, "event retention failed"),
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
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
