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
mod time;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::Value as Json;
use vigil_detect::{
    CompileOptions, CompiledRule, Contribution, CorrelationEngine, CorrelationRule,
    CorrelationType, Event as _, Level, LoadReport, Pipeline, PipelineSet, Ruleset,
};

pub use input::{InputKind, MAX_LINE_BYTES, expand_inputs, read_events, read_events_from_bytes};
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

/// One rule matching one event.
#[derive(Debug, Clone)]
pub struct Hit<'r> {
    pub rule: &'r CompiledRule,
    pub location: Location,
    /// The event's time as written (ISO 8601 for EVTX), when it has one.
    pub time: Option<String>,
    /// That time parsed ([`parse_event_time`]), when it parses.
    pub at: Option<DateTime<Utc>>,
    pub event: Json,
}

impl Hit<'_> {
    /// The rule's level, `informational` when the rule gives none.
    pub fn level(&self) -> Level {
        self.rule.rule().level.unwrap_or(Level::Informational)
    }

    /// The hit as one JSON object (for JSON lines output), with the whole event.
    pub fn to_json(&self) -> Json {
        let rule = self.rule.rule();
        serde_json::json!({
            "kind": "detection",
            "time": self.time,
            "level": level_name(self.level()),
            "rule": {"title": rule.title, "id": rule.id},
            "file": self.location.path.display().to_string(),
            "record": self.location.record,
            "event": self.event,
        })
    }

    /// A few fields an analyst looks at first, as `name=value`, for a table.
    pub fn key_fields(&self) -> Vec<(&'static str, String)> {
        KEY_FIELDS
            .iter()
            .filter_map(|name| {
                let v = self.event.field(name)?;
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
    /// last), then by location: the same order however many threads ran.
    pub hits: Vec<Hit<'r>>,
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
}

impl Hunt<'_> {
    /// Matches and correlation matches: what decides the exit code of `vigil hunt`.
    pub fn findings(&self) -> usize {
        self.hits.len() + self.correlations.len()
    }

    /// Matches and correlation matches left out by the level filter.
    pub fn hidden(&self) -> u64 {
        self.below_min_level.iter().map(|(_, n)| n).sum()
    }

    /// Hits (and correlation hits) per level, highest level first.
    pub fn by_level(&self) -> Vec<(Level, usize)> {
        let mut counts: BTreeMap<Level, usize> = BTreeMap::new();
        for level in self
            .hits
            .iter()
            .map(Hit::level)
            .chain(self.correlations.iter().map(|c| c.level))
        {
            *counts.entry(level).or_default() += 1;
        }
        counts.into_iter().rev().collect()
    }

    /// The `n` rules with the most hits: (title, id, hits), most first.
    pub fn top_rules(&self, n: usize) -> Vec<(String, Option<String>, usize)> {
        let mut counts: BTreeMap<(String, Option<String>), usize> = BTreeMap::new();
        for hit in &self.hits {
            let rule = hit.rule.rule();
            *counts
                .entry((rule.title.clone(), rule.id.clone()))
                .or_default() += 1;
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
/// Files are read in parallel, one per thread ([`Hunter::threads`]); each worker evaluates
/// the detection rules on its own events, since a [`Ruleset`] is shared read-only. The
/// correlation state is not per file: events that matched a rule some correlation refers to
/// are kept and, once every file is read, fed to one [`CorrelationEngine`] in event-time
/// order across all files, so a brute force split over `auth.log` and `auth.log.1` is
/// found, and found the same whatever the number of threads. Those events need a time.
pub struct Hunter<'r> {
    ruleset: &'r Ruleset,
    min_level: Level,
    range: TimeRange,
    threads: usize,
    correlations: Vec<CorrelationRule>,
}

/// One file's share of a hunt, made by a worker.
#[derive(Default)]
struct FileHunt<'r> {
    hits: Vec<Hit<'r>>,
    events: u64,
    out_of_range: u64,
    /// Matches below the minimum level, per level.
    hidden: BTreeMap<Level, u64>,
    errors: Vec<Error>,
    /// Events that matched a rule a correlation refers to.
    candidates: Vec<Candidate>,
}

struct Candidate {
    time: Option<i64>,
    record: u64,
    /// Positions in the ruleset of the referenced rules it matched.
    rules: Vec<usize>,
    event: Json,
}

impl<'r> Hunter<'r> {
    pub fn new(ruleset: &'r Ruleset) -> Self {
        Hunter {
            ruleset,
            min_level: Level::Informational,
            range: TimeRange::default(),
            threads: 0,
            correlations: Vec::new(),
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

    /// Files read at once; 0 (the default) is one per available core.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
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
    /// patterns with `*`/`?` in their last component), calling `progress` as it goes.
    pub fn hunt(&self, inputs: &[PathBuf], mut progress: impl FnMut(Progress<'_>)) -> Hunt<'r> {
        let mut hunt = Hunt {
            min_level: Some(self.min_level),
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
        let threads = match self.threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
        .clamp(1, files.len().max(1));
        hunt.threads = threads;

        let plan = self.plan();
        let mut done: Vec<Option<FileHunt<'r>>> = files.iter().map(|_| None).collect();
        enum Message<'r> {
            Started(usize),
            Done(usize, FileHunt<'r>),
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::channel::<Message<'r>>();
            for _ in 0..threads {
                let (tx, next, files, plan) = (tx.clone(), &next, &files, &plan);
                scope.spawn(move || {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(path) = files.get(i) else { break };
                        let _ = tx.send(Message::Started(i));
                        let result = self.hunt_one_guarded(path, plan);
                        if tx.send(Message::Done(i, result)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            for message in rx {
                match message {
                    Message::Started(i) => progress(Progress::FileStarted { path: &files[i] }),
                    Message::Done(i, result) => {
                        done[i] = Some(result);
                        progress(Progress::FileDone {
                            path: &files[i],
                            bytes: sizes[i],
                        });
                    }
                }
            }
        });

        // Merge in file order, so the result does not depend on which thread finished first.
        let mut candidates = Vec::new();
        let mut hidden = BTreeMap::new();
        for (i, file) in done.into_iter().enumerate() {
            let Some(mut file) = file else { continue };
            hunt.bytes += sizes[i];
            candidates.extend(
                std::mem::take(&mut file.candidates)
                    .into_iter()
                    .map(|c| (i, c)),
            );
            merge(&mut hunt, &mut hidden, file);
        }
        hunt.hits.sort_by(|a, b| {
            (a.at.is_none(), a.at, &a.time, &a.location).cmp(&(
                b.at.is_none(),
                b.at,
                &b.time,
                &b.location,
            ))
        });
        self.correlate(&files, candidates, &mut hunt, &mut hidden);
        hunt.below_min_level = hidden.into_iter().rev().collect();
        hunt
    }

    /// Hunts one file, whatever its name, adding to `hunt` (without correlations, which need
    /// the whole hunt: see [`Hunter::hunt`]).
    pub fn hunt_file(&self, path: &Path, hunt: &mut Hunt<'r>) {
        let file = self.hunt_one_guarded(path, &self.plan());
        hunt.min_level = Some(self.min_level);
        let mut hidden: BTreeMap<Level, u64> = hunt.below_min_level.iter().copied().collect();
        merge(hunt, &mut hidden, file);
        hunt.below_min_level = hidden.into_iter().rev().collect();
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

    /// [`Hunter::hunt_one`], with a panic (a bug in a parser or the engine) reported as an
    /// error of that file rather than ending the hunt.
    fn hunt_one_guarded(&self, path: &Path, plan: &[(bool, bool)]) -> FileHunt<'r> {
        let run = std::panic::AssertUnwindSafe(|| self.hunt_one(path, plan));
        std::panic::catch_unwind(run).unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            FileHunt {
                errors: vec![Error::Parse {
                    path: path.to_path_buf(),
                    line: None,
                    reason: format!("internal error while reading this file (a bug): {what}"),
                }],
                ..FileHunt::default()
            }
        })
    }

    fn hunt_one(&self, path: &Path, plan: &[(bool, bool)]) -> FileHunt<'r> {
        let mut file = FileHunt::default();
        let rules: &'r [CompiledRule] = self.ruleset.rules();
        let bounded = !self.range.is_unbounded();
        let mut on_event = |record: u64, event: Json| {
            // The time is needed for every event only when a range is given.
            let mut time: Option<Option<String>> = None;
            if bounded {
                let t = event_time(&event);
                let at = t.as_deref().and_then(parse_event_time);
                if !at.is_some_and(|at| self.range.contains(at)) {
                    file.out_of_range += 1;
                    return;
                }
                time = Some(t);
            }
            file.events += 1;
            // Positions in the ruleset, to keep the rules past this event.
            let matched = self.ruleset.match_indices(&event);
            if matched.is_empty() {
                return;
            }
            let time = time.unwrap_or_else(|| event_time(&event));
            let at = time.as_deref().and_then(parse_event_time);
            let mut referenced = Vec::new();
            for i in matched {
                let rule = &rules[i];
                let (is_referenced, hidden) = plan.get(i).copied().unwrap_or_default();
                if is_referenced {
                    referenced.push(i);
                }
                if hidden {
                    continue;
                }
                let level = rule.rule().level.unwrap_or(Level::Informational);
                if level < self.min_level {
                    *file.hidden.entry(level).or_default() += 1;
                    continue;
                }
                file.hits.push(Hit {
                    rule,
                    location: Location {
                        path: path.to_path_buf(),
                        record,
                    },
                    time: time.clone(),
                    at,
                    event: event.clone(),
                });
            }
            if !referenced.is_empty() {
                file.candidates.push(Candidate {
                    time: at.map(|t| t.timestamp_millis()),
                    record,
                    rules: referenced,
                    event,
                });
            }
        };
        input::read_events(path, InputKind::of(path), &mut on_event, &mut file.errors);
        file
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
            for m in engine.process_rules(time, &matched, &c.event) {
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

/// Adds one file's counts, hits and errors to the hunt (its correlation candidates are
/// the caller's) and its level-filtered matches to `hidden`.
fn merge<'r>(hunt: &mut Hunt<'r>, hidden: &mut BTreeMap<Level, u64>, file: FileHunt<'r>) {
    hunt.files += 1;
    hunt.events += file.events;
    hunt.out_of_range += file.out_of_range;
    hunt.hits.extend(file.hits);
    hunt.errors.extend(file.errors);
    for (level, n) in file.hidden {
        *hidden.entry(level).or_default() += n;
    }
}

/// The first [`MAX_CONTRIBUTIONS`]` - 1` contributions and the last (the one that completed
/// the match).
fn capped(events: &[Contribution]) -> impl Iterator<Item = &Contribution> {
    let head = events.len().min(MAX_CONTRIBUTIONS - 1);
    let tail = events.len().saturating_sub(head).min(1);
    events[..head].iter().chain(&events[events.len() - tail..])
}

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
    ["@timestamp", "timestamp", "time", "ts", "UtcTime", "date"]
        .iter()
        .find_map(|k| match event.get(*k)? {
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
