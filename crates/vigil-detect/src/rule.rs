//! The Sigma rule model and its YAML parsing (SigmaHQ specification, rules format).

use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde_yaml::Value as Yaml;

use crate::{Error, Result};

/// A parsed (not yet compiled) Sigma detection rule.
#[derive(Debug, Clone, PartialEq)]
pub struct SigmaRule {
    pub title: String,
    /// The rule's UUID, as written.
    pub id: Option<String>,
    /// `name:`, the human-readable handle correlation and filter rules may refer to it by.
    pub name: Option<String>,
    pub status: Option<Status>,
    pub level: Option<Level>,
    pub description: Option<String>,
    pub author: Option<String>,
    pub tags: Vec<String>,
    pub logsource: LogSource,
    pub detection: Detection,
    pub falsepositives: Vec<String>,
    pub references: Vec<String>,
}

/// `status:` of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Stable,
    Test,
    Experimental,
    Deprecated,
    Unsupported,
}

/// `level:` of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

/// `logsource:` of a rule. Mapping it to real log sources is a pipeline's job, not this crate's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct LogSource {
    pub product: Option<String>,
    pub category: Option<String>,
    pub service: Option<String>,
    pub definition: Option<String>,
}

/// `detection:`: the named search identifiers and the condition over them.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Search identifiers in file order.
    pub searches: Vec<(String, Search)>,
    /// One or more conditions; a list means any of them (deprecated form).
    pub conditions: Vec<String>,
}

/// The body of one search identifier.
#[derive(Debug, Clone, PartialEq)]
pub enum Search {
    /// A list of plain values searched anywhere in the event (OR).
    Keywords(Vec<SigmaValue>),
    /// A map: every field selection must match (AND).
    Map(Vec<FieldSelection>),
    /// A list of maps: any of them must match (OR).
    AnyOf(Vec<Vec<FieldSelection>>),
}

/// `Field|mod1|mod2: value(s)` inside a search map.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldSelection {
    /// `None` for a keyword selection written as `'|all': [...]`.
    pub field: Option<String>,
    pub modifiers: Vec<Modifier>,
    /// Several values mean any of them, or all of them with [`Modifier::All`].
    pub values: Vec<SigmaValue>,
}

/// A scalar value from a rule.
#[derive(Debug, Clone, PartialEq)]
pub enum SigmaValue {
    String(String),
    /// A YAML number, kept as written (`4688`, `0x10`, `1.5`).
    Number(String),
    Bool(bool),
    Null,
}

impl fmt::Display for SigmaValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SigmaValue::String(s) | SigmaValue::Number(s) => f.write_str(s),
            SigmaValue::Bool(b) => write!(f, "{b}"),
            SigmaValue::Null => f.write_str("null"),
        }
    }
}

/// Value modifiers (`Field|modifier`), as named in the Sigma specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Modifier {
    Contains,
    StartsWith,
    EndsWith,
    All,
    Re,
    /// `i` / `ignorecase` (only after `re`).
    ReIgnoreCase,
    /// `m` / `multiline` (only after `re`).
    ReMultiLine,
    /// `s` / `dotall` (only after `re`).
    ReDotAll,
    Cidr,
    Base64,
    Base64Offset,
    /// `wide` / `utf16le`.
    Utf16Le,
    Utf16Be,
    /// UTF-16 little endian with a byte order mark.
    Utf16,
    Windash,
    Exists,
    FieldRef,
    Expand,
    Lt,
    Lte,
    Gt,
    Gte,
    Cased,
}

impl Modifier {
    /// Every modifier name this engine supports.
    pub const SUPPORTED: &'static [&'static str] = &[
        "contains",
        "startswith",
        "endswith",
        "all",
        "re",
        "i",
        "ignorecase",
        "m",
        "multiline",
        "s",
        "dotall",
        "cidr",
        "base64",
        "base64offset",
        "wide",
        "utf16le",
        "utf16be",
        "utf16",
        "windash",
        "exists",
        "fieldref",
        "expand",
        "lt",
        "lte",
        "gt",
        "gte",
        "cased",
    ];

    /// The modifier's name as written in rules (the canonical one for aliases).
    pub fn name(self) -> &'static str {
        use Modifier::*;
        match self {
            Contains => "contains",
            StartsWith => "startswith",
            EndsWith => "endswith",
            All => "all",
            Re => "re",
            ReIgnoreCase => "i",
            ReMultiLine => "m",
            ReDotAll => "s",
            Cidr => "cidr",
            Base64 => "base64",
            Base64Offset => "base64offset",
            Utf16Le => "utf16le",
            Utf16Be => "utf16be",
            Utf16 => "utf16",
            Windash => "windash",
            Exists => "exists",
            FieldRef => "fieldref",
            Expand => "expand",
            Lt => "lt",
            Lte => "lte",
            Gt => "gt",
            Gte => "gte",
            Cased => "cased",
        }
    }

    /// Parses one modifier name; `None` when unsupported.
    pub fn parse(name: &str) -> Option<Self> {
        use Modifier::*;
        Some(match name {
            "contains" => Contains,
            "startswith" => StartsWith,
            "endswith" => EndsWith,
            "all" => All,
            "re" => Re,
            "i" | "ignorecase" => ReIgnoreCase,
            "m" | "multiline" => ReMultiLine,
            "s" | "dotall" => ReDotAll,
            "cidr" => Cidr,
            "base64" => Base64,
            "base64offset" => Base64Offset,
            "wide" | "utf16le" => Utf16Le,
            "utf16be" => Utf16Be,
            "utf16" => Utf16,
            "windash" => Windash,
            "exists" => Exists,
            "fieldref" => FieldRef,
            "expand" => Expand,
            "lt" => Lt,
            "lte" => Lte,
            "gt" => Gt,
            "gte" => Gte,
            "cased" => Cased,
            _ => return None,
        })
    }
}

