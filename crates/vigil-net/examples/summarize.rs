//! Prints the events of capture files as JSON lines:
//! `cargo run -p vigil-net --example summarize -- FILE.pcap...`

use std::io::Write;
use std::path::PathBuf;

use vigil_net::{FlowConfig, summarize_file};

fn main() {
    let mut failed = false;
    let mut out = std::io::stdout().lock();
    for path in std::env::args_os().skip(1).map(PathBuf::from) {
        match summarize_file(&path, &FlowConfig::default()) {
            Ok(summary) => {
                for event in &summary.events {
                    if writeln!(out, "{event}").is_err() {
                        return; // stdout closed (a pipe to `head`)
                    }
                }
                if let Some(e) = summary.error {
                    eprintln!("{e}");
                    failed = true;
                }
            }
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    std::process::exit(i32::from(failed));
}
