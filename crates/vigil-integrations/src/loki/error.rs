/// What went wrong talking to Loki.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LokiError {
    #[error("invalid Loki configuration: {0}")]
    Config(String),
    #[error("Loki at {url} cannot be reached: {message}")]
    Unreachable { url: String, message: String },
    #[error("Loki did not answer within {secs} s")]
    Timeout { secs: u64 },
    /// A 4xx/5xx; Loki's message (plain text, e.g. a LogQL parse error or a limit) as sent.
    #[error("Loki answered {status}: {message}")]
    Api { status: u16, message: String },
    #[error("bad response from Loki: {0}")]
    Protocol(String),
}