/// The top-level keys this crate reads; the others (`date`, `modified`, `related`, `fields`,
/// custom attributes ...) are accepted and ignored, as the specification allows.
#[derive(Deserialize)]
struct RawRule {
    title: Option<Yaml>,
    id: Option<Yaml>,
    name: Option<Yaml>,
    status: Option<Yaml>,
    level: Option<Yaml>,
    description: Option<String>,
    author: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    logsource: Option<LogSource>,
    detection: Option<Yaml>,
    falsepositives: Option<Yaml>,
    references: Option<Yaml>,
    correlation: Option<Yaml>,
    filter: Option<Yaml>,
}

/// How a rule is named in errors: `title (id)`.
pub(crate) fn rule_name(title: &str, id: Option<&str>) -> String {
    match id {
        Some(id) => format!("`{title}` ({id})"),
        None => format!("`{title}`"),
    }
}

impl SigmaRule {
    /// Reads and parses one rule file; errors name the file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml(&text).map_err(|e| e.in_file(path))
    }

    /// Parses one rule from YAML text.
    pub fn from_yaml(text: &str) -> Result<Self> {
        Self::from_raw(serde_yaml::from_str(text)?)
    }

    /// Parses one rule from an already parsed YAML document (one of a multi-document file).
    pub fn from_value(value: Yaml) -> Result<Self> {
        Self::from_raw(serde_yaml::from_value(value)?)
    }

    fn from_raw(raw: RawRule) -> Result<Self> {
        let title = match raw.title {
            Some(Yaml::String(t)) if !t.trim().is_empty() => t,
            Some(_) => {
                return Err(invalid(
                    "<untitled>",
                    None,
                    "`title` must be a non-empty string",
                ));
            }
            None => return Err(invalid("<untitled>", None, "missing `title`")),
        };
        let id = match raw.id {
            Some(Yaml::String(id)) => Some(id),
            None | Some(Yaml::Null) => None,
            Some(_) => return Err(invalid(&title, None, "`id` must be a string")),
        };
        let name = rule_name(&title, id.as_deref());
        let fail = |reason: String| Error::InvalidRule {
            rule: name.clone(),
            reason,
        };
        if raw.correlation.is_some() {
            return Err(fail(
                "a correlation rule is not a detection rule (see `CorrelationRule`)".into(),
            ));
        }
        if raw.filter.is_some() {
            return Err(fail(
                "a filter rule is not a detection rule (see `FilterRule`)".into(),
            ));
        }
        let rule_handle = match raw.name {
            None | Some(Yaml::Null) => None,
            Some(Yaml::String(n)) if !n.trim().is_empty() => Some(n),
            Some(_) => return Err(fail("`name` must be a non-empty string".into())),
        };
        let status = optional_enum::<Status>(raw.status, "status").map_err(&fail)?;
        let level = optional_enum::<Level>(raw.level, "level").map_err(&fail)?;
        let logsource = raw
            .logsource
            .ok_or_else(|| fail("missing `logsource`".into()))?;
        let detection = match raw.detection {
            Some(Yaml::Mapping(map)) => parse_detection(&name, map)?,
            Some(_) => return Err(fail("`detection` must be a map".into())),
            None => return Err(fail("missing `detection`".into())),
        };
        Ok(SigmaRule {
            title,
            id,
            name: rule_handle,
            status,
            level,
            description: raw.description,
            author: raw.author,
            tags: raw.tags,
            logsource,
            detection,
            falsepositives: string_list(raw.falsepositives, "falsepositives").map_err(&fail)?,
            references: string_list(raw.references, "references").map_err(&fail)?,
        })
    }

    /// `title (id)`, the way errors name this rule.
    pub fn name(&self) -> String {
        rule_name(&self.title, self.id.as_deref())
    }
}

