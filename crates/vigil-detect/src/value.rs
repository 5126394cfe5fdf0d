//! Compiling one field selection (`Field|modifiers: values`) into a matcher.
//!
//! Values are Sigma strings: `*` matches any run of characters, `?` exactly one, and `\*`,
//! `\?`, `\\` stand for the literal characters; a backslash before anything else is itself
//! literal. Comparisons are case-insensitive unless `cased` is given; `re` follows the regular
//! expression's own flags (case-sensitive unless `i`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;

use aho_corasick::AhoCorasick;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ipnet::IpNet;
use memchr::memmem::Finder;
use regex::{Regex, RegexBuilder};
use rustc_hash::FxHashSet;

use crate::event::{Event, FieldValue, Leaf, Prepared, Slot, field_id};
use crate::rule::{FieldSelection, Modifier, SigmaValue};
use crate::{Error, Result};

/// What `expand` does with a `%placeholder%` that [`CompileOptions::placeholders`] lacks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PlaceholderPolicy {
    /// Compiling the rule fails with [`Error::UnresolvedPlaceholder`] (the default: a rule
    /// that silently cannot match is worse than one that is reported).
    #[default]
    Error,
    /// The value containing the placeholder never matches; the rest of the rule still works.
    NoMatch,
    /// The placeholder becomes a `*` wildcard (the specification's "last resort").
    Wildcard,
}

/// Settings for compiling rules.
#[derive(Debug, Clone, Default)]
pub struct CompileOptions {
    /// Values for `expand` placeholders, by name without the `%` signs.
    pub placeholders: HashMap<String, Vec<String>>,
    /// What to do with placeholders missing from `placeholders`.
    pub unresolved_placeholders: PlaceholderPolicy,
}

/// A piece of a Sigma string; literals are bytes so UTF-16 encodings can flow into base64.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(Vec<u8>),
    Many,
    One,
}

/// A match inside a literal: its length in bytes, and what may stand in its place.
type Replacement = (usize, Vec<Vec<u8>>);

#[derive(Debug, Clone, PartialEq, Default)]
struct Pattern(Vec<Part>);

impl Pattern {
    fn literal(s: &str) -> Self {
        let mut p = Pattern::default();
        p.push_bytes(s.as_bytes());
        p
    }

    /// Parses wildcards and escapes as the specification defines them.
    fn parse(s: &str) -> Self {
        let mut p = Pattern::default();
        let mut chars = s.chars().peekable();
        let mut buf = [0u8; 4];
        while let Some(c) = chars.next() {
            match c {
                '*' => p.0.push(Part::Many),
                '?' => p.0.push(Part::One),
                '\\' => match chars.peek() {
                    Some(&n @ ('*' | '?' | '\\')) => {
                        chars.next();
                        p.push_bytes(n.encode_utf8(&mut buf).as_bytes());
                    }
                    _ => p.push_bytes(b"\\"),
                },
                c => p.push_bytes(c.encode_utf8(&mut buf).as_bytes()),
            }
        }
        p
    }

    fn push_bytes(&mut self, b: &[u8]) {
        if let Some(Part::Lit(last)) = self.0.last_mut() {
            last.extend_from_slice(b);
        } else if !b.is_empty() {
            self.0.push(Part::Lit(b.to_vec()));
        }
    }

    fn push(&mut self, part: Part) {
        match part {
            Part::Lit(b) => self.push_bytes(&b),
            other => self.0.push(other),
        }
    }

    fn has_wildcards(&self) -> bool {
        self.0.iter().any(|p| !matches!(p, Part::Lit(_)))
    }

    fn lit_bytes(&self) -> Vec<u8> {
        self.0
            .iter()
            .flat_map(|p| match p {
                Part::Lit(b) => b.clone(),
                _ => Vec::new(),
            })
            .collect()
    }

    fn starts_many(&self) -> bool {
        self.0.first() == Some(&Part::Many)
    }

    fn ends_many(&self) -> bool {
        self.0.last() == Some(&Part::Many)
    }

    fn map_lits(&self, f: impl Fn(&[u8]) -> Vec<u8>) -> Self {
        let mut out = Pattern::default();
        for part in &self.0 {
            match part {
                Part::Lit(b) => out.push_bytes(&f(b)),
                other => out.push(other.clone()),
            }
        }
        out
    }

    /// Every pattern obtained by replacing, independently, each match of `find` in the
    /// literals with each of its alternatives (`find` returns the match length and them).
    fn expand_each(
        &self,
        find: &dyn Fn(&[u8], usize) -> Option<Replacement>,
    ) -> Result<Vec<Pattern>, String> {
        let mut variants = vec![Pattern::default()];
        for part in &self.0 {
            let Part::Lit(bytes) = part else {
                variants.iter_mut().for_each(|v| v.push(part.clone()));
                continue;
            };
            let mut i = 0;
            while i < bytes.len() {
                if let Some((len, alternatives)) = find(bytes, i) {
                    if variants.len() * alternatives.len() > 4096 {
                        return Err("value expands to more than 4096 variants".into());
                    }
                    variants = variants
                        .iter()
                        .flat_map(|v| {
                            alternatives.iter().map(move |alt| {
                                let mut v = v.clone();
                                v.push_bytes(alt);
                                v
                            })
                        })
                        .collect();
                    i += len;
                } else {
                    variants
                        .iter_mut()
                        .for_each(|v| v.push_bytes(&bytes[i..i + 1]));
                    i += 1;
                }
            }
        }
        Ok(variants)
    }
}

fn utf16(b: &[u8], big_endian: bool) -> Vec<u8> {
    String::from_utf8_lossy(b)
        .encode_utf16()
        .flat_map(|u| {
            if big_endian {
                u.to_be_bytes()
            } else {
                u.to_le_bytes()
            }
        })
        .collect()
}

/// The three encodings of `value` at each alignment inside a longer base64 string, trimmed
/// of the characters that depend on neighbouring bytes (as pySigma's `base64offset`).
fn base64_offsets(value: &[u8]) -> Vec<Vec<u8>> {
    const START: [usize; 3] = [0, 2, 3];
    const END: [usize; 3] = [0, 3, 2]; // characters cut from the end, by (len + i) % 3
    (0..3)
        .map(|i| {
            let mut padded = vec![b' '; i];
            padded.extend_from_slice(value);
            let enc = BASE64.encode(&padded).into_bytes();
            let end = enc.len().saturating_sub(END[(value.len() + i) % 3]);
            enc.get(START[i]..end).unwrap_or_default().to_vec()
        })
        .collect()
}

