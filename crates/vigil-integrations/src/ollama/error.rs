use crate::llm::LlmError;

/// What went wrong talking to Ollama.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OllamaError {
    #[error("invalid Ollama configuration: {0}")]
    Config(String),
    #[error("Ollama at {url} cannot be reached: {message}")]
    Unreachable { url: String, message: String },
    #[error("Ollama did not answer within {secs} s")]
    Timeout { secs: u64 },
    #[error("Ollama has no model '{model}': {message}")]
    ModelNotFound { model: String, message: String },
    #[error("Ollama answered {status}: {message}")]
    Api { status: u16, message: String },
    #[error("bad response from Ollama: {0}")]
    Protocol(String),
}

impl From<OllamaError> for LlmError {
    fn from(e: OllamaError) -> Self {
        let provider = "ollama";
        match e {
            OllamaError::Config(message) | OllamaError::Protocol(message) => {
                LlmError::Protocol { provider, message }
            }
            OllamaError::Unreachable { url, message } => LlmError::Unreachable {
                provider,
                url,
                message,
            },
            OllamaError::Timeout { secs } => LlmError::Timeout { provider, secs },
            OllamaError::ModelNotFound { model, .. } => LlmError::ModelNotFound { provider, model },
            OllamaError::Api { status, message } => LlmError::Api {
                provider,
                status,
                message,
            },
        }
    }
}
