//! Process start events from `/proc` polling.
//!
//! Each scan lists `/proc` and reads only pids not seen before (`stat`, `status`, `cmdline`,
//! `exe`, `cwd`). Processes present at the first scan are the baseline and produce no event.
//! A process that exits before it is read is skipped; when another user's entries are not
//! readable (`exe`, `cwd` need ptrace rights), what is readable is kept. Processes that live
//! shorter than the scan interval can be missed: this is a poller, not an exec hook. A
//! process seen in the middle of `execve` (its new name set, its arguments not yet) is read
//! again at the next scans rather than reported without arguments.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value as Json, json};
use vigil_core::event::format_timestamp;

use super::{Source, SourceContext};
use crate::config::ProcessConfig;
use crate::error::Result;

/// What `/proc/<pid>` told us about one process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcInfo {
    pub pid: u32,
    pub ppid: Option<u32>,
    pub name: Option<String>,
    pub executable: Option<String>,
    pub args: Vec<String>,
    pub working_directory: Option<String>,
    pub uid: Option<u32>,
    /// Clock ticks after boot (field 22 of `stat`).
    pub start_ticks: Option<u64>,
}

/// Parses `/proc/<pid>/stat`: `(comm)` may hold spaces and parentheses, so split at the last `)`.
pub fn parse_stat(text: &str) -> Option<(String, u32, u64)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // rest[0] = state (field 3), ppid = field 4, starttime = field 22.
    let ppid = rest.get(1)?.parse().ok()?;
    let start = rest.get(19)?.parse().ok()?;
    Some((comm, ppid, start))
}

/// Reads what is readable of `/proc/<pid>`; None when the process is gone.
pub fn read_proc(root: &Path, pid: u32) -> Option<ProcInfo> {
    let dir = root.join(pid.to_string());
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let (comm, ppid, start) = parse_stat(&stat)?;
    let mut info = ProcInfo {
        pid,
        ppid: Some(ppid),
        name: Some(comm),
        start_ticks: Some(start),
        ..ProcInfo::default()
    };
    if let Ok(raw) = std::fs::read(dir.join("cmdline")) {
        info.args = raw
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
    }
    if let Ok(exe) = std::fs::read_link(dir.join("exe")) {
        let exe = exe.to_string_lossy();
        info.executable = Some(exe.strip_suffix(" (deleted)").unwrap_or(&exe).to_owned());
        if let Some(base) = info
            .executable
            .as_deref()
            .and_then(|e| e.rsplit('/').next())
        {
            // comm is cut to 15 bytes; the executable's file name is not.
            if !base.is_empty() {
                info.name = Some(base.to_owned());
            }
        }
    }
    if let Ok(cwd) = std::fs::read_link(dir.join("cwd")) {
        info.working_directory = Some(cwd.to_string_lossy().into_owned());
    }
    if let Ok(status) = std::fs::read_to_string(dir.join("status")) {
        info.uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok());
    }
    Some(info)
}

/// uid -> user name from `/etc/passwd`, re-read at most once a minute for unknown uids.
pub struct UserCache {
    path: PathBuf,
    names: HashMap<u32, String>,
    loaded: Option<Instant>,
}

impl UserCache {
    /// A cache over a passwd file (normally `/etc/passwd`).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        UserCache {
            path: path.into(),
            names: HashMap::new(),
            loaded: None,
        }
    }

    /// The name of `uid`, if the passwd file has it.
    pub fn name(&mut self, uid: u32) -> Option<String> {
        if !self.names.contains_key(&uid)
            && self
                .loaded
                .is_none_or(|t| t.elapsed() > Duration::from_secs(60))
        {
            self.loaded = Some(Instant::now());
            if let Ok(text) = std::fs::read_to_string(&self.path) {
                self.names = text
                    .lines()
                    .filter_map(|l| {
                        let mut f = l.split(':');
                        let name = f.next()?;
                        let uid = f.nth(1)?.parse().ok()?;
                        Some((uid, name.to_owned()))
                    })
                    .collect();
            }
        }
        self.names.get(&uid).cloned()
    }
}

