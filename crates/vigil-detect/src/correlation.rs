//! Sigma correlation rules (specification v2: `event_count`, `value_count`, `temporal`,
//! `temporal_ordered`) and the stateful engine that evaluates them over a stream of base-rule
//! matches.
//!
//! # How the engine sees time
//!
//! The engine has no clock: every call to [`CorrelationEngine::process`] brings the event's
//! own timestamp (milliseconds, parsed by the caller). Each (correlation, group) keeps the
//! base-rule hits of its current window, the `timespan` before the latest event time seen in
//! that group (its *watermark*), both ends included. Events may arrive out of order: a late
//! event still inside the window joins it (and is ordered by its own time, which is what
//! `temporal_ordered` looks at); an event older than the window is dropped and counted in
//! [`CorrelationEngine::late_events`]. Windows that closed before a late event arrived are
//! not reopened.
//!
//! When a correlation's condition holds after an event, one [`CorrelationMatch`] is emitted
//! and that group's window is emptied, so a burst of 300 failed logins against `gte: 100`
//! yields three matches, not 201.
//!
//! # Chains
//!
//! A correlation may refer to other correlations (by `id` or `name`), as the specification's
//! "failed logins followed by a successful login" example does. A match of the referred
//! correlation is a hit for the referring one at the time of the event that completed it;
//! its `group-by` values (and, for fields it does not group by, the fields of that event) are
//! what the referring correlation groups by, as the specification says: "the correlation rule
//! only uses its own `group-by`". Matches of a correlation referred to by another without
//! `generate: true` are only input to it and are not returned. Cycles are refused.
//!
//! # Memory bounds
//!
//! Hits older than the window are dropped as windows move; groups whose whole window lies
//! before the newest event time seen by the engine are swept every
//! [`SWEEP_EVERY`] events. At most [`CorrelationEngine::max_groups`] groups are kept (all
//! correlations together): when a new group would exceed it, the group that was updated least
//! recently (in arrival order) is evicted, losing its partial window. A group keeps at most
//! [`CorrelationEngine::max_hits_per_group`] hits; past it the oldest are dropped (an
//! `event_count` needing more events than that can then never match).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use serde_yaml::Value as Yaml;

use crate::event::{Event, FieldValue};
use crate::rule::{Level, rule_name};
use crate::{Error, Result};

/// Groups swept for expiry every this many processed events.
pub const SWEEP_EVERY: u64 = 1024;

/// `correlation.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorrelationType {
    /// Number of events per group within the timespan.
    EventCount,
    /// Number of distinct values of `condition.field` per group within the timespan.
    ValueCount,
    /// All (or `condition` many) referenced rules matched within the timespan, in any order.
    Temporal,
    /// Like [`CorrelationType::Temporal`], in the order the rules are listed.
    TemporalOrdered,
}

impl CorrelationType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "event_count" => Self::EventCount,
            "value_count" => Self::ValueCount,
            "temporal" => Self::Temporal,
            "temporal_ordered" => Self::TemporalOrdered,
            _ => return None,
        })
    }

    /// The name as written in rules.
    pub fn name(self) -> &'static str {
        match self {
            Self::EventCount => "event_count",
            Self::ValueCount => "value_count",
            Self::Temporal => "temporal",
            Self::TemporalOrdered => "temporal_ordered",
        }
    }
}

/// A correlation `timespan` (`30s`, `5m`, `1h`, `1d`), in milliseconds; never zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timespan(i64);

impl Timespan {
    /// Parses `number + unit` with unit `s`, `m`, `h` or `d` (lowercase, as the specification
    /// requires).
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("bad timespan `{text}`: expected a number and s, m, h or d (`5m`)");
        let unit = text.chars().last().ok_or_else(bad)?;
        let number = &text[..text.len() - unit.len_utf8()];
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: i64 = number.parse().map_err(|_| bad())?;
        let unit_ms: i64 = match unit {
            's' => 1_000,
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
            _ => return Err(bad()),
        };
        if n == 0 {
            return Err(format!("bad timespan `{text}`: must be longer than zero"));
        }
        n.checked_mul(unit_ms)
            .map(Timespan)
            .ok_or_else(|| format!("bad timespan `{text}`: too long"))
    }

    pub fn millis(self) -> i64 {
        self.0
    }
}

