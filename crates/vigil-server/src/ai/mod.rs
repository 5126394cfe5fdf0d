//! AI-assisted analysis: `POST /analyze` ([`analyze`]), alert triage ([`triage`]), the
//! background auto-triage and Loki forwarder ([`background`]). The model is optional:
//! without `[ollama] url` the deterministic analysis ([`aggregate`]) is returned alone.
//!
//! Safety: event text is attacker-controlled. It reaches the model only through
//! `vigil_integrations::llm::build_prompt` (control characters stripped, length-limited,
//! inside nonce-delimited markers); model output is validated against the schema and only
//! ever stored as *suggestions* — nothing here changes an alert or runs an action.

pub mod aggregate;
pub mod analyze;
pub mod background;
pub mod triage;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use vigil_integrations::llm::{Analysis, LlmError, LlmProvider, LlmService, LlmSettings, Verdict};
use vigil_integrations::loki::{LokiClient, LokiError};
use vigil_integrations::ollama::{OllamaClient, OllamaConfig as OllamaClientConfig};
use vigil_integrations::openai::{OpenAiClient, OpenAiConfig};

use crate::config::Config;
use crate::error::ApiError;

/// The model and Loki clients, built once from the configuration.
#[derive(Clone)]
pub struct Ai {
    pub llm: Option<Arc<LlmService>>,
    pub loki: Option<LokiClient>,
    /// LogQL selector for `source: "loki"`.
    pub loki_query: String,
    pub max_events: usize,
    /// Longest an analysis waits for the model before answering with the deterministic
    /// part and a `timeout` model error (just under the server's request timeout, so a slow
    /// model never turns the whole request into a 503). `None`: no bound (the CLI).
    pub model_deadline: Option<Duration>,
}

/// Checks the `[ollama]` and `[loki]` sections (called by `Config::load`).
pub fn validate_config(cfg: &Config) -> Result<(), String> {
    let o = &cfg.ollama;
    if !["ollama", "openai"].contains(&o.provider.as_str()) {
        return Err(format!(
            "ollama.provider '{}' must be ollama or openai",
            o.provider
        ));
    }
    if !o.url.is_empty() {
        if !(o.url.starts_with("http://") || o.url.starts_with("https://")) {
            return Err(format!(
                "ollama.url '{}' must start with http:// or https://",
                o.url
            ));
        }
        if o.model.trim().is_empty() {
            return Err("ollama.model is required when ollama.url is set".into());
        }
    }
    if o.max_concurrency == 0 || o.timeout_secs == 0 || o.max_events == 0 {
        return Err("ollama.max_concurrency, timeout_secs and max_events must be > 0".into());
    }
    if o.auto_triage && o.auto_triage_interval_secs == 0 {
        return Err("ollama.auto_triage_interval_secs must be > 0".into());
    }
    let l = &cfg.loki;
    if !(l.url.is_empty() || l.url.starts_with("http://") || l.url.starts_with("https://")) {
        return Err(format!(
            "loki.url '{}' must start with http:// or https://",
            l.url
        ));
    }
    if l.forward && l.url.is_empty() {
        return Err("loki.forward needs loki.url".into());
    }
    if l.timeout_secs == 0 || l.split_interval_secs == 0 || l.forward_interval_secs == 0 {
        return Err("loki timeouts and intervals must be > 0".into());
    }
    Ok(())
}

impl Ai {
    pub fn from_config(cfg: &Config) -> anyhow::Result<Self> {
        let o = &cfg.ollama;
        let llm = if o.url.is_empty() {
            None
        } else {
            let timeout = Duration::from_secs(o.timeout_secs);
            let provider: Arc<dyn LlmProvider> = match o.provider.as_str() {
                "openai" => {
                    let mut c = OpenAiConfig::new(&o.url, &o.model);
                    c.api_key = o.api_key.expose().to_string();
                    c.timeout = timeout;
                    c.stream = o.stream;
                    Arc::new(OpenAiClient::new(c)?)
                }
                _ => {
                    let mut c = OllamaClientConfig::new(&o.url, &o.model);
                    c.timeout = timeout;
                    c.stream = o.stream;
                    Arc::new(OllamaClient::new(c)?)
                }
            };
            Some(Arc::new(LlmService::new(
                provider,
                LlmSettings {
                    max_concurrency: o.max_concurrency,
                    retries: o.retries,
                    cache_ttl: Duration::from_secs(o.cache_ttl_secs),
                    ..LlmSettings::default()
                },
            )))
        };
        let l = &cfg.loki;
        let loki = if l.url.is_empty() {
            None
        } else {
            let mut c = vigil_integrations::loki::LokiConfig::new(&l.url);
            c.timeout = Duration::from_secs(l.timeout_secs);
            c.tenant = l.tenant.clone();
            c.split_interval = Duration::from_secs(l.split_interval_secs);
            Some(LokiClient::new(c)?)
        };
        Ok(Self {
            llm,
            loki,
            loki_query: l.query.clone(),
            max_events: o.max_events,
            model_deadline: Some(Duration::from_secs(
                cfg.server.request_timeout_secs.saturating_sub(2).max(1),
            )),
        })
    }
}

