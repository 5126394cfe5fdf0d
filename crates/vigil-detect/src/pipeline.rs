//! Processing pipelines: which events a rule's `logsource` stands for, and what its fields are
//! called there.
//!
//! A Sigma rule says `logsource: {product: windows, category: process_creation}`; it does not
//! say that such events come from the Sysmon channel with EventID 1, or from the Security
//! channel with EventID 4688 where `Image` is called `NewProcessName`. A pipeline says that.
//! A [`crate::Ruleset`] built with a [`PipelineSet`] only evaluates a rule against events that
//! satisfy one of its logsource's alternatives, with that alternative's field names.
//!
//! # Format
//!
//! ```yaml
//! name: windows                     # required
//! description: Windows event logs   # optional
//! fieldmappings:                    # optional, for every entry below: rule field -> event field
//!     User: SubjectUserName
//! logsources:                       # required: entry name -> entry
//!     process_creation_sysmon:
//!         logsource:                # which rules: product / category / service, each optional
//!             product: windows
//!             category: process_creation
//!         conditions:               # which events: every field must hold (AND),
//!             Channel: Microsoft-Windows-Sysmon/Operational
//!             EventID: 1            # a list means any of its values
//!     process_creation_security:    # a second entry for the same logsource is an alternative
//!         logsource: {product: windows, category: process_creation}
//!         conditions: {Channel: Security, EventID: 4688}
//!         fieldmappings:            # entry renames win over the pipeline's
//!             Image: NewProcessName
//!             ParentImage: ParentProcessName
//!             Hashes: [Hashes, Hash] # a list: the first of these the event has
//! ```
//!
//! - An entry applies to a rule like pySigma's logsource conditions: every one of `product`,
//!   `category`, `service` the entry gives must equal the rule's (ignoring ASCII case); the ones
//!   it leaves out match anything. An entry must give at least one.
//! - A rule's alternatives are all entries that apply to it, from every pipeline of the set. A
//!   rule no entry applies to is never evaluated ([`crate::Ruleset::unmapped`] lists them).
//! - Conditions compare the event field's text (numbers as written, `EventID: 1` matches `1`
//!   and `"1"`) ignoring ASCII case; a multi-valued event field holds when any element does. An
//!   entry without conditions applies to every event.
//! - Field renames apply to everything the rule looks up, `fieldref` targets included; fields
//!   not renamed are looked up as written.
//! - Unknown keys, entries without `logsource`, nested values in conditions and empty lists are
//!   errors ([`crate::Error::Pipeline`] naming the file and the entry).
//!
//! The built-in pipelines ([`Pipeline::BUILTIN`]) are shipped in `pipelines/*.yml`:
//! `windows.yml` (Windows event log channels, Sysmon categories by EventID, Security audit
//! alternatives), `linux.yml` (auditd, syslog/auth, the agent's process/file/network sensors),
//! `network.yml` (the agent's flows, DNS and HTTP) and `vigil.yml` (Vigil's normalized schema).
//!
//! ```
//! use vigil_detect::{CompileOptions, CompiledRule, Pipeline, PipelineSet, Ruleset};
//!
//! let rule = CompiledRule::from_yaml(
//!     r#"
//! title: Whoami
//! logsource: {product: windows, category: process_creation}
//! detection:
//!     selection:
//!         Image|endswith: '\whoami.exe'
//!     condition: selection
//! "#,
//!     &CompileOptions::default(),
//! )?;
//! let pipelines = PipelineSet::new(vec![Pipeline::builtin("windows")?]);
//! let ruleset = Ruleset::with_pipelines(vec![rule], &pipelines);
//! // Security 4688 calls the image `NewProcessName`: the pipeline renames it.
//! let security = serde_json::json!({"Event": {
//!     "System": {"Channel": "Security", "EventID": 4688},
//!     "EventData": {"NewProcessName": "C:\\Windows\\System32\\whoami.exe"}
//! }});
//! assert_eq!(ruleset.matches(&security).count(), 1);
//! // A file creation with the same data is not a process creation: the rule is not evaluated.
//! let file = serde_json::json!({"Event": {
//!     "System": {"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 11},
//!     "EventData": {"Image": "C:\\Windows\\System32\\whoami.exe"}
//! }});
//! assert_eq!(ruleset.candidate_count(&file), 0);
//! # Ok::<(), vigil_detect::Error>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use serde_yaml::Value as Yaml;

use crate::rule::LogSource;
use crate::{Error, Result};

/// Rule field -> the event fields it may be called, tried in order.
pub(crate) type Renames = HashMap<String, Vec<String>>;

/// One parsed pipeline file.
#[derive(Debug, Clone)]
pub struct Pipeline {
    name: String,
    description: Option<String>,
    entries: Vec<Entry>,
}

