//! Offline hunting: the Sigma rules of `vigil-detect` run over files, like Hayabusa or
//! Chainsaw. A separate crate so the detection engine does not carry the EVTX parser.
//!
//! Inputs ([`InputKind`]): Windows `.evtx` files (records as JSON in the
//! `{"Event":{"System":..,"EventData":..}}` shape the engine expects), `.json` (one event or
//! an array, or several values back to back), `.jsonl`/`.ndjson` (one event per line),
//! packet captures (`.pcap`, `.pcapng`, `.cap`: flow, DNS, HTTP and TLS events from
//! `vigil-net`, so the `network` pipeline's rules apply) and anything else as text lines,
//! each normalized by `vigil_parse::parse_line` (syslog, auth, auditd, web access, firewall
//! lines; `message` kept so keyword rules apply).
//! A bad file or a bad line is reported ([`Error`], with path and line) and skipped.
//!
//! ```
//! use vigil_detect::{CompiledRule, CompileOptions, Ruleset};
//! use vigil_hunt::Hunter;
//!
//! let rule = CompiledRule::from_yaml(
//!     "title: Root login\nlevel: high\nlogsource: {product: linux}\n\
//!      detection: {keywords: ['root login'], condition: keywords}",
//!     &CompileOptions::default(),
//! )?;
//! let ruleset = Ruleset::new(vec![rule]);
//! let dir = std::env::temp_dir().join(format!("vigil-hunt-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! std::fs::write(dir.join("auth.log"), "boring\nROOT LOGIN from 10.0.0.1\n")?;
//!
//! let hunt = Hunter::new(&ruleset).hunt(&[dir.clone()], |_| {});
//! assert_eq!(hunt.hits.len(), 1);
//! assert_eq!(hunt.hits[0].location.record, 2);
//! std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod input;
pub mod report;
pub mod rules;
mod spill;
mod time;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value as Json;
use vigil_detect::{
    CompileOptions, CompiledRule, Contribution, CorrelationEngine, CorrelationRule,
    CorrelationType, Event as _, JsonEvent, Level, LoadReport, Pipeline, PipelineSet, Ruleset,
};

use input::Part;
pub use input::{
    InputEvent, InputKind, MAX_LINE_BYTES, expand_inputs, read_events, read_events_from_bytes,
};
pub use spill::HitStream;
use spill::{Key, Store};
pub use time::{TimeRange, parse_event_time, parse_time_bound};

/// Errors of a hunt. Per-file and per-line errors are collected in [`Hunt::errors`]; the
/// hunt goes on without that file or line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file or one record of it that could not be parsed; `line` is the line (text
    /// inputs) or the record number (EVTX) when known.
    #[error("{}{}: {reason}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Parse {
        path: PathBuf,
        line: Option<u64>,
        reason: String,
    },
    /// A path or pattern given as input that names nothing.
    #[error("{pattern}: no such file or directory, or no file matches")]
    NoMatch { pattern: String },
    /// No rule could be loaded from the rule directories given.
    #[error("no rules loaded from {dirs}")]
    NoRules { dirs: String },
    /// A rule directory that cannot be read, or a pipeline name that is neither a built-in
    /// pipeline nor `all`.
    #[error(transparent)]
    Detect(#[from] vigil_detect::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where a matching event came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    pub path: PathBuf,
    /// The line (text, JSON lines), the EVTX record id, or the position in a JSON file (1-based).
    pub record: u64,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.record)
    }
}

/// A matching event's JSON text on one line, shared by the hits of its rules: the text it
/// was read from (whitespace between tokens left out) for JSON, JSON lines and EVTX, the
/// event serialised for text lines and captures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventText(Arc<str>);