/// `correlation.condition`: every given bound must hold (`gt: 100` and `lte: 200` is a range).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountCondition {
    pub gt: Option<u64>,
    pub gte: Option<u64>,
    pub lt: Option<u64>,
    pub lte: Option<u64>,
    pub eq: Option<u64>,
}

impl CountCondition {
    /// Whether `count` meets every bound.
    pub fn holds(&self, count: u64) -> bool {
        self.gt.is_none_or(|v| count > v)
            && self.gte.is_none_or(|v| count >= v)
            && self.lt.is_none_or(|v| count < v)
            && self.lte.is_none_or(|v| count <= v)
            && self.eq.is_none_or(|v| count == v)
    }

    fn has_lower_bound(&self) -> bool {
        self.gt.is_some() || self.eq.is_some_and(|v| v > 0) || self.gte.is_some_and(|v| v > 0)
    }
}

/// A parsed Sigma correlation rule.
#[derive(Debug, Clone, PartialEq)]
pub struct CorrelationRule {
    pub title: String,
    pub id: Option<String>,
    /// `name:`, so other correlations can refer to this one.
    pub name: Option<String>,
    pub level: Option<Level>,
    pub description: Option<String>,
    /// `tags:` (ATT&CK techniques and tactics), as written.
    pub tags: Vec<String>,
    pub kind: CorrelationType,
    /// Referenced rules, by `id` or `name`, as written.
    pub rules: Vec<String>,
    /// Fields (or aliases) whose values separate groups; may be empty (one group).
    pub group_by: Vec<String>,
    pub timespan: Timespan,
    /// For `temporal` / `temporal_ordered` without a condition: all referenced rules.
    pub condition: CountCondition,
    /// `condition.field` of a `value_count` correlation.
    pub field: Option<String>,
    /// alias -> (referenced rule -> field name in that rule's events). The rule is named as
    /// in `rules` (the specification uses names; an alias naming a rule `rules` does not
    /// list, as written, is an error).
    pub aliases: BTreeMap<String, BTreeMap<String, String>>,
    /// `generate: true`: the referenced rules should also alert on their own.
    pub generate: bool,
}

/// Whether a YAML document is a correlation rule.
pub(crate) fn is_correlation(doc: &Yaml) -> bool {
    doc.get("correlation").is_some()
}

