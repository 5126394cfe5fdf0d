//! Rules compiled once, evaluated many times; loading a directory of rules.

use std::collections::HashMap;

use rustc_hash::FxHashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::condition::{self, Cond};
use crate::correlation::{CorrelationEngine, CorrelationRule, is_correlation};
use crate::event::{Event, Prepared, ViewRenames};
use crate::filter::{FilterRule, is_filter};
use crate::pipeline::{PipelineSet, Renames};
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
    fn is_match(&self, event: &Prepared<'_, '_>) -> bool {
        match self {
            CompiledSearch::All(fields) => fields.iter().all(|f| f.is_match(event)),
            CompiledSearch::Any(maps) => maps.iter().any(|m| m.iter().all(|f| f.is_match(event))),
        }
    }
}

/// Field -> lower-cased literals: a rule can only match when one of them occurs in its field.
type Required<'r> = Vec<(usize, &'r str, Vec<String>)>;

/// At most this many requirements gate one rule: each costs a check, and the most selective
/// ones rule out nearly everything already.
const MAX_GROUPS: usize = 3;

impl CompiledSearch {
    /// Requirements that hold together: a match needs one literal of each.
    fn required(&self) -> Vec<Required<'_>> {
        match self {
            CompiledSearch::All(fields) => fields
                .iter()
                .filter_map(|f| f.required_literals().map(|r| vec![r]))
                .collect(),
            CompiledSearch::Any(maps) => alternatives(
                maps.iter()
                    .map(|m| {
                        m.iter()
                            .filter_map(|f| f.required_literals().map(|r| vec![r]))
                            .collect()
                    })
                    .collect(),
            ),
        }
    }
}

/// Which of several requirements to keep (smallest first): the one whose shortest literal is
/// longest (short literals occur everywhere), then the one with fewer literals.
fn selectivity(r: &Required<'_>) -> (std::cmp::Reverse<usize>, usize) {
    let lits = r.iter().flat_map(|(_, _, l)| l);
    let shortest = lits.clone().map(String::len).min().unwrap_or(0);
    (std::cmp::Reverse(shortest), lits.count())
}

/// The most selective of requirements that hold together.
fn best(groups: Vec<Required<'_>>) -> Option<Required<'_>> {
    groups.into_iter().min_by_key(selectivity)
}

/// What the condition requires: requirements that must all hold on every path to a match
/// (none when nothing is required).
fn cond_required<'r>(cond: &Cond, searches: &'r [CompiledSearch]) -> Vec<Required<'r>> {
    match cond {
        Cond::Search(i) => searches[*i].required(),
        Cond::Not(_) => Vec::new(),
        Cond::And(cs) => cs.iter().flat_map(|c| cond_required(c, searches)).collect(),
        Cond::All(ids) => ids.iter().flat_map(|i| searches[*i].required()).collect(),
        Cond::Or(cs) => alternatives(cs.iter().map(|c| cond_required(c, searches)).collect()),
        Cond::AtLeast(n, ids) if *n >= 1 => {
            alternatives(ids.iter().map(|i| searches[*i].required()).collect())
        }
        Cond::AtLeast(..) => Vec::new(),
    }
}

/// What a match of any one of several branches requires, given each branch's requirements:
/// for every requirement of every branch, its union with the other branches' best ones (each
/// holds whichever branch matched). `1 of (A and B, C)` gives `A or C` and `B or C`, not only
/// the one with the longer literals, which may be found in nearly every event.
fn alternatives(branches: Vec<Vec<Required<'_>>>) -> Vec<Required<'_>> {
    if branches.iter().any(Vec::is_empty) {
        return Vec::new();
    }
    let Some(bests) = branches
        .iter()
        .map(|b| best(b.clone()))
        .collect::<Option<Vec<_>>>()
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, branch) in branches.iter().enumerate() {
        for group in branch {
            let mut u = group.clone();
            for (j, other) in bests.iter().enumerate() {
                if j != i {
                    u.extend(other.iter().cloned());
                }
            }
            out.push(u);
        }
    }
    out
}

/// Rules skipped unless each of their requirements (up to [`MAX_GROUPS`]) has one of its
/// literals in the event: one automaton per field over the literals rules require there,
/// each literal pointing at the requirements ("gates") it satisfies. A field's automaton runs
/// at most once per event view: with pipelines only when a candidate rule needs its answer,
/// without them over every field (the rules whose gates all open are the candidates).
#[derive(Debug, Clone, Default)]
struct Prefilter {
    fields: Vec<PrefilterField>,
    /// Per rule: the prefilter fields its gates look at; empty for rules that are not gated
    /// (always evaluated).
    rule_fields: Vec<Vec<u32>>,
    /// Per rule: its gates (all must open for the rule to be possible).
    rule_gates: Vec<Vec<u32>>,
    /// The rules without gates (always evaluated).
    ungated: Vec<usize>,
    /// Per gate: its rule.
    gate_rule: Vec<u32>,
    /// Per gate: the prefilter fields it looks at.
    gate_fields: Vec<Vec<u32>>,
}

/// A gate a literal opens, with what the scan needs to tell whether that makes its rule
/// possible, kept beside the literal's other gates: no lookups elsewhere (cache misses) per
/// gate opened.
#[derive(Debug, Clone, Copy)]
struct Open {
    gate: u32,
    rule: u32,
    /// The rule's other gates ([`NO_GATE`] where it has fewer).
    others: [u32; MAX_GROUPS - 1],
}

const NO_GATE: u32 = u32::MAX;

/// Opens gate `o` in `open`; `found` gets its rule when that was the rule's last closed gate.
#[inline(always)]
fn open_gate(open: &mut [u64], o: &Open, found: &mut dyn FnMut(usize)) {
    if has_bit(open, o.gate) {
        return;
    }
    open[o.gate as usize / 64] |= 1 << (o.gate % 64);
    if o.others.iter().all(|&g| g == NO_GATE || has_bit(open, g)) {
        found(o.rule as usize);
    }
}

#[derive(Debug, Clone)]
struct PrefilterField {
    id: usize,
    name: String,
    automaton: Literals,
    /// Literal `p` opens the gates `opens[starts[p]..starts[p + 1]]`.
    starts: Vec<u32>,
    opens: Vec<Open>,
    /// Every gate looking at this field (for [`Prefilter::worth_scanning`] and the scan
    /// order).
    all_gates: Vec<u32>,
}

/// What the prefilter learned about one event view: which fields were scanned, and which
/// gates opened (a bitset: it is cleared for every view of every event).
pub(crate) struct PrefilterState {
    scanned: Vec<bool>,
    open: Vec<u64>,
    /// Literals found by the current scan (a buffer kept between scans).
    seen: Vec<u64>,
}