fn invalid(title: &str, id: Option<&str>, reason: &str) -> Error {
    Error::InvalidRule {
        rule: rule_name(title, id),
        reason: reason.into(),
    }
}

fn optional_enum<T: serde::de::DeserializeOwned>(
    value: Option<Yaml>,
    key: &str,
) -> Result<Option<T>, String> {
    match value {
        None | Some(Yaml::Null) => Ok(None),
        Some(v) => {
            let shown = scalar_text(&v).unwrap_or_else(|| "<not a scalar>".into());
            serde_yaml::from_value(v)
                .map(Some)
                .map_err(|_| format!("unknown `{key}` value `{shown}`"))
        }
    }
}

/// `falsepositives` and `references` are lists of strings, sometimes a single string.
fn string_list(value: Option<Yaml>, key: &str) -> Result<Vec<String>, String> {
    match value {
        None | Some(Yaml::Null) => Ok(Vec::new()),
        Some(Yaml::Sequence(items)) => items
            .iter()
            .map(|v| scalar_text(v).ok_or_else(|| format!("`{key}` must list strings")))
            .collect(),
        Some(v) => scalar_text(&v)
            .map(|s| vec![s])
            .ok_or_else(|| format!("`{key}` must be a list of strings")),
    }
}

fn scalar_text(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(crate) fn parse_detection(rule: &str, map: serde_yaml::Mapping) -> Result<Detection> {
    let fail = |reason: String| Error::InvalidRule {
        rule: rule.to_string(),
        reason,
    };
    let mut searches = Vec::new();
    let mut conditions = Vec::new();
    for (key, value) in map {
        let Yaml::String(key) = key else {
            return Err(fail("detection keys must be strings".into()));
        };
        match key.as_str() {
            "condition" => {
                conditions = match value {
                    Yaml::String(c) => vec![c],
                    Yaml::Sequence(items) => items
                        .into_iter()
                        .map(|c| match c {
                            Yaml::String(c) => Ok(c),
                            _ => Err(fail("`condition` must be a string".into())),
                        })
                        .collect::<Result<_>>()?,
                    _ => return Err(fail("`condition` must be a string".into())),
                }
            }
            // Deprecated aggregation window; aggregations themselves are rejected by the
            // condition parser.
            "timeframe" => {}
            _ => {
                let search = parse_search(rule, &key, value)?;
                searches.push((key, search));
            }
        }
    }
    if conditions.is_empty() {
        return Err(fail("missing `detection.condition`".into()));
    }
    if searches.is_empty() {
        return Err(fail("`detection` has no search identifiers".into()));
    }
    Ok(Detection {
        searches,
        conditions,
    })
}

fn parse_search(rule: &str, name: &str, value: Yaml) -> Result<Search> {
    let fail = |reason: &str| Error::InvalidRule {
        rule: rule.to_string(),
        reason: format!("search identifier `{name}`: {reason}"),
    };
    match value {
        Yaml::Mapping(map) => Ok(Search::Map(parse_map(rule, name, map)?)),
        Yaml::Sequence(items) if items.is_empty() => Err(fail("empty list")),
        Yaml::Sequence(items) => {
            if items.iter().all(|i| matches!(i, Yaml::Mapping(_))) {
                let maps = items
                    .into_iter()
                    .map(|i| match i {
                        Yaml::Mapping(m) => parse_map(rule, name, m),
                        _ => unreachable!("checked above"),
                    })
                    .collect::<Result<_>>()?;
                Ok(Search::AnyOf(maps))
            } else {
                let values = items
                    .iter()
                    .map(|i| {
                        scalar(i).ok_or_else(|| fail("a list must hold only maps or only values"))
                    })
                    .collect::<Result<_>>()?;
                Ok(Search::Keywords(values))
            }
        }
        other => match scalar(&other) {
            Some(SigmaValue::Null) | None => {
                Err(fail("must be a map, a list of maps or a list of values"))
            }
            Some(v) => Ok(Search::Keywords(vec![v])),
        },
    }
}

fn parse_map(rule: &str, name: &str, map: serde_yaml::Mapping) -> Result<Vec<FieldSelection>> {
    let fail = |reason: String| Error::InvalidRule {
        rule: rule.to_string(),
        reason: format!("search identifier `{name}`: {reason}"),
    };
    if map.is_empty() {
        return Err(fail("empty map".into()));
    }
    let mut selections = Vec::with_capacity(map.len());
    for (key, value) in map {
        let key = match key {
            Yaml::String(k) => k,
            other => {
                scalar_text(&other).ok_or_else(|| fail("field names must be strings".into()))?
            }
        };
        let mut parts = key.split('|');
        let field = parts.next().unwrap_or_default();
        let field = (!field.is_empty()).then(|| field.to_string());
        let modifiers = parts
            .map(|m| {
                Modifier::parse(m).ok_or_else(|| Error::UnsupportedModifier {
                    rule: rule.to_string(),
                    field: key.clone(),
                    modifier: m.to_string(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let values = match &value {
            Yaml::Sequence(items) if items.is_empty() => {
                return Err(fail(format!("field `{key}` has an empty value list")));
            }
            Yaml::Sequence(items) => items
                .iter()
                .map(|i| {
                    scalar(i).ok_or_else(|| fail(format!("field `{key}`: values must be scalars")))
                })
                .collect::<Result<_>>()?,
            v => {
                vec![scalar(v).ok_or_else(|| {
                    fail(format!("field `{key}`: value must be a scalar or a list"))
                })?]
            }
        };
        // The specification forbids `all` on a single value (some backends cannot express it).
        if modifiers.contains(&Modifier::All) && values.len() < 2 {
            return Err(fail(format!("field `{key}`: `all` needs a list of values")));
        }
        selections.push(FieldSelection {
            field,
            modifiers,
            values,
        });
    }
    Ok(selections)
}

fn scalar(v: &Yaml) -> Option<SigmaValue> {
    Some(match v {
        Yaml::String(s) => SigmaValue::String(s.clone()),
        Yaml::Number(n) => SigmaValue::Number(n.to_string()),
        Yaml::Bool(b) => SigmaValue::Bool(*b),
        Yaml::Null => SigmaValue::Null,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: &str = r#"
title: Suspicious Whoami
id: 6d2ab8a1-0000-4000-8000-000000000001
status: test
level: high
tags: [attack.discovery, attack.t1033]
logsource:
    product: windows
    category: process_creation
detection:
    selection:
        Image|endswith: '\whoami.exe'
        EventID: 4688
    selection_list:
        - CommandLine|contains: '/all'
        - CommandLine: null
    keywords:
        - 'evil'
        - 42
    condition: selection and (selection_list or keywords)
falsepositives:
    - Admins
references: https://example.invalid/whoami
"#;

    #[test]
    fn parses_metadata_and_every_search_shape() {
        let rule = SigmaRule::from_yaml(RULE).unwrap();
        assert_eq!(rule.title, "Suspicious Whoami");
        assert_eq!(rule.status, Some(Status::Test));
        assert_eq!(rule.level, Some(Level::High));
        assert_eq!(rule.tags.len(), 2);
        assert_eq!(rule.logsource.product.as_deref(), Some("windows"));
        assert_eq!(rule.logsource.category.as_deref(), Some("process_creation"));
        assert_eq!(rule.falsepositives, ["Admins"]);
        assert_eq!(rule.references, ["https://example.invalid/whoami"]);
        let d = &rule.detection;
        assert_eq!(d.conditions, ["selection and (selection_list or keywords)"]);
        let Search::Map(sel) = &d.searches[0].1 else {
            panic!("map")
        };
        assert_eq!(sel[0].field.as_deref(), Some("Image"));
        assert_eq!(sel[0].modifiers, [Modifier::EndsWith]);
        assert_eq!(sel[1].values, [SigmaValue::Number("4688".into())]);
        let Search::AnyOf(maps) = &d.searches[1].1 else {
            panic!("list of maps")
        };
        assert_eq!(maps[1][0].values, [SigmaValue::Null]);
        assert_eq!(
            d.searches[2].1,
            Search::Keywords(vec![
                SigmaValue::String("evil".into()),
                SigmaValue::Number("42".into())
            ])
        );
    }

    #[test]
    fn unsupported_modifier_names_rule_and_modifier() {
        let text = RULE.replace("Image|endswith", "Image|sortof");
        let err = SigmaRule::from_yaml(&text).unwrap_err().to_string();
        assert!(err.contains("Suspicious Whoami"), "{err}");
        assert!(err.contains("6d2ab8a1"), "{err}");
        assert!(err.contains("`sortof`"), "{err}");
    }

    #[test]
    fn missing_parts_are_named() {
        let err = SigmaRule::from_yaml("title: x\nlogsource: {}\ndetection: {sel: {a: 1}}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing `detection.condition`"), "{err}");
        let err = SigmaRule::from_yaml("title: x\ndetection: {sel: {a: 1}, condition: sel}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing `logsource`"), "{err}");
        let err = SigmaRule::from_yaml(
            "title: x\nlevel: severe\nlogsource: {}\ndetection: {sel: {a: 1}, condition: sel}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown `level` value `severe`"), "{err}");
        let err = SigmaRule::from_yaml(
            "title: x\nlogsource: {}\ndetection: {sel: [{a: 1}, b], condition: sel}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("only maps or only values"), "{err}");
    }
}
