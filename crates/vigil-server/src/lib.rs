//! Vigil's HTTP server: REST API under `/api/v1`, JWT auth with rotating refresh tokens,
//! RBAC and org isolation, OpenAPI + Swagger UI, Prometheus metrics, graceful shutdown.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use vigil_server::{Application, config::Config};
//! let mut config = Config::load(None)?;
//! config.server.port = 0; // any free port
//! let app = Application::build(config, None).await?;
//! println!("listening on {}", app.port());
//! app.run_until_stopped(vigil_server::shutdown_signal()).await
//! # }
//! ```

pub mod ai;
pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod extract;
pub mod ingest;
pub mod jobs;
pub mod local_agent;
pub mod metrics;
pub mod middleware;
pub mod ml;
pub mod outbox;
pub mod state;
pub mod stream;
pub mod syslog;
pub mod telemetry;
pub mod webhooks;
pub mod worker;

pub use app::{Application, BootstrapAdmin, bootstrap_admin, shutdown_signal};
