//! Vigil's detection engine: Sigma rules parsed, compiled once and evaluated against events.
//!
//! This crate knows nothing about the server or the store: it sees events only through the
//! [`Event`] trait, implemented here for `serde_json::Value` (including Windows events in
//! their EVTX-as-JSON shape) and for [`JsonEvent`], the same documents parsed from their text
//! without building a `Value` (the faster way in when events arrive as JSON text).
//!
//! ```
//! use vigil_detect::{CompileOptions, CompiledRule};
//!
//! let rule = CompiledRule::from_yaml(
//!     r#"
//! title: Whoami
//! logsource: {product: windows, category: process_creation}
//! detection:
//!     selection:
//!         Image|endswith: '\whoami.exe'
//!         EventID: 1
//!     condition: selection
//! "#,
//!     &CompileOptions::default(),
//! )?;
//! let event = serde_json::json!({"Event": {
//!     "System": {"EventID": 1},
//!     "EventData": {"Image": "C:\\Windows\\System32\\WHOAMI.EXE"}
//! }});
//! assert!(rule.is_match(&event));
//! # Ok::<(), vigil_detect::Error>(())
//! ```
//!
//! # What is supported
//!
//! - Rules: `title`, `id`, `name`, `status`, `level`, `description`, `author`, `tags`, `logsource`,
//!   `detection`, `falsepositives`, `references` (other keys are ignored, as the specification
//!   allows). Searches may be maps (AND), lists of maps (OR), value lists / keyword lists (OR),
//!   with `null` values; `condition` may be a list (any of them).
//! - Modifiers: see [`Modifier::SUPPORTED`]; anything else is an [`Error::UnsupportedModifier`]
//!   naming the rule and the modifier, and combinations that cannot work together
//!   (`re|contains`) are errors too.
//! - Conditions: `and`, `or`, `not`, parentheses, `1 of x*`, `all of x*`, `N of ...`,
//!   `1 of them`, `all of them` (them leaves out identifiers starting with `_`).
//! - Strings compare case-insensitively unless `cased`; `*`, `?` and the escapes `\*`, `\?`,
//!   `\\` follow the specification. Keywords match anywhere in the event's text.
//! - `expand` placeholders come from [`CompileOptions::placeholders`]; an unknown one is an error
//!   by default ([`PlaceholderPolicy`]).
//!
//! - Logsource mapping through processing pipelines ([`PipelineSet`], format in
//!   [`pipeline`]): [`Ruleset::with_pipelines`] evaluates a rule only against
//!   events its logsource stands for, with the field names those events use. Built in:
//!   Windows event logs, Linux (auditd, syslog, agent), network (agent flows, DNS, HTTP) and
//!   Vigil's normalized schema. Without pipelines, fields are looked up as written.
//!
//! - Correlation rules ([`CorrelationRule`]: `event_count`, `value_count`, `temporal`,
//!   `temporal_ordered`, `group-by`, `aliases`, `generate`) evaluated over a stream by
//!   [`CorrelationEngine`] (event time passed in by the caller; windows, ordering and memory
//!   bounds in [`correlation`]). Filter rules ([`FilterRule`]) suppress the rules they name.
//!   [`load_dir`] loads all three kinds, also from multi-document files, and resolves
//!   references by `id` or `name`; [`load_sources`] does the same for files in memory, and
//!   [`load`] over the built-in pack and several directories at once (references resolve
//!   across all of them; a repeated `id` or `name` is an error for the later rule).
//!
//! - A built-in rule pack ([`builtin_rules`], files in [`BUILTIN_RULE_FILES`]): Vigil's own
//!   rules for Linux (SSH brute force, sudo, persistence, reverse shells ...), the network
//!   sensor (scans, DNS, web attacks) and Windows classics, each with its own test events.
//!
//! # What is not
//!
//! - Chained correlations (a correlation referring to another), correlation conditions with
//!   only `lt`/`lte` (they need windows to close), the old aggregations (`| count() ...`),
//!   `near`.
//! - Regular expression features Rust's `regex` lacks (look-around, back-references): such
//!   rules are rejected with the regex error.

mod builtin;
mod condition;
pub mod correlation;
mod engine;
mod error;
mod event;
mod filter;
mod json;
pub mod pipeline;
mod rule;
mod value;

pub use builtin::{BUILTIN_RULE_FILES, builtin_rules};
pub use correlation::{
    Contribution, CorrelationEngine, CorrelationMatch, CorrelationRule, CorrelationType,
    CountCondition, Timespan, chain_inputs,
};
pub use engine::{CompiledRule, LoadReport, Ruleset, load, load_dir, load_sources};
pub use error::{Error, Result};
pub use event::{Event, FieldValue};
pub use filter::FilterRule;
pub use json::JsonEvent;
pub use pipeline::{Pipeline, PipelineSet};
pub use rule::{
    Detection, FieldSelection, Level, LogSource, Modifier, Search, SigmaRule, SigmaValue, Status,
};
pub use value::{CompileOptions, PlaceholderPolicy};
