//! `vigil rules test`: each rule's own test events (`x-vigil-tests`) through the engine.

use std::path::PathBuf;

use serde_json::Value as Json;
use serde_yaml::Value as Yaml;
use vigil_detect::{CompiledRule, CorrelationEngine, PipelineSet, Ruleset};

use super::{Document, Kind, RuleSource, load, read_documents, same};

/// The key under which rules carry their test events.
pub const TESTS_KEY: &str = "x-vigil-tests";

/// How one rule's tests went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleOutcome {
    /// Every test event behaved.
    Passed,
    /// Each test event or sequence that did not, and how.
    Failed(Vec<String>),
    /// The rule has no `x-vigil-tests` (or is a filter, whose tests are not run).
    NoTests,
}

/// One rule document and its outcome.
#[derive(Debug, Clone)]
pub struct RuleTest {
    pub path: PathBuf,
    /// `title (id)`.
    pub rule: String,
    /// Test events and sequences run.
    pub cases: usize,
    pub outcome: RuleOutcome,
}

/// The outcome of [`test`].
#[derive(Debug, Default)]
pub struct TestReport {
    /// One per rule document, in file order.
    pub rules: Vec<RuleTest>,
    /// What the engine rejected while loading (each also fails the rule's tests, if any).
    pub load_errors: Vec<vigil_detect::Error>,
}

impl TestReport {
    pub fn passed(&self) -> usize {
        self.count(|o| *o == RuleOutcome::Passed)
    }
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, RuleOutcome::Failed(_)))
    }
    pub fn untested(&self) -> usize {
        self.count(|o| *o == RuleOutcome::NoTests)
    }
    fn count(&self, f: impl Fn(&RuleOutcome) -> bool) -> usize {
        self.rules.iter().filter(|r| f(&r.outcome)).count()
    }
}

/// Runs the `x-vigil-tests` of every rule document of `sources`, with all the sources'
/// rules loaded and mapped through `pipelines` (so a true negative that another rule
/// matches is still fine, and a rule no pipeline maps fails its true positives); a
/// correlation that is only a chain's input is tested through the one it feeds:
///
/// ```yaml
/// x-vigil-tests:
///     common: {event.dataset: auth}          # merged into every event below
///     true_positives: [{message: 'Failed password for root'}]
///     true_negatives: [{message: 'Accepted publickey for alice'}]
///     # correlation rules instead: how often each timed sequence fires it
///     sequences: [{name: ten failures, expect: 1, events: [{at: 0, event: {..}}, ...]}]
/// ```
///
/// `context` (the built-in pack, for a user's rule directory) is loaded first with the
/// sources, as [`super::lint`] does; its own rules are not tested and its load errors are
/// not reported.
pub fn test(sources: &[RuleSource], context: &[RuleSource], pipelines: &PipelineSet) -> TestReport {
    let docs = read_documents(sources);
    let loaded = load(context, sources);
    let correlations = loaded.correlations.clone();
    let load_errors = loaded
        .errors
        .into_iter()
        .filter(|e| !super::in_context(e, context))
        .collect();
    let ruleset = Ruleset::with_pipelines(loaded.rules, pipelines);
    let mut rules = Vec::new();
    // A chain's input is tested by the sequences of the correlation it feeds.
    let chain_inputs = super::chain_inputs(&docs, &correlations);
    for (_, doc) in docs
        .iter()
        .enumerate()
        .filter(|(i, _)| !chain_inputs.contains(i))
    {
        let mut failures = Vec::new();
        let mut cases = 0;
        let tests = doc.doc.get(TESTS_KEY);
        let outcome = match (doc.kind, tests) {
            (_, None) | (Kind::Filter, _) => RuleOutcome::NoTests,
            (Kind::Detection, Some(tests)) => {
                match find_rule(&ruleset, doc) {
                    Some(rule) => detection(&ruleset, rule, tests, &mut cases, &mut failures),
                    None => failures.push(not_loaded(doc)),
                }
                outcome(failures)
            }
            (Kind::Correlation, Some(tests)) => {
                let known = correlations
                    .iter()
                    .any(|c| same(doc, c.id.as_deref(), &c.title));
                if known {
                    correlation(
                        &ruleset,
                        &correlations,
                        doc,
                        tests,
                        &mut cases,
                        &mut failures,
                    );
                } else {
                    failures.push(not_loaded(doc));
                }
                outcome(failures)
            }
        };
        rules.push(RuleTest {
            path: doc.path.clone(),
            rule: doc.label(),
            cases,
            outcome,
        });
    }
    TestReport { rules, load_errors }
}