impl EventText {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The event as a `serde_json::Value` (null if the text is not JSON, which a hunt never
    /// gives): for tests and tools.
    pub fn to_value(&self) -> Json {
        serde_json::from_str(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Display for EventText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One rule matching one event.
#[derive(Debug, Clone)]
pub struct Hit<'r> {
    pub rule: &'r CompiledRule,
    pub location: Location,
    /// The event's time as written (ISO 8601 for EVTX), when it has one.
    pub time: Option<String>,
    /// That time parsed ([`parse_event_time`]), when it parses.
    pub at: Option<DateTime<Utc>>,
    pub event: EventText,
}

impl Hit<'_> {
    /// The rule's level, `informational` when the rule gives none.
    pub fn level(&self) -> Level {
        self.rule.rule().level.unwrap_or(Level::Informational)
    }

    /// The hit as one JSON object (for JSON lines output), with the whole event. The
    /// hunt's output writes the same with the event's text as read ([`Hit::write_json`]).
    pub fn to_json(&self) -> Json {
        let rule = self.rule.rule();
        serde_json::json!({
            "kind": "detection",
            "time": self.time,
            "level": level_name(self.level()),
            "rule": {"title": rule.title, "id": rule.id},
            "file": self.location.path.display().to_string(),
            "record": self.location.record,
            "event": self.event.to_value(),
        })
    }

    /// [`Hit::to_json`] written on one line (without its line break), the event as its
    /// text: not parsed into a tree and serialised again.
    pub fn write_json(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        let rule = self.rule.rule();
        let mut out = out;
        out.write_all(b"{\"kind\":\"detection\",\"time\":")?;
        serde_json::to_writer(&mut out, &self.time)?;
        write!(
            out,
            ",\"level\":\"{}\",\"rule\":{{\"title\":",
            level_name(self.level())
        )?;
        serde_json::to_writer(&mut out, &rule.title)?;
        out.write_all(b",\"id\":")?;
        serde_json::to_writer(&mut out, &rule.id)?;
        out.write_all(b"},\"file\":")?;
        serde_json::to_writer(&mut out, &self.location.path.display().to_string())?;
        write!(out, ",\"record\":{},\"event\":", self.location.record)?;
        out.write_all(self.event.as_str().as_bytes())?;
        out.write_all(b"}")
    }

    /// A few fields an analyst looks at first, as `name=value`, for a table.
    pub fn key_fields(&self) -> Vec<(&'static str, String)> {
        let Ok(event) = JsonEvent::parse(self.event.as_str()) else {
            return Vec::new();
        };
        KEY_FIELDS
            .iter()
            .filter_map(|name| {
                let v = event.field(name)?;
                let text = v.as_text()?.trim().to_string();
                (!text.is_empty()).then_some((*name, text))
            })
            .collect()
    }
}

const KEY_FIELDS: &[&str] = &[
    "Computer",
    "EventID",
    "User",
    "TargetUserName",
    "Image",
    "CommandLine",
    "ParentImage",
    "TargetFilename",
    "TargetObject",
    "ScriptBlockText",
    "DestinationIp",
    "QueryName",
    // Parsed log lines (auth.log): who tried, from where.
    "source.ip",
    "user.name",
    "message",
];

/// The lower-case name of a level, as Sigma writes it.
pub fn level_name(level: Level) -> &'static str {
    match level {
        Level::Informational => "informational",
        Level::Low => "low",
        Level::Medium => "medium",
        Level::High => "high",
        Level::Critical => "critical",
    }
}

/// Parses a level as Sigma writes it (`low`, `medium`, ...).
pub fn parse_level(text: &str) -> Option<Level> {
    Some(match text.to_ascii_lowercase().as_str() {
        "informational" | "info" => Level::Informational,
        "low" => Level::Low,
        "medium" => Level::Medium,
        "high" => Level::High,
        "critical" => Level::Critical,
        _ => return None,
    })
}

/// The pipelines of a `--pipeline` choice: `all` (every built-in pipeline) or one built-in
/// pipeline by name (`windows`, `linux`, `network`, `vigil`).
pub fn pipelines(choice: &str) -> Result<PipelineSet> {
    Ok(match choice {
        "all" => PipelineSet::builtin()?,
        name => PipelineSet::new(vec![Pipeline::builtin(name)?]),
    })
}

/// Loads the built-in pack (when `builtin`) and the rules of every directory as one set
/// ([`vigil_detect::load`]: a directory's filters and correlations may name built-in rules;
/// bad rules land in [`LoadReport::errors`]). Fails when a directory cannot be read at all,
/// when directories are given but none of them adds a rule, or when nothing loads.
pub fn load_rules(builtin: bool, dirs: &[PathBuf], opts: &CompileOptions) -> Result<LoadReport> {
    let all = vigil_detect::load(builtin, dirs, opts)?;
    let total = |r: &LoadReport| r.rules.len() + r.correlations.len() + r.filters.len();
    // Rules, correlations and filters the directories added to the pack's.
    let from_dirs = match builtin {
        true => total(&all).saturating_sub(total(&vigil_detect::builtin_rules())),
        false => total(&all),
    };
    if (!dirs.is_empty() && from_dirs == 0) || all.rules.is_empty() {
        return Err(Error::NoRules {
            dirs: match dirs.is_empty() {
                true => "the built-in pack".into(),
                false => dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            },
        });
    }
    Ok(all)
}

/// What happened while hunting; the progress callback of [`Hunter::hunt`] receives these,
/// always on the calling thread (the workers report to it).
#[derive(Debug, Clone)]
pub enum Progress<'a> {
    /// The inputs were expanded: this many files of this many bytes in all.
    Planned { files: usize, bytes: u64 },
    /// A file is about to be read.
    FileStarted { path: &'a Path },
    /// A file is done; `bytes` is its size.
    FileDone { path: &'a Path, bytes: u64 },
}

/// The most contributing events a [`CorrelationHit`] lists.
pub const MAX_CONTRIBUTIONS: usize = 100;

/// A correlation rule that fired: base-rule matches from anywhere in the hunt, taken in
/// event-time order.
#[derive(Debug, Clone)]
pub struct CorrelationHit {
    pub id: Option<String>,
    pub title: String,
    /// The correlation's level, `informational` when it gives none.
    pub level: Level,
    pub kind: CorrelationType,
    /// `(group-by field, value)`; `None` when the events lacked the field.
    pub group: Vec<(String, Option<String>)>,
    /// Events, distinct values or distinct rules the condition was met with.
    pub count: u64,
    /// The times of the first and last contributing events.
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
    /// Where the contributing events are, by event time: at most [`MAX_CONTRIBUTIONS`], the
    /// first ones and the last.
    pub events: Vec<Location>,
}

impl CorrelationHit {
    /// `count=10 host.name=bastion-1 source.ip=203.0.113.9`, for a table.
    pub fn details(&self) -> String {
        let mut out = format!("{}={}", self.kind.name(), self.count);
        for (field, value) in &self.group {
            out.push_str(&format!(" {field}={}", value.as_deref().unwrap_or("-")));
        }
        out
    }

    /// The match as one JSON object (for JSON lines output); `file`/`record` name the last
    /// contributing event, `correlation.events` all of them.
    pub fn to_json(&self) -> Json {
        let last = self.events.last();
        serde_json::json!({
            "kind": "correlation",
            "time": self.last.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "level": level_name(self.level),
            "rule": {"title": self.title, "id": self.id},
            "file": last.map(|l| l.path.display().to_string()),
            "record": last.map(|l| l.record),
            "correlation": {
                "type": self.kind.name(),
                "count": self.count,
                "group": self.group.iter().map(|(k, v)| (k.clone(), Json::from(v.clone()))).collect::<serde_json::Map<_, _>>(),
                "first": self.first.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "events": self.events.iter().map(|l| serde_json::json!({
                    "file": l.path.display().to_string(), "record": l.record,
                })).collect::<Vec<_>>(),
            },
        })
    }
}

/// The outcome of a hunt.
#[derive(Debug, Default)]
pub struct Hunt<'r> {
    /// Matches at or above the minimum level, sorted by event time (events without a time
    /// last), then by location: the same order however many threads ran. Filled by
    /// [`Hunter::hunt`]; empty after [`Hunter::hunt_stream`], which gives them one at a time.
    pub hits: Vec<Hit<'r>>,
    /// Matches at or above the minimum level (all of them, whether or not in [`Hunt::hits`]).
    pub matches: u64,
    /// Correlation matches at or above the minimum level, by the time they completed.
    pub correlations: Vec<CorrelationHit>,
    /// The minimum level of the hunt ([`Hunter::min_level`]); `None` before a hunt ran.
    pub min_level: Option<Level>,
    /// Matches and correlation matches left out because their level is below
    /// [`Hunt::min_level`], per level (highest first; only levels with some).
    pub below_min_level: Vec<(Level, u64)>,
    /// Files read (fully or partly).
    pub files: usize,
    /// Events evaluated.
    pub events: u64,
    /// Events left out by the time range (including events without a time when a range is
    /// given).
    pub out_of_range: u64,
    /// Events that matched a rule a correlation refers to but have no time, so cannot be
    /// placed in a correlation window.
    pub untimed_for_correlation: u64,
    /// Bytes of the files read.
    pub bytes: u64,
    /// Threads that read files.
    pub threads: usize,
    /// Each file, line or record that was skipped, and why.
    pub errors: Vec<Error>,
    /// The ruleset's rules, and matches per rule (by position) at or above the minimum level.
    rules: &'r [CompiledRule],
    per_rule: BTreeMap<usize, u64>,
}

impl Hunt<'_> {
    /// Matches and correlation matches: what decides the exit code of `vigil hunt`.
    pub fn findings(&self) -> usize {
        self.matches as usize + self.correlations.len()
    }

