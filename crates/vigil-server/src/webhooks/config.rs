//! `[webhooks]` and `[[webhooks.endpoints]]`.

use serde::{Deserialize, Serialize};

use crate::config::Secret;

/// Outgoing webhooks (signed per Standard Webhooks; `docs/WEBHOOKS.md`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Allow destinations on loopback, private, link-local, unique-local and other internal
    /// addresses. Off: such URLs are refused when an endpoint is saved (422) and every
    /// attempt checks the address it connects to (SSRF guard).
    pub allow_private_destinations: bool,
    /// Deliveries in flight at once per endpoint; a slow endpoint never holds more.
    pub max_concurrency_per_endpoint: usize,
    /// Deliveries in flight at once in this process, all endpoints together.
    pub max_in_flight: usize,
    /// How often due deliveries are looked for, milliseconds (also woken by new events and
    /// finished attempts).
    pub poll_ms: u64,
    /// Request timeout of an endpoint that sets none, seconds.
    pub default_timeout_secs: u64,
    /// Wait after the first failed attempt, milliseconds; doubled after each further one,
    /// with jitter (half of it random).
    pub retry_base_ms: u64,
    /// Longest wait between two attempts, seconds (a longer `Retry-After` is cut to this).
    pub retry_max_secs: u64,
    /// A delivery still failing this many seconds after it was created is dead
    /// (redeliver it through the API).
    pub max_age_secs: u64,
    /// Days delivered and dead deliveries stay in the log (then deleted, hourly).
    pub retention_days: u32,
    /// Endpoints written at start (matched by organization and name; removed from the
    /// database when removed here). The API shows them but does not change them.
    pub endpoints: Vec<WebhookEndpointConfig>,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            allow_private_destinations: false,
            max_concurrency_per_endpoint: 4,
            max_in_flight: 64,
            poll_ms: 1000,
            default_timeout_secs: 10,
            retry_base_ms: 5000,
            retry_max_secs: 3600,
            max_age_secs: 24 * 3600,
            retention_days: 30,
            endpoints: Vec::new(),
        }
    }
}

/// One `[[webhooks.endpoints]]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookEndpointConfig {
    /// Organization name.
    pub org: String,
    /// Unique within the organization.
    pub name: String,
    pub url: String,
    /// `whsec_<base64>` (24 to 64 bytes); generate one with `openssl rand -base64 32`.
    pub secret: Secret,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `low`, `medium`, `high` or `critical`; absent: every severity.
    #[serde(default)]
    pub min_severity: Option<String>,
    #[serde(default)]
    pub sources: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// `alert.created`, `alert.folded`, `alert.status_changed`, ...; empty: all.
    #[serde(default)]
    pub event_kinds: Vec<String>,
    /// Extra headers as `"Name: value"`.
    #[serde(default)]
    pub headers: Vec<String>,
    /// Request timeout, seconds; absent: `webhooks.default_timeout_secs`.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

fn yes() -> bool {
    true
}

impl WebhooksConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_concurrency_per_endpoint == 0 || self.max_in_flight == 0 {
            return Err(
                "webhooks.max_concurrency_per_endpoint and max_in_flight must be > 0".into(),
            );
        }
        if self.poll_ms == 0 || self.retry_base_ms == 0 || self.default_timeout_secs == 0 {
            return Err(
                "webhooks.poll_ms, retry_base_ms and default_timeout_secs must be > 0".into(),
            );
        }
        if !(1..=MAX_TIMEOUT_SECS).contains(&self.default_timeout_secs) {
            return Err(format!(
                "webhooks.default_timeout_secs must be 1 to {MAX_TIMEOUT_SECS}"
            ));
        }
        for e in &self.endpoints {
            let at = format!("webhooks.endpoints '{}'", e.name);
            vigil_integrations::webhooks::WebhookSecret::parse(e.secret.expose())
                .map_err(|err| format!("{at}: {err}"))?;
            super::EndpointFilters::parse(e.min_severity.as_deref(), &e.sources, &e.event_kinds)
                .map_err(|err| format!("{at}: {err}"))?;
            super::parse_header_lines(&e.headers).map_err(|err| format!("{at}: {err}"))?;
            if e.timeout_secs
                .is_some_and(|t| !(1..=MAX_TIMEOUT_SECS).contains(&t))
            {
                return Err(format!(
                    "{at}: timeout_secs must be 1 to {MAX_TIMEOUT_SECS}"
                ));
            }
        }
        Ok(())
    }
}

/// Longest request timeout an endpoint may have, seconds.
pub const MAX_TIMEOUT_SECS: u64 = 60;
