//! vigil-parse integration tests: one binary, modules per concern.

mod detection;
mod loki_wire;
mod props;