    /// Matches and correlation matches left out by the level filter.
    pub fn hidden(&self) -> u64 {
        self.below_min_level.iter().map(|(_, n)| n).sum()
    }

    /// Matches of each rule that reported them, with that rule.
    fn rule_counts(&self) -> impl Iterator<Item = (&CompiledRule, usize)> {
        self.per_rule
            .iter()
            .filter_map(|(&i, &n)| Some((self.rules.get(i)?, n as usize)))
    }

    /// Hits (and correlation hits) per level, highest level first.
    pub fn by_level(&self) -> Vec<(Level, usize)> {
        let mut counts: BTreeMap<Level, usize> = BTreeMap::new();
        for (rule, n) in self.rule_counts() {
            *counts
                .entry(rule.rule().level.unwrap_or(Level::Informational))
                .or_default() += n;
        }
        for c in &self.correlations {
            *counts.entry(c.level).or_default() += 1;
        }
        counts.into_iter().rev().collect()
    }

    /// The `n` rules with the most hits: (title, id, hits), most first.
    pub fn top_rules(&self, n: usize) -> Vec<(String, Option<String>, usize)> {
        let mut counts: BTreeMap<(String, Option<String>), usize> = BTreeMap::new();
        for (rule, hits) in self.rule_counts() {
            let rule = rule.rule();
            *counts
                .entry((rule.title.clone(), rule.id.clone()))
                .or_default() += hits;
        }
        for c in &self.correlations {
            *counts.entry((c.title.clone(), c.id.clone())).or_default() += 1;
        }
        let mut top: Vec<_> = counts.into_iter().map(|((t, i), c)| (t, i, c)).collect();
        top.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        top.truncate(n);
        top
    }
}

