//! Prints the events of capture files as JSON lines:
//! `cargo run -p vigil-net --example summarize -- FILE.pcap...`

use std::path::PathBuf;

use vigil_net::{FlowConfig, summarize_file};

fn main() {
    let mut failed = false;
    for path in std::env::args_os().skip(1).map(PathBuf::from) {
        match summarize_file(&path, &FlowConfig::default()) {
            Ok(summary) => {
                for event in &summary.events {
                    println!("{event}");
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
