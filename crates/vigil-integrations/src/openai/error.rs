use crate::llm::LlmError;

/// What went wrong talking to an OpenAI-compatible server.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OpenAiError {
    #[error("invalid OpenAI-compatible configuration: {0}")]
    Config(String),
    #[error("{url} cannot be reached: {message}")]
    Unreachable { url: String, message: String },
    #[error("no answer within {secs} s")]
    Timeout { secs: u64 },
    /// An `{"error": {...}}` answer (or a non-JSON error body).
    #[error("answered {status} ({kind}{code}): {message}")]
    Api {
        status: u16,
        kind: String,
        code: String,
        message: String,
    },
    #[error("bad response: {0}")]
    Protocol(String),
}

impl From<OpenAiError> for LlmError {
    fn from(e: OpenAiError) -> Self {
        let provider = "openai";
        match e {
            OpenAiError::Config(message) | OpenAiError::Protocol(message) => {
                LlmError::Protocol { provider, message }
            }
            OpenAiError::Unreachable { url, message } => LlmError::Unreachable {
                provider,
                url,
                message,
            },
            OpenAiError::Timeout { secs } => LlmError::Timeout { provider, secs },
            OpenAiError::Api {
                status, message, ..
            } => LlmError::Api {
                provider,
                status,
                message,
            },
        }
    }
}
