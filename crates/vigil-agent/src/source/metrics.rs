//! Host metrics (sysinfo): CPU, memory, swap, disks, network interfaces, load, processes.
//!
//! Every interval the snapshot is sent as a `host.metrics` event (fields in `docs/EVENTS.md`)
//! and published on a watch channel that the heartbeat task reads. CPU and network rates are
//! measured between two snapshots, so the first one is taken one second after start.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Value as Json, json};
use sysinfo::{CpuRefreshKind, Disks, Networks, ProcessRefreshKind, ProcessesToUpdate, System};
use tokio::sync::watch;
use vigil_core::event::format_timestamp;

use super::{Source, SourceContext};
use crate::config::MetricsConfig;
use crate::error::Result;

fn round(v: f64, places: i32) -> f64 {
    let m = 10f64.powi(places);
    (v * m).round() / m
}

fn pct(part: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        round(part as f64 / total as f64, 4)
    }
}

/// Collects metrics snapshots; keeps the sysinfo state between them.
pub struct MetricsCollector {
    sys: System,
    disks: Disks,
    networks: Networks,
    last: Instant,
    top_n: usize,
}

impl MetricsCollector {
    /// A collector listing `top_n` processes by CPU and by memory.
    pub fn new(top_n: usize) -> Self {
        let mut sys = System::new();
        sys.refresh_cpu_specifics(CpuRefreshKind::nothing().with_cpu_usage());
        if top_n > 0 {
            sys.refresh_processes_specifics(ProcessesToUpdate::All, true, proc_kind());
        }
        MetricsCollector {
            sys,
            disks: Disks::new_with_refreshed_list(),
            networks: Networks::new_with_refreshed_list(),
            last: Instant::now(),
            top_n,
        }
    }

    /// Refreshes everything and returns the metrics object (`host.*` and `system.*`).
    pub fn collect(&mut self) -> Json {
        let elapsed = self.last.elapsed().as_secs_f64().max(0.001);
        self.last = Instant::now();
        let sys = &mut self.sys;
        sys.refresh_cpu_specifics(CpuRefreshKind::nothing().with_cpu_usage());
        sys.refresh_memory();
        self.disks.refresh(true);
        self.networks.refresh(true);

        let cores: Vec<f64> = sys
            .cpus()
            .iter()
            .map(|c| round(c.cpu_usage() as f64 / 100.0, 4))
            .collect();
        let (total_mem, used_mem) = (sys.total_memory(), sys.used_memory());
        let (total_swap, used_swap) = (sys.total_swap(), sys.used_swap());
        let load = System::load_average();

        let filesystems: Vec<Json> = self
            .disks
            .list()
            .iter()
            .filter(|d| d.total_space() > 0)
            .map(|d| {
                let used = d.total_space().saturating_sub(d.available_space());
                json!({
                    "mount_point": d.mount_point().to_string_lossy(),
                    "type": d.file_system().to_string_lossy(),
                    "total": d.total_space(),
                    "used": {"bytes": used, "pct": pct(used, d.total_space())},
                    "available": d.available_space(),
                })
            })
            .collect();

        let mut interfaces: Vec<(&String, &sysinfo::NetworkData)> =
            self.networks.list().iter().collect();
        interfaces.sort_by(|a, b| a.0.cmp(b.0));
        let network: Vec<Json> = interfaces
            .into_iter()
            .map(|(name, n)| {
                json!({
                    "name": name,
                    "in": {"bytes": n.total_received(), "packets": n.total_packets_received(),
                           "bytes_per_sec": round(n.received() as f64 / elapsed, 1),
                           "packets_per_sec": round(n.packets_received() as f64 / elapsed, 1)},
                    "out": {"bytes": n.total_transmitted(), "packets": n.total_packets_transmitted(),
                            "bytes_per_sec": round(n.transmitted() as f64 / elapsed, 1),
                            "packets_per_sec": round(n.packets_transmitted() as f64 / elapsed, 1)},
                })
            })
            .collect();

        let mut process = json!({});
        if self.top_n > 0 {
            sys.refresh_processes_specifics(ProcessesToUpdate::All, true, proc_kind());
            let procs: Vec<&sysinfo::Process> = sys
                .processes()
                .values()
                .filter(|p| p.thread_kind().is_none())
                .collect();
            let entry = |p: &sysinfo::Process| {
                json!({
                    "pid": p.pid().as_u32(),
                    "name": p.name().to_string_lossy(),
                    "cpu": {"pct": round(p.cpu_usage() as f64 / 100.0, 4)},
                    "memory": {"rss": {"bytes": p.memory()}},
                })
            };
            let mut by_cpu = procs.clone();
            by_cpu.sort_by(|a, b| b.cpu_usage().total_cmp(&a.cpu_usage()));
            let mut by_mem = procs.clone();
            by_mem.sort_by_key(|p| std::cmp::Reverse(p.memory()));
            process = json!({
                "count": procs.len(),
                "top_cpu": by_cpu.iter().take(self.top_n).map(|p| entry(p)).collect::<Vec<_>>(),
                "top_memory": by_mem.iter().take(self.top_n).map(|p| entry(p)).collect::<Vec<_>>(),
            });
        } else if let Ok(rd) = std::fs::read_dir("/proc") {
            let count = rd
                .flatten()
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.parse::<u32>().is_ok())
                })
                .count();
            process = json!({"count": count});
        }

        json!({
            "host": {
                "cpu": {"usage": round(sys.global_cpu_usage() as f64 / 100.0, 4), "count": cores.len()},
                "uptime": System::uptime(),
            },
            "system": {
                "cpu": {"cores": cores},
                "memory": {
                    "total": total_mem,
                    "free": sys.free_memory(),
                    "available": sys.available_memory(),
                    "used": {"bytes": used_mem, "pct": pct(used_mem, total_mem)},
                },
                "swap": {
                    "total": total_swap,
                    "used": {"bytes": used_swap, "pct": pct(used_swap, total_swap)},
                },
                "load": {"1": round(load.one, 2), "5": round(load.five, 2), "15": round(load.fifteen, 2)},
                "filesystem": filesystems,
                "network": network,
                "process": process,
            },
        })
    }
}