/// One `logsources:` entry: which rules, which events, which names.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    product: Option<String>,
    category: Option<String>,
    service: Option<String>,
    /// Field -> accepted values (lower-cased), sorted by field.
    conditions: Vec<(String, Vec<String>)>,
    renames: Arc<Renames>,
}

/// What one applicable entry means for a rule: the events it applies to and its field names.
#[derive(Debug, Clone)]
pub(crate) struct Alternative {
    /// Field -> accepted values (lower-cased), sorted by field.
    pub(crate) conditions: Vec<(String, Vec<String>)>,
    pub(crate) renames: Arc<Renames>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    name: String,
    description: Option<String>,
    #[serde(default)]
    fieldmappings: BTreeMap<String, Yaml>,
    logsources: BTreeMap<String, RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    logsource: RawLogsource,
    #[serde(default)]
    conditions: BTreeMap<String, Yaml>,
    #[serde(default)]
    fieldmappings: BTreeMap<String, Yaml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogsource {
    product: Option<String>,
    category: Option<String>,
    service: Option<String>,
}

impl Pipeline {
    /// The pipelines shipped with the crate, as `(file name, YAML text)`.
    pub const BUILTIN: &'static [(&'static str, &'static str)] = &[
        ("windows.yml", include_str!("../pipelines/windows.yml")),
        ("linux.yml", include_str!("../pipelines/linux.yml")),
        ("network.yml", include_str!("../pipelines/network.yml")),
        ("vigil.yml", include_str!("../pipelines/vigil.yml")),
    ];

