//! `vigil rules lint` and `vigil rules test`: checking a directory of Sigma rules before
//! hunting or alerting with it.
//!
//! [`lint`] loads every rule as the engine does and reports each rejected one (file, rule,
//! reason), then what an experienced Sigma author expects a linter to catch: missing `id`,
//! `title`, `level` or `tags`, ids that are not UUIDs, duplicate ids, logsources no
//! processing pipeline maps (rules that would never be evaluated), and regexes shaped for
//! catastrophic backtracking (`(a+)+`: linear time here, but not where the rule is
//! converted for other engines). A regex too big to compile is rejected by the engine.
//! [`test`] runs the test events rules carry under `x-vigil-tests` (see
//! `crates/vigil-detect/rules/README.md`): each true positive must match the rule, each true
//! negative must not, and each correlation sequence must fire the expected number of times.
//!
//! ```
//! use vigil_hunt::rules::{self, RuleSource};
//!
//! let rule = "title: Whoami\nid: 5e2c0d0a-1111-4aaa-8bbb-000000000001\nlevel: low\n\
//!     description: whoami run\ntags: [attack.discovery, attack.t1033]\n\
//!     logsource: {product: linux, category: process_creation}\n\
//!     detection: {sel: {CommandLine|contains: whoami}, condition: sel}\n\
//!     x-vigil-tests:\n  common: {event.category: process, event.type: start, host.os.type: linux}\n\
//!     \x20 true_positives: [{process.command_line: whoami}]\n\
//!     \x20 true_negatives: [{process.command_line: id}]\n";
//! let sources = vec![RuleSource::new("whoami.yml", rule)];
//! let pipelines = vigil_hunt::pipelines("all")?;
//! // Checked on their own; `rules::builtin_sources()` as the context resolves references
//! // to built-in rules, as `vigil hunt` and `vigil serve` do.
//! let lint = rules::lint(&sources, &[], &pipelines);
//! assert_eq!((lint.errors(), lint.warnings()), (0, 0));
//! let report = rules::test(&sources, &[], &pipelines);
//! assert_eq!((report.passed(), report.failed()), (1, 0));
//! # Ok::<(), vigil_hunt::Error>(())
//! ```

mod lint;
mod test;

use std::path::{Path, PathBuf};

pub use lint::{Finding, LintReport, Severity, lint};
pub use test::{RuleOutcome, RuleTest, TestReport, test};

use crate::{Error, Result};

/// One rule file's text and the path it is reported under.
#[derive(Debug, Clone)]
pub struct RuleSource {
    pub path: PathBuf,
    pub text: String,
}

impl RuleSource {
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        RuleSource {
            path: path.into(),
            text: text.into(),
        }
    }
}

/// The built-in pack's files, named `builtin:rules/<path>`.
pub fn builtin_sources() -> Vec<RuleSource> {
    vigil_detect::BUILTIN_RULE_FILES
        .iter()
        .map(|(path, text)| RuleSource::new(format!("builtin:rules/{path}"), *text))
        .collect()
}

/// Every `*.yml`/`*.yaml` file under each directory (or each file given), in path order.
/// A directory that cannot be read is an error; a file that cannot be read (or is not
/// UTF-8) is returned in the second list and the others are still read.
pub fn read_sources(paths: &[PathBuf]) -> Result<(Vec<RuleSource>, Vec<Error>)> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_file() {
            files.push(path.clone());
        } else {
            walk(path, &mut files)?;
        }
    }
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    for path in files {
        match std::fs::read_to_string(&path) {
            Ok(text) => sources.push(RuleSource { path, text }),
            Err(source) => errors.push(Error::Io { path, source }),
        }
    }
    Ok((sources, errors))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            walk(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("yml") || e.eq_ignore_ascii_case("yaml"))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// The YAML documents of a rule file, or the YAML error.
fn documents(text: &str) -> Result<Vec<serde_yaml::Value>, serde_yaml::Error> {
    use serde::Deserialize;
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value = serde_yaml::Value::deserialize(doc)?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// What kind of Sigma document a rule file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Detection,
    Correlation,
    Filter,
}

/// What lint and test need of one document, read from the YAML itself.
#[derive(Debug, Clone)]
struct Document {
    path: PathBuf,
    kind: Kind,
    title: Option<String>,
    id: Option<String>,
    doc: serde_yaml::Value,
}

impl Document {
    /// `title (id)`, or what of it there is.
    fn label(&self) -> String {
        match (&self.title, &self.id) {
            (Some(t), Some(i)) => format!("{t} ({i})"),
            (Some(t), None) => t.clone(),
            (None, Some(i)) => format!("<untitled> ({i})"),
            (None, None) => "<untitled>".into(),
        }
    }
}

/// The documents of every source that parses as YAML (the engine reports the others).
fn read_documents(sources: &[RuleSource]) -> Vec<Document> {
    let mut out = Vec::new();
    for source in sources {
        let Ok(docs) = documents(&source.text) else {
            continue;
        };
        for doc in docs {
            let text = |k: &str| doc.get(k).and_then(|v| v.as_str()).map(String::from);
            let kind = if doc.get("correlation").is_some() {
                Kind::Correlation
            } else if doc.get("filter").is_some() {
                Kind::Filter
            } else {
                Kind::Detection
            };
            out.push(Document {
                path: source.path.clone(),
                kind,
                title: text("title"),
                id: text("id"),
                doc,
            });
        }
    }
    out
}

/// The documents that are correlations only a chain's input (see
/// [`vigil_detect::chain_inputs`]): no level, tags or tests are asked of them.
fn chain_inputs(
    docs: &[Document],
    loaded: &[vigil_detect::CorrelationRule],
) -> std::collections::HashSet<usize> {
    let inputs = vigil_detect::chain_inputs(loaded);
    let input = |d: &Document| {
        loaded
            .iter()
            .zip(&inputs)
            .any(|(c, &input)| input && same(d, c.id.as_deref(), &c.title))
    };
    (0..docs.len())
        .filter(|&i| docs[i].kind == Kind::Correlation && input(&docs[i]))
        .collect()
}

/// Whether `doc` is the rule with this id (or, without an id, this title).
fn same(doc: &Document, id: Option<&str>, title: &str) -> bool {
    match &doc.id {
        Some(d) => id == Some(d.as_str()),
        None => doc.title.as_deref() == Some(title),
    }
}

/// Loads `context` then `sources` as one set with the engine, as `vigil hunt` and
/// `vigil serve` load the built-in pack and rule directories: references resolve across
/// both, and a repeated id is an error for the later rule.
fn load(context: &[RuleSource], sources: &[RuleSource]) -> vigil_detect::LoadReport {
    vigil_detect::load_sources(
        context
            .iter()
            .chain(sources)
            .map(|s| (s.path.as_path(), s.text.as_str())),
        &vigil_detect::CompileOptions::default(),
    )
}

/// Whether an error of [`load`] is about a file of `context` (which is not checked).
fn in_context(error: &vigil_detect::Error, context: &[RuleSource]) -> bool {
    matches!(error, vigil_detect::Error::InFile { path, .. } if context.iter().any(|c| &c.path == path))
}
