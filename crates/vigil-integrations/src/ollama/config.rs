use std::time::Duration;

/// How to reach an Ollama server.
#[derive(Debug, Clone)]
pub struct OllamaConfig {
    /// Base URL, e.g. `http://127.0.0.1:11434`.
    pub url: String,
    /// Model name, e.g. `mistral` or `llama3.1:8b`.
    pub model: String,
    /// Whole-request timeout (a streamed reply must finish within it).
    pub timeout: Duration,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// Ask for an NDJSON stream instead of one JSON object.
    pub stream: bool,
    /// Sampling temperature; 0 makes answers repeatable.
    pub temperature: f64,
    /// Largest response accepted, bytes.
    pub max_response_bytes: usize,
}

impl OllamaConfig {
    pub fn new(url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            model: model.into(),
            timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(5),
            stream: false,
            temperature: 0.0,
            max_response_bytes: 4 << 20,
        }
    }
}
