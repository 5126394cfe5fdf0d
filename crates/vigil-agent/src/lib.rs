//! The Vigil host agent: tails logs, watches process starts, samples host metrics, and ships
//! everything to a Vigil server in gzip batches with retries and a bounded disk buffer.
//!
//! Layout: [`config`] (TOML + env), [`state`] (credential, atomic writes), [`source`] (the
//! [`Source`](source::Source) trait and the tail / process / metrics sources),
//! [`shipper`] (batching, retry, buffer replay), [`buffer`] (on-disk segments),
//! [`transport`] (the [`Transport`](transport::Transport) trait and HTTP), [`agent`]
//! ([`Agent`], [`AgentHandle`]), [`footprint`] (the `bench-footprint` measurement).
//!
//! ```no_run
//! # async fn demo() -> vigil_agent::Result<()> {
//! use vigil_agent::{Agent, AgentConfig};
//! let mut config = AgentConfig::from_toml(r#"
//!     server_url = "http://127.0.0.1:8080"
//!     enrollment_token = "from-the-console"
//!     state_dir = "/tmp/vigil-agent-demo"
//!     [logs]
//!     paths = ["/var/log/syslog"]
//! "#)?;
//! config.validate()?;
//! let handle = Agent::build(config).await?.spawn();
//! // ... later, on SIGTERM:
//! let stats = handle.shutdown().await?;
//! println!("{} events accepted", stats.events_accepted);
//! # Ok(()) }
//! ```

pub mod agent;
pub mod buffer;
pub mod cli;
pub mod config;
mod error;
pub mod footprint;
pub mod shipper;
pub mod source;
pub mod state;
pub mod transport;

pub use agent::{Agent, AgentHandle};
pub use config::{AgentConfig, Secret};
pub use error::{Error, Result};
pub use shipper::{Stats, StatsSnapshot};
