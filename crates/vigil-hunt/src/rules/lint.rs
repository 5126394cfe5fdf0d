//! `vigil rules lint`: every problem of a rule directory, each naming its file and rule.

use std::collections::BTreeMap;
use std::path::PathBuf;

use vigil_detect::{PipelineSet, Ruleset};

use super::{Document, Kind, RuleSource, in_context, load, read_documents};

/// How bad a finding is: errors make `vigil rules lint` exit 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The rule does not load, or breaks the pack (a duplicate id).
    Error,
    /// The rule loads but misses what a shared rule needs, or would never be evaluated.
    Warning,
}

/// One problem of one rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub path: PathBuf,
    /// `title (id)` of the rule, when the finding is about one rule of the file and the
    /// message does not name it already.
    pub rule: Option<String>,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{severity}: {}: ", self.path.display())?;
        if let Some(rule) = &self.rule {
            write!(f, "rule {rule}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// The outcome of [`lint`].
#[derive(Debug, Default)]
pub struct LintReport {
    /// By file (in the order given), errors first within a file.
    pub findings: Vec<Finding>,
    /// Files and YAML documents read.
    pub files: usize,
    pub documents: usize,
    /// Detection, correlation and filter rules the engine accepted.
    pub rules: usize,
    pub correlations: usize,
    pub filters: usize,
}

impl LintReport {
    pub fn errors(&self) -> usize {
        self.count(Severity::Error)
    }

    pub fn warnings(&self) -> usize {
        self.count(Severity::Warning)
    }

    fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }
}

/// Lints every rule of `sources`: what the engine rejects (errors, each with its reason),
/// duplicate ids (errors), missing `id`/`level`/`tags`/`description`, ids that are not
/// UUIDs, malformed tags and logsources `pipelines` does not map (warnings). Correlations
/// that are only a chain's input need no level, description or tags.
///
/// `context` (the built-in pack, for a user's rule directory) is loaded first with the
/// sources, as `vigil hunt` and `vigil serve` load them: the sources' filters and
/// correlations may name its rules, and an id it already has is a duplicate. Its own files
/// are not linted or counted.
pub fn lint(sources: &[RuleSource], context: &[RuleSource], pipelines: &PipelineSet) -> LintReport {
    let docs = read_documents(sources);
    let context_docs = read_documents(context);
    let loaded = load(context, sources);
    let mut findings: Vec<Finding> = Vec::new();

    for e in &loaded.errors {
        // Duplicate ids are reported below with every place that uses them.
        let duplicate_id = matches!(e.root(), vigil_detect::Error::Duplicate { what: "id", .. });
        if in_context(e, context) || duplicate_id {
            continue;
        }
        let (path, root) = match e {
            vigil_detect::Error::InFile { path, source } => (path.clone(), source.root()),
            other => (PathBuf::new(), other),
        };
        findings.push(Finding {
            severity: Severity::Error,
            path,
            rule: None,
            message: root.to_string(),
        });
    }

    let mut ids: BTreeMap<&str, Vec<&Document>> = BTreeMap::new();
    let chain_inputs = super::chain_inputs(&docs, &loaded.correlations);
    for (index, doc) in docs.iter().enumerate() {
        let mut warn = |message: String| {
            findings.push(Finding {
                severity: Severity::Warning,
                path: doc.path.clone(),
                rule: Some(doc.label()),
                message,
            })
        };
        if doc.title.as_deref().is_none_or(|t| t.trim().is_empty()) {
            warn("missing `title`".into());
        }
        match doc.id.as_deref() {
            None => warn("missing `id` (a UUID that stays the same across versions)".into()),
            Some(id) => {
                if !is_uuid(id) {
                    warn(format!("id `{id}` is not a UUID"));
                }
                ids.entry(id).or_default().push(doc);
            }
        }
        for (field, re) in regexes(&doc.doc) {
            if nests_unbounded_repetition(&re) {
                warn(format!(
                    "field `{field}`: regex `{re}` repeats a repetition without bound (like \
                     `(a+)+`): harmless here (Rust's regex runs in linear time) but \
                     catastrophic backtracking where the rule is converted for a backtracking \
                     engine (PCRE, Java, Python)"
                ));
            }
        }
        if doc.kind == Kind::Filter || chain_inputs.contains(&index) {
            continue;
        }
        if doc.doc.get("level").is_none() {
            warn("missing `level` (hunts treat it as informational)".into());
        }
        if doc.doc.get("description").is_none() {
            warn("missing `description`".into());
        }
        let tags: Vec<&str> = doc
            .doc
            .get("tags")
            .and_then(|t| t.as_sequence())
            .map(|s| s.iter().filter_map(|t| t.as_str()).collect())
            .unwrap_or_default();
        if tags.is_empty() {
            warn(
                "missing `tags` (ATT&CK tactic and technique, e.g. attack.execution, attack.t1059)"
                    .into(),
            );
        }
        for tag in tags {
            if !is_tag(tag) {
                warn(format!(
                    "tag `{tag}` is not `namespace.name` in lower case (attack.t1059.001)"
                ));
            }
        }
    }

    for doc in &context_docs {
        if let Some(id) = doc.id.as_deref()
            && let Some(docs) = ids.get_mut(id)
        {
            docs.insert(0, doc);
        }
    }
    for (id, docs) in &ids {
        if docs.len() < 2 {
            continue;
        }
        let places: Vec<String> = docs
            .iter()
            .map(|d| {
                format!(
                    "{} ({})",
                    d.path.display(),
                    d.title.as_deref().unwrap_or("?")
                )
            })
            .collect();
        let ours = docs
            .iter()
            .filter(|d| !context.iter().any(|c| c.path == d.path));
        for doc in ours {
            findings.push(Finding {
                severity: Severity::Error,
                path: doc.path.clone(),
                rule: Some(doc.label()),
                message: format!("duplicate id `{id}`: used by {}", places.join(", ")),
            });
        }
    }

    // What the sources added to the context's.
    let base = match context.is_empty() {
        true => (0, 0, 0),
        false => {
            let alone = load(context, &[]);
            (
                alone.rules.len(),
                alone.correlations.len(),
                alone.filters.len(),
            )
        }
    };
    let counts = (
        loaded.rules.len().saturating_sub(base.0),
        loaded.correlations.len().saturating_sub(base.1),
        loaded.filters.len().saturating_sub(base.2),
    );
    let ruleset = Ruleset::with_pipelines(loaded.rules, pipelines);
    for rule in ruleset.unmapped() {
        let r = rule.rule();
        let doc = docs.iter().find(|d| {
            d.kind == Kind::Detection
                && match (&r.id, &d.id) {
                    (Some(a), Some(b)) => a == b,
                    _ => d.title.as_deref() == Some(r.title.as_str()),
                }
        });
        if doc.is_none() && !context.is_empty() {
            continue; // a rule of the context, not linted
        }
        let ls = &r.logsource;
        let parts: Vec<String> = [
            ("product", &ls.product),
            ("category", &ls.category),
            ("service", &ls.service),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}: {v}")))
        .collect();
        findings.push(Finding {
            severity: Severity::Warning,
            path: doc.map(|d| d.path.clone()).unwrap_or_default(),
            rule: Some(doc.map_or_else(|| r.title.clone(), Document::label)),
            message: format!(
                "logsource {{{}}} is mapped by no processing pipeline, so the rule is never \
                 evaluated (add a pipeline entry or fix the logsource)",
                parts.join(", ")
            ),
        });
    }

    // By file in the order given, errors first; stable, so each file keeps its own order.
    let order: BTreeMap<&PathBuf, usize> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| (&s.path, i))
        .rev()
        .collect();
    findings.sort_by_key(|f| {
        (
            order.get(&f.path).copied().unwrap_or(usize::MAX),
            f.severity,
        )
    });
    LintReport {
        findings,
        files: sources.len(),
        documents: docs.len(),
        rules: counts.0,
        correlations: counts.1,
        filters: counts.2,
    }
}