const WINDASHES: [&str; 5] = ["-", "/", "\u{2013}", "\u{2014}", "\u{2015}"];

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// A string comparison, with its literal lower-cased unless the comparison is cased.
#[derive(Debug, Clone)]
enum StrMatcher {
    Exact(String),
    Prefix(String),
    Suffix(String),
    /// With its searcher, built once.
    Contains(String, Box<Finder<'static>>),
    /// With the longest literal piece (lower-cased) that every match contains, when one is
    /// safe to search for in lower-cased text (see [`safe_literal`]).
    Wildcard(Regex, Option<String>),
}

impl StrMatcher {
    fn contains(literal: String) -> Self {
        let finder = Box::new(Finder::new(literal.as_bytes()).into_owned());
        StrMatcher::Contains(literal, finder)
    }

    fn compile(p: &Pattern, cased: bool) -> Result<Self, String> {
        let text = |b: &[u8]| {
            let s = String::from_utf8_lossy(b).into_owned();
            if cased { s } else { s.to_lowercase() }
        };
        Ok(match p.0.as_slice() {
            [] => StrMatcher::Exact(String::new()),
            [Part::Lit(b)] => StrMatcher::Exact(text(b)),
            [Part::Many] => StrMatcher::Prefix(String::new()),
            [Part::Lit(b), Part::Many] => StrMatcher::Prefix(text(b)),
            [Part::Many, Part::Lit(b)] => StrMatcher::Suffix(text(b)),
            [Part::Many, Part::Lit(b), Part::Many] => StrMatcher::contains(text(b)),
            parts => {
                let mut re = String::from(if cased { "(?s)^" } else { "(?si)^" });
                for part in parts {
                    match part {
                        Part::Lit(b) => re.push_str(&regex::escape(&String::from_utf8_lossy(b))),
                        Part::Many => re.push_str(".*"),
                        Part::One => re.push('.'),
                    }
                }
                re.push('$');
                let literal = parts
                    .iter()
                    .filter_map(|part| match part {
                        Part::Lit(b) => safe_literal(b),
                        _ => None,
                    })
                    .max_by_key(|l| l.len());
                StrMatcher::Wildcard(Regex::new(&re).map_err(|e| e.to_string())?, literal)
            }
        })
    }