/// Runs a [`Ruleset`] (and correlation rules) over files, several files at once.
///
/// Files are read in parallel, one per thread ([`Hunter::threads`]), and a JSON lines file
/// larger than [`Hunter::part_bytes`] in parts (byte ranges cut at line starts) read by
/// several threads; each worker evaluates the detection rules on its own events, since a
/// [`Ruleset`] is shared read-only. JSON events are parsed straight from their bytes by the
/// engine's parser ([`JsonEvent`]), and a match keeps the event's text for the output.
/// Matches are kept within [`Hunter::memory`] (beyond it, in sorted runs on disk, merged in
/// the end: see [`Hunter::hunt_stream`]). The correlation state is not per file: events that
/// matched a rule some correlation refers to are kept and, once every file is read, fed to
/// one [`CorrelationEngine`] in event-time order across all files, so a brute force split
/// over `auth.log` and `auth.log.1` is found, and found the same whatever the number of
/// threads. Those events need a time.
pub struct Hunter<'r> {
    ruleset: &'r Ruleset,
    min_level: Level,
    range: TimeRange,
    threads: usize,
    correlations: Vec<CorrelationRule>,
    part_bytes: u64,
    memory: usize,
}

/// JSON lines files larger than this are read in parts of about this size
/// ([`Hunter::part_bytes`]).
pub const DEFAULT_PART_BYTES: u64 = 32 << 20;

/// Memory for matches kept for sorting before they go to disk ([`Hunter::memory`]).
pub const DEFAULT_MEMORY: usize = 64 << 20;

/// A piece of work for one thread: a file, or a part of one.
#[derive(Debug, Clone, Copy)]
struct Unit {
    file: usize,
    part: Part,
}

/// One unit's share of a hunt, made by a worker (its matches go to the worker's store).
#[derive(Default)]
struct UnitHunt {
    events: u64,
    out_of_range: u64,
    /// Lines read, for a part of a JSON lines file: where the next part's lines start.
    lines: u64,
    /// Matches below the minimum level, per level.
    hidden: BTreeMap<Level, u64>,
    /// Matches shown, per rule.
    per_rule: BTreeMap<usize, u64>,
    errors: Vec<Error>,
    /// Events that matched a rule a correlation refers to.
    candidates: Vec<Candidate>,
}

struct Candidate {
    time: Option<i64>,
    record: u64,
    /// Positions in the ruleset of the referenced rules it matched.
    rules: Vec<usize>,
    event: Arc<str>,
}

impl<'r> Hunter<'r> {
    pub fn new(ruleset: &'r Ruleset) -> Self {
        Hunter {
            ruleset,
            min_level: Level::Informational,
            range: TimeRange::default(),
            threads: 0,
            correlations: Vec::new(),
            part_bytes: DEFAULT_PART_BYTES,
            memory: DEFAULT_MEMORY,
        }
    }

    /// Keeps only hits of rules at this level or above (rules without a level count as
    /// informational).
    pub fn min_level(mut self, level: Level) -> Self {
        self.min_level = level;
        self
    }

    /// Evaluates only events whose time is in `range`; when the range has an end, events
    /// without a time are left out (counted in [`Hunt::out_of_range`]).
    pub fn time_range(mut self, range: TimeRange) -> Self {
        self.range = range;
        self
    }

