//! Configuration: one serde tree, layered `defaults -> vigil.toml -> environment`.
//!
//! Environment variables: `VIGIL_<SECTION>__<KEY>` (double underscore between levels, e.g.
//! `VIGIL_SERVER__PORT=9000`, `VIGIL_DATABASE__URL=postgres://...`), plus the names users
//! of the original design already have (`API_HOST`, `API_PORT`, `OLLAMA_API_URL`, ...; see
//! [`LEGACY_ENV`]). Unknown keys in the file or in `VIGIL_*__*` variables are errors that
//! name the key. The known keys and their types come from the structs (`keys.rs`), so every
//! key the file accepts can be set from the environment, optional ones included.

mod keys;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use keys::Kind;

/// A secret value: never printed by `Debug`, `Display` or serialization.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret itself; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "\"[redacted]\""
        })
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "[redacted]" })
    }
}

/// Event ingestion, detection and event retention.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Batches waiting for detection before ingest answers 503.
    pub queue_capacity: usize,
    /// Most events in one batch (`/ingest/events`, one Loki push).
    pub max_batch_events: usize,
    /// Fold a repeated detection (same rule and key) into the open alert.
    pub dedup: bool,
    /// How long an open alert absorbs repeats, seconds.
    pub dedup_window_secs: u64,
    /// Days events are kept for investigation.
    pub retention_days: u32,
    /// How far ahead of the server's clock, seconds, an event's or alert's own time may be.
    /// `POST /alerts` refuses a later `timestamp` (422); an ingested event (HTTP, Loki) is
    /// kept with the receive time as `@timestamp`, its claimed time in `event.created_raw`
    /// and the tag `_timestamp_in_future` (likewise syslog messages and the local agent's events).
    pub max_future_skew_secs: u64,
    /// Extra Sigma rule directories, loaded with the built-in pack as one set (their filters
    /// and correlations may name built-in rules).
    pub rule_dirs: Vec<PathBuf>,
    /// The lowest rule level that raises an alert (`informational`, `low`, `medium`, `high`,
    /// `critical`). Matches below it still feed correlations. Default `low`: informational
    /// rules (one failed login, one flow) are context, as the Sigma specification says, not
    /// alerts.
    pub min_alert_level: vigil_detect::Level,
    /// Run the agent inside `vigil serve`, watching this host.
    pub local_agent: bool,
    /// Seconds batches may wait with none stored before `/ready` reports the pipeline as
    /// stalled (503).
    pub stall_secs: u64,
    /// Memory that batches being received, queued, detected and stored may hold at once,
    /// bytes (HTTP ingest, Loki pushes, syslog). A batch is charged its body as it arrives,
    /// then what parsing it takes (about 9 KiB per event plus 4x its JSON; 20x its JSON
    /// while it is parsed); ingest beyond the budget answers 503 with Retry-After, a batch
    /// larger than the whole budget 413, syslog TCP waits. Size it to the machine: the
    /// default suits 2 GB of RAM.
    pub memory_budget_bytes: u64,
    /// Ingest requests per second each credential (agent or API key) may make: event
    /// batches, Loki pushes and heartbeats. Separate from `[rate_limit]`, which limits
    /// interactive API use per client IP and does not apply to these routes. 0: no limit.
    /// Off with `rate_limit.enabled = false` too.
    pub rate_limit_per_credential: f64,
    /// Requests a credential may make at once above its rate.
    pub rate_limit_burst: u32,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 256,
            max_batch_events: 10_000,
            dedup: true,
            dedup_window_secs: 600,
            retention_days: 7,
            max_future_skew_secs: crate::ingest::normalize::DEFAULT_MAX_FUTURE_SKEW_SECS,
            rule_dirs: Vec::new(),
            min_alert_level: vigil_detect::Level::Low,
            local_agent: true,
            stall_secs: 60,
            memory_budget_bytes: 512 * 1024 * 1024,
            rate_limit_per_credential: 100.0,
            rate_limit_burst: 500,
        }
    }
}

/// Syslog listeners (RFC 3164 and 5424), off unless an address is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyslogConfig {
    /// UDP address, e.g. `0.0.0.0:5514`.
    pub udp: Option<String>,
    /// TCP address (octet-counting or newline framing).
    pub tcp: Option<String>,
    /// TLS address (RFC 5425), with `tls_cert` and `tls_key` (PEM files).
    pub tls: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Organization that receives syslog events (default: the first one).
    pub org: Option<String>,
    /// Longest accepted message, bytes.
    pub max_message_bytes: usize,
}

impl Default for SyslogConfig {
    fn default() -> Self {
        Self {
            udp: None,
            tcp: None,
            tls: None,
            tls_cert: None,
            tls_key: None,
            org: None,
            max_message_bytes: 64 * 1024,
        }
    }
}

