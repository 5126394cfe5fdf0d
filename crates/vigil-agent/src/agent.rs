//! The agent: sources -> shipper -> transport, plus heartbeats, under one shutdown signal.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;
use vigil_core::event::Heartbeat;

use crate::buffer::DiskBuffer;
use crate::config::AgentConfig;
use crate::error::{Error, Result};
use crate::shipper::{Shipper, Stats, StatsSnapshot};
use crate::source::metrics::MetricsSource;
use crate::source::process::ProcessSource;
use crate::source::tail::{OffsetStore, TailSource};
use crate::source::{EventSender, HostInfo, Shutdown, Source, SourceContext};
use crate::state;
use crate::transport::{HttpTransport, SendOutcome, Transport};

/// Events waiting between the sources and the shipper; sources wait when it is full.
const CHANNEL_CAPACITY: usize = 2048;

/// A configured agent, ready to [`run`](Agent::run) or [`spawn`](Agent::spawn).
pub struct Agent {
    config: AgentConfig,
    state_dir: PathBuf,
    host: HostInfo,
    transport: Arc<dyn Transport>,
    extra_sources: Vec<Box<dyn Source>>,
    stats: Arc<Stats>,
}

impl Agent {
    /// Validates the configuration, resolves the state directory, enrolls when there is no
    /// stored credential yet, and builds the HTTP transport.
    pub async fn build(config: AgentConfig) -> Result<Self> {
        config.validate()?;
        let state_dir = config.resolve_state_dir()?;
        let hostname = config.effective_hostname();
        let identity = state::load_or_enroll(&config, &state_dir, &hostname).await?;
        let transport = HttpTransport::new(
            &config.server_url,
            identity.credential.clone(),
            Duration::from_secs(config.shipper.request_timeout_secs),
        )?;
        Agent::with_transport(config, &state_dir, identity.agent_id, Arc::new(transport))
    }

    /// An agent over any [`Transport`] (e.g. in-process in `vigil serve`); no enrollment.
    pub fn with_transport(
        config: AgentConfig,
        state_dir: &Path,
        agent_id: Uuid,
        transport: Arc<dyn Transport>,
    ) -> Result<Self> {
        config.validate_settings()?;
        std::fs::create_dir_all(state_dir).map_err(|e| Error::io("creating", state_dir, e))?;
        let hostname = config.effective_hostname();
        Ok(Agent {
            host: HostInfo {
                agent_name: hostname.clone(),
                hostname,
                agent_id,
            },
            state_dir: state_dir.to_owned(),
            config,
            transport,
            extra_sources: Vec::new(),
            stats: Arc::new(Stats::default()),
        })
    }

    /// Adds a source besides the built-in ones (e.g. packet capture).
    pub fn add_source(&mut self, source: Box<dyn Source>) {
        self.extra_sources.push(source);
    }

    /// The state directory in use.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Live counters.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Starts the agent on the current runtime; stop it through the handle.
    pub fn spawn(self) -> AgentHandle {
        let (tx, mut rx) = watch::channel(false);
        let stats = self.stats.clone();
        let join = tokio::spawn(self.run(async move {
            let _ = rx.wait_for(|v| *v).await;
        }));
        AgentHandle { tx, join, stats }
    }

    /// Runs until `shutdown` resolves, then stops the sources, flushes in-memory events to the
    /// server or the disk buffer, and returns the final counters.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<StatsSnapshot> {
        let buffer = DiskBuffer::open(
            &self.state_dir.join("buffer"),
            self.config.shipper.buffer_max_bytes,
        )?;
        let offsets = OffsetStore::load(&self.state_dir)?;
        let (stop_tx, stop) = Shutdown::new();
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let sender = EventSender::new(tx);
        let (metrics_tx, metrics_rx) = watch::channel::<Option<Json>>(None);