impl PrefilterState {
    /// Ready for a new event view (its buffers kept).
    fn reset(&mut self, prefilter: &Prefilter) {
        self.scanned.clear();
        self.scanned.resize(prefilter.fields.len(), false);
        self.open.clear();
        self.open.resize(prefilter.gate_rule.len().div_ceil(64), 0);
    }
}

/// The buffers [`Ruleset::indexed_matches`] needs for an event, kept per thread between
/// events (no allocations per event once they have grown).
#[derive(Default)]
struct Scratch {
    /// Per view: its prefilter state, and whether it was reset for the current event.
    states: Vec<(PrefilterState, bool)>,
    entries: Vec<usize>,
    eval: Vec<u32>,
    key: String,
}

thread_local! {
    static SCRATCH: std::cell::Cell<Option<Box<Scratch>>> = const { std::cell::Cell::new(None) };
}

impl Prefilter {
    fn build(rules: &[CompiledRule]) -> Self {
        let mut by_field: Vec<(usize, String, HashMap<String, Vec<u32>>)> = Vec::new();
        let mut rule_fields: Vec<Vec<u32>> = vec![Vec::new(); rules.len()];
        let mut rule_gates: Vec<Vec<u32>> = vec![Vec::new(); rules.len()];
        let mut gate_rule: Vec<u32> = Vec::new();
        let mut gate_fields: Vec<Vec<u32>> = Vec::new();
        for (r, rule) in rules.iter().enumerate() {
            let mut groups = cond_required(&rule.condition, &rule.searches);
            groups.sort_by_key(selectivity);
            groups.dedup();
            groups.truncate(MAX_GROUPS);
            for group in groups {
                let gate = gate_rule.len() as u32;
                gate_rule.push(r as u32);
                gate_fields.push(Vec::new());
                rule_gates[r].push(gate);
                for (id, name, lits) in group {
                    let slot = match by_field.iter().position(|(i, _, _)| *i == id) {
                        Some(i) => i,
                        None => {
                            by_field.push((id, name.to_string(), HashMap::new()));
                            by_field.len() - 1
                        }
                    };
                    if !rule_fields[r].contains(&(slot as u32)) {
                        rule_fields[r].push(slot as u32);
                    }
                    if !gate_fields[gate as usize].contains(&(slot as u32)) {
                        gate_fields[gate as usize].push(slot as u32);
                    }
                    for lit in lits {
                        let list = by_field[slot].2.entry(lit).or_default();
                        if list.last() != Some(&gate) {
                            list.push(gate);
                        }
                    }
                }
            }
        }
        let mut fields = Vec::with_capacity(by_field.len());
        let mut ungated = Vec::new();
        for (id, name, lits) in by_field {
            let (patterns, gate_lists): (Vec<String>, Vec<Vec<u32>>) = lits.into_iter().unzip();
            let mut all_gates: Vec<u32> = gate_lists.iter().flatten().copied().collect();
            all_gates.sort_unstable();
            all_gates.dedup();
            match Literals::new(&patterns) {
                Ok(automaton) => fields.push((
                    PrefilterField {
                        id,
                        name,
                        automaton,
                        starts: Vec::new(),
                        opens: Vec::new(),
                        all_gates,
                    },
                    gate_lists,
                )),
                Err(_) => {
                    // Cannot search these: their rules are always evaluated. The field keeps
                    // its place (rule_fields index it) with an automaton that finds nothing.
                    ungated.extend(all_gates.iter().map(|&g| gate_rule[g as usize]));
                    if let Ok(automaton) = Literals::new(&[]) {
                        fields.push((
                            PrefilterField {
                                id,
                                name,
                                automaton,
                                starts: Vec::new(),
                                opens: Vec::new(),
                                all_gates,
                            },
                            Vec::new(),
                        ));
                    }
                }
            }
        }
        for r in ungated {
            rule_fields[r as usize].clear();
            rule_gates[r as usize].clear();
        }
        let fields = fields
            .into_iter()
            .map(|(mut field, lists)| {
                field.starts.clear();
                field.starts.push(0);
                for list in lists {
                    field.opens.extend(list.into_iter().map(|gate| {
                        let rule = gate_rule[gate as usize];
                        let mut others = [NO_GATE; MAX_GROUPS - 1];
                        let mut other = rule_gates[rule as usize].iter().filter(|&&g| g != gate);
                        others.fill_with(|| other.next().copied().unwrap_or(NO_GATE));
                        Open { gate, rule, others }
                    }));
                    field.starts.push(field.opens.len() as u32);
                }
                field
            })
            .collect();
        Prefilter {
            ungated: (0..rules.len())
                .filter(|&r| rule_gates[r].is_empty())
                .collect(),
            fields,
            rule_fields,
            rule_gates,
            gate_rule,
            gate_fields,
        }
    }