/// `[redis]`: scale-out. Without `url` one process does everything (in-process job queue,
/// alert fan-out inside the process); with it, `vigil serve` replicas publish alert events
/// over Redis pub/sub and hand jobs to `vigil worker` processes through Redis Streams.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://[:password@]host:6379/0` (redacted when printed); empty: no Redis.
    pub url: Secret,
    /// Prefix of every key and channel (`{prefix}:jobs`, `{prefix}:{org}:alerts`), so
    /// several Vigil deployments can share one Redis.
    pub key_prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: Secret::default(),
            key_prefix: "vigil".into(),
        }
    }
}

/// `[jobs]`: background work (retention, ML retraining, AI auto-triage, webhook delivery).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Jobs one process runs at once.
    pub concurrency: usize,
    /// Runs of one job (the first included) before it goes to the dead letters.
    pub max_attempts: u32,
    /// Delay before the first retry, milliseconds; doubled for each later one.
    pub backoff_base_ms: u64,
    /// Longest delay between two runs of a job, seconds.
    pub backoff_max_secs: u64,
    /// A job taken by a worker and neither finished nor failed after this many seconds
    /// (the worker died) is run again by another (Redis).
    pub visibility_timeout_secs: u64,
    /// Jobs the in-process queue holds (waiting and delayed) before enqueueing fails.
    pub queue_capacity: usize,
    /// Dead jobs kept for inspection (newest).
    pub dead_letter_max: usize,
    /// With `[redis] url`, `vigil serve` also runs jobs (else only `vigil worker` does).
    /// Without Redis, `vigil serve` always runs them.
    pub run_in_server: bool,
    /// How often stored events older than `ingest.retention_days` are purged, seconds.
    pub retention_interval_secs: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            concurrency: 4,
            max_attempts: 8,
            backoff_base_ms: 1000,
            backoff_max_secs: 600,
            visibility_timeout_secs: 300,
            queue_capacity: 100_000,
            dead_letter_max: 10_000,
            run_in_server: false,
            retention_interval_secs: 3600,
        }
    }
}

/// `[worker]`: the `vigil worker` process (jobs from Redis).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Address of the worker's `/health` and `/metrics`.
    pub host: String,
    /// Port of the worker's `/health` and `/metrics`; 0 picks a free port.
    pub port: u16,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8001,
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory for the SQLite database, the generated JWT secret and other local state.
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub rate_limit: RateLimitConfig,
    pub log: LogConfig,
    pub ollama: OllamaConfig,
    pub loki: LokiConfig,
    pub thehive: TheHiveConfig,
    pub cortex: CortexConfig,
    pub ingest: IngestConfig,
    pub syslog: SyslogConfig,
    pub ml: crate::ml::MlConfig,
    pub webhooks: crate::webhooks::WebhooksConfig,
    pub stream: crate::stream::StreamConfig,
    pub redis: RedisConfig,
    pub jobs: JobsConfig,
    pub worker: WorkerConfig,
    pub outbox: crate::outbox::OutboxConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("vigil-data"),
            server: ServerConfig::default(),
            database: DatabaseConfig::default(),
            auth: AuthConfig::default(),
            rate_limit: RateLimitConfig::default(),
            log: LogConfig::default(),
            ollama: OllamaConfig::default(),
            loki: LokiConfig::default(),
            thehive: TheHiveConfig::default(),
            cortex: CortexConfig::default(),
            ingest: IngestConfig::default(),
            syslog: SyslogConfig::default(),
            ml: crate::ml::MlConfig::default(),
            webhooks: crate::webhooks::WebhooksConfig::default(),
            stream: crate::stream::StreamConfig::default(),
            redis: RedisConfig::default(),
            jobs: JobsConfig::default(),
            worker: WorkerConfig::default(),
            outbox: crate::outbox::OutboxConfig::default(),
        }
    }
}

/// HTTP listener and request handling.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on (`API_HOST`).
    pub host: String,
    /// Port to listen on; 0 picks a free port (`API_PORT`).
    pub port: u16,
    /// Verbose logging of requests (`API_DEBUG`).
    pub debug: bool,
    /// Origins allowed to call the API from a browser. Empty: no CORS headers at all.
    /// `*` is refused because the API uses credentials.
    pub cors_origins: Vec<String>,
    /// Largest accepted request body, in bytes.
    pub body_limit_bytes: usize,
    /// Requests running longer are answered with 503.
    pub request_timeout_secs: u64,
    /// Seconds the shutdown drain may take after SIGINT/SIGTERM: in-flight requests,
    /// syslog messages already read, queued batches and background rounds; what is left
    /// then is aborted (never acknowledged) and logged.
    pub shutdown_grace_secs: u64,
    /// Trust `X-Forwarded-For` for the client address (only behind a reverse proxy you run).
    pub trust_forwarded_for: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8000,
            debug: false,
            cors_origins: Vec::new(),
            body_limit_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            shutdown_grace_secs: 30,
            trust_forwarded_for: false,
        }
    }
}

