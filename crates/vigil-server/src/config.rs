//! Configuration: one serde tree, layered `defaults -> vigil.toml -> environment`.
//!
//! Environment variables: `VIGIL_<SECTION>__<KEY>` (double underscore between levels, e.g.
//! `VIGIL_SERVER__PORT=9000`, `VIGIL_DATABASE__URL=postgres://...`), plus the names users
//! of the original design already have (`API_HOST`, `API_PORT`, `OLLAMA_API_URL`, ...; see
//! [`LEGACY_ENV`]). Unknown keys in the file or in `VIGIL_*__*` variables are errors that
//! name the key.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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
    /// Extra Sigma rule directories, loaded after the built-in pack.
    pub rule_dirs: Vec<PathBuf>,
    /// Run the agent inside `vigil serve`, watching this host.
    pub local_agent: bool,
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
            rule_dirs: Vec::new(),
            local_agent: true,
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
    /// Seconds in-flight requests get to finish after SIGINT/SIGTERM.
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
        let defaults = toml::Value::try_from(Config::default())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let mut value = defaults.clone();
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
            let existing = lookup(&defaults, &path).ok_or_else(|| ConfigError::Env {
                var: var.clone(),
                message: format!("unknown configuration key '{key}'"),
            })?;
            let v = parse_like(existing, raw).map_err(|message| ConfigError::Env {
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

fn lookup<'a>(v: &'a toml::Value, path: &[&str]) -> Option<&'a toml::Value> {
    path.iter().try_fold(v, |v, k| v.as_table()?.get(*k))
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

/// Parses an environment string as the type the key has in the defaults.
fn parse_like(existing: &toml::Value, raw: &str) -> Result<toml::Value, String> {
    Ok(match existing {
        toml::Value::Integer(_) => toml::Value::Integer(
            raw.trim()
                .parse()
                .map_err(|_| format!("'{raw}' is not an integer"))?,
        ),
        toml::Value::Float(_) => toml::Value::Float(
            raw.trim()
                .parse()
                .map_err(|_| format!("'{raw}' is not a number"))?,
        ),
        toml::Value::Boolean(_) => {
            toml::Value::Boolean(match raw.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => return Err(format!("'{raw}' is not a boolean (true/false)")),
            })
        }
        toml::Value::Array(_) => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        ),
        toml::Value::Table(_) => return Err("names a section, not a value".into()),
        _ => toml::Value::String(raw.to_string()),
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
