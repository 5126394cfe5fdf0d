/// Errors from parsing domain values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A value is not one of the allowed names of an enumeration.
    #[error("invalid {kind} '{value}': expected one of {expected}")]
    InvalidEnum {
        kind: &'static str,
        value: String,
        expected: &'static str,
    },
    /// A value does not have the required shape.
    #[error("invalid {kind} '{value}': {reason}")]
    Invalid {
        kind: &'static str,
        value: String,
        reason: &'static str,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