/// State storage.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB`. Empty: `sqlite://<data_dir>/vigil.db`.
    pub url: Secret,
    /// Connection pool size (readers, for SQLite).
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: Secret::default(),
            max_connections: 8,
        }
    }
}

/// Authentication.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// HMAC key for access tokens (at least 32 bytes). Empty: generated once and kept in
    /// `<data_dir>/jwt-secret` with mode 0600. Replicas must share it.
    pub jwt_secret: Secret,
    /// Lifetime of an access token.
    pub access_token_ttl_secs: u64,
    /// Lifetime of a refresh token (each use rotates it).
    pub refresh_token_ttl_secs: u64,
    /// How long a successful session check is reused (0: check the database on every
    /// request). Sessions ended through this server stop at once; ended elsewhere (another
    /// replica, the CLI) within this many seconds.
    pub session_cache_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: Secret::default(),
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 7 * 24 * 3600,
            session_cache_secs: 2,
        }
    }
}

/// Per-client-IP request rate limits (token buckets).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    pub enabled: bool,
    /// Sustained requests per second per IP on the API.
    pub requests_per_second: f64,
    /// Burst size per IP on the API.
    pub burst: u32,
    /// Login attempts per minute per IP.
    pub login_per_minute: f64,
    /// Burst of login attempts per IP.
    pub login_burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            requests_per_second: 100.0,
            burst: 200,
            login_per_minute: 10.0,
            login_burst: 5,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `tracing` filter, e.g. `info` or `vigil_server=debug,info`.
    pub level: String,
    /// `auto` (text on a terminal, JSON otherwise), `json` or `text`.
    pub format: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: "auto".into(),
        }
    }
}

/// The language model behind `POST /analyze` and alert triage (Ollama, or any
/// OpenAI-compatible server). Optional: without a URL everything works without a model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OllamaConfig {
    /// Base URL, e.g. `http://127.0.0.1:11434` (`OLLAMA_API_URL`). Empty: no model.
    pub url: String,
    /// Model name, e.g. `mistral` (`OLLAMA_MODEL`).
    pub model: String,
    /// `ollama` (`/api/chat`) or `openai` (`/v1/chat/completions`: llama.cpp server, vLLM,
    /// LM Studio).
    pub provider: String,
    /// Bearer token for an OpenAI-compatible server (never needed by a local Ollama).
    pub api_key: Secret,
    /// Whole-request timeout, seconds (a streamed answer must finish within it).
    pub timeout_secs: u64,
    /// Stream answers (Ollama NDJSON / OpenAI server-sent events) instead of one body.
    pub stream: bool,
    /// Requests to the model at the same time; more wait.
    pub max_concurrency: usize,
    /// Extra attempts after a timeout, 429, 5xx or broken stream (with backoff).
    pub retries: u32,
    /// Seconds an analysis of identical content is reused (0: no cache).
    pub cache_ttl_secs: u64,
    /// Triage new high and critical alerts in the background.
    pub auto_triage: bool,
    /// How often the background triage looks for new alerts, seconds.
    pub auto_triage_interval_secs: u64,
    /// Most events `POST /analyze` reads from the store or from Loki.
    pub max_events: usize,
}

impl Default for OllamaConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            model: String::new(),
            provider: "ollama".into(),
            api_key: Secret::default(),
            timeout_secs: 120,
            stream: false,
            max_concurrency: 2,
            retries: 2,
            cache_ttl_secs: 600,
            auto_triage: false,
            auto_triage_interval_secs: 30,
            max_events: 5000,
        }
    }
}

/// Grafana Loki as a log source for `POST /analyze` (`source: "loki"`), and optionally as
/// a destination for stored events.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LokiConfig {
    /// Base URL (`LOKI_API_URL`). Empty: not used.
    pub url: String,
    /// Request timeout in seconds (`LOKI_TIMEOUT`).
    pub timeout_secs: u64,
    /// Tenant sent as `X-Scope-OrgID` (multi-tenant Loki). Empty: none.
    pub tenant: String,
    /// LogQL selector of the logs to analyse.
    pub query: String,
    /// Longer ranges are queried in pieces of this many seconds.
    pub split_interval_secs: u64,
    /// Push stored events to Loki (snappy protobuf), for users who keep their logs there.
    pub forward: bool,
    /// Seconds between forwarder pushes.
    pub forward_interval_secs: u64,
}