        let mut sources = self.extra_sources;
        if self.config.logs.enabled {
            sources.push(Box::new(TailSource::new(
                self.config.logs.clone(),
                offsets,
                self.stats.clone(),
            )));
        }
        if self.config.processes.enabled {
            sources.push(Box::new(ProcessSource::new(self.config.processes.clone())));
        }
        if self.config.metrics.enabled {
            sources.push(Box::new(MetricsSource::new(
                self.config.metrics.clone(),
                metrics_tx,
            )));
        }
        if self.config.capture.enabled {
            sources.push(Box::new(crate::source::capture::CaptureSource::new(
                self.config.capture.clone(),
            )));
        }
        let mut tasks = Vec::new();
        for source in sources {
            let name = source.name();
            let ctx = SourceContext {
                events: sender.clone(),
                shutdown: stop.clone(),
                host: self.host.clone(),
            };
            tasks.push(tokio::spawn(async move {
                match source.run(ctx).await {
                    Ok(()) => tracing::debug!(source = name, "source stopped"),
                    Err(e) => tracing::error!(source = name, error = %e, "source failed"),
                }
            }));
        }
        drop(sender);
        let shipper = Shipper::new(
            self.transport.clone(),
            buffer,
            self.config.shipper.clone(),
            self.stats.clone(),
        );
        let shipper = tokio::spawn(shipper.run(rx));
        let heartbeat = tokio::spawn(heartbeats(
            self.transport.clone(),
            self.stats.clone(),
            self.host.clone(),
            Duration::from_secs(self.config.heartbeat_interval_secs),
            metrics_rx,
            stop.clone(),
        ));
        tracing::info!(agent_id = %self.host.agent_id, host = %self.host.hostname,
            state_dir = %self.state_dir.display(), "agent started");

        shutdown.await;
        tracing::info!("shutting down: stopping sources and flushing");
        let _ = stop_tx.send(true);
        for t in tasks {
            let _ = t.await;
        }
        let _ = shipper.await;
        heartbeat.abort();
        Ok(self.stats.snapshot())
    }
}

async fn heartbeats(
    transport: Arc<dyn Transport>,
    stats: Arc<Stats>,
    host: HostInfo,
    every: Duration,
    metrics: watch::Receiver<Option<Json>>,
    mut stop: Shutdown,
) {
    let mut wait = Duration::from_secs(2).min(every);
    while !stop.sleep(wait).await {
        wait = every;
        let snapshot = stats.snapshot();
        if snapshot.auth_failed {
            continue;
        }
        let mut m = metrics
            .borrow()
            .clone()
            .unwrap_or_else(|| serde_json::json!({}));
        vigil_core::event::set(
            &mut m,
            "agent.stats",
            serde_json::to_value(snapshot).unwrap_or_default(),
        );
        let hb = Heartbeat {
            version: Some(env!("CARGO_PKG_VERSION").to_owned()),
            os: Some(std::env::consts::OS.to_owned()),
            hostname: Some(host.hostname.clone()),
            metrics: Some(m),
        };
        match transport.heartbeat(&hb).await {
            SendOutcome::Accepted(_) => tracing::debug!("heartbeat sent"),
            SendOutcome::Unauthorized(message) => {
                // A revoked credential: the shipper stops sending too (and says so once).
                if !stats
                    .auth_failed
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::error!(
                        message,
                        "heartbeat refused: the server rejected this agent's credential (401); \
                         sending stopped, events are kept in the disk buffer"
                    );
                }
            }
            other => tracing::warn!(outcome = ?other, "heartbeat not delivered"),
        }
    }
}

/// A running agent.
pub struct AgentHandle {
    tx: watch::Sender<bool>,
    join: JoinHandle<Result<StatsSnapshot>>,
    stats: Arc<Stats>,
}

impl AgentHandle {
    /// Current counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Requests a graceful stop and waits for it.
    pub async fn shutdown(self) -> Result<StatsSnapshot> {
        let _ = self.tx.send(true);
        self.join
            .await
            .map_err(|e| Error::Transport(format!("agent task panicked or was cancelled: {e}")))?
    }
}