    /// Threads reading files (or parts of files) at once; 0 (the default) is one per
    /// available core.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    /// JSON lines files larger than this many bytes are read in parts of about this size,
    /// by several threads at once ([`DEFAULT_PART_BYTES`] unless set; at least 1).
    pub fn part_bytes(mut self, bytes: u64) -> Self {
        self.part_bytes = bytes.max(1);
        self
    }

    /// Bytes of matches (events' texts mostly) kept in memory for sorting, over all
    /// threads; beyond it they are written to sorted runs in the temporary directory
    /// ([`DEFAULT_MEMORY`] unless set).
    pub fn memory(mut self, bytes: usize) -> Self {
        self.memory = bytes;
        self
    }

    /// Correlation rules to evaluate over the hunt's matches (their references are checked
    /// against the ruleset's rule ids and names). The base rules of a correlation with
    /// `generate: false` report no matches of their own.
    pub fn correlations(mut self, rules: Vec<CorrelationRule>) -> Result<Self> {
        CorrelationEngine::new(rules.clone())?;
        self.correlations = rules;
        Ok(self)
    }

    /// Hunts every file named by `inputs` (files, directories searched recursively, or
    /// patterns with `*`/`?` in their last component), calling `progress` as it goes; all
    /// matches in [`Hunt::hits`] (so in memory: [`Hunter::hunt_stream`] is for inputs of any
    /// size). A match kept on disk that cannot be read back is in [`Hunt::errors`].
    pub fn hunt(&self, inputs: &[PathBuf], progress: impl FnMut(Progress<'_>)) -> Hunt<'r> {
        let (mut hunt, hits) = self.hunt_stream(inputs, progress);
        for hit in hits {
            match hit {
                Ok(hit) => hunt.hits.push(hit),
                Err(source) => {
                    hunt.errors.push(Error::Io {
                        path: std::env::temp_dir(),
                        source,
                    });
                    break;
                }
            }
        }
        hunt
    }

    /// [`Hunter::hunt`] in bounded memory: the hunt's counts, correlations and errors, and
    /// its matches as a stream in [`Hunt::hits`]'s order. Matches beyond [`Hunter::memory`]
    /// are written to sorted runs on disk as the hunt goes and merged as the stream is read,
    /// so sorting by time costs one write and one read of each matching event's text when
    /// the matches outgrow the budget, and no more than the sort in memory otherwise.
    pub fn hunt_stream(
        &self,
        inputs: &[PathBuf],
        mut progress: impl FnMut(Progress<'_>),
    ) -> (Hunt<'r>, HitStream<'r>) {
        let mut hunt = Hunt {
            min_level: Some(self.min_level),
            rules: self.ruleset.rules(),
            ..Hunt::default()
        };
        let (files, errors) = expand_inputs(inputs);
        hunt.errors.extend(errors);
        let sizes: Vec<u64> = files
            .iter()
            .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .collect();
        progress(Progress::Planned {
            files: files.len(),
            bytes: sizes.iter().sum(),
        });
        let units = self.units(&files, &sizes);
        let threads = self.thread_count().clamp(1, units.len().max(1));
        hunt.threads = threads;
        // Each file's place in path order (the order of matches at the same time).
        let mut by_path: Vec<usize> = (0..files.len()).collect();
        by_path.sort_by(|&a, &b| files[a].cmp(&files[b]));
        let mut ranks = vec![0u32; files.len()];
        for (rank, &i) in by_path.iter().enumerate() {
            ranks[i] = index32(rank);
        }

        let plan = self.plan();
        let budget = (self.memory / threads).max(1);
        let mut done: Vec<Option<UnitHunt>> = units.iter().map(|_| None).collect();
        let mut units_left: Vec<usize> = vec![0; files.len()];
        for u in &units {
            units_left[u.file] += 1;
        }
        let mut started = vec![false; files.len()];
        enum Message {
            Started(usize),
            Done(usize, UnitHunt),
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let stores: Vec<Store> = std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::channel::<Message>();
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    let (tx, next, files, units, plan, ranks) =
                        (tx.clone(), &next, &files, &units, &plan, &ranks);
                    scope.spawn(move || {
                        let mut store = Store::new(budget);
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(unit) = units.get(i) else { break };
                            let _ = tx.send(Message::Started(i));
                            let place = (ranks[unit.file], index32(unit.file), index32(i));
                            let path = &files[unit.file];
                            let result =
                                self.hunt_unit_guarded(path, unit.part, place, plan, &mut store);
                            if tx.send(Message::Done(i, result)).is_err() {
                                break;
                            }
                        }
                        store
                    })
                })
                .collect();
            drop(tx);
            for message in rx {
                match message {
                    Message::Started(i) => {
                        let file = units[i].file;
                        if !std::mem::replace(&mut started[file], true) {
                            progress(Progress::FileStarted { path: &files[file] });
                        }
                    }
                    Message::Done(i, result) => {
                        done[i] = Some(result);
                        let file = units[i].file;
                        units_left[file] -= 1;
                        if units_left[file] == 0 {
                            progress(Progress::FileDone {
                                path: &files[file],
                                bytes: sizes[file],
                            });
                        }
                    }
                }
            }
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or_else(|_| Store::new(budget)))
                .collect()
        });
        for store in &stores {
            if let Some(e) = &store.error {
                hunt.errors.push(Error::Io {
                    path: std::env::temp_dir(),
                    source: std::io::Error::new(e.kind(), format!("matches kept in memory: {e}")),
                });
            }
        }

        // Merge in unit order, so the result does not depend on which thread finished first;
        // a part's lines are numbered on from the parts before it.
        let mut candidates = Vec::new();
        let mut hidden = BTreeMap::new();
        let mut bases = vec![0u64; units.len()];
        let mut lines = vec![0u64; files.len()];
        let mut read = vec![false; files.len()];
        for (i, unit) in done.into_iter().enumerate() {
            let Some(mut result) = unit else { continue };
            let file = units[i].file;
            let base = lines[file];
            bases[i] = base;
            lines[file] += result.lines;
            if !std::mem::replace(&mut read[file], true) {
                hunt.files += 1;
                hunt.bytes += sizes[file];
            }
            for e in &mut result.errors {
                if let Error::Parse {
                    line: Some(line), ..
                } = e
                    && matches!(units[i].part, Part::Lines { .. })
                {
                    *line += base;
                }
            }
            candidates.extend(
                std::mem::take(&mut result.candidates)
                    .into_iter()
                    .map(|mut c| {
                        c.record += base;
                        (file, c)
                    }),
            );
            hunt.events += result.events;
            hunt.out_of_range += result.out_of_range;
            hunt.errors.extend(result.errors);
            for (level, n) in result.hidden {
                *hidden.entry(level).or_default() += n;
            }
            for (rule, n) in result.per_rule {
                *hunt.per_rule.entry(rule).or_default() += n;
                hunt.matches += n;
            }
        }
        self.correlate(&files, candidates, &mut hunt, &mut hidden);
        hunt.below_min_level = hidden.into_iter().rev().collect();
        let files = files.into_iter().map(Arc::new).collect();
        let hits = HitStream::new(stores, self.ruleset.rules(), files, bases);
        (hunt, hits)
    }

    /// The units of work: each file, JSON lines files larger than the part size cut into
    /// byte ranges.
    fn units(&self, files: &[PathBuf], sizes: &[u64]) -> Vec<Unit> {
        let mut units = Vec::new();
        for (file, path) in files.iter().enumerate() {
            let size = sizes[file];
            if InputKind::of(path) != InputKind::JsonLines || size <= self.part_bytes {
                units.push(Unit {
                    file,
                    part: Part::Whole { evtx_threads: 1 },
                });
                continue;
            }
            let parts = size.div_ceil(self.part_bytes);
            let step = size.div_ceil(parts);
            for k in 0..parts {
                let start = k * step;
                // The last part reads to the end, whatever the file has grown to.
                let end = if k + 1 == parts {
                    u64::MAX
                } else {
                    start + step
                };
                units.push(Unit {
                    file,
                    part: Part::Lines { start, end },
                });
            }
        }
        // Fewer units than threads: EVTX files share the idle threads to render their chunks.
        let threads = self.thread_count();
        let evtx = units
            .iter()
            .filter(|u| InputKind::of(&files[u.file]) == InputKind::Evtx)
            .count();
        if units.len() < threads && evtx > 0 {
            let spare = (threads - units.len()) / evtx;
            for u in &mut units {
                if InputKind::of(&files[u.file]) == InputKind::Evtx {
                    u.part = Part::Whole {
                        evtx_threads: 1 + spare,
                    };
                }
            }
        }
        units
    }

    /// Threads asked for: [`Hunter::threads`], or one per core.
    fn thread_count(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }

    /// Hunts one file, whatever its name, adding to `hunt` (without correlations, which need
    /// the whole hunt: see [`Hunter::hunt`]); its matches after those already there, in
    /// [`Hunt::hits`]'s order among themselves.
    pub fn hunt_file(&self, path: &Path, hunt: &mut Hunt<'r>) {
        let mut store = Store::new(self.memory);
        let whole = Part::Whole { evtx_threads: 1 };
        let file = self.hunt_unit_guarded(path, whole, (0, 0, 0), &self.plan(), &mut store);
        hunt.min_level = Some(self.min_level);
        hunt.rules = self.ruleset.rules();
        hunt.files += 1;
        hunt.events += file.events;
        hunt.out_of_range += file.out_of_range;
        hunt.errors.extend(file.errors);
        for (rule, n) in file.per_rule {
            *hunt.per_rule.entry(rule).or_default() += n;
            hunt.matches += n;
        }
        let mut hidden: BTreeMap<Level, u64> = hunt.below_min_level.iter().copied().collect();
        for (level, n) in file.hidden {
            *hidden.entry(level).or_default() += n;
        }
        hunt.below_min_level = hidden.into_iter().rev().collect();
        let files = vec![Arc::new(path.to_path_buf())];
        let hits = HitStream::new(vec![store], self.ruleset.rules(), files, vec![0]);
        hunt.hits.extend(hits.flatten());
    }

    /// Per rule of the ruleset: (referred to by a correlation, reports no hits of its own).
    fn plan(&self) -> Vec<(bool, bool)> {
        let engine = match CorrelationEngine::new(self.correlations.clone()) {
            Ok(e) => e.with_rule_names(self.ruleset.rules()),
            Err(_) => return vec![(false, false); self.ruleset.rules().len()],
        };
        self.ruleset
            .rules()
            .iter()
            .map(|r| {
                let names = [r.rule().id.as_deref(), r.rule().name.as_deref()];
                let names = names.into_iter().flatten();
                let referenced = names.clone().any(|n| {
                    self.correlations
                        .iter()
                        .any(|c| c.rules.iter().any(|x| x == n))
                });
                let hidden = names.into_iter().any(|n| engine.is_correlation_only(n));
                (referenced, hidden)
            })
            .collect()
    }

    /// [`Hunter::hunt_unit`], with a panic (a bug in a parser or the engine) reported as an
    /// error of that file rather than ending the hunt.
    fn hunt_unit_guarded(
        &self,
        path: &Path,
        part: Part,
        place: (u32, u32, u32),
        plan: &[(bool, bool)],
        store: &mut Store,
    ) -> UnitHunt {
        let run = std::panic::AssertUnwindSafe(|| self.hunt_unit(path, part, place, plan, store));
        std::panic::catch_unwind(run).unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            UnitHunt {
                errors: vec![Error::Parse {
                    path: path.to_path_buf(),
                    line: None,
                    reason: format!("internal error while reading this file (a bug): {what}"),
                }],
                ..UnitHunt::default()
            }
        })
    }

    /// Hunts a file or a part of one; `place` is the file's rank by path, its position and
    /// the unit's, for the order of its matches.
    fn hunt_unit(
        &self,
        path: &Path,
        part: Part,
        place: (u32, u32, u32),
        plan: &[(bool, bool)],
        store: &mut Store,
    ) -> UnitHunt {
        let mut unit = UnitHunt::default();
        let rules = self.ruleset.rules();
        let bounded = !self.range.is_unbounded();
        let mut on_event = |record: u64, input: InputEvent<'_>| {
            // The time is needed for every event only when a range is given.
            let mut time: Option<Option<String>> = None;
            if bounded {
                let t = input.time();
                let at = t.as_deref().and_then(parse_event_time);
                if !at.is_some_and(|at| self.range.contains(at)) {
                    unit.out_of_range += 1;
                    return;
                }
                time = Some(t);
            }
            unit.events += 1;
            // Positions in the ruleset, to keep the rules past this event.
            let matched = self.ruleset.match_indices(input.event());
            if matched.is_empty() {
                return;
            }
            let time = time.unwrap_or_else(|| input.time());
            let at = time.as_deref().and_then(parse_event_time);
            let mut referenced = Vec::new();
            let mut shown = Vec::new();
            for i in matched {
                let (is_referenced, hidden) = plan.get(i).copied().unwrap_or_default();
                if is_referenced {
                    referenced.push(i);
                }
                if hidden {
                    continue;
                }
                let level = rules[i].rule().level.unwrap_or(Level::Informational);
                if level < self.min_level {
                    *unit.hidden.entry(level).or_default() += 1;
                    continue;
                }
                *unit.per_rule.entry(i).or_default() += 1;
                shown.push(index32(i));
            }
            if shown.is_empty() && referenced.is_empty() {
                return;
            }
            if !referenced.is_empty() {
                unit.candidates.push(Candidate {
                    time: at.map(|t| t.timestamp_millis()),
                    record,
                    rules: referenced,
                    event: Arc::from(input.one_line()),
                });
            }
            if !shown.is_empty() {
                let key = Key::new(at, time.as_deref(), place, record);
                store.push(key, shown, |buf| input.write_one_line(buf));
            }
        };
        let read = input::read_part(
            path,
            InputKind::of(path),
            part,
            &mut on_event,
            &mut unit.errors,
        );
        unit.lines = read.lines;
        unit
    }

    /// Feeds the events correlations refer to, from every file, in event-time order to one
    /// correlation engine.
    fn correlate(
        &self,
        files: &[PathBuf],
        candidates: Vec<(usize, Candidate)>,
        hunt: &mut Hunt<'r>,
        hidden: &mut BTreeMap<Level, u64>,
    ) {
        if self.correlations.is_empty() {
            return;
        }
        let mut engine = match CorrelationEngine::new(self.correlations.clone()) {
            Ok(e) => e.with_rule_names(self.ruleset.rules()),
            Err(e) => return hunt.errors.push(e.into()),
        };
        let (mut timed, untimed): (Vec<_>, Vec<_>) =
            candidates.into_iter().partition(|(_, c)| c.time.is_some());
        hunt.untimed_for_correlation = untimed.len() as u64;
        timed.sort_by_key(|(file, c)| (c.time, *file, c.record));
        let rules = self.ruleset.rules();
        let location = |k: u64| {
            timed.get(k as usize).map(|(file, c)| Location {
                path: files[*file].clone(),
                record: c.record,
            })
        };
        let mut out = Vec::new();
        for (_, c) in &timed {
            let matched: Vec<&CompiledRule> = c.rules.iter().map(|&i| &rules[i]).collect();
            let time = c.time.unwrap_or_default();
            // The event's text as kept: parsed again (events that matched a correlated rule
            // only, not every event).
            let Ok(event) = JsonEvent::parse(&c.event) else {
                continue;
            };
            for m in engine.process_rules(time, &matched, &event) {
                let level = m.level.unwrap_or(Level::Informational);
                if level < self.min_level {
                    *hidden.entry(level).or_default() += 1;
                    continue;
                }
                let millis = |t: i64| DateTime::from_timestamp_millis(t).unwrap_or_default();
                out.push(CorrelationHit {
                    id: m.id,
                    title: m.title,
                    level,
                    kind: m.kind,
                    group: m.group,
                    count: m.count,
                    first: millis(m.window.0),
                    last: millis(m.window.1),
                    events: capped(&m.events)
                        .filter_map(|e| location(e.index))
                        .collect(),
                });
            }
        }
        hunt.correlations = out;
    }
}

