//! The SigmaHQ rule pack and its regression events from the shared test data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use serde::Deserialize;
use serde_json::Value;
use vigil_detect::{CompileOptions, CompiledRule, LoadReport, load_dir};

/// Rules rejected today; lower it when support grows, never raise it.
const MAX_REJECTED: usize = 2;
/// Regression cases passing today; raise it when support grows, never lower it.
const MIN_REGRESSION_PASSING: usize = 117;

pub const RULE_DIRS: [&str; 3] = ["rules", "rules-emerging-threats", "rules-threat-hunting"];

/// `$VIGIL_SHARED_DATA/sigma`, or `None` (after saying so) when absent outside CI.
pub fn sigma_dir() -> Option<PathBuf> {
    let base = std::env::var_os("VIGIL_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    let dir = base.join("sigma");
    if dir.is_dir() {
        return Some(dir.canonicalize().unwrap_or(dir));
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("shared data not found at {} (CI=true)", dir.display());
    }
    println!("skipped: shared data not found at {}", dir.display());
    None
}

/// The whole pack, loaded once for all tests of this module.
fn load_all(sigma: &Path) -> &'static LoadReport {
    static REPORT: OnceLock<LoadReport> = OnceLock::new();
    REPORT.get_or_init(|| {
        let started = Instant::now();
        let mut all = LoadReport::default();
        for dir in RULE_DIRS {
            let report = load_dir(&sigma.join(dir), &CompileOptions::default())
                .unwrap_or_else(|e| panic!("{e}"));
            all.rules.extend(report.rules);
            all.errors.extend(report.errors);
        }
        println!("parsed and compiled the pack in {:?}", started.elapsed());
        all
    })
}

#[test]
fn sigmahq_rule_pack_loads() {
    let Some(sigma) = sigma_dir() else { return };
    let report = load_all(&sigma);
    let grouped = report.rejection_reasons();
    println!(
        "loaded {} rules, rejected {}",
        report.rules.len(),
        report.errors.len()
    );
    for (reason, errors) in &grouped {
        println!("  {:4} x {reason}", errors.len());
        for e in errors.iter().take(3) {
            println!("         e.g. {e}");
        }
    }
    assert!(report.rules.len() > 3000, "too few rules loaded");
    assert!(
        report.errors.len() <= MAX_REJECTED,
        "{} rules rejected, at most {MAX_REJECTED} expected",
        report.errors.len()
    );
}

#[derive(Deserialize)]
struct Info {
    rule_metadata: Vec<RuleMeta>,
    #[serde(default)]
    regression_tests_info: Vec<TestInfo>,
}

#[derive(Deserialize)]
struct RuleMeta {
    id: String,
    #[serde(default)]
    title: String,
}

#[derive(Deserialize)]
struct TestInfo {
    match_count: Option<usize>,
}

pub fn info_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            info_files(&path, out);
        } else if path.file_name().is_some_and(|n| n == "info.yml") {
            out.push(path);
        }
    }
}

/// Every JSON value in the case's `.json` file (some hold several events back to back).
pub fn case_events(case_dir: &Path) -> Vec<Value> {
    let mut events = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(case_dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    for path in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
    {
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for value in serde_json::Deserializer::from_str(&text).into_iter::<Value>() {
            events.push(value.unwrap_or_else(|e| panic!("{}: {e}", path.display())));
        }
    }
    events
}

#[test]
fn sigmahq_regression_events_fire_their_rules() {
    let Some(sigma) = sigma_dir() else { return };
    let report = load_all(&sigma);
    // No logsource mapping here: Windows events are only given to Windows (or product-less) rules.
    let rules: Vec<&CompiledRule> = report
        .rules
        .iter()
        .filter(|r| {
            r.rule()
                .logsource
                .product
                .as_deref()
                .is_none_or(|p| p.eq_ignore_ascii_case("windows"))
        })
        .collect();
    let mut infos = Vec::new();
    info_files(&sigma.join("regression_data"), &mut infos);
    infos.sort();
    assert!(!infos.is_empty(), "no regression cases found");

    let started = Instant::now();
    let mut evaluations = 0usize;
    let mut passed = 0;
    let mut fired: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for info_path in &infos {
        let text = std::fs::read_to_string(info_path).unwrap_or_else(|e| panic!("{e}"));
        let info: Info =
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", info_path.display()));
        let case_dir = info_path.parent().unwrap_or(Path::new("."));
        let case = case_dir
            .strip_prefix(&sigma)
            .unwrap_or(case_dir)
            .display()
            .to_string();
        let events = case_events(case_dir);
        let expected_count = info
            .regression_tests_info
            .iter()
            .find_map(|t| t.match_count);
        // Evaluate every rule on every event, as a real engine would, then look for ours.
        let matched: Vec<&str> = events
            .iter()
            .flat_map(|event| {
                evaluations += rules.len();
                rules
                    .iter()
                    .filter(|r| r.is_match(event))
                    .collect::<Vec<_>>()
            })
            .map(|r| {
                *fired.entry(r.rule().name()).or_default() += 1;
                r.rule().id.as_deref().unwrap_or_default()
            })
            .collect();
        let mut ok = !events.is_empty();
        for meta in &info.rule_metadata {
            let label = format!("{} ({})", meta.title, meta.id);
            let has_id = |r: &&CompiledRule| r.rule().id.as_deref() == Some(meta.id.as_str());
            if !rules.iter().any(has_id) {
                let why = if report.rules.iter().any(|r| has_id(&r)) {
                    "not a windows rule"
                } else {
                    "rule not loaded"
                };
                failures
                    .entry(label)
                    .or_default()
                    .push(format!("{case}: {why}"));
                ok = false;
                continue;
            }
            let hits = matched.iter().filter(|id| **id == meta.id).count();
            let good = match expected_count {
                Some(n) => hits == n,
                None => hits > 0,
            };
            if !good {
                failures.entry(label).or_default().push(format!(
                    "{case}: matched {hits} of {} events, expected {}",
                    events.len(),
                    expected_count.map_or("at least 1".to_string(), |n| n.to_string())
                ));
                ok = false;
            }
        }
        passed += usize::from(ok);
    }
    println!(
        "evaluated {evaluations} rule/event pairs in {:?} (unoptimised build)",
        started.elapsed()
    );
    println!("regression: {passed}/{} cases pass", infos.len());
    for (rule, cases) in &failures {
        println!("  FAIL {rule}");
        for c in cases {
            println!("       {c}");
        }
    }
    // Without logsource mapping some cross-talk is expected; a rule firing everywhere is a bug.
    let mut noisy: Vec<_> = fired.into_iter().collect();
    noisy.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    println!("rules firing on the most regression events:");
    for (rule, n) in noisy.iter().take(10) {
        println!("  {n:4} {rule}");
    }
    assert!(
        passed >= MIN_REGRESSION_PASSING,
        "{passed} regression cases pass, at least {MIN_REGRESSION_PASSING} expected"
    );
}
