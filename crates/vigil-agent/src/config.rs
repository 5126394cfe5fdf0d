//! Agent configuration: one serde tree, layered file -> environment (`VIGIL_AGENT_*`) -> flags.
//!
//! Every field has a default, so an empty file is a valid configuration as long as
//! `server_url` is given somewhere. Secrets (`enrollment_token`) are held in [`Secret`],
//! which never prints its value.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize, Serializer};

use crate::error::{Error, Result};

/// Where the agent looks for its configuration file when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/vigil/agent.toml";
/// The state directory used when none is configured and it is writable.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/vigil-agent";

/// A string that never shows up in logs or `check-config` output.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself; call only where it is sent.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// True when no value was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "\"<redacted>\""
        })
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "<redacted>" })
    }
}

/// The whole agent configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Base URL of the Vigil server, e.g. `https://vigil.example.com`.
    pub server_url: String,
    /// One-time enrollment token; used only when `state_dir/credential` does not exist yet.
    pub enrollment_token: Secret,
    /// Where the credential, tail offsets and the disk buffer live. Unset: `/var/lib/vigil-agent`,
    /// or `~/.local/state/vigil-agent` when that is not writable.
    pub state_dir: Option<PathBuf>,
    /// Overrides the host name reported in events and at registration.
    pub hostname: Option<String>,
    /// Seconds between heartbeats to the server.
    pub heartbeat_interval_secs: u64,
    /// Batching, retries and the disk buffer.
    pub shipper: ShipperConfig,
    /// Host metrics (`host.metrics` events and heartbeat metrics).
    pub metrics: MetricsConfig,
    /// Process start events from `/proc`.
    pub processes: ProcessConfig,
    /// Log file tailing.
    pub logs: LogsConfig,
    /// Packet capture into flow, DNS, HTTP and TLS events (off by default).
    pub capture: crate::source::capture::CaptureConfig,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            server_url: String::new(),
            enrollment_token: Secret::default(),
            state_dir: None,
            hostname: None,
            heartbeat_interval_secs: 30,
            shipper: ShipperConfig::default(),
            metrics: MetricsConfig::default(),
            processes: ProcessConfig::default(),
            logs: LogsConfig::default(),
            capture: Default::default(),
        }
    }
}

/// How events are batched and shipped.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShipperConfig {
    /// A batch is sent when it holds this many events.
    pub batch_max_events: usize,
    /// A batch is sent when its uncompressed JSON reaches this many bytes.
    pub batch_max_bytes: usize,
    /// A non-empty batch is sent at the latest this many milliseconds after its first event.
    pub flush_interval_ms: u64,
    /// Upper bound of the on-disk buffer (`state_dir/buffer`); the oldest batches are dropped
    /// beyond it, with a warning.
    pub buffer_max_bytes: u64,
    /// First retry delay in milliseconds (exponential backoff with full jitter from there).
    pub retry_initial_ms: u64,
    /// Longest retry delay in milliseconds.
    pub retry_max_ms: u64,
    /// Timeout of one HTTP request, in seconds.
    pub request_timeout_secs: u64,
}

impl Default for ShipperConfig {
    fn default() -> Self {
        ShipperConfig {
            batch_max_events: 500,
            batch_max_bytes: 1024 * 1024,
            flush_interval_ms: 1000,
            buffer_max_bytes: 256 * 1024 * 1024,
            retry_initial_ms: 500,
            retry_max_ms: 60_000,
            request_timeout_secs: 15,
        }
    }
}

/// Host metrics collection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Collect metrics at all.
    pub enabled: bool,
    /// Seconds between snapshots.
    pub interval_secs: u64,
    /// How many processes to list by CPU and by memory.
    pub top_processes: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            interval_secs: 30,
            top_processes: 5,
        }
    }
}

/// The `/proc` process sensor.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessConfig {
    /// Emit `process` start events.
    pub enabled: bool,
    /// Milliseconds between `/proc` scans; processes shorter-lived than this may be missed.
    pub interval_ms: u64,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        ProcessConfig {
            enabled: true,
            interval_ms: 1000,
        }
    }
}

