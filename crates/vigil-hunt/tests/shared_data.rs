//! Hunting the SigmaHQ regression data (both its `.evtx` and its `.json` files) with the
//! SigmaHQ rules and the Windows pipeline.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Deserialize;
use vigil_detect::{CompileOptions, LoadReport, Pipeline, PipelineSet, Ruleset, load_dir};
use vigil_hunt::{Hunter, InputKind};

/// Cases whose expected rules fire (as often as `match_count` says) when hunting the `.evtx`
/// files; raise it when support grows, never lower it.
const MIN_PASSING_EVTX: usize = 117;
/// The same for the `.json` files.
const MIN_PASSING_JSON: usize = 117;

const RULE_DIRS: [&str; 3] = ["rules", "rules-emerging-threats", "rules-threat-hunting"];

pub(crate) fn sigma_dir() -> Option<PathBuf> {
    vigil_testdata::path("sigma")
}

/// The whole pack through the Windows pipeline, loaded once for all tests of this module.
pub(crate) fn ruleset(sigma: &Path) -> &'static Ruleset {
    static RULESET: OnceLock<Ruleset> = OnceLock::new();
    RULESET.get_or_init(|| {
        let mut all = LoadReport::default();
        for dir in RULE_DIRS {
            let report = load_dir(&sigma.join(dir), &CompileOptions::default())
                .unwrap_or_else(|e| panic!("{e}"));
            all.rules.extend(report.rules);
            all.errors.extend(report.errors);
        }
        let windows = Pipeline::builtin("windows").unwrap_or_else(|e| panic!("{e}"));
        all.into_ruleset_with(&PipelineSet::new(vec![windows]))
    })
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
}

#[derive(Deserialize)]
struct TestInfo {
    match_count: Option<usize>,
}