fn outcome(failures: Vec<String>) -> RuleOutcome {
    if failures.is_empty() {
        RuleOutcome::Passed
    } else {
        RuleOutcome::Failed(failures)
    }
}

fn not_loaded(doc: &Document) -> String {
    format!(
        "the rule did not load, so its tests cannot run (`vigil rules lint {}` says why)",
        doc.path.display()
    )
}

/// Whether a document is the rule with this id and title: by id when the document has one.
fn find_rule<'a>(ruleset: &'a Ruleset, doc: &Document) -> Option<&'a CompiledRule> {
    ruleset
        .rules()
        .iter()
        .find(|r| same(doc, r.rule().id.as_deref(), &r.rule().title))
}

fn list<'a>(tests: &'a Yaml, key: &str) -> &'a [Yaml] {
    tests
        .get(key)
        .and_then(Yaml::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// A test event: the `common` fields, then the event's own (which win).
fn event(common: Option<&Yaml>, own: &Yaml) -> Result<Json, String> {
    let mut merged = serde_json::Map::new();
    for part in [common, Some(own)].into_iter().flatten() {
        match serde_json::to_value(part) {
            Ok(Json::Object(map)) => merged.extend(map),
            Ok(other) => return Err(format!("a test event must be a map, not `{other}`")),
            Err(e) => return Err(format!("a test event is not JSON-like: {e}")),
        }
    }
    Ok(Json::Object(merged))
}

fn detection(
    ruleset: &Ruleset,
    rule: &CompiledRule,
    tests: &Yaml,
    cases: &mut usize,
    failures: &mut Vec<String>,
) {
    let common = tests.get("common");
    let mut any = false;
    for (key, want) in [("true_positives", true), ("true_negatives", false)] {
        for (i, own) in list(tests, key).iter().enumerate() {
            any = true;
            *cases += 1;
            let event = match event(common, own) {
                Ok(e) => e,
                Err(e) => {
                    failures.push(format!("{key}[{i}]: {e}"));
                    continue;
                }
            };
            let hit = ruleset.matches(&event).any(|r| std::ptr::eq(r, rule));
            if hit != want {
                let verb = if want { "does not match" } else { "matches" };
                let mut msg = format!("{key}[{i}] {verb}: {event}");
                if want && ruleset.unmapped().any(|r| std::ptr::eq(r, rule)) {
                    msg.push_str(" (no processing pipeline maps the rule's logsource)");
                }
                failures.push(msg);
            }
        }
    }
    if !any {
        failures.push(format!(
            "`{TESTS_KEY}` has no `true_positives` or `true_negatives`"
        ));
    }
}

fn correlation(
    ruleset: &Ruleset,
    correlations: &[vigil_detect::CorrelationRule],
    doc: &Document,
    tests: &Yaml,
    cases: &mut usize,
    failures: &mut Vec<String>,
) {
    let common = tests.get("common");
    let sequences = list(tests, "sequences");
    if sequences.is_empty() {
        failures.push(format!("`{TESTS_KEY}` of a correlation needs `sequences`"));
    }
    for (i, seq) in sequences.iter().enumerate() {
        *cases += 1;
        let name = seq
            .get("name")
            .and_then(Yaml::as_str)
            .map_or_else(|| format!("sequences[{i}]"), String::from);
        let Some(expect) = seq.get("expect").and_then(Yaml::as_u64) else {
            failures.push(format!("{name}: missing `expect` (how often it fires)"));
            continue;
        };
        let mut engine = match CorrelationEngine::new(correlations.to_vec()) {
            Ok(e) => e.with_rule_names(ruleset.rules()),
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let mut fired = 0u64;
        for (j, step) in list(seq, "events").iter().enumerate() {
            let Some(at) = step
                .get("at")
                .and_then(Yaml::as_f64)
                .filter(|a| a.is_finite())
            else {
                failures.push(format!("{name}: events[{j}]: missing `at` (seconds)"));
                continue;
            };
            let event = match event(common, step.get("event").unwrap_or(&Yaml::Null)) {
                Ok(e) => e,
                Err(e) => {
                    failures.push(format!("{name}: events[{j}]: {e}"));
                    continue;
                }
            };
            let matched: Vec<&CompiledRule> = ruleset.matches(&event).collect();
            fired += engine
                .process_rules((at * 1000.0) as i64, &matched, &event)
                .iter()
                .filter(|m| same(doc, m.id.as_deref(), &m.title))
                .count() as u64;
        }
        if fired != expect {
            failures.push(format!("{name}: fired {fired} times, expected {expect}"));
        }
    }
}