impl Default for LokiConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            timeout_secs: 30,
            tenant: String::new(),
            query: "{job=~\".+\"}".into(),
            split_interval_secs: 3600,
            forward: false,
            forward_interval_secs: 10,
        }
    }
}

/// TheHive case management.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TheHiveConfig {
    /// Base URL (`THEHIVE_API_URL`).
    pub url: String,
    /// API key (`THEHIVE_API_KEY`).
    pub api_key: Secret,
}

/// Cortex analyzers and responders.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CortexConfig {
    /// Base URL (`CORTEX_API_URL`).
    pub url: String,
    /// API key (`CORTEX_API_KEY`).
    pub api_key: Secret,
}

/// Environment variable names of the original design, and the key each one sets.
pub const LEGACY_ENV: &[(&str, &str)] = &[
    ("API_HOST", "server.host"),
    ("API_PORT", "server.port"),
    ("API_DEBUG", "server.debug"),
    ("OLLAMA_API_URL", "ollama.url"),
    ("OLLAMA_MODEL", "ollama.model"),
    ("LOKI_API_URL", "loki.url"),
    ("LOKI_TIMEOUT", "loki.timeout_secs"),
    ("THEHIVE_API_URL", "thehive.url"),
    ("THEHIVE_API_KEY", "thehive.api_key"),
    ("CORTEX_API_URL", "cortex.url"),
    ("CORTEX_API_KEY", "cortex.api_key"),
];

