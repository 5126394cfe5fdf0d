//! Vigil's detection engine: Sigma rules parsed, compiled once and evaluated against events.
//!
//! This crate knows nothing about the server or the store: it sees events only through the
//! [`Event`] trait, implemented here for `serde_json::Value` (including Windows events in
//! their EVTX-as-JSON shape).
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
//! Logsource mapping (pipelines) is not done here: a rule's fields are looked up in the event
//! as written.

mod condition;
mod engine;
mod error;
mod event;
mod rule;
mod value;

pub use engine::{CompiledRule, LoadReport, Ruleset, load_dir};
pub use error::{Error, Result};
pub use event::{Event, FieldValue};
pub use rule::{
    Detection, FieldSelection, Level, LogSource, Modifier, Search, SigmaRule, SigmaValue, Status,
};
pub use value::{CompileOptions, PlaceholderPolicy};