/// Log file tailing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// Tail log files at all.
    pub enabled: bool,
    /// Files and globs (`*` and `?` in the last path component).
    pub paths: Vec<String>,
    /// Files seen for the first time at startup are read from their end (true) or start.
    /// Files appearing later are always read from their start.
    pub start_at_end: bool,
    /// Milliseconds between reads of the open files.
    pub poll_interval_ms: u64,
    /// Seconds between re-expansions of the globs (new files).
    pub glob_interval_secs: u64,
    /// Longer lines are cut to this many bytes and flagged `event.truncated: true`.
    pub max_line_bytes: usize,
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            enabled: true,
            paths: vec![
                "/var/log/auth.log".into(),
                "/var/log/syslog".into(),
                "/var/log/*.log".into(),
            ],
            start_at_end: true,
            poll_interval_ms: 250,
            glob_interval_secs: 10,
            max_line_bytes: 64 * 1024,
        }
    }
}

impl AgentConfig {
    /// Reads a TOML file. A missing file is an error only when `required`.
    pub fn from_file(path: &Path, required: bool) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(AgentConfig::default());
            }
            Err(e) => return Err(Error::io("reading config", path, e)),
        };
        Self::from_toml(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::Config(e.to_string()))
    }

    /// Applies `VIGIL_AGENT_*` variables from `lookup` (the process environment in the binary).
    pub fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<()> {
        fn parse<T: std::str::FromStr>(name: &str, v: &str) -> Result<T> {
            v.trim()
                .parse()
                .map_err(|_| Error::Config(format!("{name}={v:?} is not a valid value")))
        }
        let var = |name: &str| lookup(name).filter(|v| !v.is_empty());
        if let Some(v) = var("VIGIL_AGENT_SERVER_URL") {
            self.server_url = v;
        }
        if let Some(v) = var("VIGIL_AGENT_ENROLLMENT_TOKEN") {
            self.enrollment_token = Secret::new(v);
        }
        if let Some(v) = var("VIGIL_AGENT_STATE_DIR") {
            self.state_dir = Some(v.into());
        }
        if let Some(v) = var("VIGIL_AGENT_HOSTNAME") {
            self.hostname = Some(v);
        }
        if let Some(v) = var("VIGIL_AGENT_HEARTBEAT_INTERVAL_SECS") {
            self.heartbeat_interval_secs = parse("VIGIL_AGENT_HEARTBEAT_INTERVAL_SECS", &v)?;
        }
        if let Some(v) = var("VIGIL_AGENT_METRICS_ENABLED") {
            self.metrics.enabled = parse("VIGIL_AGENT_METRICS_ENABLED", &v)?;
        }
        if let Some(v) = var("VIGIL_AGENT_METRICS_INTERVAL_SECS") {
            self.metrics.interval_secs = parse("VIGIL_AGENT_METRICS_INTERVAL_SECS", &v)?;
        }
        if let Some(v) = var("VIGIL_AGENT_PROCESSES_ENABLED") {
            self.processes.enabled = parse("VIGIL_AGENT_PROCESSES_ENABLED", &v)?;
        }
        if let Some(v) = var("VIGIL_AGENT_LOGS_ENABLED") {
            self.logs.enabled = parse("VIGIL_AGENT_LOGS_ENABLED", &v)?;
        }
        if let Some(v) = var("VIGIL_AGENT_LOG_PATHS") {
            self.logs.paths = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
        }
        if let Some(v) = var("VIGIL_AGENT_BATCH_MAX_EVENTS") {
            self.shipper.batch_max_events = parse("VIGIL_AGENT_BATCH_MAX_EVENTS", &v)?;
        }
        if let Some(v) = var("VIGIL_AGENT_FLUSH_INTERVAL_MS") {
            self.shipper.flush_interval_ms = parse("VIGIL_AGENT_FLUSH_INTERVAL_MS", &v)?;
        }
        if let Some(v) = var("VIGIL_AGENT_BUFFER_MAX_BYTES") {
            self.shipper.buffer_max_bytes = parse("VIGIL_AGENT_BUFFER_MAX_BYTES", &v)?;
        }
        Ok(())
    }

    /// Checks values that serde cannot: a usable URL and non-zero intervals and sizes.
    pub fn validate(&self) -> Result<()> {
        self.validate_settings()?;
        let url = self.server_url.trim();
        if url.is_empty() {
            return Err(Error::Config(
                "server_url is not set (config file, VIGIL_AGENT_SERVER_URL or --server-url)"
                    .into(),
            ));
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::Config(format!(
                "server_url {url:?} must start with http:// or https://"
            )));
        }
        Ok(())
    }

    /// Checks everything but `server_url` (an embedded agent has no server URL).
    pub fn validate_settings(&self) -> Result<()> {
        let nonzero = [
            ("heartbeat_interval_secs", self.heartbeat_interval_secs),
            (
                "shipper.batch_max_events",
                self.shipper.batch_max_events as u64,
            ),
            (
                "shipper.batch_max_bytes",
                self.shipper.batch_max_bytes as u64,
            ),
            ("shipper.flush_interval_ms", self.shipper.flush_interval_ms),
            ("shipper.retry_initial_ms", self.shipper.retry_initial_ms),
            (
                "shipper.request_timeout_secs",
                self.shipper.request_timeout_secs,
            ),
            ("metrics.interval_secs", self.metrics.interval_secs),
            ("processes.interval_ms", self.processes.interval_ms),
            ("logs.poll_interval_ms", self.logs.poll_interval_ms),
            ("logs.glob_interval_secs", self.logs.glob_interval_secs),
            ("logs.max_line_bytes", self.logs.max_line_bytes as u64),
        ];
        for (name, value) in nonzero {
            if value == 0 {
                return Err(Error::Config(format!("{name} must be greater than 0")));
            }
        }
        if self.shipper.retry_max_ms < self.shipper.retry_initial_ms {
            return Err(Error::Config(
                "shipper.retry_max_ms must be >= shipper.retry_initial_ms".into(),
            ));
        }
        Ok(())
    }

    /// The configuration as TOML with secrets redacted (`vigil-agent check-config`).
    pub fn redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    /// The host name to report: the override, else the kernel's.
    pub fn effective_hostname(&self) -> String {
        if let Some(h) = self.hostname.as_deref().filter(|h| !h.trim().is_empty()) {
            return h.trim().to_owned();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .or_else(sysinfo::System::host_name)
            .unwrap_or_else(|| "unknown".into())
    }

    /// Resolves the state directory: the configured one (must be writable), else the default,
    /// else `~/.local/state/vigil-agent`. Creates it.
    pub fn resolve_state_dir(&self) -> Result<PathBuf> {
        if let Some(dir) = &self.state_dir {
            ensure_writable(dir)?;
            return Ok(dir.clone());
        }
        let default = PathBuf::from(DEFAULT_STATE_DIR);
        match ensure_writable(&default) {
            Ok(()) => Ok(default),
            Err(first) => {
                let home = std::env::var_os("HOME").ok_or_else(|| Error::StateDir {
                    path: default.clone(),
                    reason: format!("{first}; and HOME is not set for the fallback"),
                })?;
                let fallback = PathBuf::from(home).join(".local/state/vigil-agent");
                ensure_writable(&fallback)?;
                tracing::info!(
                    state_dir = %fallback.display(),
                    "{DEFAULT_STATE_DIR} is not writable; using the per-user state directory"
                );
                Ok(fallback)
            }
        }
    }
}

