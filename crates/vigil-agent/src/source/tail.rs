//! Log file tailing with rotation handling and exactly-once offsets.
//!
//! Each poll reads the open files to their end and turns complete lines into events (no
//! parsing: the server parses them). Rotation:
//! - **rename** (`auth.log` -> `auth.log.1`, new `auth.log`): the path now names another inode;
//!   the old file stays open and is read to its end until it has been quiet for a grace period,
//!   while the new file is read from its start;
//! - **copytruncate**: the file shrank below our offset, or its first bytes (fingerprint)
//!   changed: read again from 0.
//!
//! Offsets (device, inode, offset, fingerprint of the first bytes) live in
//! `state_dir/tail-offsets.json`, rewritten atomically when the shipper reports that the batch
//! holding the lines is durable ([`AckSink`]). A restart therefore resumes after the last
//! durable line; a partial last line waits for its newline.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use vigil_core::event::format_timestamp;

use super::{Ack, AckSink, Source, SourceContext};
use crate::config::LogsConfig;
use crate::error::{Error, Result};
use crate::shipper::Stats;
use crate::state::atomic_write;

/// File name of the offset store inside the state directory.
pub const OFFSETS_FILE: &str = "tail-offsets.json";
const FP_MAX: u64 = 64;
const READ_CHUNK: usize = 64 * 1024;
const MAX_READ_PER_POLL: usize = 4 * 1024 * 1024;

/// Hash of a file's first bytes, telling a truncated-and-rewritten file from the old one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub len: u64,
    pub hash: u64,
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

fn fingerprint(file: &File, size: u64) -> std::io::Result<Fingerprint> {
    let len = size.min(FP_MAX);
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, 0)?;
    Ok(Fingerprint {
        len,
        hash: fnv1a(&buf),
    })
}

/// One remembered file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OffsetEntry {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    /// Byte offset after the last durable line.
    pub offset: u64,
    pub fingerprint: Fingerprint,
}

/// Durable tail offsets, shared by the tailer (registers files) and the shipper (commits).
pub struct OffsetStore {
    path: PathBuf,
    inner: Mutex<OffsetState>,
}

#[derive(Default)]
struct OffsetState {
    entries: HashMap<u64, OffsetEntry>,
    next_key: u64,
}