    /// The rules that can match the event, ascending: the ungated ones and those whose gates
    /// all opened in a scan of every field.
    fn candidates(&self, event: &Prepared<'_, '_>) -> Vec<usize> {
        let mut state = self.state();
        let mut out = self.ungated.clone();
        // Every field (whether a scan could still make a rule possible is not worth asking
        // here: most fields are absent from any one event, so their scans cost a lookup).
        for f in 0..self.fields.len() {
            self.scan(f, &mut state, event, &mut |r| out.push(r));
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    fn state(&self) -> PrefilterState {
        let mut state = PrefilterState {
            scanned: Vec::new(),
            open: Vec::new(),
            seen: Vec::new(),
        };
        state.reset(self);
        state
    }

    /// Whether scanning field `f` could make a rule possible: false when every rule with a
    /// gate on it has another gate that stayed closed after all its fields were scanned.
    /// Checked only for fields few gates look at (the others are scanned anyway).
    fn worth_scanning(&self, f: usize, state: &PrefilterState) -> bool {
        let gates = &self.fields[f].all_gates;
        if state.scanned[f] || gates.len() > WORTH_CHECKING {
            return true;
        }
        gates.iter().any(|&g| {
            let r = self.gate_rule[g as usize] as usize;
            self.rule_gates[r].iter().all(|&o| {
                o == g
                    || has_bit(&state.open, o)
                    || self.gate_fields[o as usize]
                        .iter()
                        .any(|&h| !state.scanned[h as usize])
            })
        })
    }

    /// Scans field `f` of `event` (once per state): gates one of whose literals occurs there
    /// open, and `found` is called with each rule whose last gate this opened.
    fn scan(
        &self,
        f: usize,
        state: &mut PrefilterState,
        event: &Prepared<'_, '_>,
        found: &mut dyn FnMut(usize),
    ) {
        if std::mem::replace(&mut state.scanned[f], true) {
            return;
        }
        let field = &self.fields[f];
        if !event.cached(field.id) {
            // Not looked up through the cache: all its literals' gates open (the rules are
            // evaluated).
            for o in &field.opens {
                open_gate(&mut state.open, o, found);
            }
            return;
        }
        let Some(slot) = event.slot(field.id, &field.name) else {
            return;
        };
        // Each literal's gates are opened once, however often it occurs.
        let mut seen = std::mem::take(&mut state.seen);
        seen.clear();
        seen.resize((field.starts.len() - 1).div_ceil(64), 0);
        let open = &mut state.open;
        for leaf in slot.leaves() {
            if leaf.text.is_none() {
                continue;
            }
            field.automaton.each_match(leaf.lower().as_bytes(), |p| {
                if seen[p / 64] & (1 << (p % 64)) != 0 {
                    return;
                }
                seen[p / 64] |= 1 << (p % 64);
                let (from, to) = (field.starts[p] as usize, field.starts[p + 1] as usize);
                for o in &field.opens[from..to] {
                    open_gate(open, o, found);
                }
            });
        }
        state.seen = seen;
    }
}

/// One field's literals, each found at every occurrence (overlapping). Usually by walking an
/// automaton byte by byte (cheaper per match than an overlapping iterator; a contiguous NFA
/// rather than a DFA, whose much larger rows miss the cache: measured slower, and 11 MB more
/// for the SigmaHQ rules). A field whose literals are all long and many (file hashes) has
/// them found through one 8-byte window each instead ([`Windows`]): a walk through
/// thousands of long literals' states misses the cache on nearly every byte, while windows
/// are looked up independently of one another, most turned away by a bitmap in the cache.
#[derive(Debug, Clone)]
enum Literals {
    Nfa(Box<aho_corasick::nfa::contiguous::NFA>),
    Windows(Windows),
}

/// Bytes of a window.
const WINDOW: usize = 8;
/// Literals a field needs (all of at least [`WINDOW`] bytes) to have them found by window.
const MIN_WINDOWED: usize = 64;

#[derive(Debug, Clone)]
struct Windows {
    /// Bit `hash(window)` is set for every window in `table`.
    bits: Box<[u64]>,
    /// Bits of the hash (`bits` has `1 << hash_bits` bits).
    hash_bits: u32,
    /// Window -> its literals in `found` (a range).
    table: FxHashMap<u64, (u32, u32)>,
    /// (literal, offset of its window in it).
    found: Vec<(u32, u32)>,
    literals: Vec<Box<[u8]>>,
}

fn window_at(text: &[u8], at: usize) -> Option<u64> {
    let w: [u8; WINDOW] = text.get(at..at + WINDOW)?.try_into().ok()?;
    Some(u64::from_le_bytes(w))
}

impl Windows {
    fn bit(&self, window: u64) -> usize {
        (window.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - self.hash_bits)) as usize
    }

    /// Each literal (all at least [`WINDOW`] bytes) gets the window in it the fewest
    /// literals before it got (one per literal, so an occurrence is found once), preferring
    /// the last.
    fn new(literals: Vec<Box<[u8]>>) -> Self {
        let mut by_window: FxHashMap<u64, Vec<(u32, u32)>> = FxHashMap::default();
        for (id, lit) in literals.iter().enumerate() {
            let best = (0..=lit.len().saturating_sub(WINDOW))
                .rev()
                .filter_map(|at| Some((at, window_at(lit, at)?)))
                .min_by_key(|(_, w)| by_window.get(w).map_or(0, Vec::len));
            if let Some((at, w)) = best {
                by_window.entry(w).or_default().push((id as u32, at as u32));
            }
        }
        // About 16 bits per window: most windows of a text that are no literal's miss.
        let hash_bits = (by_window.len() * 16)
            .next_power_of_two()
            .trailing_zeros()
            .max(6);
        let mut windows = Windows {
            bits: vec![0; (1usize << hash_bits) / 64].into_boxed_slice(),
            hash_bits,
            table: FxHashMap::default(),
            found: Vec::new(),
            literals,
        };
        for (w, list) in by_window {
            let bit = windows.bit(w);
            windows.bits[bit / 64] |= 1 << (bit % 64);
            let from = windows.found.len() as u32;
            windows.found.extend(list);
            windows.table.insert(w, (from, windows.found.len() as u32));
        }
        windows
    }

    fn each_match(&self, text: &[u8], mut found: impl FnMut(usize)) {
        for at in 0..=text.len().saturating_sub(WINDOW) {
            let Some(w) = window_at(text, at) else {
                return;
            };
            let bit = self.bit(w);
            if self.bits[bit / 64] & (1 << (bit % 64)) == 0 {
                continue;
            }
            let Some(&(from, to)) = self.table.get(&w) else {
                continue;
            };
            for &(lit, offset) in &self.found[from as usize..to as usize] {
                if let Some(start) = at.checked_sub(offset as usize)
                    && text[start..].starts_with(&self.literals[lit as usize])
                {
                    found(lit as usize);
                }
            }
        }
    }
}

impl Literals {
    fn new(patterns: &[String]) -> std::result::Result<Self, aho_corasick::BuildError> {
        if patterns.len() >= MIN_WINDOWED && patterns.iter().all(|p| p.len() >= WINDOW) {
            let literals = patterns.iter().map(|p| p.as_bytes().into()).collect();
            return Ok(Literals::Windows(Windows::new(literals)));
        }
        let nfa = aho_corasick::nfa::contiguous::NFA::new(patterns)?;
        Ok(Literals::Nfa(Box::new(nfa)))
    }

    /// Calls `found` with the literal of every match in `text` (a literal as often as it
    /// occurs; several at one position when one ends in another), in no particular order.
    fn each_match(&self, text: &[u8], mut found: impl FnMut(usize)) {
        use aho_corasick::Anchored;
        use aho_corasick::automaton::Automaton;
        let nfa = match self {
            Literals::Nfa(nfa) => nfa,
            Literals::Windows(windows) => return windows.each_match(text, found),
        };
        let Ok(mut sid) = nfa.start_state(Anchored::No) else {
            return;
        };
        for &b in text {
            sid = nfa.next_state(Anchored::No, sid, b);
            if nfa.is_special(sid) {
                if nfa.is_dead(sid) {
                    return;
                }
                if nfa.is_match(sid) {
                    // Standard match semantics: a state lists its own literals and those of
                    // the states its failure links lead to.
                    for i in 0..nfa.match_len(sid) {
                        found(nfa.match_pattern(sid, i).as_usize());
                    }
                }
            }
        }
    }
}

/// Gates on a field up to which [`Prefilter::worth_scanning`] checks whether their rules
/// still have a chance before the field is scanned.
const WORTH_CHECKING: usize = 64;

/// A Sigma rule compiled into matchers.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    rule: SigmaRule,
    searches: Vec<CompiledSearch>,
    condition: Cond,
    /// Filter rules attached to this rule: a match of any of them suppresses the rule's.
    filters: Vec<Arc<FilterRule>>,
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
            filters: Vec::new(),
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