fn text_of(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl CorrelationRule {
    /// Parses a correlation rule from YAML text.
    pub fn from_yaml(text: &str) -> Result<Self> {
        Self::from_value(serde_yaml::from_str(text)?)
    }

    /// Parses a correlation rule from one YAML document.
    pub fn from_value(doc: Yaml) -> Result<Self> {
        let title = match doc.get("title") {
            Some(Yaml::String(t)) if !t.trim().is_empty() => t.clone(),
            _ => {
                return Err(Error::InvalidRule {
                    rule: "<untitled>".into(),
                    reason: "missing or empty `title`".into(),
                });
            }
        };
        let id = doc.get("id").and_then(text_of);
        let rule = rule_name(&title, id.as_deref());
        let fail = |reason: String| Error::InvalidRule {
            rule: rule.clone(),
            reason,
        };
        let name = doc.get("name").and_then(text_of);
        let level = match doc.get("level") {
            None | Some(Yaml::Null) => None,
            Some(v) => Some(
                serde_yaml::from_value::<Level>(v.clone())
                    .map_err(|_| fail("unknown `level` value".into()))?,
            ),
        };
        let description = doc
            .get("description")
            .and_then(|v| v.as_str())
            .map(String::from);
        let tags = doc
            .get("tags")
            .and_then(|v| v.as_sequence())
            .map(|seq| {
                seq.iter()
                    .filter_map(|t| t.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        // The specification lists `generate` beside `level`; pySigma reads it inside
        // `correlation`. Either place is accepted.
        let generate = match doc
            .get("generate")
            .or_else(|| doc.get("correlation").and_then(|c| c.get("generate")))
        {
            None | Some(Yaml::Null) => false,
            Some(Yaml::Bool(b)) => *b,
            Some(_) => return Err(fail("`generate` must be true or false".into())),
        };
        let Some(Yaml::Mapping(body)) = doc.get("correlation") else {
            return Err(fail("`correlation` must be a map".into()));
        };
        const KEYS: [&str; 7] = [
            "type",
            "rules",
            "group-by",
            "timespan",
            "timeframe",
            "condition",
            "aliases",
        ];
        for key in body.keys() {
            let k = key.as_str().unwrap_or("<not a string>");
            if !KEYS.contains(&k) && k != "generate" {
                return Err(fail(format!("unknown key `correlation.{k}`")));
            }
        }
        let kind = match body.get("type") {
            Some(Yaml::String(t)) => CorrelationType::parse(t).ok_or_else(|| {
                fail(format!(
                    "unknown correlation type `{t}` (event_count, value_count, temporal, temporal_ordered)"
                ))
            })?,
            Some(_) => return Err(fail("`correlation.type` must be a string".into())),
            None => return Err(fail("missing `correlation.type`".into())),
        };
        let rules: Vec<String> =
            match body.get("rules") {
                Some(Yaml::Sequence(items)) => items
                    .iter()
                    .map(|v| {
                        text_of(v).ok_or_else(|| {
                            fail("`correlation.rules` must list rule ids or names".into())
                        })
                    })
                    .collect::<Result<_>>()?,
                Some(v) => vec![text_of(v).ok_or_else(|| {
                    fail("`correlation.rules` must list rule ids or names".into())
                })?],
                None => return Err(fail("missing `correlation.rules`".into())),
            };
        if rules.is_empty() {
            return Err(fail("`correlation.rules` is empty".into()));
        }
        let group_by: Vec<String> = match body.get("group-by") {
            None | Some(Yaml::Null) => Vec::new(),
            Some(Yaml::Sequence(items)) => items
                .iter()
                .map(|v| {
                    text_of(v)
                        .ok_or_else(|| fail("`correlation.group-by` must list field names".into()))
                })
                .collect::<Result<_>>()?,
            Some(v) => vec![
                text_of(v)
                    .ok_or_else(|| fail("`correlation.group-by` must list field names".into()))?,
            ],
        };
        // `timeframe` is the pre-2.0 spelling some rules still use.
        let timespan = match body.get("timespan").or_else(|| body.get("timeframe")) {
            Some(v) => {
                let text = text_of(v).unwrap_or_default();
                Timespan::parse(&text).map_err(&fail)?
            }
            None => return Err(fail("missing `correlation.timespan`".into())),
        };
        let mut condition = CountCondition::default();
        let mut field = None;
        match body.get("condition") {
            None | Some(Yaml::Null) => {}
            Some(Yaml::Mapping(map)) => {
                for (k, v) in map {
                    let k = k.as_str().unwrap_or("<not a string>");
                    if k == "field" {
                        field = Some(text_of(v).ok_or_else(|| {
                            fail("`correlation.condition.field` must be a field name".into())
                        })?);
                        continue;
                    }
                    let n = v.as_u64().ok_or_else(|| {
                        fail(format!(
                            "`correlation.condition.{k}` must be a non-negative integer"
                        ))
                    })?;
                    let slot = match k {
                        "gt" => &mut condition.gt,
                        "gte" => &mut condition.gte,
                        "lt" => &mut condition.lt,
                        "lte" => &mut condition.lte,
                        "eq" => &mut condition.eq,
                        other => {
                            return Err(fail(format!(
                                "unknown condition operator `{other}` (gt, gte, lt, lte, eq, field)"
                            )));
                        }
                    };
                    *slot = Some(n);
                }
            }
            Some(_) => return Err(fail("`correlation.condition` must be a map".into())),
        }
        let no_bounds = condition == CountCondition::default();
        match kind {
            CorrelationType::EventCount | CorrelationType::ValueCount if no_bounds => {
                return Err(fail(format!(
                    "{} correlation needs a `condition` (gt, gte, lt, lte or eq)",
                    kind.name()
                )));
            }
            CorrelationType::Temporal | CorrelationType::TemporalOrdered if no_bounds => {
                condition.gte = Some(rules.len() as u64);
            }
            _ => {}
        }
        match (kind, &field) {
            (CorrelationType::ValueCount, None) => {
                return Err(fail(
                    "value_count correlation needs `condition.field`".into(),
                ));
            }
            (CorrelationType::ValueCount, Some(_)) | (_, None) => {}
            (_, Some(_)) => {
                return Err(fail(format!(
                    "`condition.field` only applies to value_count, not {}",
                    kind.name()
                )));
            }
        }
        // The specification lists `group-by` as required; without it everything is one group.
        let mut aliases = BTreeMap::new();
        match body.get("aliases") {
            None | Some(Yaml::Null) => {}
            Some(Yaml::Mapping(map)) => {
                for (alias, fields) in map {
                    let alias =
                        text_of(alias).ok_or_else(|| fail("alias names must be strings".into()))?;
                    let Yaml::Mapping(fields) = fields else {
                        return Err(fail(format!(
                            "alias `{alias}` must map rule names to field names"
                        )));
                    };
                    let mut per_rule = BTreeMap::new();
                    for (r, f) in fields {
                        let (Some(r), Some(f)) = (text_of(r), text_of(f)) else {
                            return Err(fail(format!(
                                "alias `{alias}` must map rule names to field names"
                            )));
                        };
                        if !rules.contains(&r) {
                            return Err(fail(format!(
                                "alias `{alias}` names rule `{r}`, which the correlation does not reference"
                            )));
                        }
                        per_rule.insert(r, f);
                    }
                    aliases.insert(alias, per_rule);
                }
            }
            Some(_) => return Err(fail("`correlation.aliases` must be a map".into())),
        }
        Ok(CorrelationRule {
            title,
            id,
            name,
            level,
            description,
            tags,
            kind,
            rules,
            group_by,
            timespan,
            condition,
            field,
            aliases,
            generate,
        })
    }

    /// `title (id)`, the way errors name this rule.
    pub fn display_name(&self) -> String {
        rule_name(&self.title, self.id.as_deref())
    }

    /// The field holding `group_by`/`field` name `key` in events matched by referenced rule
    /// `rule` (its entry in `rules`): the alias's field, or `key` itself.
    /// Whether `reference` (an entry of some correlation's `rules`) names this one.
    pub fn answers_to(&self, reference: &str) -> bool {
        self.id.as_deref() == Some(reference) || self.name.as_deref() == Some(reference)
    }

    fn field_for<'a>(&'a self, key: &'a str, rule: usize) -> &'a str {
        self.aliases
            .get(key)
            .and_then(|m| m.get(&self.rules[rule]))
            .map_or(key, String::as_str)
    }
}

/// One correlation match.
#[derive(Debug, Clone, PartialEq)]
pub struct CorrelationMatch {
    /// Index of the correlation in the engine (the order given to [`CorrelationEngine::new`]).
    pub correlation: usize,
    pub id: Option<String>,
    pub title: String,
    pub level: Option<Level>,
    pub kind: CorrelationType,
    /// `(group-by name, value)` pairs; `None` when the event lacked the field.
    pub group: Vec<(String, Option<String>)>,
    /// Events (`event_count`), distinct values (`value_count`) or distinct referenced rules
    /// in order (`temporal`, `temporal_ordered`) the condition was met with.
    pub count: u64,
    /// Event times of the first and last contributing hit, milliseconds.
    pub window: (i64, i64),
    /// The contributing hits, by event time.
    pub events: Vec<Contribution>,
}

/// An event that contributed to a correlation match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contribution {
    /// The event's sequence number: how many events [`CorrelationEngine::process`] saw before.
    pub index: u64,
    /// The event's time, milliseconds.
    pub time: i64,
    /// Which referenced rule (position in `rules`) it matched.
    pub rule: usize,
}

#[derive(Debug)]
struct Hit {
    time: i64,
    index: u64,
    rule: usize,
    /// The `value_count` field's value.
    value: Option<String>,
}

#[derive(Debug, Default)]
struct Group {
    /// Hits of the current window, sorted by (time, index).
    hits: VecDeque<Hit>,
    watermark: i64,
    /// Arrival stamp of the last update (key in `Engine::lru`).
    touched: u64,
}

type GroupKey = (usize, Vec<Option<String>>);

/// Evaluates correlation rules over a stream of events and the base rules they matched.
///
/// See the [module documentation](crate::correlation) for windows, ordering and memory.
///
/// ```
/// use vigil_detect::{CorrelationEngine, CorrelationRule};
///
/// let rule = CorrelationRule::from_yaml(r#"
/// title: Brute force
/// correlation:
///     type: event_count
///     rules: [failed_login]
///     group-by: [User]
///     timespan: 5m
///     condition: {gte: 3}
/// "#)?;
/// let mut engine = CorrelationEngine::new(vec![rule])?;
/// let event = serde_json::json!({"User": "bob"});
/// assert!(engine.process(0, &["failed_login"], &event).is_empty());
/// assert!(engine.process(1_000, &["failed_login"], &event).is_empty());
/// let hits = engine.process(2_000, &["failed_login"], &event);
/// assert_eq!(hits.len(), 1);
/// assert_eq!(hits[0].count, 3);
/// # Ok::<(), vigil_detect::Error>(())
/// ```
#[derive(Debug)]
pub struct CorrelationEngine {
    rules: Vec<CorrelationRule>,
    /// Referenced rule id or name -> (correlation, position in its `rules`).
    by_ref: HashMap<String, Vec<(usize, usize)>>,
    /// Per correlation: referred to by a correlation that does not `generate` it, so its
    /// matches are that correlation's input only.
    hidden: Vec<bool>,
    groups: HashMap<GroupKey, Group>,
    /// Update stamp -> group, oldest first, for eviction.
    lru: BTreeMap<u64, GroupKey>,
    stamp: u64,
    events: u64,
    newest: i64,
    late: u64,
    evicted: u64,
    max_groups: usize,
    max_hits: usize,
}

impl CorrelationEngine {
    /// Default for [`CorrelationEngine::max_groups`].
    pub const DEFAULT_MAX_GROUPS: usize = 100_000;
    /// Default for [`CorrelationEngine::max_hits_per_group`].
    pub const DEFAULT_MAX_HITS_PER_GROUP: usize = 10_000;

    /// An engine for `rules`. Fails for a condition the engine cannot decide when an event
    /// arrives (only `lt`/`lte` bounds: "fewer than N" needs the window to close) and for
    /// correlations that refer to themselves through a chain.
    pub fn new(rules: Vec<CorrelationRule>) -> Result<Self> {
        let mut by_ref: HashMap<String, Vec<(usize, usize)>> = HashMap::new();
        let refers = references(&rules);
        let hidden = inputs_of(&rules, &refers);
        for (c, rule) in rules.iter().enumerate() {
            let fail = |reason: String| Error::InvalidRule {
                rule: rule.display_name(),
                reason,
            };
            if !rule.condition.has_lower_bound() {
                return Err(fail(
                    "a condition with only `lt`/`lte` cannot be decided as events arrive".into(),
                ));
            }
            for (pos, r) in rule.rules.iter().enumerate() {
                by_ref.entry(r.clone()).or_default().push((c, pos));
            }
        }
        if let Some(c) = cycle(&refers) {
            return Err(Error::InvalidRule {
                rule: rules[c].display_name(),
                reason: "refers to itself through a chain of correlations".into(),
            });
        }
        Ok(CorrelationEngine {
            rules,
            by_ref,
            hidden,
            groups: HashMap::new(),
            lru: BTreeMap::new(),
            stamp: 0,
            events: 0,
            newest: i64::MIN,
            late: 0,
            evicted: 0,
            max_groups: Self::DEFAULT_MAX_GROUPS,
            max_hits: Self::DEFAULT_MAX_HITS_PER_GROUP,
        })
    }

    /// Makes each rule that has both an `id` and a `name` known by either, so
    /// [`CorrelationEngine::process`] may be given either whichever the correlation used.
    pub fn with_rule_names(mut self, rules: &[crate::CompiledRule]) -> Self {
        for r in rules {
            let (Some(id), Some(name)) = (&r.rule().id, &r.rule().name) else {
                continue;
            };
            let mut both: Vec<(usize, usize)> = [id, name]
                .iter()
                .filter_map(|k| self.by_ref.get(k.as_str()))
                .flatten()
                .copied()
                .collect();
            if both.is_empty() {
                continue;
            }
            both.sort_unstable();
            both.dedup();
            self.by_ref.insert(id.clone(), both.clone());
            self.by_ref.insert(name.clone(), both);
        }
        self
    }

    /// Caps the number of groups kept (at least 1); the least recently updated group is
    /// evicted past it.
    pub fn with_max_groups(mut self, n: usize) -> Self {
        self.max_groups = n.max(1);
        self
    }

    /// Caps the hits one group keeps (at least 1); the oldest are dropped past it.
    pub fn with_max_hits_per_group(mut self, n: usize) -> Self {
        self.max_hits = n.max(1);
        self
    }

    pub fn max_groups(&self) -> usize {
        self.max_groups
    }

    pub fn max_hits_per_group(&self) -> usize {
        self.max_hits
    }

    pub fn rules(&self) -> &[CorrelationRule] {
        &self.rules
    }

    /// Groups currently holding state.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Hits dropped because they were older than their group's window.
    pub fn late_events(&self) -> u64 {
        self.late
    }

    /// Groups evicted because of [`CorrelationEngine::max_groups`].
    pub fn evicted_groups(&self) -> u64 {
        self.evicted
    }

    /// Whether a rule (by id or name) is referenced by a correlation that does not
    /// `generate` it: its own matches are then meant only as correlation input.
    pub fn is_correlation_only(&self, rule: &str) -> bool {
        self.by_ref
            .get(rule)
            .is_some_and(|refs| refs.iter().any(|&(c, _)| !self.rules[c].generate))
    }

    /// Feeds one event: its time (milliseconds), the ids or names of the base rules it
    /// matched, as the correlations refer to them (see [`CorrelationEngine::with_rule_names`];
    /// unknown ones are ignored) and the event itself for `group-by` and `field`
    /// values. Returns the correlations this event completed.
    ///
    /// Every call counts as one event for [`Contribution::index`], so calling it for every
    /// event (with no matched rules for most) makes indices the events' positions in the
    /// stream; events with no referenced rule among `matched` cost a hash lookup per rule.
    pub fn process(
        &mut self,
        time: i64,
        matched: &[&str],
        event: &dyn Event,
    ) -> Vec<CorrelationMatch> {
        let index = self.events;
        self.events += 1;
        self.newest = self.newest.max(time);
        if self.events.is_multiple_of(SWEEP_EVERY) {
            self.sweep();
        }
        // (correlation, position) pairs this event hit, each once.
        let hits = self.refs(matched.iter().copied());
        let mut out = self.feed(time, index, hits, event);
        // Matches are hits for the correlations that refer to them; no cycles, so this ends.
        let mut next = 0;
        while next < out.len() {
            let m = &out[next];
            let rule = &self.rules[m.correlation];
            let hits = self.refs(rule.id.iter().chain(&rule.name).map(String::as_str));
            if !hits.is_empty() {
                let chained = Chained {
                    group: m.group.clone(),
                    event,
                };
                let more = self.feed(time, index, hits, &chained);
                out.extend(more);
            }
            next += 1;
        }
        out.retain(|m| !self.hidden[m.correlation]);
        out
    }

    /// The (correlation, position) pairs that `names` are referred to by, each once.
    fn refs<'n>(&self, names: impl Iterator<Item = &'n str>) -> Vec<(usize, usize)> {
        let mut hits: Vec<(usize, usize)> = names
            .filter_map(|m| self.by_ref.get(m))
            .flatten()
            .copied()
            .collect();
        hits.sort_unstable();
        hits.dedup();
        hits
    }

    /// Adds one event's hits to their groups; the correlations it completed.
    fn feed(
        &mut self,
        time: i64,
        index: u64,
        hits: Vec<(usize, usize)>,
        event: &dyn Event,
    ) -> Vec<CorrelationMatch> {
        let mut out = Vec::new();
        let mut counted: HashSet<GroupKey> = HashSet::new();
        for (c, pos) in hits {
            let rule = &self.rules[c];
            let key: Vec<Option<String>> = rule
                .group_by
                .iter()
                .map(|g| field_text(event, rule.field_for(g, pos)))
                .collect();
            let value = match &rule.field {
                Some(f) => match field_text(event, rule.field_for(f, pos)) {
                    Some(v) => Some(v),
                    None => continue, // nothing to count distinct values of
                },
                None => None,
            };
            let gkey = (c, key);
            // An event counts once per group for the counting types, whatever rules it hit.
            let counting = matches!(
                rule.kind,
                CorrelationType::EventCount | CorrelationType::ValueCount
            );
            if counting && !counted.insert(gkey.clone()) {
                continue;
            }
            if let Some(m) = self.add(
                gkey,
                Hit {
                    time,
                    index,
                    rule: pos,
                    value,
                },
            ) {
                out.push(m);
            }
        }
        out
    }

    /// [`CorrelationEngine::process`] with the matched rules as [`crate::CompiledRule`]s
    /// (each known by its id and its `name`).
    pub fn process_rules(
        &mut self,
        time: i64,
        matched: &[&crate::CompiledRule],
        event: &dyn Event,
    ) -> Vec<CorrelationMatch> {
        let refs: Vec<&str> = matched
            .iter()
            .flat_map(|r| [r.rule().id.as_deref(), r.rule().name.as_deref()])
            .flatten()
            .collect();
        self.process(time, &refs, event)
    }

    fn add(&mut self, gkey: GroupKey, hit: Hit) -> Option<CorrelationMatch> {
        let c = gkey.0;
        let span = self.rules[c].timespan.millis();
        if !self.groups.contains_key(&gkey) {
            while self.groups.len() >= self.max_groups {
                let Some((_, oldest)) = self.lru.pop_first() else {
                    break;
                };
                self.groups.remove(&oldest);
                self.evicted += 1;
            }
        }
        self.stamp += 1;
        let stamp = self.stamp;
        let group = self.groups.entry(gkey.clone()).or_insert_with(|| Group {
            hits: VecDeque::new(),
            watermark: hit.time,
            touched: 0,
        });
        self.lru.remove(&group.touched);
        group.touched = stamp;
        self.lru.insert(stamp, gkey.clone());

        if hit.time < group.watermark.saturating_sub(span) {
            self.late += 1;
            return None;
        }
        group.watermark = group.watermark.max(hit.time);
        let start = group.watermark.saturating_sub(span);
        while group.hits.front().is_some_and(|h| h.time < start) {
            group.hits.pop_front();
        }
        let at = group
            .hits
            .partition_point(|h| (h.time, h.index) <= (hit.time, hit.index));
        group.hits.insert(at, hit);
        while group.hits.len() > self.max_hits {
            group.hits.pop_front();
        }

        let rule = &self.rules[c];
        let (count, used): (u64, Vec<usize>) = match rule.kind {
            CorrelationType::EventCount => {
                (group.hits.len() as u64, (0..group.hits.len()).collect())
            }
            CorrelationType::ValueCount => {
                let mut seen = HashSet::new();
                for h in &group.hits {
                    seen.insert(h.value.as_deref());
                }
                (seen.len() as u64, (0..group.hits.len()).collect())
            }
            CorrelationType::Temporal => {
                // The latest hit of each referenced rule.
                let mut latest: BTreeMap<usize, usize> = BTreeMap::new();
                for (i, h) in group.hits.iter().enumerate() {
                    latest.insert(h.rule, i);
                }
                let mut used: Vec<usize> = latest.into_values().collect();
                used.sort_unstable();
                (used.len() as u64, used)
            }
            CorrelationType::TemporalOrdered => {
                // The longest prefix of `rules` found in order, earliest hits first.
                let mut used = Vec::new();
                for (i, h) in group.hits.iter().enumerate() {
                    if h.rule == used.len() {
                        used.push(i);
                        if used.len() == rule.rules.len() {
                            break;
                        }
                    }
                }
                (used.len() as u64, used)
            }
        };
        if !rule.condition.holds(count) {
            return None;
        }
        let events: Vec<Contribution> = used
            .iter()
            .map(|&i| {
                let h = &group.hits[i];
                Contribution {
                    index: h.index,
                    time: h.time,
                    rule: h.rule,
                }
            })
            .collect();
        let window = (
            events.first().map_or(0, |e| e.time),
            events.last().map_or(0, |e| e.time),
        );
        group.hits.clear();
        let (_, key) = gkey;
        Some(CorrelationMatch {
            correlation: c,
            id: rule.id.clone(),
            title: rule.title.clone(),
            level: rule.level,
            kind: rule.kind,
            group: rule.group_by.iter().cloned().zip(key).collect(),
            count,
            window,
            events,
        })
    }

    /// Drops groups whose window lies wholly before the newest event time seen.
    fn sweep(&mut self) {
        let newest = self.newest;
        let rules = &self.rules;
        let lru = &mut self.lru;
        self.groups.retain(|(c, _), g| {
            let keep = g.watermark >= newest.saturating_sub(rules[*c].timespan.millis());
            if !keep {
                lru.remove(&g.touched);
            }
            keep
        });
    }
}

/// A correlation match as an event for the correlations that refer to it: its group-by
/// values, then the fields of the event that completed it.
struct Chained<'e> {
    group: Vec<(String, Option<String>)>,
    event: &'e dyn Event,
}

impl Event for Chained<'_> {
    fn field(&self, name: &str) -> Option<FieldValue<'_>> {
        match self.group.iter().find(|(g, _)| g == name) {
            Some((_, Some(v))) => Some(FieldValue::Str(v.as_str().into())),
            Some((_, None)) => None,
            None => self.event.field(name),
        }
    }

    fn any_keyword(&self, f: &mut dyn FnMut(&str) -> bool) -> bool {
        self.event.any_keyword(f)
    }
}

