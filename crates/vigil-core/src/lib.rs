//! Vigil's domain model, shared by every other crate.
//!
//! Values that come from outside are parsed into types that cannot hold an invalid value
//! (`Severity`, `AlertStatus`, `AttackTechniqueId`, `Role`, ...), so the layers above never
//! re-validate them.
//!
//! ```
//! use vigil_core::{AlertStatus, Severity};
//! let s: Severity = "HIGH".parse().unwrap();
//! assert_eq!(s, Severity::High);
//! assert!(AlertStatus::Open.can_transition_to(AlertStatus::Closed));
//! assert!(!AlertStatus::Closed.can_transition_to(AlertStatus::InProgress));
//! ```

mod alert;
mod error;
pub mod event;
mod outbox;
mod triage;
mod user;

pub use alert::*;
pub use error::{Error, Result};
pub use outbox::*;
pub use triage::*;
pub use user::*;

/// Current time truncated to microseconds: both SQLite and PostgreSQL then store and return
/// exactly the same instant.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    truncate_micros(chrono::Utc::now())
}

/// Truncates a timestamp to microsecond precision (PostgreSQL's precision).
pub fn truncate_micros(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// Whether output to a stream may carry ANSI colour codes: only a terminal, and not when
/// `NO_COLOR` is set to anything non-empty (<https://no-color.org>). Logs and tables piped
/// to a file, a pager or journald stay plain text.
pub fn colour_allowed(stream: &impl std::io::IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