    /// Whether the event matches the rule's condition and none of its filters.
    pub fn is_match(&self, event: &dyn Event) -> bool {
        Prepared::with(event, |p| self.is_match_prepared(p))
    }

    /// [`CompiledRule::is_match`] against an event prepared once for many rules.
    pub(crate) fn is_match_prepared(&self, event: &Prepared<'_, '_>) -> bool {
        // Each search is evaluated at most once per event, however often the condition names it.
        let hit = if self.searches.len() <= 64 {
            let (mut done, mut found) = (0u64, 0u64);
            self.condition.eval(&mut |i| {
                let bit = 1u64 << i;
                if done & bit == 0 {
                    done |= bit;
                    if self.searches[i].is_match(event) {
                        found |= bit;
                    }
                }
                found & bit != 0
            })
        } else {
            let mut seen: Vec<Option<bool>> = vec![None; self.searches.len()];
            self.condition
                .eval(&mut |i| *seen[i].get_or_insert_with(|| self.searches[i].is_match(event)))
        };
        hit && !self.filters.iter().any(|f| f.is_match_prepared(event))
    }

    /// Attaches a filter rule: from now on a match of the filter suppresses this rule's.
    /// The caller decides whether the filter applies ([`FilterRule::applies_to`]);
    /// [`load_dir`] attaches each filter to the rules it names.
    pub fn add_filter(&mut self, filter: Arc<FilterRule>) {
        self.filters.push(filter);
    }

    /// The filters attached to this rule.
    pub fn filters(&self) -> &[Arc<FilterRule>] {
        &self.filters
    }
}

/// A set of compiled rules evaluated together.
///
/// Built with [`Ruleset::new`], every rule is evaluated against every event with field names
/// as written. Built with [`Ruleset::with_pipelines`], rules are indexed by the event
/// conditions their logsource needs (for Windows: `Channel` and `EventID`), and an event is
/// only given to the rules whose conditions it meets, found by hash lookups on its own field
/// values, never by scanning all rules.
#[derive(Debug, Clone, Default)]
pub struct Ruleset {
    rules: Vec<CompiledRule>,
    index: Option<Index>,
    prefilter: Prefilter,
}

/// Rules by the logsource conditions they need.
#[derive(Debug, Clone, Default)]
struct Index {
    /// One table per set of condition fields (`[Channel, EventID]`, `[event.dataset]` ...).
    shapes: Vec<Shape>,
    /// What each table entry stands for.
    entries: Vec<Entry>,
    /// (rule, field renames) pairs the entries point to, numbered in rule order.
    targets: Vec<Target>,
    /// The distinct field renames of the targets; view 0 is the event as it is.
    views: Vec<Arc<Renames>>,
    /// The same, for views of an event (by field id).
    view_renames: Vec<ViewRenames>,
    /// Per rule: its targets, `find_starts[rule]..find_starts[rule + 1]` (targets are
    /// numbered in rule order).
    find_starts: Vec<u32>,
    /// Per target: what a prefilter find needs of it (a compact copy of `targets`: fewer
    /// cache misses).
    finds: Vec<Find>,
    /// Rules no pipeline entry applies to: never evaluated.
    unmapped: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Shape {
    fields: Vec<String>,
    /// [`field_id`](crate::event::field_id) of each of `fields`.
    ids: Vec<usize>,
    /// Lower-cased values of `fields`, in order and joined by `\0` -> entry.
    table: FxHashMap<String, usize>,
}

/// The targets of one logsource key, split by how they are found.
#[derive(Debug, Clone, Default)]
struct Entry {
    targets: Vec<u32>,
    /// Targets whose rule the prefilter cannot gate: always evaluated.
    ungated: Vec<u32>,
    /// (view, prefilter field) scans that find the other targets' rules.
    scans: Vec<(u16, u32)>,
}

/// A target of a rule the prefilter found: a candidate if the event was scanned through its
/// view and has one of its entries.
#[derive(Debug, Clone, Copy)]
struct Find {
    view: u16,
    /// The target's entry, or [`SEVERAL`] when it has more than one.
    entry: u32,
}

const SEVERAL: u32 = u32::MAX;

#[derive(Debug, Clone)]
struct Target {
    rule: usize,
    view: u16,
    /// The entries listing this target (sorted).
    entries: Vec<u32>,
}

impl Index {
    fn build(rules: &[CompiledRule], pipelines: &PipelineSet, prefilter: &Prefilter) -> Self {
        let mut index = Index {
            views: vec![Arc::new(Renames::default())],
            ..Default::default()
        };
        for (rule, compiled) in rules.iter().enumerate() {
            index.find_starts.push(index.targets.len() as u32);
            let alternatives = pipelines.alternatives(&compiled.rule.logsource);
            if alternatives.is_empty() {
                index.unmapped.push(rule);
            }
            for alt in alternatives {
                let view = if alt.renames.is_empty() {
                    0
                } else {
                    match index
                        .views
                        .iter()
                        .position(|v| Arc::ptr_eq(v, &alt.renames))
                    {
                        Some(v) => v,
                        None => {
                            index.views.push(alt.renames.clone());
                            index.views.len() - 1
                        }
                    }
                };
                let view = u16::try_from(view).unwrap_or(u16::MAX);
                // Targets are numbered in rule order: candidates come out sorted by rule.
                let target = index.targets.len() as u32;
                index.targets.push(Target {
                    rule,
                    view,
                    entries: Vec::new(),
                });
                let fields: Vec<String> = alt.conditions.iter().map(|(f, _)| f.clone()).collect();
                let shape = match index.shapes.iter().position(|s| s.fields == fields) {
                    Some(i) => i,
                    None => {
                        index.shapes.push(Shape {
                            ids: fields.iter().map(|f| crate::event::field_id(f)).collect(),
                            fields,
                            table: FxHashMap::default(),
                        });
                        index.shapes.len() - 1
                    }
                };
                let values: Vec<Vec<String>> = alt.conditions.into_iter().map(|(_, v)| v).collect();
                for key in product(&values) {
                    let key = key.join("\0");
                    let entry = match index.shapes[shape].table.get(&key) {
                        Some(&e) => e,
                        None => {
                            index.entries.push(Entry::default());
                            let e = index.entries.len() - 1;
                            index.shapes[shape].table.insert(key, e);
                            e
                        }
                    };
                    let targets = &mut index.entries[entry].targets;
                    if targets.last() != Some(&target) {
                        targets.push(target);
                        index.targets[target as usize].entries.push(entry as u32);
                    }
                }
            }
        }
        index.view_renames = index
            .views
            .iter()
            .map(|r| ViewRenames::new(r.clone()))
            .collect();
        for entry in &mut index.entries {
            for &t in &entry.targets {
                let target = &index.targets[t as usize];
                let fields = &prefilter.rule_fields[target.rule];
                if fields.is_empty() {
                    entry.ungated.push(t);
                } else {
                    entry.scans.extend(fields.iter().map(|&f| (target.view, f)));
                }
            }
            // Per view, the fields most gates look at first: their scans may leave the rules
            // of the others without a chance, and those scans are then skipped. (Equal
            // pairs sort next to each other, so one sort serves the dedup too.)
            entry.scans.sort_unstable_by_key(|&(v, f)| {
                (
                    v,
                    std::cmp::Reverse(prefilter.fields[f as usize].all_gates.len()),
                    f,
                )
            });
            entry.scans.dedup();
        }
        index.find_starts.push(index.targets.len() as u32);
        index.finds = index
            .targets
            .iter()
            .map(|target| Find {
                view: target.view,
                entry: match target.entries[..] {
                    [entry] => entry,
                    _ => SEVERAL,
                },
            })
            .collect();
        index
    }

