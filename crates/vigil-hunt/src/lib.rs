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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use vigil_detect::{
    CompileOptions, CompiledRule, Event as _, Level, LoadReport, Pipeline, PipelineSet, Ruleset,
};

pub use input::{InputKind, expand_inputs, read_events};

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

/// Loads the rules of every directory (bad rules land in [`LoadReport::errors`]), or the
/// built-in pack when no directory is given; fails only
/// when a directory cannot be read at all or no rule loads.
pub fn load_rules(dirs: &[PathBuf], opts: &CompileOptions) -> Result<LoadReport> {
    if dirs.is_empty() {
        // No directories given: Vigil's built-in pack, embedded in the binary.
        return Ok(vigil_detect::builtin_rules());
    }
    let mut all = LoadReport::default();
    for dir in dirs {
        let report = vigil_detect::load_dir(dir, opts)?;
        // Keep the whole report: correlations and filters too, not only detection rules.
        all.rules.extend(report.rules);
        all.errors.extend(report.errors);
        all.correlations.extend(report.correlations);
        all.filters.extend(report.filters);
    }
    if all.rules.is_empty() {
        return Err(Error::NoRules {
            dirs: dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(all)
}

/// What happened while hunting; the progress callback of [`Hunter::hunt`] receives these.
#[derive(Debug, Clone)]
pub enum Progress<'a> {
    /// The inputs were expanded: this many files of this many bytes in all.
    Planned { files: usize, bytes: u64 },
    /// A file is about to be read.
    FileStarted { path: &'a Path },
    /// A file is done; `bytes` is its size.
    FileDone { path: &'a Path, bytes: u64 },
}

/// The outcome of a hunt.
#[derive(Debug, Default)]
pub struct Hunt<'r> {
    /// Matches at or above the minimum level, sorted by time (events without a time last),
    /// then by location.
    pub hits: Vec<Hit<'r>>,
    /// Files read (fully or partly).
    pub files: usize,
    /// Events evaluated.
    pub events: u64,
    /// Bytes of the files read.
    pub bytes: u64,
    /// Each file, line or record that was skipped, and why.
    pub errors: Vec<Error>,
}

impl Hunt<'_> {
    /// Hits per level, highest level first.
    pub fn by_level(&self) -> Vec<(Level, usize)> {
        let mut counts: BTreeMap<Level, usize> = BTreeMap::new();
        for hit in &self.hits {
            *counts.entry(hit.level()).or_default() += 1;
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
        let mut top: Vec<_> = counts.into_iter().map(|((t, i), c)| (t, i, c)).collect();
        top.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        top.truncate(n);
        top
    }
}

/// Runs a [`Ruleset`] over files.
pub struct Hunter<'r> {
    ruleset: &'r Ruleset,
    min_level: Level,
}

impl<'r> Hunter<'r> {
    pub fn new(ruleset: &'r Ruleset) -> Self {
        Hunter {
            ruleset,
            min_level: Level::Informational,
        }
    }

    /// Keeps only hits of rules at this level or above (rules without a level count as
    /// informational).
    pub fn min_level(mut self, level: Level) -> Self {
        self.min_level = level;
        self
    }

    /// Hunts every file named by `inputs` (files, directories searched recursively, or
    /// patterns with `*`/`?` in their last component), calling `progress` as it goes.
    pub fn hunt(&self, inputs: &[PathBuf], mut progress: impl FnMut(Progress<'_>)) -> Hunt<'r> {
        let mut hunt = Hunt::default();
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
        for (path, bytes) in files.iter().zip(sizes) {
            progress(Progress::FileStarted { path });
            self.hunt_file(path, &mut hunt);
            hunt.bytes += bytes;
            progress(Progress::FileDone { path, bytes });
        }
        hunt.hits.sort_by(|a, b| {
            // Events without a time sort last.
            (a.time.is_none(), &a.time, &a.location).cmp(&(b.time.is_none(), &b.time, &b.location))
        });
        hunt
    }

    /// Hunts one file, whatever its name, adding to `hunt`.
    pub fn hunt_file(&self, path: &Path, hunt: &mut Hunt<'r>) {
        hunt.files += 1;
        let mut on_event = |record: u64, event: Json| {
            hunt.events += 1;
            let mut time = None;
            // `Ruleset::matches` ties its rules to the event's lifetime; find them in the
            // ruleset again to keep them past this event.
            let rules: &'r [CompiledRule] = self.ruleset.rules();
            let matched: Vec<usize> = self
                .ruleset
                .matches(&event)
                .filter(|r| r.rule().level.unwrap_or(Level::Informational) >= self.min_level)
                .filter_map(|m| rules.iter().position(|r| std::ptr::eq(r, m)))
                .collect();
            for rule in matched.into_iter().map(|i| &rules[i]) {
                let time = time.get_or_insert_with(|| event_time(&event)).clone();
                hunt.hits.push(Hit {
                    rule,
                    location: Location {
                        path: path.to_path_buf(),
                        record,
                    },
                    time,
                    event: event.clone(),
                });
            }
        };
        let mut errors = Vec::new();
        input::read_events(path, InputKind::of(path), &mut on_event, &mut errors);
        hunt.errors.extend(errors);
    }
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
