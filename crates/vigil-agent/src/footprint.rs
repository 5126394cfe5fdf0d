//! `vigil-agent bench-footprint`: runs the agent (metrics, processes, tailing, and packet
//! capture on `lo` when built with the `live` feature) against a local sink and reports
//! peak RSS (`VmHWM`) and CPU use of this process.
//!
//! The sink is a minimal HTTP/1.1 responder in the same process, so its (small) cost is
//! counted too: the figures are an upper bound for the agent alone.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::config::{AgentConfig, Secret};
use crate::error::{Error, Result};
use crate::{Agent, StatsSnapshot};

/// What `bench-footprint` measured.
#[derive(Debug, Clone, Serialize)]
pub struct FootprintReport {
    pub seconds: f64,
    /// Peak resident set size, KiB (`VmHWM`).
    pub peak_rss_kib: u64,
    /// Resident set size at the end, KiB (`VmRSS`).
    pub rss_kib: u64,
    /// CPU time (user + system) over wall time, percent of one core.
    pub cpu_percent_of_one_core: f64,
    pub lines_written: u64,
    /// The interface captured on during the run, if any (`lo` by default with `live`).
    pub capture_interface: Option<String>,
    pub agent: StatsSnapshot,
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// utime + stime of this process, in clock ticks.
fn cpu_ticks() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 1..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15; rest starts at field 3.
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

async fn sink_conn(mut s: TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + 4 + len {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..head_end + 4 + len);
        let (status, body) = if head.starts_with("post /api/v1/agents/register-agent") {
            (
                "201 Created",
                format!(
                    r#"{{"agent_id":"{}","org_id":"{}","credential":"bench-credential"}}"#,
                    uuid::Uuid::new_v4(),
                    uuid::Uuid::new_v4()
                ),
            )
        } else if head.starts_with("post /api/v1/ingest/events") {
            (
                "202 Accepted",
                format!(
                    r#"{{"batch_id":"{}","accepted":0,"rejected":0,"duplicate":false}}"#,
                    uuid::Uuid::nil()
                ),
            )
        } else {
            ("204 No Content", String::new())
        };
        let resp = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if s.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Runs the agent for `seconds` with `base` settings (server and state dir are replaced by
/// the local sink and a temporary directory; a temporary log file gets one line a second).
pub async fn bench_footprint(seconds: u64, mut base: AgentConfig) -> Result<FootprintReport> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::Transport(format!("binding the sink: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Transport(e.to_string()))?;
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(sink_conn(s));
        }
    });
    let dir: PathBuf = std::env::temp_dir().join(format!("vigil-footprint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
    let log = dir.join("bench.log");
    std::fs::write(&log, b"").map_err(|e| Error::io("creating", &log, e))?;
    base.server_url = format!("http://{addr}");
    base.enrollment_token = Secret::new("bench");
    base.state_dir = Some(dir.join("state"));
    base.logs.paths.push(log.to_string_lossy().into_owned());
    // Capture too when it is built in: on `lo` unless the configuration names an interface
    // (the sink's HTTP traffic is loopback traffic, so there are flows to follow).
    if cfg!(feature = "live") && !base.capture.enabled {
        base.capture.enabled = true;
        base.capture.interface = "lo".into();
    }
    let capture_interface = base.capture.enabled.then(|| base.capture.interface.clone());

    let handle = Agent::build(base).await?.spawn();
    let start = Instant::now();
    let ticks0 = cpu_ticks();
    let mut lines = 0u64;
    while start.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        lines += 1;
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&log) {
            let _ = writeln!(
                f,
                "bench line {lines}: sshd[123]: Accepted publickey for bench"
            );
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let ticks = cpu_ticks().saturating_sub(ticks0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let peak = status_kib("VmHWM:");
    let rss = status_kib("VmRSS:");
    let agent = handle.shutdown().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(FootprintReport {
        seconds: wall,
        peak_rss_kib: peak,
        rss_kib: rss,
        cpu_percent_of_one_core: (ticks as f64 / hz) / wall * 100.0,
        lines_written: lines,
        capture_interface,
        agent,
    })
}