    /// Whether target `t` has one of the event's `entries`.
    fn has_entry(&self, t: usize, entries: &[usize]) -> bool {
        let entry = self.finds[t].entry;
        if entry != SEVERAL {
            return entries.contains(&(entry as usize));
        }
        self.targets[t]
            .entries
            .iter()
            .any(|&e| entries.contains(&(e as usize)))
    }

    /// The entries whose logsource keys the event has, into `found` (cleared first); `key` is
    /// a buffer.
    fn matched_entries(&self, event: &Prepared<'_, '_>, found: &mut Vec<usize>, key: &mut String) {
        found.clear();
        'shapes: for shape in &self.shapes {
            // Usually each field has one text: the key is made as the fields are read.
            key.clear();
            for (i, (id, field)) in shape.ids.iter().zip(&shape.fields).enumerate() {
                let Some(slot) = event.slot(*id, field) else {
                    continue 'shapes; // the event lacks a field every entry of this shape needs
                };
                match slot.leaves() {
                    [] => continue 'shapes,
                    [leaf] => {
                        if i > 0 {
                            key.push('\0');
                        }
                        key.push_str(leaf.lower());
                    }
                    _ => {
                        self.shape_entries(shape, event, found, key);
                        continue 'shapes;
                    }
                }
            }
            if let Some(&e) = shape.table.get(key.as_str()) {
                found.push(e);
            }
        }
    }

    /// The entries of `shape` the event has, for events with several texts in its fields:
    /// every combination of one text per field is a key.
    fn shape_entries(
        &self,
        shape: &Shape,
        event: &Prepared<'_, '_>,
        found: &mut Vec<usize>,
        key: &mut String,
    ) {
        // The lower-cased texts of the shape's fields, one after the other, and where each
        // field's texts end.
        let mut texts: Vec<&str> = Vec::new();
        let mut ends: Vec<usize> = Vec::new();
        for (id, field) in shape.ids.iter().zip(&shape.fields) {
            let before = texts.len();
            if let Some(slot) = event.slot(*id, field) {
                texts.extend(slot.leaves().iter().map(|l| l.lower()));
            }
            if texts.len() == before {
                return; // the event lacks a field every entry of this shape needs
            }
            ends.push(texts.len());
        }
        let mut odometer: Vec<usize> = std::iter::once(0)
            .chain(ends.iter().copied())
            .take(ends.len())
            .collect();
        'keys: loop {
            key.clear();
            for (i, &at) in odometer.iter().enumerate() {
                if i > 0 {
                    key.push('\0');
                }
                key.push_str(texts[at]);
            }
            if let Some(&e) = shape.table.get(key.as_str()) {
                found.push(e);
            }
            for i in (0..odometer.len()).rev() {
                odometer[i] += 1;
                if odometer[i] < ends[i] {
                    continue 'keys;
                }
                odometer[i] = if i == 0 { 0 } else { ends[i - 1] };
            }
            break;
        }
    }
}

fn has_bit(bits: &[u64], t: u32) -> bool {
    bits[t as usize / 64] & (1 << (t % 64)) != 0
}

/// Every combination taking one value from each list (one empty combination for no lists).
fn product(lists: &[Vec<String>]) -> Vec<Vec<String>> {
    let mut out = vec![Vec::with_capacity(lists.len())];
    for list in lists {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                list.iter().map(move |v| {
                    let mut key = prefix.clone();
                    key.push(v.clone());
                    key
                })
            })
            .collect();
    }
    out
}

impl Ruleset {
    /// Every rule is evaluated against every event, fields looked up as written.
    pub fn new(rules: Vec<CompiledRule>) -> Self {
        let prefilter = Prefilter::build(&rules);
        Ruleset {
            rules,
            index: None,
            prefilter,
        }
    }

    /// Rules are evaluated only against events their logsource stands for in `pipelines`,
    /// with the field names of the matching alternative. Rules no pipeline maps are never
    /// evaluated; [`Ruleset::unmapped`] lists them.
    pub fn with_pipelines(rules: Vec<CompiledRule>, pipelines: &PipelineSet) -> Self {
        let prefilter = Prefilter::build(&rules);
        let index = Index::build(&rules, pipelines, &prefilter);
        Ruleset {
            rules,
            index: Some(index),
            prefilter,
        }
    }

    pub fn rules(&self) -> &[CompiledRule] {
        &self.rules
    }

    /// Whether the ruleset was built with pipelines.
    pub fn has_pipelines(&self) -> bool {
        self.index.is_some()
    }

    /// Rules that no pipeline entry applies to, so never evaluated (none without pipelines).
    pub fn unmapped(&self) -> impl Iterator<Item = &CompiledRule> {
        self.index
            .iter()
            .flat_map(|i| &i.unmapped)
            .map(|&r| &self.rules[r])
    }

    /// How many rules would be evaluated against the event (all of them without pipelines)
    /// before the literal prefilter: those whose logsource the event stands for.
    pub fn candidate_count(&self, event: &dyn Event) -> usize {
        match &self.index {
            None => self.rules.len(),
            Some(index) => {
                let mut entries = Vec::new();
                Prepared::with(event, |p| {
                    index.matched_entries(p, &mut entries, &mut String::new())
                });
                let mut rules: Vec<usize> = entries
                    .iter()
                    .flat_map(|&e| &index.entries[e].targets)
                    .map(|&t| index.targets[t as usize].rule)
                    .collect();
                rules.sort_unstable();
                rules.dedup();
                rules.len()
            }
        }
    }

