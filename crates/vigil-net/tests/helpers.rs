//! Finding the shared captures (`VIGIL_SHARED_DATA`, default `../shared/data` beside the
//! workspace): tests skip with a message when they are absent, and fail when `CI=true`.

use std::path::{Path, PathBuf};

/// The shared pcap directory, or `None` (after printing why) when absent outside CI.
pub fn pcap_dir() -> Option<PathBuf> {
    let root = std::env::var_os("VIGIL_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    let dir = root.join("pcap");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("shared data not found at {} (CI=true)", dir.display());
    }
    eprintln!("skipped: shared data not found at {}", dir.display());
    None
}

/// Every `*.pcap` in the shared pcap directory, sorted.
pub fn pcaps(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read shared pcap dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .collect();
    v.sort();
    v
}

/// A shared capture by name, or `None` when the shared data is absent.
pub fn capture(name: &str) -> Option<Vec<u8>> {
    let dir = pcap_dir()?;
    Some(std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}")))
}