    /// `s` is already lower-cased when the comparison is not cased.
    fn is_match(&self, s: &str) -> bool {
        match self {
            StrMatcher::Exact(l) => s == l,
            StrMatcher::Prefix(l) => s.starts_with(l.as_str()),
            StrMatcher::Suffix(l) => s.ends_with(l.as_str()),
            StrMatcher::Contains(_, f) => f.find(s.as_bytes()).is_some(),
            StrMatcher::Wildcard(re, _) => re.is_match(s),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Lt,
    Lte,
    Gt,
    Gte,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefMode {
    Equals,
    StartsWith,
    EndsWith,
    Contains,
}

/// One check against one value.
#[derive(Debug, Clone)]
enum Check {
    /// The field is absent or null.
    Null,
    Exists(bool),
    Str(StrMatcher),
    /// Many plain `contains` literals searched at once (and the literals).
    AnyContains(AhoCorasick, Vec<String>),
    /// Many exact, prefix and suffix literals looked up by length.
    AnyAffix(Box<Affixes>),
    /// With lower-cased literals one of which every match contains, when they can be proven
    /// (see [`regex_literals`]), and the fewest bytes a match has (shorter values are
    /// turned away without running it).
    Regex(Regex, Option<Vec<String>>, usize),
    Cidr(IpNet),
    Cmp(Cmp, f64),
    /// Numeric equality with numeric event values (next to the text comparison).
    NumEq(f64),
    /// The other field, its [`field_id`], and how the values compare.
    FieldRef(String, usize, RefMode),
}

/// A compiled field selection.
#[derive(Debug, Clone)]
pub(crate) struct FieldMatcher {
    /// `None`: a keyword search over the whole event.
    field: Option<String>,
    /// One group per value in the rule (variants of that value, any of which may match);
    /// without `all` everything is in a single group.
    groups: Vec<Vec<Check>>,
    cased: bool,
    /// [`field_id`] of `field`.
    field_id: usize,
    /// Keyword searches: the required [`literals`](Self::literals), ASCII case-insensitively,
    /// so events whose strings hold none of them are turned away without collecting and
    /// lower-casing their keyword strings.
    keyword_filter: Option<AhoCorasick>,
    /// The same for a JSON event's text as written (see
    /// [`Prepared::keywords_may_contain`]).
    keyword_filter_in_text: Option<Vec<Finder<'static>>>,
}

/// Text of a value and its lower-cased form (computed once per event and field).
struct Probe<'a> {
    raw: &'a str,
    lower: &'a str,
}

impl Probe<'_> {
    fn text(&self, cased: bool) -> &str {
        if cased { self.raw } else { self.lower }
    }
}

impl Check {
    /// Whether the check reads the lower-cased text (regular expressions and networks do not).
    fn needs_lower(&self) -> bool {
        matches!(
            self,
            Check::Str(_) | Check::AnyContains(..) | Check::AnyAffix(_) | Check::FieldRef(..)
        )
    }
}

impl FieldMatcher {
    pub(crate) fn compile(
        rule: &str,
        sel: &FieldSelection,
        keyword: bool,
        opts: &CompileOptions,
    ) -> Result<Self> {
        let field_name = match &sel.field {
            Some(f) => f.clone(),
            None => "<keywords>".into(),
        };
        let invalid = |reason: String| Error::InvalidValue {
            rule: rule.to_string(),
            field: field_name.clone(),
            reason,
        };
        let has = |m: Modifier| sel.modifiers.contains(&m);
        let all = has(Modifier::All);
        let cased = has(Modifier::Cased);
        let is_re = has(Modifier::Re);
        check_combination(&sel.modifiers).map_err(&invalid)?;
        let cmp = sel.modifiers.iter().find_map(|m| match m {
            Modifier::Lt => Some(Cmp::Lt),
            Modifier::Lte => Some(Cmp::Lte),
            Modifier::Gt => Some(Cmp::Gt),
            Modifier::Gte => Some(Cmp::Gte),
            _ => None,
        });
        let mut groups = Vec::with_capacity(sel.values.len());
        for value in &sel.values {
            let text = match value {
                SigmaValue::Null => {
                    groups.push(vec![Check::Null]);
                    continue;
                }
                v => v.to_string(),
            };
            let group = if has(Modifier::Exists) {
                match value {
                    SigmaValue::Bool(b) => vec![Check::Exists(*b)],
                    _ => return Err(invalid("`exists` takes true or false".into())),
                }
            } else if has(Modifier::FieldRef) {
                let mode = if has(Modifier::Contains) {
                    RefMode::Contains
                } else if has(Modifier::StartsWith) {
                    RefMode::StartsWith
                } else if has(Modifier::EndsWith) {
                    RefMode::EndsWith
                } else {
                    RefMode::Equals
                };
                let id = field_id(&text);
                vec![Check::FieldRef(text, id, mode)]
            } else if is_re {
                let re = RegexBuilder::new(&text)
                    .case_insensitive(has(Modifier::ReIgnoreCase))
                    .multi_line(has(Modifier::ReMultiLine))
                    .dot_matches_new_line(has(Modifier::ReDotAll))
                    .size_limit(64 << 20)
                    .build()
                    .map_err(|e| invalid(format!("regular expression not supported: {e}")))?;
                let ignore_case = has(Modifier::ReIgnoreCase);
                // Parsed once more, as `regex` parsed it, for what the prefilter may use.
                let hir = regex_hir(
                    &text,
                    ignore_case,
                    has(Modifier::ReMultiLine),
                    has(Modifier::ReDotAll),
                );
                let literals = hir.as_ref().and_then(|h| regex_literals(h, ignore_case));
                let min_len = hir.and_then(|h| h.properties().minimum_len()).unwrap_or(0);
                vec![Check::Regex(re, literals, min_len)]
            } else if has(Modifier::Cidr) {
                let net = text
                    .parse::<IpNet>()
                    .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| invalid(format!("`{text}` is not a CIDR network")))?;
                vec![Check::Cidr(net)]
            } else if let Some(cmp) = cmp {
                let n: f64 = text
                    .parse()
                    .map_err(|_| invalid(format!("`{text}` is not a number")))?;
                vec![Check::Cmp(cmp, n)]
            } else {
                let start = match value {
                    SigmaValue::String(s) => Pattern::parse(s),
                    _ => Pattern::literal(&text),
                };
                let mut patterns = vec![start];
                let mut wrapped = false;
                for m in &sel.modifiers {
                    patterns = apply(*m, patterns, opts, &mut wrapped).map_err(|e| match e {
                        Applied::Invalid(reason) => invalid(reason),
                        Applied::Unresolved(placeholder) => Error::UnresolvedPlaceholder {
                            rule: rule.to_string(),
                            field: field_name.clone(),
                            placeholder,
                        },
                    })?;
                }
                if keyword && !wrapped {
                    // Keywords are searched anywhere in the event's text.
                    patterns = apply(Modifier::Contains, patterns, opts, &mut wrapped)
                        .map_err(|_| invalid("keyword".into()))?;
                }
                let mut checks = patterns
                    .iter()
                    .map(|p| StrMatcher::compile(p, cased).map(Check::Str))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(invalid)?;
                // `1.0` in a rule equals the JSON number `1`, which reads as the text "1".
                let plain = sel
                    .modifiers
                    .iter()
                    .all(|m| matches!(m, Modifier::All | Modifier::Cased));
                if let (SigmaValue::Number(n), true, false) = (value, plain, keyword)
                    && let Ok(n) = n.parse::<f64>()
                {
                    checks.push(Check::NumEq(n));
                }
                checks
            };
            groups.push(group);
        }
        if !all {
            let mut flat: Vec<Check> = groups.into_iter().flatten().collect();
            optimise_contains(&mut flat);
            optimise_affixes(&mut flat);
            groups = vec![flat];
        }
        let mut matcher = FieldMatcher {
            field_id: sel.field.as_deref().map(field_id).unwrap_or(usize::MAX),
            field: sel.field.clone(),
            groups,
            cased,
            keyword_filter: None,
            keyword_filter_in_text: None,
        };
        if sel.field.is_none() {
            // ASCII literals only: a lower-cased non-ASCII letter is not ASCII (but for the
            // two `keywords_may_contain` looks for), so it cannot be part of one.
            let lits = matcher
                .literals()
                .filter(|lits| lits.iter().all(|l| l.is_ascii()));
            // The same literals as written in a JSON text (each found by its own memchr-driven
            // search: keyword searches have a few literals).
            matcher.keyword_filter_in_text = lits.as_ref().and_then(|lits| {
                lits.iter()
                    .map(|l| {
                        let escaped = crate::json::json_escaped(&l.to_ascii_lowercase())?;
                        Some(Finder::new(escaped.as_bytes()).into_owned())
                    })
                    .collect()
            });
            matcher.keyword_filter = lits.and_then(|lits| {
                AhoCorasick::builder()
                    .ascii_case_insensitive(true)
                    .build(lits)
                    .ok()
            });
        }
        Ok(matcher)
    }

    pub(crate) fn is_match(&self, event: &Prepared<'_, '_>) -> bool {
        match &self.field {
            None => {
                if let Some(filter) = &self.keyword_filter
                    && !event.keywords_may_contain(filter, self.keyword_filter_in_text.as_deref())
                {
                    return false;
                }
                let texts = event.keywords();
                self.groups.iter().all(|g| {
                    texts.iter().any(|(raw, lower)| {
                        let probe = Probe { raw, lower };
                        g.iter().any(|c| self.check_text(c, &probe, event))
                    })
                })
            }
            Some(name) if event.cached(self.field_id) => {
                let slot = event.slot(self.field_id, name);
                self.groups
                    .iter()
                    .all(|g| g.iter().any(|c| self.check_slot(c, slot, event)))
            }
            Some(name) => {
                // Compiled after the event was prepared: looked up here.
                let slot = event.field(name).map(Slot::new);
                self.groups
                    .iter()
                    .all(|g| g.iter().any(|c| self.check_slot(c, slot.as_ref(), event)))
            }
        }
    }