    /// The rules the event matches, in ruleset order, each once.
    pub fn matches<'a>(&'a self, event: &'a dyn Event) -> impl Iterator<Item = &'a CompiledRule> {
        self.match_indices(event)
            .into_iter()
            .map(|i| &self.rules[i])
    }

    /// The positions in [`Ruleset::rules`] of the rules the event matches, ascending: for
    /// callers that keep per-rule data beside the ruleset.
    pub fn match_indices(&self, event: &dyn Event) -> Vec<usize> {
        Prepared::with(event, |prepared| match &self.index {
            None => {
                let mut candidates = self.prefilter.candidates(prepared);
                candidates.retain(|&i| self.rules[i].is_match_prepared(prepared));
                candidates
            }
            Some(index) => self.indexed_matches(index, prepared),
        })
    }

    /// Candidates come from the logsource index; of those the prefilter can gate, only the
    /// rules whose literals its scans find are evaluated, so the work per event follows the
    /// literals found, not the number of rules for the logsource.
    fn indexed_matches(&self, index: &Index, event: &Prepared<'_, '_>) -> Vec<usize> {
        let mut scratch = SCRATCH
            .try_with(std::cell::Cell::take)
            .ok()
            .flatten()
            .unwrap_or_default();
        let out = self.indexed_matches_with(index, event, &mut scratch);
        let _ = SCRATCH.try_with(|s| s.set(Some(scratch)));
        out
    }

    fn indexed_matches_with(
        &self,
        index: &Index,
        event: &Prepared<'_, '_>,
        scratch: &mut Scratch,
    ) -> Vec<usize> {
        let Scratch {
            states,
            entries,
            eval,
            key,
        } = scratch;
        index.matched_entries(event, entries, key);
        if entries.is_empty() {
            return Vec::new();
        }
        // The event through each renames set (view 0 is `event` itself).
        let view = |v: u16| match v {
            0 => *event,
            v => event.view(&index.view_renames[v as usize]),
        };
        if states.len() < index.views.len() {
            states.resize_with(index.views.len(), || (self.prefilter.state(), false));
        }
        for (_, ready) in states.iter_mut() {
            *ready = false;
        }
        eval.clear();
        let entries = &entries[..];
        for &e in entries {
            let entry = &index.entries[e];
            eval.extend_from_slice(&entry.ungated);
            for &(v, f) in &entry.scans {
                let (state, ready) = &mut states[v as usize];
                if !std::mem::replace(ready, true) {
                    state.reset(&self.prefilter);
                }
                if !self.prefilter.worth_scanning(f as usize, state) {
                    continue;
                }
                let mut found = |rule: usize| {
                    let (from, to) = (index.find_starts[rule], index.find_starts[rule + 1]);
                    for t in from..to {
                        // A candidate: one of its entries is the event's.
                        if index.finds[t as usize].view == v && index.has_entry(t as usize, entries)
                        {
                            eval.push(t);
                        }
                    }
                };
                self.prefilter.scan(f as usize, state, &view(v), &mut found);
            }
        }
        eval.sort_unstable();
        eval.dedup();
        let mut out: Vec<usize> = Vec::new();
        for &t in eval.iter() {
            let target = &index.targets[t as usize];
            if out.last() == Some(&target.rule) {
                continue; // another alternative of this rule matched already
            }
            if self.rules[target.rule].is_match_prepared(&view(target.view)) {
                out.push(target.rule);
            }
        }
        out
    }
}

/// The outcome of loading a directory of rules: the good ones, and each bad one with why.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Rules that parsed and compiled, in path order.
    pub rules: Vec<CompiledRule>,
    /// One error per rejected rule document, each naming the file ([`Error::InFile`]).
    pub errors: Vec<Error>,
    /// Correlation rules whose references all resolved, in path order.
    pub correlations: Vec<CorrelationRule>,
    /// Filter rules, in path order; each is already attached to the rules it names.
    pub filters: Vec<Arc<FilterRule>>,
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

    /// A [`CorrelationEngine`] for the loaded correlation rules.
    /// Base rules are known to it by both their `id` and `name`, whichever the
    /// correlations refer to them by.
    pub fn correlation_engine(&self) -> Result<CorrelationEngine> {
        Ok(CorrelationEngine::new(self.correlations.clone())?.with_rule_names(&self.rules))
    }

    /// The loaded rules as a [`Ruleset`].
    pub fn into_ruleset(self) -> Ruleset {
        Ruleset::new(self.rules)
    }

    /// The loaded rules as a [`Ruleset`] mapped through `pipelines` ([`Ruleset::with_pipelines`]).
    pub fn into_ruleset_with(self, pipelines: &PipelineSet) -> Ruleset {
        Ruleset::with_pipelines(self.rules, pipelines)
    }
}

/// Loads every `*.yml` / `*.yaml` file under `dir` (recursively, in path order). A file may
/// hold several YAML documents separated by `---` (a base rule and its correlation, for
/// example); each is a detection rule, a correlation rule (`correlation:`) or a filter rule
/// (`filter:`). Bad documents are reported in [`LoadReport::errors`] and skipped; only an
/// unreadable `dir` itself fails.
///
/// Once every file is read, filters are attached to the rules they name and correlations are
/// checked: a reference to a rule (by `id` or `name`) that was not loaded is an error naming
/// the correlation or filter and the reference, and drops the correlation (a filter still
/// applies to the rules it found). To resolve references against the built-in pack and
/// other directories too, load them together with [`load`].
pub fn load_dir(dir: &Path, opts: &CompileOptions) -> Result<LoadReport> {
    load(false, std::slice::from_ref(&dir.to_path_buf()), opts)
}

