//! Errors of the AI layer, whichever provider produced them.

/// What went wrong asking a model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    #[error("{provider} at {url} cannot be reached: {message}")]
    Unreachable {
        provider: &'static str,
        url: String,
        message: String,
    },
    #[error("{provider} did not answer within {secs} s")]
    Timeout { provider: &'static str, secs: u64 },
    #[error("{provider} has no model '{model}'")]
    ModelNotFound {
        provider: &'static str,
        model: String,
    },
    #[error("{provider} answered {status}: {message}")]
    Api {
        provider: &'static str,
        status: u16,
        message: String,
    },
    /// The response broke the provider's protocol: malformed JSON, a stream that ended
    /// before its final message, an error in the middle of a stream.
    #[error("{provider} sent a bad response: {message}")]
    Protocol {
        provider: &'static str,
        message: String,
    },
    /// The model's answer did not match the analysis schema, even after the repair retry.
    #[error(
        "the model's answer does not match the analysis schema (after one repair attempt): {0}"
    )]
    InvalidOutput(String),
}

impl LlmError {
    /// Whether trying again may help (network trouble, overload), as opposed to errors
    /// that will repeat (unknown model, bad request, authentication).
    pub fn is_retryable(&self) -> bool {
        match self {
            LlmError::Unreachable { .. } | LlmError::Timeout { .. } | LlmError::Protocol { .. } => {
                true
            }
            LlmError::Api { status, .. } => *status == 429 || *status >= 500,
            LlmError::ModelNotFound { .. } | LlmError::InvalidOutput(_) => false,
        }
    }

    /// A short machine-readable name (metric label, API error detail).
    pub fn kind(&self) -> &'static str {
        match self {
            LlmError::Unreachable { .. } => "unreachable",
            LlmError::Timeout { .. } => "timeout",
            LlmError::ModelNotFound { .. } => "model_not_found",
            LlmError::Api { .. } => "api_error",
            LlmError::Protocol { .. } => "bad_response",
            LlmError::InvalidOutput(_) => "invalid_output",
        }
    }
}

pub type Result<T, E = LlmError> = std::result::Result<T, E>;