    /// One built-in pipeline by file name (`windows.yml`) or pipeline name (`windows`).
    pub fn builtin(name: &str) -> Result<Self> {
        let (file, text) = Self::BUILTIN
            .iter()
            .find(|(file, _)| *file == name || file.strip_suffix(".yml") == Some(name))
            .ok_or_else(|| Error::Pipeline {
                pipeline: name.to_string(),
                reason: format!(
                    "no built-in pipeline of that name (built-in: {})",
                    Self::BUILTIN
                        .iter()
                        .map(|(f, _)| *f)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?;
        Self::from_yaml(&format!("pipelines/{file}"), text)
    }

    /// Reads and parses a pipeline file; errors name the file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml(&path.display().to_string(), &text)
    }

    /// Parses a pipeline; `origin` (usually the file name) is what errors call it.
    pub fn from_yaml(origin: &str, text: &str) -> Result<Self> {
        let fail = |reason: String| Error::Pipeline {
            pipeline: origin.to_string(),
            reason,
        };
        // Through a `Value` first: it rejects duplicate keys, which maps would silently merge.
        let raw: RawPipeline = serde_yaml::from_str::<Yaml>(text)
            .and_then(serde_yaml::from_value)
            .map_err(|e| fail(e.to_string()))?;
        if raw.name.trim().is_empty() {
            return Err(fail("`name` must not be empty".into()));
        }
        if raw.logsources.is_empty() {
            return Err(fail("`logsources` must not be empty".into()));
        }
        let common =
            renames(&raw.fieldmappings).map_err(|e| fail(format!("fieldmappings: {e}")))?;
        let mut entries = Vec::with_capacity(raw.logsources.len());
        for (name, entry) in raw.logsources {
            let fail_entry = |reason: String| fail(format!("logsource entry `{name}`: {reason}"));
            let RawLogsource {
                product,
                category,
                service,
            } = entry.logsource;
            if product.is_none() && category.is_none() && service.is_none() {
                return Err(fail_entry(
                    "`logsource` must give at least one of product, category, service".into(),
                ));
            }
            let mut conditions = Vec::with_capacity(entry.conditions.len());
            for (field, value) in &entry.conditions {
                let values = condition_values(value)
                    .map_err(|e| fail_entry(format!("condition `{field}`: {e}")))?;
                conditions.push((field.clone(), values));
            }
            let mut renames = common.clone();
            renames.extend(
                self::renames(&entry.fieldmappings)
                    .map_err(|e| fail_entry(format!("fieldmappings: {e}")))?,
            );
            entries.push(Entry {
                name,
                product,
                category,
                service,
                conditions,
                renames: Arc::new(renames),
            });
        }
        Ok(Pipeline {
            name: raw.name,
            description: raw.description,
            entries,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The names of the entries that apply to `logsource`.
    pub fn entries_for(&self, logsource: &LogSource) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|e| e.applies_to(logsource))
            .map(|e| e.name.as_str())
            .collect()
    }
}

impl Entry {
    fn applies_to(&self, ls: &LogSource) -> bool {
        let same = |want: &Option<String>, have: &Option<String>| match want {
            None => true,
            Some(w) => have.as_deref().is_some_and(|h| h.eq_ignore_ascii_case(w)),
        };
        same(&self.product, &ls.product)
            && same(&self.category, &ls.category)
            && same(&self.service, &ls.service)
    }
}

fn renames(raw: &BTreeMap<String, Yaml>) -> Result<Renames, String> {
    raw.iter()
        .map(|(from, to)| {
            let targets = match to {
                Yaml::String(s) => vec![s.clone()],
                Yaml::Sequence(items) if !items.is_empty() => items
                    .iter()
                    .map(|i| match i {
                        Yaml::String(s) => Ok(s.clone()),
                        _ => Err(format!("`{from}` must map to field names")),
                    })
                    .collect::<Result<_, _>>()?,
                _ => {
                    return Err(format!(
                        "`{from}` must map to a field name or a non-empty list of them"
                    ));
                }
            };
            Ok((from.clone(), targets))
        })
        .collect()
}

fn condition_values(value: &Yaml) -> Result<Vec<String>, String> {
    fn scalar(v: &Yaml) -> Result<String, String> {
        match v {
            Yaml::String(s) => Ok(s.to_lowercase()),
            Yaml::Number(n) => Ok(n.to_string()),
            Yaml::Bool(b) => Ok(b.to_string()),
            _ => Err("values must be strings, numbers or booleans".into()),
        }
    }
    match value {
        Yaml::Sequence(items) if items.is_empty() => Err("an empty list never holds".into()),
        Yaml::Sequence(items) => items.iter().map(scalar).collect(),
        v => Ok(vec![scalar(v)?]),
    }
}

/// Pipelines used together: a rule's alternatives come from all of them.
#[derive(Debug, Clone, Default)]
pub struct PipelineSet {
    pipelines: Vec<Pipeline>,
}

impl PipelineSet {
    pub fn new(pipelines: Vec<Pipeline>) -> Self {
        PipelineSet { pipelines }
    }

    /// Every built-in pipeline ([`Pipeline::BUILTIN`]).
    pub fn builtin() -> Result<Self> {
        Pipeline::BUILTIN
            .iter()
            .map(|(file, _)| Pipeline::builtin(file))
            .collect::<Result<_>>()
            .map(PipelineSet::new)
    }

    pub fn pipelines(&self) -> &[Pipeline] {
        &self.pipelines
    }

    /// The alternatives for a rule's logsource; empty when no entry applies.
    pub(crate) fn alternatives(&self, logsource: &LogSource) -> Vec<Alternative> {
        self.pipelines
            .iter()
            .flat_map(|p| &p.entries)
            .filter(|e| e.applies_to(logsource))
            .map(|e| Alternative {
                conditions: e.conditions.clone(),
                renames: Arc::clone(&e.renames),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ls(product: Option<&str>, category: Option<&str>, service: Option<&str>) -> LogSource {
        LogSource {
            product: product.map(Into::into),
            category: category.map(Into::into),
            service: service.map(Into::into),
            definition: None,
        }
    }

    #[test]
    fn builtin_pipelines_parse() {
        let set = PipelineSet::builtin().unwrap();
        assert_eq!(set.pipelines().len(), Pipeline::BUILTIN.len());
    }

    #[test]
    fn logsource_matching_follows_pysigma() {
        let p = Pipeline::from_yaml(
            "test.yml",
            "name: t\nlogsources:\n  a: {logsource: {product: windows, service: security}}\n  b: {logsource: {category: antivirus}}\n  c: {logsource: {product: Windows, category: process_creation}}\n",
        )
        .unwrap();
        // Entry fields left out match anything; given ones must be equal (any ASCII case).
        assert_eq!(
            p.entries_for(&ls(Some("windows"), None, Some("security"))),
            ["a"]
        );
        assert_eq!(
            p.entries_for(&ls(Some("windows"), Some("antivirus"), None)),
            ["b"]
        );
        assert_eq!(p.entries_for(&ls(None, Some("antivirus"), None)), ["b"]);
        assert_eq!(
            p.entries_for(&ls(Some("WINDOWS"), Some("process_creation"), None)),
            ["c"]
        );
        // A rule without a product does not satisfy an entry that requires one.
        assert!(
            p.entries_for(&ls(None, Some("process_creation"), None))
                .is_empty()
        );
        assert!(
            p.entries_for(&ls(Some("linux"), None, Some("security")))
                .is_empty()
        );
    }

    #[test]
    fn windows_process_creation_has_sysmon_and_security_alternatives() {
        let set = PipelineSet::new(vec![Pipeline::builtin("windows").unwrap()]);
        let alts = set.alternatives(&ls(Some("windows"), Some("process_creation"), None));
        assert_eq!(alts.len(), 2, "{alts:?}");
        let security = alts
            .iter()
            .find(|a| a.conditions.iter().any(|(_, v)| v == &["security"]))
            .unwrap();
        assert_eq!(security.renames["Image"], ["NewProcessName"]);
        assert_eq!(security.renames["ParentImage"], ["ParentProcessName"]);
    }
}
