//! Grafana Loki (<https://grafana.com/docs/loki/latest/reference/loki-http-api/>):
//! `GET /loki/api/v1/query_range` and `/query` with LogQL, the `X-Scope-OrgID` tenant
//! header, long ranges split into several requests, `streams` / `matrix` / `vector` results
//! parsed and turned into Vigil events (log lines through `vigil_parse`), and
//! `POST /loki/api/v1/push` as snappy-compressed protobuf for forwarding stored events.
//! Loki answers bad queries and exceeded limits with a plain-text 400.

mod client;
mod config;
mod error;

pub use client::{
    LokiClient, LokiDirection, LokiQueryResult, LokiSample, LokiSeries, events_to_streams,
    result_to_events,
};
pub use config::LokiConfig;
pub use error::LokiError;
pub use vigil_parse::loki::{LokiEntry, LokiStream};