/// `(field, regex)` of every `|re` value of a detection or filter.
fn regexes(doc: &serde_yaml::Value) -> Vec<(String, String)> {
    fn selection(v: &serde_yaml::Value, out: &mut Vec<(String, String)>) {
        match v {
            serde_yaml::Value::Sequence(items) => items.iter().for_each(|i| selection(i, out)),
            serde_yaml::Value::Mapping(map) => {
                for (k, v) in map {
                    let Some(key) = k.as_str() else { continue };
                    let mut parts = key.split('|');
                    let field = parts.next().unwrap_or_default();
                    if !parts.any(|m| m == "re") {
                        continue;
                    }
                    let values = match v {
                        serde_yaml::Value::Sequence(items) => items.iter().collect(),
                        other => vec![other],
                    };
                    for re in values.into_iter().filter_map(|v| v.as_str()) {
                        out.push((field.to_string(), re.to_string()));
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for section in ["detection", "filter"] {
        if let Some(serde_yaml::Value::Mapping(map)) = doc.get(section) {
            for (k, v) in map {
                if k.as_str() != Some("condition") {
                    selection(v, &mut out);
                }
            }
        }
    }
    out
}

/// Whether an unbounded repetition (`*`, `+`, `{n,}`) repeats something that can itself
/// match a run of any length, so one input splits across iterations in exponentially many
/// ways: `(a+)+`, `(\w+\s?)*`, `(a|b+)*`. Separated shapes such as `(-\w+\s+)*` are not
/// flagged. A heuristic for the classic catastrophic-backtracking shape, not a proof either
/// way; regexes that do not parse are the engine's to report.
fn nests_unbounded_repetition(re: &str) -> bool {
    use regex_syntax::ast::{Ast, RepetitionKind, RepetitionRange};
    fn unbounded(kind: &RepetitionKind) -> bool {
        matches!(
            kind,
            RepetitionKind::ZeroOrMore
                | RepetitionKind::OneOrMore
                | RepetitionKind::Range(RepetitionRange::AtLeast(_))
        )
    }
    fn optional(ast: &Ast) -> bool {
        match ast {
            Ast::Repetition(r) => matches!(
                r.op.kind,
                RepetitionKind::ZeroOrMore
                    | RepetitionKind::ZeroOrOne
                    | RepetitionKind::Range(
                        RepetitionRange::AtLeast(0)
                            | RepetitionRange::Exactly(0)
                            | RepetitionRange::Bounded(0, _)
                    )
            ),
            Ast::Group(g) => optional(&g.ast),
            Ast::Empty(_) => true,
            _ => false,
        }
    }
    /// Whether `ast` can match runs of varying length made of its own repetitions.
    fn stretchy(ast: &Ast) -> bool {
        match ast {
            Ast::Repetition(r) => unbounded(&r.op.kind) || stretchy(&r.ast),
            Ast::Group(g) => stretchy(&g.ast),
            Ast::Alternation(a) => a.asts.iter().any(stretchy),
            Ast::Concat(c) => {
                let mandatory: Vec<&Ast> = c.asts.iter().filter(|a| !optional(a)).collect();
                match mandatory.as_slice() {
                    [] => c.asts.iter().any(stretchy),
                    [one] => stretchy(one),
                    _ => false,
                }
            }
            _ => false,
        }
    }
    fn walk(ast: &Ast) -> bool {
        match ast {
            Ast::Repetition(r) => (unbounded(&r.op.kind) && stretchy(&r.ast)) || walk(&r.ast),
            Ast::Group(g) => walk(&g.ast),
            Ast::Concat(c) => c.asts.iter().any(walk),
            Ast::Alternation(a) => a.asts.iter().any(walk),
            _ => false,
        }
    }
    regex_syntax::ast::parse::Parser::new()
        .parse(re)
        .is_ok_and(|ast| walk(&ast))
}

/// A UUID as Sigma writes ids: 8-4-4-4-12 hex digits.
fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `namespace.name`, lower case, as the Sigma tag specification writes them.
fn is_tag(tag: &str) -> bool {
    let Some((ns, name)) = tag.split_once('.') else {
        return false;
    };
    let ok = |s: &str, extra: &[u8]| {
        !s.is_empty()
            && s.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || b"_-".contains(&b)
                    || extra.contains(&b)
            })
    };
    ok(ns, b"") && ok(name, b".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_unbounded_repetitions_are_found() {
        let flagged = [
            "(a+)+$",
            "(a*)*",
            "((a+){2})+",
            "(?:\\w+\\s?)*$",
            "(a|b+)*",
            "(x*y*)+",
        ];
        for re in flagged {
            assert!(nests_unbounded_repetition(re), "{re}");
        }
        let fine = [
            "a+b+",
            "(ab){1,5}",
            "(a+){3}",
            "[a-z]+\\.exe",
            "(",
            "(-\\w+\\s+)*",
            "(sudo\\s+(-\\S+\\s+)*)?",
            "(x*y)*",
        ];
        for re in fine {
            assert!(!nests_unbounded_repetition(re), "{re}");
        }
    }

    #[test]
    fn tags_and_ids() {
        assert!(is_tag("attack.t1059.001"));
        assert!(is_tag("cve.2021-44228"));
        assert!(is_tag("detection.emerging_threats"));
        assert!(!is_tag("attack.T1059"));
        assert!(!is_tag("attack"));
        assert!(!is_tag(".x"));
        assert!(is_uuid("5e2c0d0a-1111-4aaa-8bbb-000000000001"));
        assert!(!is_uuid("vigil_ssh_auth_failure"));
    }
}
