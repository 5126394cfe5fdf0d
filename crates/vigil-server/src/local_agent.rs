//! The agent inside `vigil serve`: the all-in-one default watches its own host. It is the
//! `vigil-agent` library with an in-process transport: batches go straight into the
//! pipeline (same batch ids, so the same exactly-once rule), heartbeats straight into the
//! store. It is registered as an agent named after the host; its id is kept in
//! `<data_dir>/agent/agent-id` so restarts keep one identity.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;
use vigil_agent::transport::{EncodedBatch, SendOutcome, Transport};
use vigil_agent::{Agent as HostAgent, AgentConfig, AgentHandle};
use vigil_core::event::{Heartbeat, IngestReceipt};
use vigil_core::{Agent, AgentStatus};
use vigil_store::{DynStore, HeartbeatUpdate};

use crate::ingest::normalize::{Origin, Received, normalize};
use crate::ingest::{Job, Pipeline};

struct LocalTransport {
    pipeline: Pipeline,
    store: DynStore,
    org: Uuid,
    agent: Uuid,
    origin: Origin,
    own: OwnBinaries,
    /// `[ingest] max_future_skew_secs`.
    max_future_skew_secs: u64,
}

/// Vigil's own executables: this process's (`/proc/self/exe`, the path the kernel
/// resolved, not the process name, which any program can choose) and its siblings
/// `vigil` and `vigil-agent`. The local agent drops the start events of these processes
/// (an operator running `vigil user list` next to the server is not a finding); every other
/// process, including one Vigil starts, is still reported.
#[derive(Debug, Clone, Default)]
struct OwnBinaries(Vec<String>);

impl OwnBinaries {
    fn of_this_process() -> Self {
        let Ok(exe) = std::env::current_exe() else {
            return Self::default();
        };
        let exe = std::fs::canonicalize(&exe).unwrap_or(exe);
        let mut paths = vec![exe.clone()];
        for sibling in ["vigil", "vigil-agent"] {
            let p = exe.with_file_name(sibling);
            if p != exe {
                paths.push(p);
            }
        }
        Self(
            paths
                .into_iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
        )
    }

    /// Whether `event` is the start of one of these executables.
    fn started(&self, event: &serde_json::Value) -> bool {
        vigil_core::event::get_str(event, "event.dataset") == Some("process")
            && vigil_core::event::get_str(event, "process.executable")
                .is_some_and(|exe| self.0.iter().any(|own| own == exe))
    }
}

#[async_trait]
impl Transport for LocalTransport {
    async fn send_batch(&self, batch: &EncodedBatch) -> SendOutcome {
        let decoded = match batch.decode() {
            Ok(b) => b,
            Err(e) => {
                return SendOutcome::Rejected {
                    status: 400,
                    message: e.to_string(),
                };
            }
        };
        let received =
            Received::new(vigil_core::now()).with_max_future_skew(self.max_future_skew_secs);
        let events: Vec<_> = decoded
            .events
            .into_iter()
            .filter(|e| !self.own.started(e))
            .filter_map(|e| normalize(e, &received, &self.origin).ok())
            .collect();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = Job {
            org: self.org,
            batch: Some(decoded.batch_id),
            channel: "local",
            events,
            reply: Some(tx),
            // This host's agent sends one small batch at a time and waits for each.
            reservation: None,
        };
        if self.pipeline.submit(job).await.is_err() {
            return SendOutcome::Retry {
                after: Some(Duration::from_secs(1)),
                reason: "pipeline stopped".into(),
            };
        }
        match rx.await {
            Ok(Ok(o)) => SendOutcome::Accepted(Some(IngestReceipt {
                batch_id: decoded.batch_id,
                accepted: o.stored,
                rejected: 0,
                duplicate: o.duplicate,
                errors: Vec::new(),
            })),
            Ok(Err(e)) => SendOutcome::Retry {
                after: Some(Duration::from_secs(1)),
                reason: e,
            },
            Err(_) => SendOutcome::Retry {
                after: Some(Duration::from_secs(1)),
                reason: "pipeline stopped".into(),
            },
        }
    }

    async fn heartbeat(&self, hb: &Heartbeat) -> SendOutcome {
        let update = HeartbeatUpdate {
            hostname: None,
            os: hb.os.clone(),
            version: hb.version.clone(),
            ip: None,
            metrics: hb.metrics.clone(),
        };
        match self
            .store
            .record_heartbeat(self.org, self.agent, update, vigil_core::now())
            .await
        {
            Ok(()) => SendOutcome::Accepted(None),
            Err(e) => SendOutcome::Retry {
                after: None,
                reason: e.to_string(),
            },
        }
    }
}

/// Starts the local agent for `org`, with the agent's default sources (system logs,
/// process starts, metrics) and its state under `data_dir/agent`.
pub async fn start(
    data_dir: &std::path::Path,
    store: DynStore,
    pipeline: Pipeline,
    org: Uuid,
    max_future_skew_secs: u64,
) -> anyhow::Result<AgentHandle> {
    let state_dir = data_dir.join("agent");
    std::fs::create_dir_all(&state_dir)?;
    let id_file = state_dir.join("agent-id");
    let id = match std::fs::read_to_string(&id_file)
        .ok()
        .and_then(|s| Uuid::parse_str(s.trim()).ok())
    {
        Some(id) => id,
        None => {
            let id = Uuid::now_v7();
            std::fs::write(&id_file, id.to_string())?;
            id
        }
    };
    let config = AgentConfig::default();
    let hostname = config.effective_hostname();
    let now = vigil_core::now();
    let existing = store.get_agent(org, id).await?;
    store
        .upsert_agent(&Agent {
            id,
            org_id: org,
            hostname: hostname.clone(),
            ip: Some("127.0.0.1".into()),
            os: Some(std::env::consts::OS.into()),
            version: Some(env!("CARGO_PKG_VERSION").into()),
            status: AgentStatus::Online,
            last_seen: Some(now),
            created_at: existing.map_or(now, |a| a.created_at),
            revoked_at: None,
            last_metrics: None,
        })
        .await?;
    let transport = LocalTransport {
        pipeline,
        store,
        org,
        agent: id,
        origin: Origin {
            agent_id: Some(id.to_string()),
            agent_name: Some(hostname.clone()),
            host: Some(hostname),
        },
        own: OwnBinaries::of_this_process(),
        max_future_skew_secs,
    };
    let agent = HostAgent::with_transport(config, &state_dir, id, Arc::new(transport))?;
    tracing::info!(agent = %id, "local agent started");
    Ok(agent.spawn())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_binaries_are_known_by_path_not_by_name() {
        let own = OwnBinaries::of_this_process();
        let exe = std::fs::canonicalize(std::env::current_exe().unwrap()).unwrap();
        let start = |exe: &str, name: &str| {
            serde_json::json!({"event": {"dataset": "process"},
                "process": {"executable": exe, "name": name}})
        };
        assert!(own.started(&start(&exe.to_string_lossy(), "whatever")));
        let agent = exe.with_file_name("vigil-agent");
        assert!(own.started(&start(&agent.to_string_lossy(), "vigil-agent")));
        // A look-alike elsewhere is reported, whatever it calls itself.
        assert!(!own.started(&start("/tmp/vigil", "vigil")));
        assert!(!own.started(&start("/usr/bin/sleep", "vigil-agent")));
        let other = serde_json::json!({"event": {"dataset": "auth"},
            "process": {"executable": exe.to_string_lossy()}});
        assert!(!own.started(&other));
    }
}
