//! vigil-parse integration tests: one binary, modules per concern.

mod auth_formats;
mod auth_templates;
mod detection;
mod loki_wire;
mod props;
