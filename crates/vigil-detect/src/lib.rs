//! Vigil's detection engine: Sigma rules parsed, compiled once and evaluated against events.
//!
//! This crate knows nothing about the server or the store: it sees events only through the
//! [`Event`] trait.

mod error;
mod rule;

pub use error::{Error, Result};
pub use rule::{
    Detection, FieldSelection, Level, LogSource, Modifier, Search, SigmaRule, SigmaValue, Status,
};