    /// The field and lower-cased literals of which at least one occurs in the field's
    /// lower-cased text whenever this selection matches; `None` when none can be proven
    /// (keywords, cased comparisons, regular expressions, wildcards, ...).
    pub(crate) fn required_literals(&self) -> Option<(usize, &str, Vec<String>)> {
        let name = self.field.as_deref()?;
        Some((self.field_id, name, self.literals()?))
    }

    /// Lower-cased literals of which at least one occurs in (the lower-cased text of) every
    /// value the matcher accepts, when they can be proven.
    fn literals(&self) -> Option<Vec<String>> {
        if self.cased {
            return None;
        }
        self.groups.iter().find_map(|g| {
            let mut lits = Vec::new();
            for c in g {
                match c {
                    Check::Str(
                        StrMatcher::Exact(l)
                        | StrMatcher::Prefix(l)
                        | StrMatcher::Suffix(l)
                        | StrMatcher::Contains(l, _),
                    ) if !l.is_empty() => lits.push(l.clone()),
                    Check::Str(StrMatcher::Wildcard(_, Some(l))) => lits.push(l.clone()),
                    Check::Regex(_, Some(l), _) => lits.extend(l.iter().cloned()),
                    Check::AnyContains(_, needles) if needles.iter().all(|n| !n.is_empty()) => {
                        lits.extend(needles.iter().cloned())
                    }
                    // Never empty (see `optimise_affixes`).
                    Check::AnyAffix(affixes) => lits.extend(affixes.literals.iter().cloned()),
                    // An integer equals only numbers written as that integer.
                    Check::NumEq(n) if n.fract() == 0.0 && n.abs() < 1e15 => {
                        lits.push(format!("{}", *n as i64))
                    }
                    _ => return None,
                }
            }
            (!lits.is_empty()).then_some(lits)
        })
    }

    fn check_slot(&self, c: &Check, slot: Option<&Slot<'_>>, event: &Prepared<'_, '_>) -> bool {
        match (c, slot) {
            (Check::Null, v) => matches!(
                v,
                None | Some(Slot {
                    value: FieldValue::Null,
                    ..
                })
            ),
            (Check::Exists(want), v) => {
                matches!(v, Some(v) if v.value != FieldValue::Null) == *want
            }
            (_, None) => false,
            (_, Some(slot)) => slot
                .leaves()
                .iter()
                .any(|leaf| self.check_leaf(c, leaf, event)),
        }
    }

    fn check_leaf(&self, c: &Check, leaf: &Leaf<'_>, event: &Prepared<'_, '_>) -> bool {
        match c {
            Check::NumEq(n) => match &leaf.value {
                FieldValue::Int(i) => *i as f64 == *n,
                FieldValue::Float(f) => f == n,
                _ => false,
            },
            Check::Cmp(op, n) => leaf.value.as_f64().is_some_and(|x| match op {
                Cmp::Lt => x < *n,
                Cmp::Lte => x <= *n,
                Cmp::Gt => x > *n,
                Cmp::Gte => x >= *n,
            }),
            Check::Null | Check::Exists(_) => false,
            _ => match &leaf.text {
                Some(raw) => {
                    let lower = if self.cased || !c.needs_lower() {
                        raw
                    } else {
                        leaf.lower()
                    };
                    self.check_text(c, &Probe { raw, lower }, event)
                }
                None => false,
            },
        }
    }

    fn check_text(&self, c: &Check, probe: &Probe<'_>, event: &Prepared<'_, '_>) -> bool {
        match c {
            // The literal piece every match contains, found by memchr-driven search before
            // the case-insensitive regex runs.
            Check::Str(StrMatcher::Wildcard(re, Some(piece))) if !self.cased => {
                probe.lower.contains(piece.as_str()) && re.is_match(probe.lower)
            }
            Check::Str(m) => m.is_match(probe.text(self.cased)),
            Check::AnyContains(ac, _) => ac.is_match(probe.text(self.cased)),
            Check::AnyAffix(affixes) => affixes.is_match(probe.text(self.cased)),
            Check::Regex(re, _, min_len) => probe.raw.len() >= *min_len && re.is_match(probe.raw),
            Check::Cidr(net) => probe
                .raw
                .trim()
                .parse::<IpAddr>()
                .is_ok_and(|ip| net.contains(&ip)),
            Check::Cmp(..) | Check::NumEq(_) | Check::Null | Check::Exists(_) => false,
            Check::FieldRef(other, id, mode) => {
                let Some(other) = self.referenced_text(event, *id, other) else {
                    return false;
                };
                let other = other.as_ref();
                let s = probe.text(self.cased);
                match mode {
                    RefMode::Equals => s == other,
                    RefMode::StartsWith => s.starts_with(other),
                    RefMode::EndsWith => s.ends_with(other),
                    RefMode::Contains => s.contains(other),
                }
            }
        }
    }

    /// The text of the field a `fieldref` names (field id `id`), lower-cased unless `cased`;
    /// `None` when it is absent or not one scalar.
    fn referenced_text<'v>(
        &self,
        event: &Prepared<'v, '_>,
        id: usize,
        name: &str,
    ) -> Option<Cow<'v, str>> {
        if !event.cached(id) {
            // Compiled after the event was prepared: looked up here.
            let text = event.field(name)?.as_text()?.into_owned();
            return Some(Cow::Owned(if self.cased {
                text
            } else {
                text.to_lowercase()
            }));
        }
        // The field's slot: looked up and lower-cased once per event.
        let slot = event.slot(id, name)?;
        match (&slot.value, slot.leaves()) {
            (FieldValue::List(_), _) => None,
            (_, [leaf]) => {
                let text = leaf.text.as_deref()?;
                Some(Cow::Borrowed(if self.cased { text } else { leaf.lower() }))
            }
            _ => None,
        }
    }
}

