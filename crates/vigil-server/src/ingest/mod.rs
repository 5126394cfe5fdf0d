//! Ingestion: authenticating senders, normalizing what they send, detection, and the
//! pipeline that stores events and raises alerts. HTTP handlers live in `api::ingest`;
//! the syslog listeners in `syslog`.

pub mod auth;
pub mod budget;
pub mod detect;
pub mod normalize;
pub mod pipeline;

pub use pipeline::{
    Drained, Job, JobResult, Pipeline, PipelineConfig, PipelineHealth, PipelineTask,
};