fn boot_time(root: &Path) -> Option<i64> {
    std::fs::read_to_string(root.join("stat"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

fn list_pids(root: &Path) -> Vec<u32> {
    std::fs::read_dir(root)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Builds the `process` start event for `info` (parent read from `/proc` when alive).
pub fn process_event(
    info: &ProcInfo,
    parent: Option<&ProcInfo>,
    user: Option<String>,
    start: Option<DateTime<Utc>>,
) -> Json {
    use vigil_core::event::set;
    let mut ev = json!({
        "@timestamp": format_timestamp(Utc::now()),
        "event": {"dataset": "process", "category": "process", "type": "start",
                  "action": "process_started", "kind": "event"},
        "process": {"pid": info.pid},
    });
    let s = |v: &str| Json::from(v);
    if let Some(p) = info.ppid {
        set(&mut ev, "process.parent.pid", json!(p));
    }
    if let Some(n) = &info.name {
        set(&mut ev, "process.name", s(n));
    }
    if let Some(e) = &info.executable {
        set(&mut ev, "process.executable", s(e));
    }
    if !info.args.is_empty() {
        set(&mut ev, "process.args", json!(info.args));
        set(&mut ev, "process.command_line", s(&info.args.join(" ")));
    }
    if let Some(c) = &info.working_directory {
        set(&mut ev, "process.working_directory", s(c));
    }
    if let Some(uid) = info.uid {
        set(&mut ev, "user.id", s(&uid.to_string()));
    }
    if let Some(name) = user {
        set(&mut ev, "user.name", s(&name));
    }
    if let Some(t) = start {
        set(&mut ev, "process.start", s(&format_timestamp(t)));
    }
    if let Some(p) = parent {
        if let Some(e) = &p.executable {
            set(&mut ev, "process.parent.executable", s(e));
        }
        if !p.args.is_empty() {
            set(&mut ev, "process.parent.command_line", s(&p.args.join(" ")));
        }
        if let Some(n) = &p.name {
            set(&mut ev, "process.parent.name", s(n));
        }
    }
    let msg = format!(
        "process started: {} (pid {})",
        info.args
            .first()
            .or(info.executable.as_ref())
            .or(info.name.as_ref())
            .map_or("?", String::as_str),
        info.pid
    );
    set(&mut ev, "message", s(&msg));
    ev
}

/// Scans a process without arguments is read again before it is reported as it is.
const MID_EXEC_RETRIES: u8 = 3;

/// A user process without arguments: `/proc/<pid>/cmdline` is empty for a moment during
/// `execve` (and for zombies). Kernel threads (pid 2 and the children of kthreadd, or of
/// pid 0) have no arguments ever.
fn looks_mid_exec(info: &ProcInfo) -> bool {
    info.args.is_empty() && info.pid != 2 && !matches!(info.ppid, Some(0 | 2) | None)
}

/// The `/proc` poller. See the module docs.
pub struct ProcessSource {
    cfg: ProcessConfig,
    root: PathBuf,
    users: UserCache,
}

impl ProcessSource {
    /// A poller over `/proc` with names from `/etc/passwd`.
    pub fn new(cfg: ProcessConfig) -> Self {
        ProcessSource {
            cfg,
            root: PathBuf::from("/proc"),
            users: UserCache::new("/etc/passwd"),
        }
    }
}

#[async_trait]
impl Source for ProcessSource {
    fn name(&self) -> &'static str {
        "process"
    }

    async fn run(mut self: Box<Self>, mut ctx: SourceContext) -> Result<()> {
        let ticks = clock_ticks();
        let boot = boot_time(&self.root);
        let mut known: HashSet<u32> = list_pids(&self.root).into_iter().collect();
        // Pids caught in the middle of `execve` (the new name is set, the new arguments not
        // yet): read again at the next scans, up to MID_EXEC_RETRIES times.
        let mut mid_exec: HashMap<u32, u8> = HashMap::new();
        let interval = Duration::from_millis(self.cfg.interval_ms);
        while !ctx.shutdown.sleep(interval).await {
            let mut now: HashSet<u32> = list_pids(&self.root).into_iter().collect();
            let mut new: Vec<u32> = now.difference(&known).copied().collect();
            new.sort_unstable();
            mid_exec.retain(|pid, _| now.contains(pid));
            for pid in new {
                let Some(info) = read_proc(&self.root, pid) else {
                    continue;
                };
                if looks_mid_exec(&info) {
                    let tries = mid_exec.entry(pid).or_default();
                    *tries += 1;
                    if *tries <= MID_EXEC_RETRIES {
                        now.remove(&pid); // new again at the next scan
                        continue;
                    }
                }
                mid_exec.remove(&pid);
                // Threads do not show in /proc listings, but a kernel thread has no cmdline.
                let parent = info.ppid.and_then(|pp| read_proc(&self.root, pp));
                let user = info.uid.and_then(|u| self.users.name(u));
                let start = match (boot, info.start_ticks) {
                    (Some(b), Some(st)) => DateTime::from_timestamp(
                        b + (st / ticks) as i64,
                        ((st % ticks) * 1_000_000_000 / ticks) as u32,
                    ),
                    _ => None,
                };
                let mut ev = process_event(&info, parent.as_ref(), user, start);
                ctx.host.stamp(&mut ev);
                if !ctx.events.send(ev, None).await {
                    return Ok(());
                }
            }
            known = now;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_process_without_arguments_is_mid_exec_and_a_kernel_thread_is_not() {
        let p = |pid, ppid, args: &[&str]| ProcInfo {
            pid,
            ppid,
            args: args.iter().map(|a| a.to_string()).collect(),
            ..ProcInfo::default()
        };
        assert!(looks_mid_exec(&p(4242, Some(1000), &[])));
        assert!(!looks_mid_exec(&p(4242, Some(1000), &["sleep", "3"])));
        assert!(!looks_mid_exec(&p(57, Some(2), &[])), "a kernel thread");
        assert!(!looks_mid_exec(&p(2, Some(0), &[])), "kthreadd");
        assert!(!looks_mid_exec(&p(1, Some(0), &[])));
    }

    #[test]
    fn stat_with_spaces_and_parens_in_comm() {
        let text = "1234 (my (odd) proc) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 200";
        let (comm, ppid, start) = parse_stat(text).unwrap();
        assert_eq!(comm, "my (odd) proc");
        assert_eq!(ppid, 1);
        assert_eq!(start, 98765);
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn user_names_come_from_passwd_and_bad_lines_are_skipped() {
        let path = std::env::temp_dir().join(format!("vigil-passwd-{}", std::process::id()));
        std::fs::write(
            &path,
            "root:x:0:0:root:/root:/bin/bash\nbroken line\nalice:x:1000:1000::/home/alice:/bin/sh\nbob:x:notanumber:1::/:/bin/sh\n",
        )
        .unwrap();
        let mut users = UserCache::new(&path);
        assert_eq!(users.name(0).as_deref(), Some("root"));
        assert_eq!(users.name(1000).as_deref(), Some("alice"));
        assert_eq!(users.name(4242), None);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn own_process_is_readable() {
        let me = read_proc(Path::new("/proc"), std::process::id()).unwrap();
        assert!(me.executable.is_some());
        assert!(!me.args.is_empty());
        assert!(read_proc(Path::new("/proc"), u32::MAX).is_none());
    }
}