/// For each correlation, the correlations of `rules` it refers to.
pub(crate) fn references(rules: &[CorrelationRule]) -> Vec<Vec<usize>> {
    rules
        .iter()
        .map(|c| {
            (0..rules.len())
                .filter(|&o| c.rules.iter().any(|r| rules[o].answers_to(r)))
                .collect()
        })
        .collect()
}

/// For each correlation, whether it is only input to a chain: referred to by a correlation
/// that does not `generate` it. Its matches are not reported, and the specification gives it
/// no metadata of its own ("only the outermost correlation rule may define meta information
/// such as status, level").
pub fn chain_inputs(rules: &[CorrelationRule]) -> Vec<bool> {
    inputs_of(rules, &references(rules))
}

fn inputs_of(rules: &[CorrelationRule], refers: &[Vec<usize>]) -> Vec<bool> {
    let mut inputs = vec![false; rules.len()];
    for (c, targets) in refers.iter().enumerate() {
        if !rules[c].generate {
            for &o in targets {
                inputs[o] = true;
            }
        }
    }
    inputs
}

/// A correlation on a cycle of `refers` (correlation -> the correlations it refers to).
pub(crate) fn cycle(refers: &[Vec<usize>]) -> Option<usize> {
    // 0 unvisited, 1 on the current path, 2 done.
    fn visit(c: usize, refers: &[Vec<usize>], state: &mut [u8]) -> Option<usize> {
        match state[c] {
            1 => return Some(c),
            2 => return None,
            _ => {}
        }
        state[c] = 1;
        for &o in &refers[c] {
            if let Some(found) = visit(o, refers, state) {
                return Some(found);
            }
        }
        state[c] = 2;
        None
    }
    let mut state = vec![0u8; refers.len()];
    (0..refers.len()).find_map(|c| visit(c, refers, &mut state))
}