/// One load over the built-in pack (when `builtin`; first) and every directory of `dirs`
/// (in the order given, each in path order), as [`load_sources`] loads files: filters and
/// correlations in any of them resolve against the rules of all of them, by `id` or `name`,
/// so a filter or correlation in a user's directory may name a built-in rule. An `id` or
/// `name` already loaded from an earlier source is an [`Error::Duplicate`] for the later
/// document, which is skipped. Fails only when a directory cannot be read at all.
///
/// This is how `vigil serve` (built-in pack + `ingest.rule_dirs`) and `vigil hunt` (built-in
/// pack + `--rules`) load their rules.
pub fn load(builtin: bool, dirs: &[PathBuf], opts: &CompileOptions) -> Result<LoadReport> {
    let mut sources: Vec<(PathBuf, std::borrow::Cow<'static, str>)> = Vec::new();
    if builtin {
        sources.extend(crate::builtin::sources().map(|(p, t)| (p, t.into())));
    }
    let mut unreadable = Vec::new();
    for dir in dirs {
        let mut files = Vec::new();
        collect(dir, &mut files, true)?;
        files.sort();
        for path in files {
            match std::fs::read_to_string(&path) {
                Ok(text) => sources.push((path, text.into())),
                Err(source) => unreadable.push(
                    Error::Io {
                        path: path.clone(),
                        source,
                    }
                    .in_file(&path),
                ),
            }
        }
    }
    let mut report = load_sources(sources.iter().map(|(p, t)| (p.as_path(), t.as_ref())), opts);
    report.errors.splice(0..0, unreadable);
    Ok(report)
}

/// [`load_dir`] for rule files already in memory, as `(path, YAML text)` in the order given:
/// the built-in pack ([`crate::builtin_rules`]) is loaded this way, without a filesystem.
/// Errors name the given path.
pub fn load_sources<'a>(
    sources: impl IntoIterator<Item = (&'a Path, &'a str)>,
    opts: &CompileOptions,
) -> LoadReport {
    let mut report = LoadReport::default();
    let mut correlations: Vec<(PathBuf, CorrelationRule)> = Vec::new();
    let mut filters: Vec<(PathBuf, FilterRule)> = Vec::new();
    let mut taken = Taken::default();
    for (path, text) in sources {
        let docs = match documents(text) {
            Ok(docs) => docs,
            Err(e) => {
                report.errors.push(e.in_file(path));
                continue;
            }
        };
        for doc in docs {
            let result = if is_correlation(&doc) {
                CorrelationRule::from_value(doc).and_then(|c| {
                    taken.claim(path, &c.title, c.id.as_deref(), c.name.as_deref())?;
                    correlations.push((path.to_path_buf(), c));
                    Ok(())
                })
            } else if is_filter(&doc) {
                FilterRule::from_value(doc, opts).and_then(|f| {
                    taken.claim(path, &f.title, f.id.as_deref(), None)?;
                    filters.push((path.to_path_buf(), f));
                    Ok(())
                })
            } else {
                SigmaRule::from_value(doc)
                    .and_then(|r| CompiledRule::compile(r, opts))
                    .and_then(|rule| {
                        let r = &rule.rule;
                        taken.claim(path, &r.title, r.id.as_deref(), r.name.as_deref())?;
                        report.rules.push(rule);
                        Ok(())
                    })
            };
            if let Err(e) = result {
                report.errors.push(e.in_file(path));
            }
        }
    }
    link_filters(&mut report, filters);
    link_correlations(&mut report, correlations);
    report
}