fn proc_kind() -> ProcessRefreshKind {
    ProcessRefreshKind::nothing()
        .with_cpu()
        .with_memory()
        .without_tasks()
}

/// Wraps a metrics object as a `host.metrics` event.
pub fn metrics_event(metrics: &Json) -> Json {
    let mut ev = metrics.clone();
    if let Some(obj) = ev.as_object_mut() {
        obj.insert(
            "@timestamp".into(),
            Json::from(format_timestamp(chrono::Utc::now())),
        );
        obj.insert(
            "event".into(),
            json!({"dataset": "host.metrics", "category": "host", "type": "info", "kind": "metric"}),
        );
        obj.insert("message".into(), Json::from("host metrics snapshot"));
    }
    ev
}

/// Periodic metrics snapshots. See the module docs.
pub struct MetricsSource {
    cfg: MetricsConfig,
    latest: watch::Sender<Option<Json>>,
}

impl MetricsSource {
    /// A source publishing each snapshot on `latest` (for heartbeats) too.
    pub fn new(cfg: MetricsConfig, latest: watch::Sender<Option<Json>>) -> Self {
        MetricsSource { cfg, latest }
    }
}

#[async_trait]
impl Source for MetricsSource {
    fn name(&self) -> &'static str {
        "metrics"
    }

    async fn run(self: Box<Self>, mut ctx: SourceContext) -> Result<()> {
        let mut collector = MetricsCollector::new(self.cfg.top_processes);
        let interval = Duration::from_secs(self.cfg.interval_secs);
        let mut wait = Duration::from_secs(1).min(interval);
        while !ctx.shutdown.sleep(wait).await {
            wait = interval;
            let metrics = collector.collect();
            let mut ev = metrics_event(&metrics);
            ctx.host.stamp(&mut ev);
            self.latest.send_replace(Some(metrics));
            if !ctx.events.send(ev, None).await {
                break;
            }
        }
        Ok(())
    }
}
