//! Sigma filter rules (filters specification v2): a selection and condition that, when they
//! match an event, suppress the matches of the rules the filter names.
//!
//! A filter is attached to each rule it names with [`crate::CompiledRule::add_filter`]; from
//! then on the rule matches an event only when its own condition holds and no attached
//! filter's does (the rule's condition becomes `condition and not filter`). Filters are
//! evaluated against the same event the rule sees, field renames of a pipeline included.

use serde_yaml::Value as Yaml;

use crate::engine::CompiledRule;
use crate::rule::{Detection, LogSource, SigmaRule, parse_detection, rule_name};
use crate::value::CompileOptions;
use crate::{Error, Result};

/// A parsed and compiled Sigma filter rule.
#[derive(Debug, Clone)]
pub struct FilterRule {
    pub title: String,
    pub id: Option<String>,
    pub logsource: LogSource,
    /// The rules it applies to, by `id` or `name`, as written.
    pub rules: Vec<String>,
    /// The filter's selection and condition, compiled as a rule of their own.
    matcher: CompiledRule,
}

/// Whether a YAML document is a filter rule.
pub(crate) fn is_filter(doc: &Yaml) -> bool {
    doc.get("filter").is_some()
}

impl FilterRule {
    /// Parses and compiles a filter rule from YAML text.
    pub fn from_yaml(text: &str, opts: &CompileOptions) -> Result<Self> {
        Self::from_value(serde_yaml::from_str(text)?, opts)
    }

    /// Parses and compiles a filter rule from one YAML document.
    pub fn from_value(doc: Yaml, opts: &CompileOptions) -> Result<Self> {
        let title = match doc.get("title") {
            Some(Yaml::String(t)) if !t.trim().is_empty() => t.clone(),
            _ => {
                return Err(Error::InvalidRule {
                    rule: "<untitled>".into(),
                    reason: "missing or empty `title`".into(),
                });
            }
        };
        let id = doc.get("id").and_then(|v| v.as_str()).map(String::from);
        let name = rule_name(&title, id.as_deref());
        let fail = |reason: &str| Error::InvalidRule {
            rule: name.clone(),
            reason: reason.into(),
        };
        let logsource: LogSource = match doc.get("logsource") {
            Some(v) => serde_yaml::from_value(v.clone())
                .map_err(|e| fail(&format!("bad `logsource`: {e}")))?,
            None => return Err(fail("missing `logsource`")),
        };
        let Some(Yaml::Mapping(body)) = doc.get("filter") else {
            return Err(fail("`filter` must be a map"));
        };
        let mut body = body.clone();
        let rules: Vec<String> = match body.remove("rules") {
            Some(Yaml::Sequence(items)) => items
                .iter()
                .map(|v| match v {
                    Yaml::String(s) => Ok(s.clone()),
                    _ => Err(fail("`filter.rules` must list rule ids or names")),
                })
                .collect::<Result<_>>()?,
            Some(Yaml::String(s)) => vec![s],
            Some(_) => return Err(fail("`filter.rules` must list rule ids or names")),
            None => return Err(fail("missing `filter.rules`")),
        };
        if rules.is_empty() {
            return Err(fail("`filter.rules` is empty"));
        }
        if body.len() < 2 {
            return Err(fail("`filter` needs a selection and a `condition`"));
        }
        let detection: Detection = parse_detection(&name, body)?;
        let matcher = CompiledRule::compile(
            SigmaRule {
                title: title.clone(),
                id: id.clone(),
                name: None,
                status: None,
                level: None,
                description: None,
                author: None,
                tags: Vec::new(),
                logsource: logsource.clone(),
                detection,
                falsepositives: Vec::new(),
                references: Vec::new(),
            },
            opts,
        )?;
        Ok(FilterRule {
            title,
            id,
            logsource,
            rules,
            matcher,
        })
    }

    /// `title (id)`, the way errors name this filter.
    pub fn display_name(&self) -> String {
        rule_name(&self.title, self.id.as_deref())
    }

    /// Whether the filter's condition holds for the event (so it suppresses its rules).
    pub fn is_match(&self, event: &dyn crate::Event) -> bool {
        self.matcher.is_match(event)
    }

    pub(crate) fn is_match_prepared(&self, event: &crate::event::Prepared<'_, '_>) -> bool {
        self.matcher.is_match_prepared(event)
    }

    /// Whether this filter names `rule` (by id or `name`).
    pub fn applies_to(&self, rule: &SigmaRule) -> bool {
        self.rules.iter().any(|r| {
            rule.id.as_deref() == Some(r.as_str()) || rule.name.as_deref() == Some(r.as_str())
        })
    }

    /// Whether every logsource field the filter sets equals the rule's (case-insensitive).
    pub fn logsource_fits(&self, rule: &LogSource) -> bool {
        let fits = |f: &Option<String>, r: &Option<String>| match f {
            None => true,
            Some(f) => r.as_deref().is_some_and(|r| r.eq_ignore_ascii_case(f)),
        };
        fits(&self.logsource.product, &rule.product)
            && fits(&self.logsource.category, &rule.category)
            && fits(&self.logsource.service, &rule.service)
    }
}
