//! The one error type of `vigil-ml`.

/// What can go wrong training, loading or scoring a model, or reading a data set.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A parameter is out of its range (`n_estimators` 0, contamination above 0.5, ...).
    #[error("invalid parameter {name}: {message}")]
    Param { name: &'static str, message: String },
    /// There is nothing to train on.
    #[error("no training samples")]
    NoSamples,
    /// A row or vector has the wrong number of values.
    #[error("expected {expected} features, got {got}")]
    Dimension { expected: usize, got: usize },
    /// A value is NaN or infinite.
    #[error("feature {index} is not a finite number")]
    NotFinite { index: usize },
    /// A model file or export is not one we can read; `at` says where.
    #[error("invalid model ({at}): {message}")]
    Model { at: String, message: String },
    /// A CSV file could not be read; `line` is 1-based.
    #[error("CSV line {line}: {message}")]
    Csv { line: usize, message: String },
    /// Labels for evaluation are not usable (one class only, wrong length).
    #[error("labels: {0}")]
    Labels(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn model(at: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Model {
            at: at.into(),
            message: message.into(),
        }
    }

    pub(crate) fn param(name: &'static str, message: impl Into<String>) -> Self {
        Error::Param {
            name,
            message: message.into(),
        }
    }
}
