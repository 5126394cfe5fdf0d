//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong while reading, parsing or compiling Sigma rules.
///
/// Errors about a rule name it as `title (id)`; errors from [`crate::load_dir`] and
/// [`crate::SigmaRule::from_file`] are wrapped in [`Error::InFile`] so they name the file too.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rule file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The text is not YAML, or its shape does not fit a Sigma rule.
    #[error("invalid YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    /// The rule is valid YAML but breaks the Sigma specification.
    #[error("rule {rule}: {reason}")]
    InvalidRule { rule: String, reason: String },
    /// A field uses a value modifier this engine does not know.
    #[error("rule {rule}: unsupported modifier `{modifier}` on field `{field}`")]
    UnsupportedModifier {
        rule: String,
        field: String,
        modifier: String,
    },
    /// The condition does not parse or names a search identifier that does not exist.
    #[error("rule {rule}: condition `{condition}`: {reason}")]
    Condition {
        rule: String,
        condition: String,
        reason: String,
    },
    /// A value cannot be compiled (bad regular expression, CIDR, number ...).
    #[error("rule {rule}: field `{field}`: {reason}")]
    InvalidValue {
        rule: String,
        field: String,
        reason: String,
    },
    /// An `expand` modifier names a placeholder that [`crate::CompileOptions`] does not define
    /// (only with [`crate::PlaceholderPolicy::Error`], the default).
    #[error("rule {rule}: field `{field}`: unresolved placeholder `%{placeholder}%`")]
    UnresolvedPlaceholder {
        rule: String,
        field: String,
        placeholder: String,
    },
    /// A rule, correlation or filter whose `id` (or `name`) an earlier one of the same load
    /// already has, in any source: the first is kept, this one skipped (references by id or
    /// name would otherwise be ambiguous).
    #[error(
        "rule {rule}: duplicate {what} `{value}`: already used by {first}; this one is skipped"
    )]
    Duplicate {
        rule: String,
        /// `id` or `name`.
        what: &'static str,
        value: String,
        /// The first holder, as `path: title (id)`.
        first: String,
    },
    /// A processing pipeline is invalid; `pipeline` is its file (or the name it was given).
    #[error("pipeline {pipeline}: {reason}")]
    Pipeline { pipeline: String, reason: String },
    /// Another error, with the file it came from.
    #[error("{}: {source}", path.display())]
    InFile {
        path: PathBuf,
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// Wraps the error with the path of the file it came from.
    pub fn in_file(self, path: impl Into<PathBuf>) -> Self {
        Error::InFile {
            path: path.into(),
            source: Box::new(self),
        }
    }

    /// The error without any [`Error::InFile`] wrapping.
    pub fn root(&self) -> &Error {
        match self {
            Error::InFile { source, .. } => source.root(),
            other => other,
        }
    }

    /// A short, rule-independent description of the kind of problem, for grouping reports
    /// (for example `unsupported modifier \`foo\``).
    pub fn kind(&self) -> String {
        match self.root() {
            Error::Io { .. } => "cannot read file".into(),
            Error::Yaml(_) => "invalid YAML".into(),
            Error::InvalidRule { reason, .. } => reason.clone(),
            Error::UnsupportedModifier { modifier, .. } => {
                format!("unsupported modifier `{modifier}`")
            }
            Error::Condition { reason, .. } => format!("condition: {reason}"),
            Error::InvalidValue { reason, .. } => {
                // Regex errors carry the whole pattern; keep the first line only.
                reason.lines().next().unwrap_or_default().to_string()
            }
            Error::UnresolvedPlaceholder { .. } => "unresolved placeholder".into(),
            Error::Pipeline { .. } => "invalid pipeline".into(),
            Error::Duplicate { what, .. } => format!("duplicate {what}"),
            Error::InFile { .. } => unreachable!("root() strips InFile"),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