fn ensure_writable(dir: &Path) -> Result<()> {
    let fail = |e: std::io::Error| Error::StateDir {
        path: dir.to_owned(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let probe = dir.join(".write-probe");
    std::fs::write(&probe, b"ok").map_err(fail)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_env_layering_and_redaction() {
        let mut c = AgentConfig::from_toml(
            r#"
            server_url = "http://127.0.0.1:1"
            enrollment_token = "tok-secret"
            [logs]
            paths = ["/tmp/a.log"]
            "#,
        )
        .unwrap();
        c.apply_env(|k| match k {
            "VIGIL_AGENT_SERVER_URL" => Some("https://vigil.example".into()),
            "VIGIL_AGENT_LOG_PATHS" => Some("/x.log, /y/*.log".into()),
            _ => None,
        })
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.server_url, "https://vigil.example");
        assert_eq!(c.logs.paths, vec!["/x.log", "/y/*.log"]);
        assert_eq!(c.enrollment_token.expose(), "tok-secret");
        let shown = c.redacted_toml();
        assert!(!shown.contains("tok-secret"), "{shown}");
        assert!(!format!("{c:?}").contains("tok-secret"));
    }

    #[test]
    fn unknown_fields_and_bad_values_are_errors() {
        let err = AgentConfig::from_toml("server_url = \"http://x\"\nbogus = 1").unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
        let mut c = AgentConfig::default();
        assert!(c.validate().is_err());
        c.server_url = "ftp://x".into();
        assert!(c.validate().is_err());
        let err = c
            .apply_env(|k| (k == "VIGIL_AGENT_METRICS_INTERVAL_SECS").then(|| "soon".into()))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("VIGIL_AGENT_METRICS_INTERVAL_SECS")
        );
    }
}