/// The regular expression as `regex` parses it with these flags.
fn regex_hir(
    pattern: &str,
    ignore_case: bool,
    multi_line: bool,
    dot_all: bool,
) -> Option<regex_syntax::hir::Hir> {
    regex_syntax::ParserBuilder::new()
        .case_insensitive(ignore_case)
        .multi_line(multi_line)
        .dot_matches_new_line(dot_all)
        .build()
        .parse(pattern)
        .ok()
}

/// Lower-cased literals of which every match of the regular expression contains one: its
/// prefix or suffix literals (whichever set is more selective), as `regex-syntax` extracts
/// them. `None` when the set is infinite, has an empty literal, or a literal whose lower-cased
/// form could miss the lower-cased text (non-ASCII; with `i` also the letters whose case
/// folding leaves ASCII, as in [`safe_literal`]).
fn regex_literals(hir: &regex_syntax::hir::Hir, ignore_case: bool) -> Option<Vec<String>> {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    let usable = |kind: ExtractKind| -> Option<Vec<String>> {
        let mut seq = Extractor::new().kind(kind).extract(hir);
        seq.dedup();
        let lits = seq.literals()?;
        let mut out = Vec::with_capacity(lits.len());
        for lit in lits {
            // A match contains the literal, so it contains any run of the literal's bytes.
            let run = safe_run(lit.as_bytes(), ignore_case)?;
            out.push(String::from_utf8_lossy(run).to_ascii_lowercase());
        }
        out.sort();
        out.dedup();
        (!out.is_empty()).then_some(out)
    };
    // Or a literal every match has inside (`\w+`x`\w+`, `set.*&&.*"`).
    let mut inner = Vec::new();
    required_runs(hir, &mut inner);
    let inner = inner
        .iter()
        .filter_map(|(l, folded)| safe_run(l, ignore_case || *folded))
        .max_by_key(|r| r.len())
        .map(|run| vec![String::from_utf8_lossy(run).to_ascii_lowercase()]);
    // The set whose shortest literal is longest (short ones are found nearly everywhere),
    // the prefixes first, then the suffixes, on a tie.
    let shortest = |l: &Vec<String>| l.iter().map(String::len).min().unwrap_or(0);
    [
        usable(ExtractKind::Prefix),
        usable(ExtractKind::Suffix),
        inner,
    ]
    .into_iter()
    .flatten()
    .rev()
    .max_by_key(shortest)
}

/// Runs every match of `hir` contains: the literals of its top-level concatenation (through
/// groups), joined with the letters of adjacent case-insensitive single-letter classes
/// (`[Ww]`, as `(?i)` writes them); `true` for a run with such letters.
fn required_runs(hir: &regex_syntax::hir::Hir, out: &mut Vec<(Vec<u8>, bool)>) {
    use regex_syntax::hir::HirKind;
    match hir.kind() {
        HirKind::Literal(l) => out.push((l.0.to_vec(), false)),
        HirKind::Capture(c) => required_runs(&c.sub, out),
        HirKind::Concat(items) => {
            let mut run: (Vec<u8>, bool) = (Vec::new(), false);
            for item in items {
                let letter = match item.kind() {
                    HirKind::Class(c) => folded_letter(c),
                    _ => None,
                };
                match (item.kind(), letter) {
                    (HirKind::Literal(l), _) => run.0.extend_from_slice(&l.0),
                    (_, Some(letter)) => {
                        run.0.push(letter);
                        run.1 = true;
                    }
                    _ => {
                        if !run.0.is_empty() {
                            out.push(std::mem::take(&mut run));
                        }
                        required_runs(item, out);
                    }
                }
            }
            if !run.0.is_empty() {
                out.push(run);
            }
        }
        _ => {}
    }
}

/// The ASCII letter (lower-case) whose case variants are exactly the class's characters.
fn folded_letter(class: &regex_syntax::hir::Class) -> Option<u8> {
    let regex_syntax::hir::Class::Unicode(class) = class else {
        return None;
    };
    let size: u32 = class
        .iter()
        .map(|r| u32::from(r.end()) - u32::from(r.start()) + 1)
        .sum();
    if !(2..=3).contains(&size) {
        return None;
    }
    let fold = |c: char| match c {
        'A'..='Z' | 'a'..='z' => Some(c.to_ascii_lowercase()),
        '\u{212A}' => Some('k'),
        '\u{17F}' => Some('s'),
        _ => None,
    };
    let mut chars = class.iter().flat_map(|r| r.start()..=r.end());
    let letter = fold(chars.next()?)?;
    let (mut upper, mut lower) = (false, false);
    for c in class.iter().flat_map(|r| r.start()..=r.end()) {
        if fold(c)? != letter {
            return None;
        }
        upper |= c == letter.to_ascii_uppercase();
        lower |= c == letter;
    }
    (upper && lower).then_some(letter as u8)
}

/// A wildcard pattern's literal piece, or the longest run of it, as it must occur in the
/// lower-cased text the case-insensitive pattern matches (see [`safe_run`]).
fn safe_literal(b: &[u8]) -> Option<String> {
    safe_run(b, true).map(|run| String::from_utf8_lossy(run).to_ascii_lowercase())
}

/// The longest run of `b` that every text containing `b` contains as written once
/// lower-cased: ASCII only and, when `b` is compared ignoring case, without the letters whose
/// case folding reaches beyond ASCII (`k` Kelvin sign, `s` long s, `i` for safety). The whole
/// of `b` when it qualifies, otherwise a run of at least three bytes (shorter ones are found
/// nearly everywhere); `None` when there is none.
fn safe_run(b: &[u8], ignore_case: bool) -> Option<&[u8]> {
    let unsafe_byte = |c: &u8| {
        !c.is_ascii() || (ignore_case && matches!(c.to_ascii_lowercase(), b'k' | b's' | b'i'))
    };
    let run = b.split(unsafe_byte).max_by_key(|r| r.len())?;
    (!run.is_empty() && (run.len() == b.len() || run.len() >= 3)).then_some(run)
}