/// A configuration problem, naming the key or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Loads `path` (or `vigil.toml` in the working directory when it exists) and then the
    /// process environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(path, &env)
    }

    /// Like [`Config::load`] with an explicit environment (for tests).
    pub fn load_from(path: Option<&Path>, env: &[(String, String)]) -> Result<Self, ConfigError> {
        let mut value = toml::Value::try_from(Config::default())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let default_path = PathBuf::from("vigil.toml");
        let file = match path {
            Some(p) => Some(p.to_path_buf()),
            None if default_path.exists() => Some(default_path),
            None => None,
        };
        if let Some(p) = &file {
            let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.clone(),
                source,
            })?;
            let parsed: toml::Value = toml::from_str(&text).map_err(|e| ConfigError::File {
                path: p.clone(),
                message: e.message().to_string(),
            })?;
            // Check the file alone first so its errors name the file.
            merge(&mut value, parsed);
            value
                .clone()
                .try_into::<Config>()
                .map_err(|e| ConfigError::File {
                    path: p.clone(),
                    message: e.message().to_string(),
                })?;
        }
        // The keys, and their types, come from the structs (not from the defaults, where
        // `Option` fields are absent), so every key the file accepts is accepted here.
        let known = keys::describe::<Config>().map_err(ConfigError::Invalid)?;
        for (var, raw) in env {
            let key = if let Some((_, key)) = LEGACY_ENV.iter().find(|(n, _)| n == var) {
                key.to_string()
            } else if let Some(rest) = var.strip_prefix("VIGIL_")
                && rest.contains("__")
            {
                rest.split("__")
                    .map(str::to_ascii_lowercase)
                    .collect::<Vec<_>>()
                    .join(".")
            } else if var == "VIGIL_DATA_DIR" {
                "data_dir".to_string()
            } else {
                continue;
            };
            let path: Vec<&str> = key.split('.').collect();
            let known_key = known.get(&key).ok_or_else(|| ConfigError::Env {
                var: var.clone(),
                message: format!("unknown configuration key '{key}'"),
            })?;
            // `Option` keys cannot be written as an empty TOML value: an empty variable
            // takes the key out, back to its default (off), even when the file set it.
            if known_key.optional && raw.is_empty() {
                remove_path(&mut value, &path);
                continue;
            }
            let v = parse_as(&known_key.kind, raw).map_err(|message| ConfigError::Env {
                var: var.clone(),
                message,
            })?;
            set_path(&mut value, &path, v);
        }
        let cfg: Config = value
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.message().to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let j = &self.jobs;
        if j.concurrency == 0
            || j.max_attempts == 0
            || j.queue_capacity == 0
            || j.visibility_timeout_secs == 0
            || j.retention_interval_secs == 0
        {
            return Err(ConfigError::Invalid(
                "jobs: concurrency, max_attempts, queue_capacity, visibility_timeout_secs and retention_interval_secs must be at least 1".into(),
            ));
        }
        let prefix = &self.redis.key_prefix;
        if prefix.is_empty() || prefix.contains(['*', '?', '[', ']', ' ']) {
            return Err(ConfigError::Invalid(format!(
                "redis.key_prefix '{prefix}' must be non-empty, without spaces or glob characters (* ? [ ])"
            )));
        }
        if !self.redis.url.is_empty() {
            let url = self.redis.url.expose();
            if !(url.starts_with("redis://")
                || url.starts_with("rediss://")
                || url.starts_with("unix://"))
            {
                return Err(ConfigError::Invalid(
                    "redis.url must start with redis://, rediss:// or unix://".into(),
                ));
            }
        }
        if self.server.cors_origins.iter().any(|o| o.trim() == "*") {
            return Err(ConfigError::Invalid(
                "server.cors_origins must list origins explicitly; '*' is not allowed with credentials"
                    .into(),
            ));
        }
        for o in &self.server.cors_origins {
            if !(o.starts_with("http://") || o.starts_with("https://")) {
                return Err(ConfigError::Invalid(format!(
                    "server.cors_origins: '{o}' is not an origin like https://host[:port]"
                )));
            }
        }
        if !self.auth.jwt_secret.is_empty() && self.auth.jwt_secret.expose().len() < 32 {
            return Err(ConfigError::Invalid(
                "auth.jwt_secret must be at least 32 bytes".into(),
            ));
        }
        if self.auth.access_token_ttl_secs == 0 || self.auth.refresh_token_ttl_secs == 0 {
            return Err(ConfigError::Invalid(
                "auth token lifetimes must be > 0".into(),
            ));
        }
        if self.rate_limit.enabled
            && (self.rate_limit.requests_per_second <= 0.0
                || self.rate_limit.login_per_minute <= 0.0
                || self.rate_limit.burst == 0
                || self.rate_limit.login_burst == 0)
        {
            return Err(ConfigError::Invalid(
                "rate_limit rates and bursts must be > 0 (or set rate_limit.enabled = false)"
                    .into(),
            ));
        }
        if self.ingest.memory_budget_bytes < 1024 * 1024 {
            return Err(ConfigError::Invalid(
                "ingest.memory_budget_bytes must be at least 1 MiB (1048576)".into(),
            ));
        }
        if self.ingest.rate_limit_per_credential < 0.0
            || !self.ingest.rate_limit_per_credential.is_finite()
            || (self.ingest.rate_limit_per_credential > 0.0 && self.ingest.rate_limit_burst == 0)
        {
            return Err(ConfigError::Invalid(
                "ingest.rate_limit_per_credential must be >= 0 (0: no limit) with rate_limit_burst > 0"
                    .into(),
            ));
        }
        crate::ai::validate_config(self).map_err(ConfigError::Invalid)?;
        self.webhooks.validate().map_err(ConfigError::Invalid)?;
        self.stream.validate().map_err(ConfigError::Invalid)?;
        self.outbox.validate().map_err(ConfigError::Invalid)?;
        if !["auto", "json", "text"].contains(&self.log.format.as_str()) {
            return Err(ConfigError::Invalid(format!(
                "log.format '{}' must be auto, json or text",
                self.log.format
            )));
        }
        Ok(())
    }

    /// The database URL, defaulting to a SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!("sqlite://{}/vigil.db", self.data_dir.display())
        } else {
            self.database.url.expose().to_string()
        }
    }

    /// The effective configuration as TOML with every secret redacted.
    pub fn redacted_toml(&self) -> String {
        let mut shown = self.clone();
        shown.database.url = Secret::new(vigil_store::redact_url(&self.database_url()));
        let mut v = toml::Value::try_from(&shown).unwrap_or(toml::Value::String(String::new()));
        // The database URL is only partly secret: show it with its password masked.
        set_path(
            &mut v,
            &["database", "url"],
            toml::Value::String(vigil_store::redact_url(&self.database_url())),
        );
        if !self.redis.url.is_empty() {
            set_path(
                &mut v,
                &["redis", "url"],
                toml::Value::String(vigil_store::redact_url(self.redis.url.expose())),
            );
        }
        toml::to_string_pretty(&v).unwrap_or_default()
    }
}

fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

fn set_path(v: &mut toml::Value, path: &[&str], new: toml::Value) {
    let mut cur = v;
    for k in &path[..path.len() - 1] {
        let t = match cur {
            toml::Value::Table(t) => t,
            other => {
                *other = toml::Value::Table(Default::default());
                other.as_table_mut().expect("just made a table")
            }
        };
        cur = t
            .entry(k.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()));
    }
    if let toml::Value::Table(t) = cur {
        t.insert(path[path.len() - 1].to_string(), new);
    }
}

fn remove_path(v: &mut toml::Value, path: &[&str]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let parent = parents
        .iter()
        .try_fold(v, |v, k| v.as_table_mut()?.get_mut(*k));
    if let Some(toml::Value::Table(t)) = parent {
        t.remove(*last);
    }
}