fn info_files(dir: &Path, out: &mut Vec<PathBuf>) {
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

/// Hunts every case's files with extension `ext`; returns (cases passing, cases).
fn hunt_regression(sigma: &Path, ext: &str) -> (usize, usize) {
    let ruleset = ruleset(sigma);
    let mut infos = Vec::new();
    info_files(&sigma.join("regression_data"), &mut infos);
    infos.sort();
    assert!(!infos.is_empty(), "no regression cases found");
    let started = std::time::Instant::now();
    let (mut passed, mut events, mut errors) = (0, 0, 0);
    for info_path in &infos {
        let text = std::fs::read_to_string(info_path).unwrap_or_else(|e| panic!("{e}"));
        let info: Info =
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", info_path.display()));
        let case_dir = info_path.parent().unwrap_or(Path::new("."));
        let hunt = Hunter::new(ruleset).hunt(&[case_dir.join(format!("*.{ext}"))], |_| {});
        events += hunt.events;
        errors += hunt.errors.len();
        for e in &hunt.errors {
            println!("  error: {e}");
        }
        let expected_count = info
            .regression_tests_info
            .iter()
            .find_map(|t| t.match_count);
        let mut ok = hunt.events > 0;
        for meta in &info.rule_metadata {
            let hits = hunt
                .hits
                .iter()
                .filter(|h| h.rule.rule().id.as_deref() == Some(meta.id.as_str()))
                .count();
            let good = match expected_count {
                Some(n) => hits == n,
                None => hits > 0,
            };
            if !good {
                println!(
                    "  FAIL {}: {} matched {hits} times of {} events, expected {expected_count:?}",
                    case_dir.strip_prefix(sigma).unwrap_or(case_dir).display(),
                    meta.id,
                    hunt.events
                );
                ok = false;
            }
        }
        passed += usize::from(ok);
    }
    println!(
        "[{ext}] {passed}/{} cases pass; {events} events, {errors} errors, {:?} (unoptimised)",
        infos.len(),
        started.elapsed()
    );
    (passed, infos.len())
}

#[test]
fn hunting_the_regression_evtx_files_fires_their_rules() {
    let Some(sigma) = sigma_dir() else { return };
    let (passed, cases) = hunt_regression(&sigma, "evtx");
    assert!(
        passed >= MIN_PASSING_EVTX,
        "{passed}/{cases} pass, at least {MIN_PASSING_EVTX} expected"
    );
}

#[test]
fn hunting_the_regression_json_files_fires_their_rules() {
    let Some(sigma) = sigma_dir() else { return };
    let (passed, cases) = hunt_regression(&sigma, "json");
    assert!(
        passed >= MIN_PASSING_JSON,
        "{passed}/{cases} pass, at least {MIN_PASSING_JSON} expected"
    );
}

/// EVTX records must come out in the shape of the `.json` files (made with evtx_dump), which
/// the engine's Windows field lookup is written for. Those files were made by another evtx
/// version: GUIDs are written differently and times have fewer digits, so compare what rules
/// look at: the event data and the System fields rules name, with GUIDs in one spelling
/// (evtx writes Sysmon's `{5aa13a44-..}` as Windows shows it; the files have `5AA13A44-..`)
/// and without trailing spaces (which evtx keeps and the files trimmed).
#[test]
fn evtx_records_read_as_the_regression_json() {
    let Some(sigma) = sigma_dir() else { return };
    let mut infos = Vec::new();
    info_files(&sigma.join("regression_data"), &mut infos);
    let (mut compared, mut same) = (0, 0);
    let what_rules_see = |events: &[serde_json::Value]| -> Vec<[serde_json::Value; 6]> {
        events
            .iter()
            .map(|e| {
                let at = |p: &str| guids_unbraced(e.pointer(p).cloned().unwrap_or_default());
                [
                    at("/Event/EventData"),
                    at("/Event/UserData"),
                    at("/Event/System/EventID"),
                    at("/Event/System/Channel"),
                    at("/Event/System/Computer"),
                    at("/Event/System/Provider/#attributes/Name"),
                ]
            })
            .collect()
    };
    for case in infos.iter().filter_map(|i| i.parent()) {
        let files: Vec<PathBuf> = std::fs::read_dir(case)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        let (Some(evtx), Some(json)) = (
            files
                .iter()
                .find(|p| p.extension().is_some_and(|e| e == "evtx")),
            files
                .iter()
                .find(|p| p.extension().is_some_and(|e| e == "json")),
        ) else {
            continue;
        };
        let mut from_evtx = Vec::new();
        let mut from_json = Vec::new();
        let mut errors = Vec::new();
        vigil_hunt::read_events(
            evtx,
            InputKind::Evtx,
            &mut |_, e| from_evtx.push(e.to_value().unwrap_or_else(|e| panic!("{e}"))),
            &mut errors,
        );
        vigil_hunt::read_events(
            json,
            InputKind::Json,
            &mut |_, e| from_json.push(e.to_value().unwrap_or_else(|e| panic!("{e}"))),
            &mut errors,
        );
        assert!(errors.is_empty(), "{errors:?}");
        compared += 1;
        let (a, b) = (what_rules_see(&from_evtx), what_rules_see(&from_json));
        if a == b {
            same += 1;
        } else if compared - same > 3 {
            // Enough said.
        } else if let Some((a, b)) = a.iter().zip(&b).find(|(a, b)| a != b) {
            println!(
                "  differs: {}\n    evtx: {a:?}\n    json: {b:?}",
                case.display()
            );
        } else {
            println!(
                "  differs: {}: {} events from evtx, {} from json",
                case.display(),
                a.len(),
                b.len()
            );
        }
    }
    println!("{same}/{compared} cases read the same from .evtx and .json");
    assert!(compared > 100);
    assert!(same * 10 >= compared * 9, "{same}/{compared} the same");
}

fn guids_unbraced(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => {
            let bare = s.trim_start_matches('{').trim_end_matches('}');
            let dashes: Vec<usize> = bare.match_indices('-').map(|(i, _)| i).collect();
            if bare.len() == 36 && dashes == [8, 13, 18, 23] {
                Value::String(bare.to_ascii_lowercase())
            } else {
                Value::String(s.trim_end().to_string())
            }
        }
        Value::Array(items) => Value::Array(items.into_iter().map(guids_unbraced).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, guids_unbraced(v)))
                .collect(),
        ),
        other => other,
    }
}
