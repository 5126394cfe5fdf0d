//! `vigil worker`: runs the jobs of the Redis queue next to `vigil serve` replicas (the
//! logic is `vigil_server::worker`).

use vigil_server::config::Config;

pub async fn run(cfg: Config) -> anyhow::Result<()> {
    vigil_server::telemetry::init(&cfg.log);
    // First, so a SIGTERM during startup stops the worker cleanly once it runs.
    let stop = vigil_server::shutdown_signal();
    let worker = vigil_server::worker::Worker::build(cfg).await?;
    let port = worker.port();
    tracing::info!(port, "worker running");
    println!("Vigil worker running jobs; health and metrics on port {port} (/health, /metrics)");
    worker.run_until_stopped(stop).await
}
