//! The shared test data (`../shared/data` beside the workspace, or `$VIGIL_SHARED_DATA`):
//! SigmaHQ rules and regression events under `sigma/`, captures with tshark flow tables under
//! `pcap/`. A dev-dependency of the crates whose tests and benchmarks read it.
//!
//! Tests skip with a message when the data is absent, and fail instead when `CI=true`:
//!
//! ```
//! if let Some(sigma) = vigil_testdata::path("sigma") {
//!     assert!(sigma.join("rules").is_dir());
//! }
//! ```

use std::path::{Path, PathBuf};

/// `$VIGIL_SHARED_DATA`, else `shared/data` beside the workspace.
pub fn root() -> PathBuf {
    std::env::var_os("VIGIL_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
}

/// `root()/relative`, canonical, when it exists. Otherwise `None` after printing that the
/// caller is skipped — or a panic when `CI=true`, where the data must be there.
pub fn path(relative: &str) -> Option<PathBuf> {
    let p = root().join(relative);
    if p.exists() {
        return Some(p.canonicalize().unwrap_or(p));
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("shared data not found at {} (CI=true)", p.display());
    }
    println!("skipped: shared data not found at {}", p.display());
    None
}

/// Every file under `dir` (recursively) whose extension is `ext`, sorted.
pub fn files_with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, ext, out);
            } else if path.extension().is_some_and(|e| e == ext) {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, ext, &mut out);
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_found_recursively_by_extension_and_sorted() {
        let dir = std::env::temp_dir().join(format!("vigil-testdata-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("b/c")).unwrap();
        for f in ["b/c/2.pcap", "1.pcap", "b/x.txt", "b/0.pcap"] {
            std::fs::write(dir.join(f), "").unwrap();
        }
        let found: Vec<String> = files_with_extension(&dir, "pcap")
            .iter()
            .map(|p| p.strip_prefix(&dir).unwrap().display().to_string())
            .collect();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(found, ["1.pcap", "b/0.pcap", "b/c/2.pcap"]);
    }

    #[test]
    fn a_missing_path_is_none_outside_ci() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            // Where the data must exist, a missing path panics instead.
            let r = std::panic::catch_unwind(|| path("no/such/dir"));
            assert!(r.is_err());
        } else {
            assert!(path("no/such/dir").is_none());
        }
    }
}