/// A field's value as group-key text; lists are joined with `,`.
fn field_text(event: &dyn Event, field: &str) -> Option<String> {
    fn text(v: &FieldValue<'_>) -> Option<String> {
        match v {
            FieldValue::Null => None,
            FieldValue::List(items) => {
                Some(items.iter().filter_map(text).collect::<Vec<_>>().join(","))
            }
            other => other.as_text().map(|t| t.into_owned()),
        }
    }
    text(&event.field(field)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timespans_parse_to_millis() {
        assert_eq!(Timespan::parse("30s").unwrap().millis(), 30_000);
        assert_eq!(Timespan::parse("5m").unwrap().millis(), 300_000);
        assert_eq!(Timespan::parse("1h").unwrap().millis(), 3_600_000);
        assert_eq!(Timespan::parse("2d").unwrap().millis(), 172_800_000);
        for bad in [
            "",
            "m",
            "5",
            "5M",
            "5w",
            "-5m",
            "1.5h",
            "0s",
            "99999999999999999d",
        ] {
            assert!(Timespan::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn conditions_combine_bounds() {
        let c = CountCondition {
            gt: Some(2),
            lte: Some(4),
            ..Default::default()
        };
        assert!(!c.holds(2));
        assert!(c.holds(3));
        assert!(c.holds(4));
        assert!(!c.holds(5));
    }
}