/// The ids and names loaded so far, each with its first holder (`path: title (id)`).
#[derive(Default)]
struct Taken(HashMap<(&'static str, String), String>);

impl Taken {
    /// Records the document's id and name, or the [`Error::Duplicate`] of the first one an
    /// earlier document holds (then nothing is recorded: the document is skipped).
    fn claim(
        &mut self,
        path: &Path,
        title: &str,
        id: Option<&str>,
        name: Option<&str>,
    ) -> Result<()> {
        let keys = [("id", id), ("name", name)];
        let keys = keys
            .into_iter()
            .filter_map(|(w, v)| Some((w, v?.to_string())));
        for (what, value) in keys.clone() {
            if let Some(first) = self.0.get(&(what, value.clone())) {
                return Err(Error::Duplicate {
                    rule: crate::rule::rule_name(title, id),
                    what,
                    value,
                    first: first.clone(),
                });
            }
        }
        let holder = format!("{}: {}", path.display(), crate::rule::rule_name(title, id));
        for key in keys {
            self.0.insert(key, holder.clone());
        }
        Ok(())
    }
}

/// The non-empty YAML documents of a file's text.
fn documents(text: &str) -> Result<Vec<serde_yaml::Value>> {
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

fn link_filters(report: &mut LoadReport, filters: Vec<(PathBuf, FilterRule)>) {
    for (path, filter) in filters {
        let filter = Arc::new(filter);
        let fail = |reason: String| {
            Error::InvalidRule {
                rule: format!("filter {}", filter.display_name()),
                reason,
            }
            .in_file(&path)
        };
        for reference in &filter.rules {
            let mut found = false;
            for rule in report.rules.iter_mut() {
                let r = &rule.rule;
                if r.id.as_ref() != Some(reference) && r.name.as_ref() != Some(reference) {
                    continue;
                }
                found = true;
                if filter.logsource_fits(&r.logsource) {
                    rule.add_filter(filter.clone());
                } else {
                    let name = r.name();
                    report.errors.push(fail(format!(
                        "logsource does not fit rule {name}, not applied to it"
                    )));
                }
            }
            if !found {
                report
                    .errors
                    .push(fail(format!("unknown referenced rule `{reference}`")));
            }
        }
        report.filters.push(filter);
    }
}

fn link_correlations(report: &mut LoadReport, correlations: Vec<(PathBuf, CorrelationRule)>) {
    let mut known: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for r in &report.rules {
        known.extend(r.rule.id.as_deref());
        known.extend(r.rule.name.as_deref());
    }
    let (paths, rules): (Vec<PathBuf>, Vec<CorrelationRule>) = correlations.into_iter().unzip();
    let refers = crate::correlation::references(&rules);
    let mut errors: Vec<Option<Error>> = (0..rules.len()).map(|_| None).collect();
    let error = |i: usize, reason: String| {
        let rule = rules[i].display_name();
        Some(Error::InvalidRule { rule, reason }.in_file(&paths[i]))
    };
    for (i, c) in rules.iter().enumerate() {
        let unknown = c
            .rules
            .iter()
            .find(|r| !known.contains(r.as_str()) && !rules.iter().any(|o| o.answers_to(r)));
        if let Some(missing) = unknown {
            errors[i] = error(i, format!("unknown referenced rule `{missing}`"));
        }
    }
    // A correlation may refer to another (a chain) that is itself good; a reference to a
    // rejected one rejects it too, and a chain that comes back to where it started can never
    // be evaluated: go on until nothing changes.
    loop {
        let good: Vec<bool> = errors.iter().map(Option::is_none).collect();
        let over_rejected = (0..rules.len())
            .filter(|&i| good[i])
            .find_map(|i| refers[i].iter().find(|&&o| !good[o]).map(|&o| (i, o)));
        if let Some((i, o)) = over_rejected {
            let name = rules[i].rules.iter().find(|r| rules[o].answers_to(r));
            let name = name.map_or("?", String::as_str);
            errors[i] = error(
                i,
                format!("refers to correlation `{name}`, which was rejected"),
            );
            continue;
        }
        let live: Vec<Vec<usize>> = refers
            .iter()
            .enumerate()
            .map(|(i, to)| match good[i] {
                true => to.iter().copied().filter(|&o| good[o]).collect(),
                false => Vec::new(),
            })
            .collect();
        match crate::correlation::cycle(&live) {
            Some(c) => {
                errors[c] = error(c, "refers to itself through a chain of correlations".into())
            }
            None => break,
        }
    }
    for (rule, error) in rules.into_iter().zip(errors) {
        match error {
            Some(e) => report.errors.push(e),
            None => report.correlations.push(rule),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Every occurrence of every literal, as the overlapping iterator of `AhoCorasick`
        /// reports them (the walk is ours; literals over a small alphabet overlap a lot).
        #[test]
        fn the_walk_finds_what_an_overlapping_search_finds(
            lits in proptest::collection::btree_set("[ab\\\\.c]{1,12}", 1..40),
            pieces in proptest::collection::vec(
                proptest::collection::vec((any::<proptest::sample::Index>(), "[ab\\\\.cx]{0,4}"), 0..8),
                1..8,
            ),
        ) {
            let lits: Vec<String> = lits.into_iter().collect();
            // Texts of literals (many found, some overlapping) and bytes between them.
            let texts: Vec<String> = pieces
                .iter()
                .map(|p| p.iter().map(|(i, gap)| format!("{}{gap}", i.get(&lits))).collect())
                .collect();
            let ours = Literals::new(&lits).expect("builds");
            // The same literals found by window (when all are long enough).
            let long: Vec<Box<[u8]>> = lits.iter().filter(|l| l.len() >= WINDOW).map(|l| l.as_bytes().into()).collect();
            let windows = Windows::new(long.clone());
            let theirs = aho_corasick::AhoCorasick::new(&lits).expect("builds");
            for text in &texts {
                let mut found = Vec::new();
                ours.each_match(text.as_bytes(), |p| found.push(p));
                let mut want: Vec<usize> = theirs
                    .find_overlapping_iter(text.as_str())
                    .map(|m| m.pattern().as_usize())
                    .collect();
                let mut by_window = Vec::new();
                windows.each_match(text.as_bytes(), |p| by_window.push(long[p].clone()));
                let mut want_long: Vec<Box<[u8]>> = want
                    .iter()
                    .map(|&p| lits[p].as_bytes())
                    .filter(|l| l.len() >= WINDOW)
                    .map(Box::from)
                    .collect();
                found.sort_unstable();
                want.sort_unstable();
                prop_assert_eq!(found, want, "in {:?}", text);
                by_window.sort_unstable();
                want_long.sort_unstable();
                prop_assert_eq!(by_window, want_long, "by window in {:?}", text);
            }
        }
    }

    /// The literals of each requirement the rule's condition gives, each list sorted.
    fn requirements(yaml: &str) -> Vec<Vec<String>> {
        let rule = CompiledRule::from_yaml(yaml, &CompileOptions::default()).unwrap();
        let mut out: Vec<Vec<String>> = cond_required(&rule.condition, &rule.searches)
            .iter()
            .map(|g| {
                let mut lits: Vec<String> = g.iter().flat_map(|(_, _, l)| l.clone()).collect();
                lits.sort();
                lits
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn fields_whose_rules_have_no_chance_left_are_skipped_without_losing_a_match() {
        let rule = |title: &str, sel: &str| {
            let yaml = format!(
                "title: {title}\nlogsource: {{product: windows, category: process_creation}}\ndetection:\n    sel:\n{sel}\n    condition: sel\n"
            );
            CompiledRule::from_yaml(&yaml, &CompileOptions::default()).expect("compiles")
        };
        let rules = vec![
            rule(
                "all three",
                "        Image|endswith: '\\\\evil.exe'\n        CommandLine|contains: 'payload'\n        ParentImage|endswith: '\\\\word.exe'",
            ),
            rule("command line", "        CommandLine|contains: 'payload'"),
            rule("parent", "        ParentImage|endswith: '\\\\word.exe'"),
            // User is scanned only when Image let this rule live.
            rule(
                "image and user",
                "        Image|endswith: '\\\\evil.exe'\n        User|contains: 'bob'",
            ),
        ];
        let ruleset = Ruleset::with_pipelines(rules, &PipelineSet::builtin().expect("pipelines"));
        let titles = |image: &str, user: &str| {
            let event = serde_json::json!({"Event": {
                "System": {"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1},
                "EventData": {"Image": image, "CommandLine": "run payload", "ParentImage": "C:\\word.exe", "User": user}
            }});
            let indices = ruleset.match_indices(&event);
            let mut t: Vec<String> = ruleset
                .matches(&event)
                .map(|r| r.rule().title.clone())
                .collect();
            // The same rules by position, ascending.
            let by_index: Vec<String> = indices
                .iter()
                .map(|&i| ruleset.rules()[i].rule().title.clone())
                .collect();
            assert!(indices.windows(2).all(|w| w[0] < w[1]));
            assert_eq!(by_index, t);
            t.sort();
            t
        };
        assert_eq!(titles("C:\\good.exe", "bob"), ["command line", "parent"]);
        assert_eq!(
            titles("C:\\evil.exe", "bob"),
            ["all three", "command line", "image and user", "parent"]
        );
        assert_eq!(
            titles("C:\\evil.exe", "eve"),
            ["all three", "command line", "parent"]
        );
    }

    #[test]
    fn one_of_several_branches_requires_each_group_of_a_branch_or_the_others() {
        let got = requirements(
            r#"
title: t
logsource: {product: windows}
detection:
    s1:
        Image|contains: '\Windows\'
        CommandLine|contains: '\..\..\'
    s2:
        CommandLine|contains: '.exe\..\'
    condition: 1 of s*
"#,
        );
        let want = [
            vec![r".exe\..\".to_string(), r"\..\..\".to_string()],
            vec![r".exe\..\".to_string(), r"\windows\".to_string()],
            vec![r".exe\..\".to_string()],
        ];
        // Each of s1's requirements with s2's, and s2's with s1's best.
        assert!(want[..2].iter().all(|w| got.contains(w)), "{got:?}");
        assert!(got.iter().all(|g| g.contains(&want[2][0])), "{got:?}");
        // A branch without requirements leaves none.
        let none = requirements(
            r#"
title: t
logsource: {product: windows}
detection:
    s1:
        Image|contains: '\Windows\'
    s2:
        CommandLine|re: '.*'
    condition: s1 or s2
"#,
        );
        assert!(none.is_empty(), "{none:?}");
    }
}
