use std::fmt;
use std::time::Duration;

/// How to reach an OpenAI-compatible server.
#[derive(Clone)]
pub struct OpenAiConfig {
    /// Base URL, with or without the `/v1` suffix, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// Model name as the server knows it.
    pub model: String,
    /// Sent as `Authorization: Bearer ...` when not empty.
    pub api_key: String,
    /// Whole-request timeout (a streamed reply must finish within it).
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Ask for server-sent events instead of one JSON object.
    pub stream: bool,
    pub temperature: f64,
    /// Largest response accepted, bytes.
    pub max_response_bytes: usize,
}

impl fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("url", &self.url)
            .field("model", &self.model)
            .field(
                "api_key",
                &if self.api_key.is_empty() {
                    ""
                } else {
                    "[redacted]"
                },
            )
            .field("timeout", &self.timeout)
            .field("stream", &self.stream)
            .finish()
    }
}

impl OpenAiConfig {
    pub fn new(url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            model: model.into(),
            api_key: String::new(),
            timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(5),
            stream: false,
            temperature: 0.0,
            max_response_bytes: 4 << 20,
        }
    }
}
