//! Command-line interface of the `vigil-agent` binary (kept here so `main.rs` stays thin).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{AgentConfig, DEFAULT_CONFIG_PATH, Secret};
use crate::error::Result;
use crate::{Agent, footprint};

/// Vigil host agent.
#[derive(Debug, Parser)]
#[command(name = "vigil-agent", version, about)]
pub struct Cli {
    /// Configuration file (TOML).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Server base URL (overrides the file and VIGIL_AGENT_SERVER_URL).
    #[arg(long, global = true)]
    pub server_url: Option<String>,
    /// One-time enrollment token.
    #[arg(long, global = true)]
    pub enrollment_token: Option<String>,
    /// State directory (credential, offsets, disk buffer).
    #[arg(long, global = true)]
    pub state_dir: Option<PathBuf>,
    /// Host name to report.
    #[arg(long, global = true)]
    pub hostname: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do; `run` when omitted.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent until SIGINT/SIGTERM.
    Run,
    /// Print the effective configuration (secrets redacted) and exit.
    CheckConfig,
    /// Print the events of a capture file (pcap or pcapng) as JSON lines: flows, DNS, HTTP
    /// and TLS, as live capture would send them.
    Capture {
        /// The capture file to read.
        #[arg(long, value_name = "FILE")]
        read: PathBuf,
    },
    /// Run against a local sink for N seconds and report peak RSS and CPU.
    BenchFootprint {
        /// How long to run.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Metrics interval during the run (seconds).
        #[arg(long, default_value_t = 30)]
        metrics_interval: u64,
    },
}

impl Cli {
    /// The configuration: file, then environment, then flags.
    pub fn load_config(&self) -> Result<AgentConfig> {
        let (path, required) = match &self.config {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        };
        let mut c = AgentConfig::from_file(&path, required)?;
        c.apply_env(|k| std::env::var(k).ok())?;
        if let Some(v) = &self.server_url {
            c.server_url = v.clone();
        }
        if let Some(v) = &self.enrollment_token {
            c.enrollment_token = Secret::new(v.clone());
        }
        if let Some(v) = &self.state_dir {
            c.state_dir = Some(v.clone());
        }
        if let Some(v) = &self.hostname {
            c.hostname = Some(v.clone());
        }
        Ok(c)
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

async fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Some(Command::Capture { read }) => {
            use std::io::Write;
            let (events, error) = crate::source::capture::read_file(&read)
                .map_err(|e| crate::Error::Config(format!("{}: {e}", read.display())))?;
            let mut out = std::io::stdout().lock();
            for ev in &events {
                if writeln!(out, "{ev}").is_err() {
                    return Ok(()); // stdout closed (`| head`)
                }
            }
            if let Some(e) = error {
                eprintln!("{}: read up to an error: {e}", read.display());
            }
            eprintln!("{} events", events.len());
        }
        Some(Command::CheckConfig) => {
            let c = cli.load_config()?;
            print!("{}", c.redacted_toml());
            c.validate()?;
            eprintln!("configuration is valid");
        }
        Some(Command::BenchFootprint {
            seconds,
            metrics_interval,
        }) => {
            let mut c = cli.load_config()?;
            c.metrics.interval_secs = metrics_interval.max(1);
            let report = footprint::bench_footprint(seconds, c).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            );
            println!(
                "peak RSS {:.1} MiB, CPU {:.2}% of one core over {:.0} s (capture: {})",
                report.peak_rss_kib as f64 / 1024.0,
                report.cpu_percent_of_one_core,
                report.seconds,
                report.capture_interface.as_deref().unwrap_or("off")
            );
        }
        Some(Command::Run) | None => {
            let c = cli.load_config()?;
            let agent = Agent::build(c).await?;
            let stats = agent.run(shutdown_signal()).await?;
            tracing::info!(?stats, "agent stopped");
        }
    }
    Ok(())
}

/// Entry point of the binary: parses arguments, sets up logging and a single-threaded
/// runtime (the agent is I/O-light; one thread keeps its footprint small).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VIGIL_AGENT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(vigil_core::colour_allowed(&std::io::stderr()))
        .init();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vigil-agent: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigil-agent: {e}");
            ExitCode::FAILURE
        }
    }
}