/// Rejects modifiers that cannot work together (`re|contains`, `cidr|base64`, `i` without
/// `re` ...) instead of silently ignoring some of them.
fn check_combination(mods: &[Modifier]) -> Result<(), String> {
    use Modifier::*;
    let kinds: Vec<Modifier> = mods
        .iter()
        .copied()
        .filter(|m| matches!(m, Re | Cidr | Exists | FieldRef | Lt | Lte | Gt | Gte))
        .collect();
    let allowed: &[Modifier] = match kinds.as_slice() {
        [] => {
            return match mods
                .iter()
                .find(|m| matches!(m, ReIgnoreCase | ReMultiLine | ReDotAll))
            {
                Some(m) => Err(format!("modifier `{}` needs `re`", m.name())),
                None => Ok(()),
            };
        }
        [Re] => &[ReIgnoreCase, ReMultiLine, ReDotAll, All],
        [FieldRef] => &[Contains, StartsWith, EndsWith, All, Cased],
        [Exists] => &[],
        [_] => &[All],
        [a, b, ..] => {
            return Err(format!(
                "modifiers `{}` and `{}` cannot be combined",
                a.name(),
                b.name()
            ));
        }
    };
    match mods
        .iter()
        .find(|m| **m != kinds[0] && !allowed.contains(m))
    {
        Some(m) => Err(format!(
            "modifier `{}` cannot be combined with `{}`",
            m.name(),
            kinds[0].name()
        )),
        None => Ok(()),
    }
}

/// Many `contains` literals in one OR list are searched with one automaton.
fn optimise_contains(checks: &mut Vec<Check>) {
    let count = checks
        .iter()
        .filter(|c| matches!(c, Check::Str(StrMatcher::Contains(..))))
        .count();
    if count < 4 {
        return;
    }
    let mut needles = Vec::with_capacity(count);
    checks.retain(|c| match c {
        Check::Str(StrMatcher::Contains(l, _)) => {
            needles.push(l.clone());
            false
        }
        _ => true,
    });
    match AhoCorasick::new(needles.clone()) {
        Ok(ac) => checks.push(Check::AnyContains(ac, needles)),
        Err(_) => checks.extend(
            needles
                .into_iter()
                .map(|n| Check::Str(StrMatcher::contains(n))),
        ),
    }
}

/// Exact, prefix and suffix literals, each set keyed by the literals' length: a value is
/// checked with one hash lookup per distinct length instead of one comparison per literal
/// (`Image|endswith` lists of fifty binaries are common).
#[derive(Debug, Clone, Default)]
struct Affixes {
    exact: FxHashSet<Box<[u8]>>,
    prefixes: Vec<(usize, FxHashSet<Box<[u8]>>)>,
    suffixes: Vec<(usize, FxHashSet<Box<[u8]>>)>,
    /// Every literal (for the prefilter).
    literals: Vec<String>,
}

impl Affixes {
    fn add(by_len: &mut Vec<(usize, FxHashSet<Box<[u8]>>)>, literal: &str) {
        let len = literal.len();
        let at = match by_len.iter().position(|(n, _)| *n == len) {
            Some(at) => at,
            None => {
                by_len.push((len, FxHashSet::default()));
                by_len.len() - 1
            }
        };
        by_len[at].1.insert(literal.as_bytes().into());
    }

    fn is_match(&self, text: &str) -> bool {
        let b = text.as_bytes();
        self.exact.contains(b)
            || self
                .suffixes
                .iter()
                .any(|(n, set)| b.len() >= *n && set.contains(&b[b.len() - n..]))
            || self
                .prefixes
                .iter()
                .any(|(n, set)| b.get(..*n).is_some_and(|p| set.contains(p)))
    }
}

/// Four or more non-empty exact, prefix or suffix literals of one group become one
/// [`Check::AnyAffix`].
fn optimise_affixes(checks: &mut Vec<Check>) {
    let affix = |c: &Check| match c {
        Check::Str(StrMatcher::Exact(l) | StrMatcher::Prefix(l) | StrMatcher::Suffix(l)) => {
            !l.is_empty()
        }
        _ => false,
    };
    if checks.iter().filter(|c| affix(c)).count() < 4 {
        return;
    }
    let mut affixes = Affixes::default();
    checks.retain(|c| {
        if !affix(c) {
            return true;
        }
        match c {
            Check::Str(StrMatcher::Exact(l)) => {
                affixes.exact.insert(l.as_bytes().into());
                affixes.literals.push(l.clone());
            }
            Check::Str(StrMatcher::Prefix(l)) => {
                Affixes::add(&mut affixes.prefixes, l);
                affixes.literals.push(l.clone());
            }
            Check::Str(StrMatcher::Suffix(l)) => {
                Affixes::add(&mut affixes.suffixes, l);
                affixes.literals.push(l.clone());
            }
            _ => {}
        }
        false
    });
    checks.push(Check::AnyAffix(Box::new(affixes)));
}

/// `expand` with unknown placeholders as `*`: known ones still expand to their values.
fn wildcard_placeholders(p: &Pattern, opts: &CompileOptions) -> Vec<Pattern> {
    let mut out = Pattern::default();
    for part in &p.0 {
        let Part::Lit(b) = part else {
            out.push(part.clone());
            continue;
        };
        let mut i = 0;
        while i < b.len() {
            let close = (b[i] == b'%')
                .then(|| b[i + 1..].iter().position(|c| *c == b'%'))
                .flatten();
            match close {
                Some(end) if end > 0 => {
                    let name = String::from_utf8_lossy(&b[i + 1..i + 1 + end]);
                    if opts.placeholders.contains_key(name.as_ref()) {
                        out.push_bytes(&b[i..i + end + 2]);
                    } else {
                        out.push(Part::Many);
                    }
                    i += end + 2;
                }
                _ => {
                    out.push_bytes(&b[i..i + 1]);
                    i += 1;
                }
            }
        }
    }
    // Expand the known placeholders that remain.
    let known = CompileOptions {
        placeholders: opts.placeholders.clone(),
        unresolved_placeholders: PlaceholderPolicy::NoMatch,
    };
    let mut wrapped = false;
    apply(Modifier::Expand, vec![out], &known, &mut wrapped).unwrap_or_default()
}

enum Applied {
    Invalid(String),
    Unresolved(String),
}

