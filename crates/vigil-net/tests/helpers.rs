//! Finding the shared captures (`VIGIL_SHARED_DATA`, default `../shared/data` beside the
//! workspace): tests skip with a message when they are absent, and fail when `CI=true`.

use std::path::{Path, PathBuf};

/// The shared pcap directory, or `None` (after printing why) when absent outside CI.
pub fn pcap_dir() -> Option<PathBuf> {
    vigil_testdata::path("pcap")
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
