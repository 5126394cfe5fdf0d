//! Vigil's clients for products outside the process, and the AI analysis layer on top.
//!
//! * [`ollama`]: a local Ollama server (`/api/chat`, `/api/generate`, `/api/tags`; JSON-schema
//!   `format`, NDJSON streaming).
//! * [`openai`]: any OpenAI-compatible `/v1/chat/completions` server (llama.cpp server, vLLM,
//!   LM Studio; `response_format` json_schema, SSE streaming).
//! * [`loki`]: Grafana Loki (`query_range` / `query` with LogQL, range splitting, `streams` and
//!   `matrix` results as events; push as snappy protobuf).
//! * [`llm`]: the provider-neutral [`llm::LlmProvider`] trait, the analysis schema and its
//!   validation with one repair retry, prompt building that treats log text as data, the
//!   content-hash TTL cache, a concurrency limit and retries with backoff.
//! * [`webhooks`]: Standard Webhooks signing, sending with retries classified, and the SSRF
//!   guard.
//!
//! No dependency on the server or the database: callers hand in events and get analyses.
//!
//! ```
//! use vigil_integrations::llm::{Analysis, validate_analysis};
//! let raw = r#"{"summary":"ssh brute force from 203.0.113.9","verdict":"true_positive",
//!   "suggested_severity":"high","attack_techniques":["T1110.001"],
//!   "entities":[{"kind":"ip","value":"203.0.113.9"}],
//!   "recommended_actions":["block 203.0.113.9 at the firewall"],"confidence":0.8}"#;
//! let a: Analysis = validate_analysis(raw).unwrap();
//! assert_eq!(a.attack_techniques[0].as_str(), "T1110.001");
//! assert!(validate_analysis(r#"{"summary":"x","verdict":"benign"}"#).is_err());
//! ```

pub mod llm;
pub mod loki;
pub mod ollama;
pub mod openai;
/// Fake Ollama, OpenAI-compatible and Loki servers for tests (feature `testing`).
#[cfg(feature = "testing")]
pub mod testing;
pub mod webhooks;

/// Joins a base URL and a path with exactly one slash between them.
pub(crate) fn join_url(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// At most `max` bytes of `s`, cut at a character boundary (for error messages).
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
