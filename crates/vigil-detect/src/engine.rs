//! Rules compiled once, evaluated many times; loading a directory of rules.

use std::path::{Path, PathBuf};

use crate::condition::{self, Cond};
use crate::event::Event;
use crate::rule::{FieldSelection, Search, SigmaRule};
use crate::value::{CompileOptions, FieldMatcher};
use crate::{Error, Result};

#[derive(Debug, Clone)]
enum CompiledSearch {
    /// Every field matcher must match.
    All(Vec<FieldMatcher>),
    /// Any of the maps must match completely.
    Any(Vec<Vec<FieldMatcher>>),
}

impl CompiledSearch {
    fn is_match(&self, event: &dyn Event) -> bool {
        match self {
            CompiledSearch::All(fields) => fields.iter().all(|f| f.is_match(event)),
            CompiledSearch::Any(maps) => maps.iter().any(|m| m.iter().all(|f| f.is_match(event))),
        }
    }
}

/// A Sigma rule compiled into matchers.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    rule: SigmaRule,
    searches: Vec<CompiledSearch>,
    condition: Cond,
}

impl CompiledRule {
    /// Compiles a parsed rule: modifiers are applied, patterns and regular expressions built,
    /// the condition parsed and its identifiers resolved.
    pub fn compile(rule: SigmaRule, opts: &CompileOptions) -> Result<Self> {
        let name = rule.name();
        let compile_map = |sels: &[FieldSelection]| {
            sels.iter()
                .map(|s| FieldMatcher::compile(&name, s, s.field.is_none(), opts))
                .collect::<Result<Vec<_>>>()
        };
        let searches = rule
            .detection
            .searches
            .iter()
            .map(|(_, search)| match search {
                Search::Keywords(values) => {
                    let sel = FieldSelection {
                        field: None,
                        modifiers: Vec::new(),
                        values: values.clone(),
                    };
                    Ok(CompiledSearch::All(vec![FieldMatcher::compile(
                        &name, &sel, true, opts,
                    )?]))
                }
                Search::Map(sels) => Ok(CompiledSearch::All(compile_map(sels)?)),
                Search::AnyOf(maps) => Ok(CompiledSearch::Any(
                    maps.iter().map(|m| compile_map(m)).collect::<Result<_>>()?,
                )),
            })
            .collect::<Result<Vec<_>>>()?;
        let names: Vec<&str> = rule
            .detection
            .searches
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        let mut conditions = rule
            .detection
            .conditions
            .iter()
            .map(|c| {
                condition::parse(c, &names).map_err(|reason| Error::Condition {
                    rule: name.clone(),
                    condition: c.clone(),
                    reason,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let condition = if conditions.len() == 1 {
            conditions.remove(0)
        } else {
            Cond::Or(conditions)
        };
        Ok(CompiledRule {
            rule,
            searches,
            condition,
        })
    }

    /// Parses and compiles a rule from YAML text.
    pub fn from_yaml(text: &str, opts: &CompileOptions) -> Result<Self> {
        Self::compile(SigmaRule::from_yaml(text)?, opts)
    }

    /// The parsed rule: metadata, logsource, detection.
    pub fn rule(&self) -> &SigmaRule {
        &self.rule
    }

    /// Whether the event matches the rule's condition.
    pub fn is_match(&self, event: &dyn Event) -> bool {
        // Each search is evaluated at most once per event, however often the condition names it.
        let mut seen: Vec<Option<bool>> = vec![None; self.searches.len()];
        self.condition
            .eval(&mut |i| *seen[i].get_or_insert_with(|| self.searches[i].is_match(event)))
    }
}

/// A set of compiled rules evaluated together.
#[derive(Debug, Clone, Default)]
pub struct Ruleset {
    rules: Vec<CompiledRule>,
}

impl Ruleset {
    pub fn new(rules: Vec<CompiledRule>) -> Self {
        Ruleset { rules }
    }

    pub fn rules(&self) -> &[CompiledRule] {
        &self.rules
    }

    /// The rules the event matches, in ruleset order.
    pub fn matches<'a>(&'a self, event: &'a dyn Event) -> impl Iterator<Item = &'a CompiledRule> {
        self.rules.iter().filter(move |r| r.is_match(event))
    }
}

/// The outcome of loading a directory of rules: the good ones, and each bad one with why.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Rules that parsed and compiled, in path order.
    pub rules: Vec<CompiledRule>,
    /// One error per rejected file, each naming the file ([`Error::InFile`]).
    pub errors: Vec<Error>,
}

impl LoadReport {
    /// Rejections grouped by [`Error::kind`], most frequent first.
    pub fn rejection_reasons(&self) -> Vec<(String, Vec<&Error>)> {
        let mut groups: std::collections::BTreeMap<String, Vec<&Error>> = Default::default();
        for e in &self.errors {
            groups.entry(e.kind()).or_default().push(e);
        }
        let mut groups: Vec<_> = groups.into_iter().collect();
        groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
        groups
    }

    /// The loaded rules as a [`Ruleset`].
    pub fn into_ruleset(self) -> Ruleset {
        Ruleset::new(self.rules)
    }
}

/// Loads every `*.yml` / `*.yaml` file under `dir` (recursively, in path order). Bad rules are
/// reported in [`LoadReport::errors`] and skipped; only an unreadable `dir` itself fails.
pub fn load_dir(dir: &Path, opts: &CompileOptions) -> Result<LoadReport> {
    let mut files = Vec::new();
    collect(dir, &mut files, true)?;
    files.sort();
    let mut report = LoadReport::default();
    for path in files {
        match SigmaRule::from_file(&path)
            .and_then(|r| CompiledRule::compile(r, opts).map_err(|e| e.in_file(&path)))
        {
            Ok(rule) => report.rules.push(rule),
            Err(e) => report.errors.push(e),
        }
    }
    Ok(report)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>, top: bool) -> Result<()> {
    let io = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if top => return Err(io(e)),
        Err(_) => return Ok(()),
    };
    for entry in entries {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            collect(&path, out, false)?;
        } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
            out.push(path);
        }
    }
    Ok(())
}