/// `n` as a 32-bit position (files, units and rules of a hunt are far fewer).
fn index32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The first [`MAX_CONTRIBUTIONS`]` - 1` contributions and the last (the one that completed
/// the match).
fn capped(events: &[Contribution]) -> impl Iterator<Item = &Contribution> {
    let head = events.len().min(MAX_CONTRIBUTIONS - 1);
    let tail = events.len().saturating_sub(head).min(1);
    events[..head].iter().chain(&events[events.len() - tail..])
}

/// Where [`event_time`] looks, in order, after the Windows event time.
pub(crate) const TIME_FIELDS: [&str; 6] =
    ["@timestamp", "timestamp", "time", "ts", "UtcTime", "date"];

/// The time of an event: `System.TimeCreated.SystemTime` for Windows events, else the first of
/// a few common time fields.
pub fn event_time(event: &Json) -> Option<String> {
    if let Some(t) = event
        .pointer("/Event/System/TimeCreated/#attributes/SystemTime")
        .or_else(|| event.pointer("/Event/System/TimeCreated_attributes/SystemTime"))
        .and_then(Json::as_str)
    {
        return Some(t.to_string());
    }
    TIME_FIELDS.iter().find_map(|k| match event.get(*k)? {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_correlation_keeps_its_first_contributions_and_the_last() {
        let events: Vec<Contribution> = (0..250)
            .map(|i| Contribution {
                index: i,
                time: i as i64,
                rule: 0,
            })
            .collect();
        let kept: Vec<u64> = capped(&events).map(|c| c.index).collect();
        assert_eq!(kept.len(), MAX_CONTRIBUTIONS);
        assert_eq!(kept[..3], [0, 1, 2]);
        assert_eq!(kept[MAX_CONTRIBUTIONS - 2..], [98, 249]);
        let few: Vec<u64> = capped(&events[..3]).map(|c| c.index).collect();
        assert_eq!(few, [0, 1, 2]);
        assert_eq!(capped(&[]).count(), 0);
    }
}