impl OffsetStore {
    /// Loads `state_dir/tail-offsets.json` (missing: empty).
    pub fn load(state_dir: &Path) -> Result<Arc<Self>> {
        let path = state_dir.join(OFFSETS_FILE);
        let list: Vec<OffsetEntry> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
                what: "tail offsets",
                path: path.clone(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io("reading", path, e)),
        };
        let mut state = OffsetState::default();
        for entry in list {
            state.entries.insert(state.next_key, entry);
            state.next_key += 1;
        }
        Ok(Arc::new(OffsetStore {
            path,
            inner: Mutex::new(state),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OffsetState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of every entry (tests, diagnostics).
    pub fn entries(&self) -> Vec<OffsetEntry> {
        self.lock().entries.values().cloned().collect()
    }

    fn find(&self, dev: u64, ino: u64) -> Option<(u64, OffsetEntry)> {
        self.lock()
            .entries
            .iter()
            .find(|(_, e)| e.dev == dev && e.ino == ino)
            .map(|(k, e)| (*k, e.clone()))
    }

    fn knows_path(&self, path: &Path) -> bool {
        self.lock().entries.values().any(|e| e.path == path)
    }

    /// Registers (or re-points) a file and persists it; returns its key.
    fn register(&self, entry: OffsetEntry) -> u64 {
        let mut st = self.lock();
        let key = match st
            .entries
            .iter()
            .find(|(_, e)| e.dev == entry.dev && e.ino == entry.ino)
        {
            Some((k, _)) => *k,
            None => {
                st.next_key += 1;
                st.next_key
            }
        };
        st.entries.insert(key, entry);
        self.save(&st);
        key
    }

    fn set_fingerprint(&self, key: u64, fp: Fingerprint) {
        let mut st = self.lock();
        if let Some(e) = st.entries.get_mut(&key) {
            e.fingerprint = fp;
        }
    }

    fn set_offset(&self, key: u64, offset: u64) {
        let mut st = self.lock();
        if let Some(e) = st.entries.get_mut(&key) {
            e.offset = offset;
            self.save(&st);
        }
    }

    fn forget(&self, key: u64) {
        self.prune(|k, _| k != key);
    }

    /// Keeps only the entries for which `keep(key, entry)` holds.
    fn prune(&self, mut keep: impl FnMut(u64, &OffsetEntry) -> bool) {
        let mut st = self.lock();
        let before = st.entries.len();
        st.entries.retain(|k, e| keep(*k, e));
        if st.entries.len() != before {
            self.save(&st);
        }
    }

    fn save(&self, st: &OffsetState) {
        let mut list: Vec<&OffsetEntry> = st.entries.values().collect();
        list.sort_by(|a, b| a.path.cmp(&b.path).then(a.ino.cmp(&b.ino)));
        let write = serde_json::to_vec_pretty(&list)
            .map_err(Error::from)
            .and_then(|bytes| atomic_write(&self.path, &bytes, 0o600));
        if let Err(e) = write {
            tracing::error!(error = %e, "cannot persist tail offsets");
        }
    }
}

impl AckSink for OffsetStore {
    fn commit(&self, acks: &[(u64, u64)]) {
        let mut st = self.lock();
        let mut changed = false;
        for &(key, offset) in acks {
            if let Some(e) = st.entries.get_mut(&key)
                && offset > e.offset
            {
                e.offset = offset;
                changed = true;
            }
        }
        if changed {
            self.save(&st);
        }
    }
}

/// Where the entry's inode lives now: its path, or another name in the same directory
/// (renamed by rotation).
fn inode_near(entry: &OffsetEntry) -> Option<PathBuf> {
    let same = |m: &std::fs::Metadata| m.dev() == entry.dev && m.ino() == entry.ino;
    if std::fs::metadata(&entry.path).is_ok_and(|m| same(&m)) {
        return Some(entry.path.clone());
    }
    let dir = entry.path.parent()?;
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .find_map(|e| e.metadata().ok().filter(|m| same(m)).map(|_| e.path()))
}

/// Expands a path with `*`/`?` in its last component; a plain path is returned as is.
pub fn expand_glob(pattern: &str) -> std::io::Result<Vec<PathBuf>> {
    let path = Path::new(pattern);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if !name.contains(['*', '?']) {
        return Ok(vec![path.to_owned()]);
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let fname = entry.file_name();
        let Some(fname) = fname.to_str() else {
            continue;
        };
        if wildcard_match(name.as_bytes(), fname.as_bytes())
            && entry
                .file_type()
                .is_ok_and(|t| t.is_file() || t.is_symlink())
        {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// `*` matches any run of bytes, `?` one byte; a leading `.` must be matched literally.
pub fn wildcard_match(pat: &[u8], name: &[u8]) -> bool {
    if name.first() == Some(&b'.') && pat.first() != Some(&b'.') {
        return false;
    }
    let (mut p, mut n, mut star, mut mark) = (0, 0, None, 0);
    while n < name.len() {
        if p < pat.len() && (pat[p] == b'?' || pat[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some(p);
            mark = n;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            n = mark;
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

struct Tracked {
    key: u64,
    path: PathBuf,
    file: File,
    dev: u64,
    ino: u64,
    /// Offset of the next byte to read.
    read_pos: u64,
    /// Offset where `partial` starts.
    line_start: u64,
    partial: Vec<u8>,
    /// The current line passed the limit; the rest up to its newline is skipped.
    truncated: bool,
    fp: Fingerprint,
    /// Set when the path stopped naming this file: read it out, then close.
    rotated: Option<Instant>,
    last_growth: Instant,
}

/// Tails the configured files. See the module docs.
pub struct TailSource {
    cfg: LogsConfig,
    store: Arc<OffsetStore>,
    stats: Arc<Stats>,
    tracked: Vec<Tracked>,
    warned: HashSet<PathBuf>,
    first_scan: bool,
}

impl TailSource {
    /// A tailer using (and committing to) `store`.
    pub fn new(cfg: LogsConfig, store: Arc<OffsetStore>, stats: Arc<Stats>) -> Self {
        TailSource {
            cfg,
            store,
            stats,
            tracked: Vec::new(),
            warned: HashSet::new(),
            first_scan: true,
        }
    }

    fn warn_once(&mut self, path: &Path, what: &str, err: &dyn std::fmt::Display) {
        if self.warned.insert(path.to_owned()) {
            tracing::warn!(path = %path.display(), error = %err,
                "cannot {what}; it is skipped until it becomes readable (warned once)");
        }
    }

    fn grace(&self) -> Duration {
        Duration::from_millis(self.cfg.poll_interval_ms * 8).max(Duration::from_secs(2))
    }

    /// Files rotated away while the agent was stopped: find their inode beside the old path.
    fn resume_rotated_while_down(&mut self) {
        for entry in self.store.entries() {
            let same = std::fs::metadata(&entry.path)
                .is_ok_and(|m| m.dev() == entry.dev && m.ino() == entry.ino);
            if same {
                continue;
            }
            let found = inode_near(&entry);
            let Some((key, _)) = self.store.find(entry.dev, entry.ino) else {
                continue;
            };
            match found {
                Some(path) if std::fs::metadata(&path).is_ok_and(|m| m.len() <= entry.offset) => {
                    // Already read to its end before the stop.
                }
                Some(path) => {
                    if let Some(mut t) = self.open_at(&path, Some(entry.offset)) {
                        tracing::info!(path = %entry.path.display(), now = %path.display(),
                            "log file was rotated while the agent was stopped; reading the rest");
                        // Keep the original path: events name it, and the file that now lives
                        // there is then read from its start.
                        self.store.register(OffsetEntry {
                            path: entry.path.clone(),
                            dev: t.dev,
                            ino: t.ino,
                            offset: entry.offset,
                            fingerprint: t.fp,
                        });
                        t.path = entry.path.clone();
                        t.rotated = Some(Instant::now());
                        self.tracked.push(t);
                    }
                }
                None => self.store.forget(key),
            }
        }
    }

    /// Opens `path`. `start`: the offset to resume at, or None to decide from the store.
    fn open_at(&mut self, path: &Path, start: Option<u64>) -> Option<Tracked> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if self.warned.insert(path.to_owned()) {
                    tracing::info!(path = %path.display(), "log file not found; tailed once it appears");
                }
                return None;
            }
            Err(e) => {
                self.warn_once(path, "read log file", &e);
                return None;
            }
        };
        let meta = match file.metadata() {
            Ok(m) if m.is_file() => m,
            Ok(_) => return None,
            Err(e) => {
                self.warn_once(path, "stat log file", &e);
                return None;
            }
        };
        self.warned.remove(path);
        let (dev, ino, size) = (meta.dev(), meta.ino(), meta.len());
        if self.tracked.iter().any(|t| t.dev == dev && t.ino == ino) {
            return None;
        }
        let fp = fingerprint(&file, size).unwrap_or_default();
        let offset = match (start, self.store.find(dev, ino)) {
            (Some(o), _) => o,
            (None, Some((_, e))) => {
                let same_start = e.fingerprint.len <= size
                    && fingerprint(&file, e.fingerprint.len).ok() == Some(e.fingerprint);
                if e.offset <= size && same_start {
                    e.offset
                } else {
                    tracing::info!(path = %path.display(), "log file was truncated or replaced; reading it from the start");
                    0
                }
            }
            (None, None) => {
                if self.first_scan && self.cfg.start_at_end && !self.store.knows_path(path) {
                    size
                } else {
                    0
                }
            }
        };
        let key = self.store.register(OffsetEntry {
            path: path.to_owned(),
            dev,
            ino,
            offset,
            fingerprint: fp,
        });
        tracing::debug!(path = %path.display(), offset, "tailing");
        Some(Tracked {
            key,
            path: path.to_owned(),
            file,
            dev,
            ino,
            read_pos: offset,
            line_start: offset,
            partial: Vec::new(),
            truncated: false,
            fp,
            rotated: None,
            last_growth: Instant::now(),
        })
    }

    fn scan_globs(&mut self) {
        let open: HashSet<u64> = self.tracked.iter().map(|t| t.key).collect();
        self.store
            .prune(|key, entry| open.contains(&key) || inode_near(entry).is_some());
        let mut paths = Vec::new();
        let mut seen = HashSet::new();
        for pattern in self.cfg.paths.clone() {
            match expand_glob(&pattern) {
                Ok(list) => paths.extend(list.into_iter().filter(|p| seen.insert(p.clone()))),
                Err(e) => self.warn_once(Path::new(&pattern), "list the directory of", &e),
            }
        }
        for path in paths {
            if self
                .tracked
                .iter()
                .any(|t| t.path == path && t.rotated.is_none())
            {
                continue;
            }
            if let Some(t) = self.open_at(&path, None) {
                self.tracked.push(t);
            }
        }
        self.first_scan = false;
    }

    /// Reads every open file; returns false when the shipper is gone.
    async fn poll(&mut self, ctx: &SourceContext) -> bool {
        let mut i = 0;
        while i < self.tracked.len() {
            if !self.read_file(i, ctx).await {
                return false;
            }
            let t = &mut self.tracked[i];
            if t.rotated.is_none() {
                let moved = match std::fs::metadata(&t.path) {
                    Ok(m) => m.dev() != t.dev || m.ino() != t.ino,
                    Err(e) => e.kind() == std::io::ErrorKind::NotFound,
                };
                if moved {
                    tracing::info!(path = %t.path.display(), "log file rotated; reading the old file to its end");
                    t.rotated = Some(Instant::now());
                }
            }
            let t = &self.tracked[i];
            if t.rotated.is_some()
                && !self
                    .tracked
                    .iter()
                    .any(|o| o.path == t.path && o.rotated.is_none())
            {
                // The replacement file may appear a moment after the rename.
                let path = t.path.clone();
                if let Some(new) = self.open_at(&path, Some(0)) {
                    self.tracked.push(new);
                }
            }
            let grace = self.grace();
            let t = &self.tracked[i];
            let done = t
                .rotated
                .is_some_and(|at| at.elapsed() >= grace && t.last_growth.elapsed() >= grace);
            if done {
                let mut t = self.tracked.remove(i);
                if !t.partial.is_empty() || t.truncated {
                    // The old file is finished: its unterminated last line is complete.
                    let end = t.read_pos;
                    if !emit(
                        &mut t,
                        end,
                        ctx,
                        &self.store,
                        &self.stats,
                        self.cfg.max_line_bytes,
                    )
                    .await
                    {
                        return false;
                    }
                }
                // Its entry stays (offset at its end) so a glob that also matches the renamed
                // file does not read it again; `prune` drops it once the inode is gone.
                tracing::debug!(path = %t.path.display(), "closed rotated log file");
                continue;
            }
            i += 1;
        }
        true
    }

    async fn read_file(&mut self, i: usize, ctx: &SourceContext) -> bool {
        let max_line = self.cfg.max_line_bytes;
        let t = &mut self.tracked[i];
        let size = match t.file.metadata() {
            Ok(m) => m.len(),
            Err(_) => return true,
        };
        let replaced = size < t.read_pos
            || (size != t.read_pos
                && t.fp.len > 0
                && fingerprint(&t.file, t.fp.len).is_ok_and(|fp| fp != t.fp));
        if replaced {
            tracing::info!(path = %t.path.display(), size, offset = t.read_pos,
                "log file was truncated (copytruncate); reading it from the start");
            t.read_pos = 0;
            t.line_start = 0;
            t.partial.clear();
            t.truncated = false;
            self.store.set_offset(t.key, 0);
        }
        if size == t.read_pos {
            return true;
        }
        if t.fp.len < FP_MAX
            && let Ok(fp) = fingerprint(&t.file, size)
        {
            t.fp = fp;
            self.store.set_fingerprint(t.key, fp);
        }
        t.last_growth = Instant::now();
        if t.file.seek(SeekFrom::Start(t.read_pos)).is_err() {
            return true;
        }
        let mut chunk = vec![0u8; READ_CHUNK];
        let mut total = 0;
        while total < MAX_READ_PER_POLL {
            let n = match t.file.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(path = %t.path.display(), error = %e, "read failed");
                    break;
                }
            };
            total += n;
            let mut rest = &chunk[..n];
            while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
                let room = max_line.saturating_sub(t.partial.len());
                if nl > room {
                    t.truncated = true;
                }
                t.partial.extend_from_slice(&rest[..nl.min(room)]);
                t.read_pos += nl as u64 + 1;
                rest = &rest[nl + 1..];
                let end = t.read_pos;
                if !emit(t, end, ctx, &self.store, &self.stats, max_line).await {
                    return false;
                }
            }
            let room = max_line.saturating_sub(t.partial.len());
            if rest.len() > room {
                t.truncated = true;
            }
            t.partial.extend_from_slice(&rest[..rest.len().min(room)]);
            t.read_pos += rest.len() as u64;
        }
        true
    }
}

/// Sends `t.partial` as one event ending at `end`, then starts the next line.
async fn emit(
    t: &mut Tracked,
    end: u64,
    ctx: &SourceContext,
    store: &Arc<OffsetStore>,
    stats: &Arc<Stats>,
    max_line: usize,
) -> bool {
    let mut bytes = std::mem::take(&mut t.partial);
    if bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
    let truncated = std::mem::replace(&mut t.truncated, false);
    bytes.truncate(max_line);
    t.line_start = end;
    let line = String::from_utf8_lossy(&bytes).into_owned();
    let mut event = json!({
        "@timestamp": format_timestamp(chrono::Utc::now()),
        "message": line,
        "event": {"original": line},
        "log": {"file": {"path": t.path.to_string_lossy()}},
    });
    if truncated {
        stats
            .events_truncated
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        vigil_core::event::set(&mut event, "event.truncated", Json::Bool(true));
    }
    ctx.host.stamp(&mut event);
    let ack = Ack {
        sink: store.clone(),
        key: t.key,
        position: end,
    };
    ctx.events.send(event, Some(ack)).await
}

#[async_trait]
impl Source for TailSource {
    fn name(&self) -> &'static str {
        "tail"
    }

    async fn run(mut self: Box<Self>, mut ctx: SourceContext) -> Result<()> {
        self.resume_rotated_while_down();
        self.scan_globs();
        let poll = Duration::from_millis(self.cfg.poll_interval_ms);
        let glob_every = Duration::from_secs(self.cfg.glob_interval_secs);
        let mut last_glob = Instant::now();
        loop {
            if !self.poll(&ctx).await {
                break;
            }
            if last_glob.elapsed() >= glob_every {
                self.scan_globs();
                last_glob = Instant::now();
            }
            let mut shutdown = ctx.shutdown.clone();
            if shutdown.sleep(poll).await {
                // Lines already written are read once more so a graceful stop ships them.
                self.poll(&ctx).await;
                break;
            }
            ctx.shutdown = shutdown;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match(b"*.log", b"syslog.log"));
        assert!(wildcard_match(b"a?c*", b"abcdef"));
        assert!(!wildcard_match(b"*.log", b"syslog.log.1"));
        assert!(!wildcard_match(b"*.log", b".hidden.log"));
        assert!(wildcard_match(b"*", b"x"));
        assert!(wildcard_match(b"*a*b", b"xxaxxb"));
    }
}