/// Applies one transforming modifier to every variant of a value, left to right as written.
fn apply(
    m: Modifier,
    patterns: Vec<Pattern>,
    opts: &CompileOptions,
    wrapped: &mut bool,
) -> Result<Vec<Pattern>, Applied> {
    let each = |f: &dyn Fn(Pattern) -> Result<Vec<Pattern>, Applied>| {
        let mut out = Vec::new();
        for p in patterns.clone() {
            out.extend(f(p)?);
        }
        Ok(out)
    };
    let plain = |p: &Pattern, name: &str| {
        if p.has_wildcards() {
            Err(Applied::Invalid(format!(
                "`{name}` cannot encode a value with wildcards"
            )))
        } else {
            Ok(p.lit_bytes())
        }
    };
    match m {
        Modifier::Contains | Modifier::StartsWith | Modifier::EndsWith => {
            *wrapped = true;
            each(&|mut p| {
                if m != Modifier::StartsWith && !p.starts_many() {
                    p.0.insert(0, Part::Many);
                }
                if m != Modifier::EndsWith && !p.ends_many() {
                    p.0.push(Part::Many);
                }
                Ok(vec![p])
            })
        }
        Modifier::Base64 => each(&|p| {
            let b = plain(&p, "base64")?;
            Ok(vec![Pattern::literal(&BASE64.encode(b))])
        }),
        Modifier::Base64Offset => each(&|p| {
            let b = plain(&p, "base64offset")?;
            Ok(base64_offsets(&b)
                .into_iter()
                .map(|v| {
                    let mut p = Pattern::default();
                    p.push_bytes(&v);
                    p
                })
                .collect())
        }),
        Modifier::Utf16Le => each(&|p| Ok(vec![p.map_lits(|b| utf16(b, false))])),
        Modifier::Utf16Be => each(&|p| Ok(vec![p.map_lits(|b| utf16(b, true))])),
        Modifier::Utf16 => each(&|p| {
            let mut out = Pattern::default();
            out.push_bytes(&[0xFF, 0xFE]);
            for part in p.map_lits(|b| utf16(b, false)).0 {
                out.push(part);
            }
            Ok(vec![out])
        }),
        Modifier::Windash => each(&|p| {
            p.expand_each(&|b, i| {
                let prev_word = i > 0 && is_word_byte(b[i - 1]);
                let next_word = b.get(i + 1).is_some_and(|n| is_word_byte(*n));
                ((b[i] == b'-' || b[i] == b'/') && !prev_word && next_word)
                    .then(|| (1, WINDASHES.iter().map(|d| d.as_bytes().to_vec()).collect()))
            })
            .map_err(Applied::Invalid)
        }),
        Modifier::Expand => each(&|p| {
            let missing = std::cell::RefCell::new(None::<String>);
            let variants = p
                .expand_each(&|b, i| {
                    if b[i] != b'%' {
                        return None;
                    }
                    let end = b[i + 1..].iter().position(|c| *c == b'%')?;
                    let name = String::from_utf8_lossy(&b[i + 1..i + 1 + end]).into_owned();
                    if name.is_empty() || name.contains(char::is_whitespace) {
                        return None;
                    }
                    match opts.placeholders.get(&name) {
                        Some(values) => Some((
                            end + 2,
                            values.iter().map(|v| v.as_bytes().to_vec()).collect(),
                        )),
                        None => {
                            missing.borrow_mut().get_or_insert(name);
                            Some((end + 2, Vec::new()))
                        }
                    }
                })
                .map_err(Applied::Invalid)?;
            match missing.into_inner() {
                Some(name) if opts.unresolved_placeholders == PlaceholderPolicy::Error => {
                    Err(Applied::Unresolved(name))
                }
                Some(_) if opts.unresolved_placeholders == PlaceholderPolicy::Wildcard => {
                    Ok(wildcard_placeholders(&p, opts))
                }
                _ => Ok(variants),
            }
        }),
        // Flags and kinds handled by the caller.
        Modifier::All
        | Modifier::Cased
        | Modifier::Re
        | Modifier::ReIgnoreCase
        | Modifier::ReMultiLine
        | Modifier::ReDotAll
        | Modifier::Cidr
        | Modifier::Exists
        | Modifier::FieldRef
        | Modifier::Lt
        | Modifier::Lte
        | Modifier::Gt
        | Modifier::Gte => Ok(patterns),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regex_skips_values_shorter_than_its_shortest_match_only() {
        let yaml = "title: t\nlogsource: {product: windows}\ndetection:\n    sel:\n        CommandLine|re: '\\s[a-f0-9]{4}\\s[a-f0-9]{2}(x|yy)?$'\n    condition: sel\n";
        let rule = crate::CompiledRule::from_yaml(yaml, &Default::default()).expect("compiles");
        let cmd = |value: &str| rule.is_match(&serde_json::json!({ "CommandLine": value }));
        assert!(cmd(" abcd 12"), "exactly the shortest match (8 bytes)");
        assert!(cmd("run abcd 12yy"));
        assert!(!cmd(" abcd 1") && !cmd("abcd 12"));
    }

    #[test]
    fn long_affix_lists_match_as_the_literals_one_by_one() {
        let rule = |sel: &str| {
            let yaml = format!(
                "title: t\nlogsource: {{product: windows}}\ndetection:\n    sel:\n{sel}\n    condition: sel\n"
            );
            crate::CompiledRule::from_yaml(&yaml, &Default::default()).expect("rule compiles")
        };
        let image = |value: &str| serde_json::json!({ "Image": value });
        let suffixes = rule(
            "        Image|endswith: ['\\\\cmd.exe', '\\\\pwsh.exe', '\\\\powershell.exe', 'x.exe', '.com']",
        );
        for hit in [
            "C:\\Windows\\CMD.EXE",
            "pwsh.exe\\pwsh.exe",
            "x.exe",
            "a.COM",
            "\\cmd.exe",
        ] {
            assert!(suffixes.is_match(&image(hit)), "{hit}");
        }
        for miss in ["cmd.exe", "C:\\cmd.exe.bak", "", ".co", "\\powershell.ex"] {
            assert!(!suffixes.is_match(&image(miss)), "{miss}");
        }
        let mixed = rule(
            "        Image|startswith: ['C:\\\\Temp\\\\', 'D:\\\\', 'C:\\\\Users\\\\Public\\\\', '\\\\\\\\srv\\\\']",
        );
        for hit in [
            "c:\\temp\\a.exe",
            "D:\\",
            "C:\\Users\\Public\\x",
            "\\\\srv\\share",
        ] {
            assert!(mixed.is_match(&image(hit)), "{hit}");
        }
        for miss in ["C:\\Temp", "E:\\D:\\", "c:\\users\\publicx", "\\srv\\"] {
            assert!(!mixed.is_match(&image(miss)), "{miss}");
        }
        let exact = rule("        Image: ['System', 'Registry', 'MemCompression', 'vmmem', '-']");
        assert!(exact.is_match(&image("SYSTEM")) && exact.is_match(&image("-")));
        assert!(!exact.is_match(&image("Systems")) && !exact.is_match(&image("vmme")));
        // With `cased` the literals keep their case.
        let cased = rule("        Image|endswith|cased: ['A.exe', 'B.exe', 'C.exe', 'D.exe']");
        assert!(cased.is_match(&image("xA.exe")) && !cased.is_match(&image("xa.exe")));
    }

    #[test]
    fn regex_literals_are_proven_or_refused() {
        let lits = |p: &str, i: bool| regex_literals(&regex_hir(p, i, false, false)?, i);
        assert_eq!(
            lits("abc|Def", false),
            Some(vec!["abc".into(), "def".into()])
        );
        // Suffix literals when the prefix is unbounded.
        assert_eq!(lits(".*\\.dll$", false), Some(vec![".dll".into()]));
        // Case-insensitive: the case variants collapse into one lower-cased literal.
        assert_eq!(lits("(?i)wget ", false), Some(vec!["wget ".into()]));
        assert_eq!(lits("wget ", true), Some(vec!["wget ".into()]));
        // Letters whose case folding leaves ASCII (Kelvin sign, long s) are left out: the
        // longest run without them, when it has three bytes or more.
        // (An inline `(?i)` lists the Kelvin sign and long s variants, which give the runs.)
        assert_eq!(
            lits("(?i)kill", false),
            Some(vec!["ill".into(), "kill".into()])
        );
        assert_eq!(lits("kill", true), None);
        assert_eq!(lits("curl -s", true), Some(vec!["curl -".into()]));
        assert_eq!(
            lits("(?i)curl -s", false),
            Some(vec!["curl -".into(), "curl -s".into()])
        );
        // Runs shorter than three bytes do not count (a whole literal inside does: "`").
        assert_eq!(lits("x-s-z", true), None);
        // A literal inside when neither end is one, or when it is longer than the ends'.
        assert_eq!(
            lits(
                r#"(?i)(?:set).*&&\s?set.*(?:environment|invoke).*&&.*""#,
                false
            ),
            Some(vec!["&&".into()])
        );
        assert_eq!(lits("ab[a-z]cdef[a-z]gh", false), Some(vec!["cdef".into()]));
        // Case-insensitive letters inside, without the unsafe ones.
        assert_eq!(
            lits(
                r#"(?i)\.exe["']?\s+[^"]{0,64}werfaultsecure\.exe["']?\s+\d{2,10}"#,
                false
            ),
            Some(vec!["ecure.exe".into()])
        );
        assert_eq!(
            lits("[a-z]+werfault[a-z]+", true),
            Some(vec!["werfault".into()])
        );
        assert_eq!(
            lits("\\w+`(?:\\w+|-|.)`[\\w+|\\s]", false),
            Some(vec!["`".into()])
        );
        assert_eq!(lits("[a-z]+(foo)+[a-z]+", false), None);
        assert_eq!(
            lits("[a-z]+(x|y)(foo)[a-z]+", false),
            Some(vec!["foo".into()])
        );
        // Nothing every match must contain, or non-ASCII.
        assert_eq!(lits(".*", false), None);
        assert_eq!(lits("a?", false), None);
        assert_eq!(lits("é+", false), None);
        assert_eq!(lits("é+x", false), Some(vec!["x".into()]));
        assert_eq!(lits("[", false), None);
    }

    #[test]
    fn wildcard_literals_are_runs_without_unsafe_letters() {
        let lit = |p: &str| match StrMatcher::compile(&Pattern::parse(p), false) {
            Ok(StrMatcher::Wildcard(_, l)) => l,
            _ => panic!("{p}: not a wildcard"),
        };
        assert_eq!(
            lit("*reg query hkey_current*\\putty*"),
            Some("reg query h".into())
        );
        assert_eq!(lit("*ab*cde*"), Some("cde".into()));
        assert_eq!(lit("*sk*is*"), None);
        assert_eq!(lit("*x\u{e9}y*\u{e9}*"), None);
        assert_eq!(lit("*abc\u{e9}defg*h\u{e9}*"), Some("defg".into()));
    }

    #[test]
    fn escapes_follow_the_specification() {
        let p = Pattern::parse(r"a\*b\?c\\d\e*?");
        assert_eq!(
            p.0,
            vec![Part::Lit(br"a*b?c\d\e".to_vec()), Part::Many, Part::One]
        );
        assert_eq!(
            Pattern::parse(r"\\*").0,
            vec![Part::Lit(b"\\".to_vec()), Part::Many]
        );
        assert_eq!(Pattern::parse("x\\").0, vec![Part::Lit(b"x\\".to_vec())]);
    }

    #[test]
    fn base64offset_matches_pysigma() {
        // pySigma: base64offset('/bin/bash') == ['L2Jpbi9iYXNo', '9iaW4vYmFza', 'vYmluL2Jhc2']
        let got: Vec<String> = base64_offsets(b"/bin/bash")
            .into_iter()
            .map(|v| String::from_utf8(v).unwrap())
            .collect();
        assert_eq!(got, ["L2Jpbi9iYXNo", "9iaW4vYmFza", "vYmluL2Jhc2"]);
    }

    #[test]
    fn windash_replaces_only_option_dashes() {
        let p = Pattern::parse(" -foo a-b");
        let find = |b: &[u8], i: usize| {
            let prev_word = i > 0 && is_word_byte(b[i - 1]);
            let next_word = b.get(i + 1).is_some_and(|n| is_word_byte(*n));
            ((b[i] == b'-') && !prev_word && next_word).then(|| (1, vec![b"/".to_vec()]))
        };
        let v = p.expand_each(&find).unwrap();
        assert_eq!(v, vec![Pattern::literal(" /foo a-b")]);
    }
}