/// Parses an environment string as the type the key has in the config structs.
fn parse_as(kind: &Kind, raw: &str) -> Result<toml::Value, String> {
    Ok(match kind {
        Kind::Integer => toml::Value::Integer(
            raw.trim()
                .parse()
                .map_err(|_| format!("'{raw}' is not an integer"))?,
        ),
        Kind::Float => toml::Value::Float(
            raw.trim()
                .parse()
                .map_err(|_| format!("'{raw}' is not a number"))?,
        ),
        Kind::Boolean => toml::Value::Boolean(match raw.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            _ => return Err(format!("'{raw}' is not a boolean (true/false)")),
        }),
        Kind::Array(element) => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| parse_as(element, s))
                .collect::<Result<_, _>>()?,
        ),
        Kind::String => toml::Value::String(raw.to_string()),
        // Empty: none (the file's are dropped); tables themselves are written in the file.
        Kind::Tables if raw.trim().is_empty() => toml::Value::Array(Vec::new()),
        Kind::Tables => {
            return Err("an array of tables; set it in the config file ([[...]])".into());
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn write(text: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("vigil-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("vigil.toml");
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn file_then_env_then_legacy_names() {
        let (dir, p) =
            write("[server]\nport = 9000\nhost = \"0.0.0.0\"\n[loki]\ntimeout_secs = 5\n");
        let c = Config::load_from(
            Some(&p),
            &env(&[
                ("VIGIL_SERVER__PORT", "9100"),
                ("LOKI_TIMEOUT", "7"),
                ("API_DEBUG", "true"),
                ("THEHIVE_API_KEY", "hive-secret"),
                (
                    "VIGIL_SERVER__CORS_ORIGINS",
                    "https://a.example, https://b.example",
                ),
                ("VIGIL_SHARED_DATA", "/ignored/not/a/config/key"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.port, 9100);
        assert_eq!(c.server.host, "0.0.0.0");
        assert_eq!(c.loki.timeout_secs, 7);
        assert!(c.server.debug);
        assert_eq!(c.thehive.api_key.expose(), "hive-secret");
        assert_eq!(c.server.cors_origins.len(), 2);
        let shown = c.redacted_toml();
        assert!(
            !shown.contains("hive-secret") && shown.contains("[redacted]"),
            "{shown}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unknown_keys_are_named() {
        let (dir, p) = write("[server]\nprot = 1\n");
        let e = Config::load_from(Some(&p), &[]).unwrap_err().to_string();
        assert!(e.contains("prot") && e.contains("vigil.toml"), "{e}");
        let (dir2, p2) = write("[sever]\nport = 1\n");
        let e = Config::load_from(Some(&p2), &[]).unwrap_err().to_string();
        assert!(e.contains("sever"), "{e}");
        let e = Config::load_from(None, &env(&[("VIGIL_SERVER__PROT", "1")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("VIGIL_SERVER__PROT") && e.contains("server.prot"),
            "{e}"
        );
        let e = Config::load_from(None, &env(&[("API_PORT", "eighty")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("API_PORT") && e.contains("eighty"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
        std::fs::remove_dir_all(dir2).unwrap();
    }

    /// Regression: keys whose default is absent (`Option` fields) were refused from the
    /// environment as unknown, because the known keys came from the serialized defaults.
    #[test]
    fn optional_keys_are_accepted_from_the_environment() {
        let c = Config::load_from(
            None,
            &env(&[
                ("VIGIL_SYSLOG__UDP", "127.0.0.1:5514"),
                ("VIGIL_SYSLOG__TCP", "127.0.0.1:5515"),
                ("VIGIL_SYSLOG__TLS", "127.0.0.1:6514"),
                ("VIGIL_SYSLOG__TLS_CERT", "/etc/vigil/cert.pem"),
                ("VIGIL_SYSLOG__TLS_KEY", "/etc/vigil/key.pem"),
                ("VIGIL_SYSLOG__ORG", "acme"),
            ]),
        )
        .unwrap();
        assert_eq!(c.syslog.udp.as_deref(), Some("127.0.0.1:5514"));
        assert_eq!(c.syslog.tcp.as_deref(), Some("127.0.0.1:5515"));
        assert_eq!(c.syslog.tls.as_deref(), Some("127.0.0.1:6514"));
        assert_eq!(
            c.syslog.tls_cert.as_deref(),
            Some(Path::new("/etc/vigil/cert.pem"))
        );
        assert_eq!(
            c.syslog.tls_key.as_deref(),
            Some(Path::new("/etc/vigil/key.pem"))
        );
        assert_eq!(c.syslog.org.as_deref(), Some("acme"));
        // An unknown key beside them is still refused, by name.
        let e = Config::load_from(None, &env(&[("VIGIL_SYSLOG__TCPP", "127.0.0.1:1")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("VIGIL_SYSLOG__TCPP") && e.contains("syslog.tcpp"),
            "{e}"
        );
    }

    /// An empty variable turns an optional setting off again, even when the file set it.
    #[test]
    fn empty_variable_unsets_an_optional_key() {
        let (dir, p) = write("[syslog]\ntcp = \"0.0.0.0:5514\"\nudp = \"0.0.0.0:5514\"\n");
        let c = Config::load_from(Some(&p), &env(&[("VIGIL_SYSLOG__TCP", "")])).unwrap();
        assert_eq!(c.syslog.tcp, None);
        assert_eq!(c.syslog.udp.as_deref(), Some("0.0.0.0:5514"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn environment_values_keep_their_types() {
        let c = Config::load_from(
            None,
            &env(&[
                ("VIGIL_INGEST__RULE_DIRS", "/srv/rules, /opt/sigma"),
                ("VIGIL_INGEST__QUEUE_CAPACITY", "512"),
                ("VIGIL_RATE_LIMIT__REQUESTS_PER_SECOND", "25"),
                ("VIGIL_OLLAMA__STREAM", "yes"),
                // A string field that looks like a number stays a string.
                ("VIGIL_ML__CONTAMINATION", "0.05"),
                ("VIGIL_LOKI__TENANT", "42"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.ingest.rule_dirs,
            vec![PathBuf::from("/srv/rules"), PathBuf::from("/opt/sigma")]
        );
        assert_eq!(c.ingest.queue_capacity, 512);
        assert_eq!(c.rate_limit.requests_per_second, 25.0);
        assert!(c.ollama.stream);
        assert_eq!(c.ml.contamination, "0.05");
        assert_eq!(c.loki.tenant, "42");
        let e = Config::load_from(None, &env(&[("VIGIL_ML__SEED", "x")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("VIGIL_ML__SEED") && e.contains("not an integer"),
            "{e}"
        );
    }

    fn lookup<'a>(v: &'a toml::Value, path: &[&str]) -> Option<&'a toml::Value> {
        path.iter().try_fold(v, |v, k| v.as_table()?.get(*k))
    }

    /// The `VIGIL_` variable that sets a dotted key.
    fn var_of(key: &str) -> String {
        if key == "data_dir" {
            "VIGIL_DATA_DIR".to_string()
        } else {
            format!("VIGIL_{}", key.replace('.', "__").to_ascii_uppercase())
        }
    }

    /// The README's configuration block, as TOML.
    fn readme_config() -> toml::Value {
        let readme = include_str!("../../../README.md");
        let section = &readme[readme
            .find("## Configuration")
            .expect("README has Configuration")..];
        let start = section.find("```toml\n").expect("a toml block") + "```toml\n".len();
        let end = start + section[start..].find("```").expect("block ends");
        toml::from_str(&section[start..end]).expect("README config block is valid TOML")
    }

    /// Every leaf of `v` as (dotted key, value).
    fn leaves(prefix: &str, v: &toml::Value, out: &mut Vec<(String, toml::Value)>) {
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    leaves(&key, v, out);
                }
            }
            other => out.push((prefix.to_string(), other.clone())),
        }
    }

    /// The README's example is complete: it shows every key the structs accept, and nothing
    /// else (so the test below covers every key).
    #[test]
    fn readme_lists_every_key() {
        let mut shown = Vec::new();
        leaves("", &readme_config(), &mut shown);
        let shown: Vec<String> = shown.into_iter().map(|(k, _)| k).collect();
        let known: Vec<String> = keys::describe::<Config>().unwrap().into_keys().collect();
        let missing: Vec<&String> = known.iter().filter(|k| !shown.contains(k)).collect();
        let extra: Vec<&String> = shown.iter().filter(|k| !known.contains(k)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "README config block lacks {missing:?}, has unknown {extra:?}"
        );
        // Types read from the structs, spot-checked.
        let known = keys::describe::<Config>().unwrap();
        let syslog_tcp = &known["syslog.tcp"];
        assert_eq!(
            (&syslog_tcp.kind, syslog_tcp.optional),
            (&Kind::String, true)
        );
        assert_eq!(
            known["ingest.rule_dirs"].kind,
            Kind::Array(Box::new(Kind::String))
        );
        assert_eq!(known["rate_limit.burst"].kind, Kind::Integer);
        assert_eq!(known["rate_limit.login_per_minute"].kind, Kind::Float);
        assert_eq!(known["ml.score_flows"].kind, Kind::Boolean);
        assert_eq!(known["auth.jwt_secret"].kind, Kind::String);
    }

    /// Every key the structs accept, set through the environment all at once to a value
    /// unlike its default, ends up in the configuration with that value.
    #[test]
    fn every_key_takes_effect_from_the_environment() {
        let defaults = toml::Value::try_from(Config::default()).unwrap();
        let known = keys::describe::<Config>().unwrap();
        let mut vars = Vec::new();
        let mut expected = Vec::new();
        for (key, k) in &known {
            let path: Vec<&str> = key.split('.').collect();
            let default = lookup(&defaults, &path);
            let (raw, value) = match &k.kind {
                Kind::Boolean => {
                    let b = !default.and_then(toml::Value::as_bool).unwrap_or(false);
                    (b.to_string(), toml::Value::Boolean(b))
                }
                Kind::Integer => {
                    let i = default.and_then(toml::Value::as_integer).unwrap_or(0) + 1;
                    (i.to_string(), toml::Value::Integer(i))
                }
                Kind::Float => {
                    let f = default.and_then(toml::Value::as_float).unwrap_or(0.0) + 1.5;
                    (f.to_string(), toml::Value::Float(f))
                }
                // Arrays of tables ([[webhooks.endpoints]]) are set in the file only.
                Kind::Tables => continue,
                Kind::Array(_) => (
                    "https://a.example, https://b.example".to_string(),
                    toml::Value::Array(vec![
                        "https://a.example".into(),
                        "https://b.example".into(),
                    ]),
                ),
                Kind::String => {
                    // Values the validation accepts where it looks at them.
                    let s = match key.as_str() {
                        "log.format" => "json".to_string(),
                        "ollama.provider" => "openai".to_string(),
                        "ingest.min_alert_level" => "critical".to_string(),
                        "redis.url" => "redis://127.0.0.1:9/0".to_string(),
                        "redis.key_prefix" => "vigil-from-env".to_string(),
                        k if k.ends_with(".url") => format!("http://127.0.0.1:9/{k}"),
                        k => format!("{k} from the environment, 32 bytes or more"),
                    };
                    (s.clone(), toml::Value::String(s))
                }
            };
            assert_ne!(default, Some(&value), "{key}: test value is the default");
            let var = var_of(key);
            vars.push((var, raw));
            expected.push((key.clone(), value));
        }
        let c = Config::load_from(None, &vars).unwrap();
        let got = toml::Value::try_from(&c).unwrap();
        let mut redacted = Vec::new();
        for (key, value) in expected {
            let path: Vec<&str> = key.split('.').collect();
            let shown = lookup(&got, &path).unwrap_or_else(|| panic!("{key} missing"));
            if shown.as_str() == Some("[redacted]") {
                redacted.push(key);
            } else {
                assert_eq!(shown, &value, "{key}");
            }
        }
        assert_eq!(
            redacted,
            [
                "auth.jwt_secret",
                "cortex.api_key",
                "database.url",
                "ollama.api_key",
                "redis.url",
                "thehive.api_key"
            ]
        );
        assert_eq!(
            c.auth.jwt_secret.expose(),
            "auth.jwt_secret from the environment, 32 bytes or more"
        );
    }

    /// Each key of the README example, set alone through its `VIGIL_` variable, is accepted
    /// and lands in the configuration with the example's value.
    #[test]
    fn every_readme_key_is_accepted_from_the_environment() {
        let mut keys = Vec::new();
        leaves("", &readme_config(), &mut keys);
        assert!(keys.len() > 70, "README lists only {} keys", keys.len());
        for (key, value) in keys {
            let var = var_of(&key);
            let raw = match &value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Array(a) => a
                    .iter()
                    .map(|v| v.as_str().expect("string arrays").to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            let c = Config::load_from(None, &env(&[(&var, &raw)]))
                .unwrap_or_else(|e| panic!("{var}={raw}: {e}"));
            let got = toml::Value::try_from(&c).unwrap();
            let path: Vec<&str> = key.split('.').collect();
            assert_eq!(lookup(&got, &path), Some(&value), "{var}={raw}");
        }
    }

    #[test]
    fn wildcard_cors_and_short_secret_are_refused() {
        let e = Config::load_from(None, &env(&[("VIGIL_SERVER__CORS_ORIGINS", "*")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cors_origins"), "{e}");
        let e = Config::load_from(None, &env(&[("VIGIL_AUTH__JWT_SECRET", "short")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("jwt_secret"), "{e}");
    }

    #[test]
    fn database_password_is_masked() {
        let c = Config::load_from(
            None,
            &env(&[("VIGIL_DATABASE__URL", "postgres://u:hunter2@db/vigil")]),
        )
        .unwrap();
        let shown = c.redacted_toml();
        assert!(
            !shown.contains("hunter2") && shown.contains("postgres://u:***@db/vigil"),
            "{shown}"
        );
        assert_eq!(
            Config::default().database_url(),
            "sqlite://vigil-data/vigil.db"
        );
    }
}