/// What the analysis features can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AiError {
    #[error("no model is configured (set [ollama] url and model)")]
    NoModel,
    #[error("Loki is not configured (set [loki] url or LOKI_API_URL)")]
    NoLoki,
    #[error("{0}")]
    Llm(#[from] LlmError),
    #[error("Loki: {0}")]
    Loki(#[from] LokiError),
    #[error(transparent)]
    Store(#[from] vigil_store::Error),
}

impl From<AiError> for ApiError {
    fn from(e: AiError) -> Self {
        match e {
            AiError::NoModel => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "model_not_configured",
                e.to_string(),
            ),
            AiError::NoLoki => ApiError::bad_request("loki_not_configured", e.to_string()),
            AiError::Llm(l) => {
                let kind = l.kind();
                ApiError::new(StatusCode::BAD_GATEWAY, "model_error", l.to_string())
                    .with_details(serde_json::json!({ "kind": kind }))
            }
            AiError::Loki(LokiError::Api {
                status: 400,
                message,
            }) => ApiError::bad_request("loki_rejected_query", format!("Loki: {message}")),
            AiError::Loki(l) => ApiError::new(StatusCode::BAD_GATEWAY, "loki_error", l.to_string()),
            AiError::Store(s) => s.into(),
        }
    }
}

/// Applies the safety rules to a model's analysis: when the data carries prompt-injection
/// text, a "false positive" verdict is not taken from the model (it may be exactly what the
/// injected text asked for) and becomes "needs investigation". Returns a note when it
/// changed something.
pub fn apply_safety(analysis: &mut Analysis, injection_suspected: bool) -> Option<String> {
    if injection_suspected && analysis.verdict == Verdict::FalsePositive {
        analysis.verdict = Verdict::NeedsInvestigation;
        return Some(
            "The data contains prompt-injection text and the model answered false_positive; \
             the verdict was changed to needs_investigation for a human to decide."
                .into(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn model_and_loki_settings_are_checked_and_the_key_is_redacted() {
        let c = Config::load_from(
            None,
            &env(&[
                ("OLLAMA_API_URL", "http://127.0.0.1:8080"),
                ("OLLAMA_MODEL", "qwen"),
                ("VIGIL_OLLAMA__PROVIDER", "openai"),
                ("VIGIL_OLLAMA__API_KEY", "sk-very-secret"),
                ("LOKI_API_URL", "http://127.0.0.1:3100"),
                ("LOKI_TIMEOUT", "7"),
            ]),
        )
        .unwrap();
        assert_eq!(c.ollama.provider, "openai");
        assert_eq!(c.loki.timeout_secs, 7);
        assert!(!c.redacted_toml().contains("sk-very-secret"));
        let ai = super::Ai::from_config(&c).unwrap();
        assert_eq!(ai.llm.as_ref().unwrap().provider(), "openai");
        assert!(ai.loki.is_some());
        assert!(
            super::Ai::from_config(&Config::default())
                .unwrap()
                .llm
                .is_none()
        );
        for (pairs, want) in [
            (
                vec![("VIGIL_OLLAMA__PROVIDER", "claude")],
                "ollama.provider",
            ),
            (
                vec![("OLLAMA_API_URL", "http://127.0.0.1:11434")],
                "ollama.model",
            ),
            (
                vec![("OLLAMA_API_URL", "127.0.0.1:11434"), ("OLLAMA_MODEL", "m")],
                "http://",
            ),
            (vec![("VIGIL_LOKI__FORWARD", "true")], "loki.forward"),
            (
                vec![("VIGIL_OLLAMA__MAX_CONCURRENCY", "0")],
                "max_concurrency",
            ),
        ] {
            let e = Config::load_from(None, &env(&pairs))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{pairs:?}: {e}");
        }
    }
}
