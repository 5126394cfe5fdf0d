//! The hunt's own path (events parsed from their bytes by the engine's parser, large files
//! read in parts, matches kept within a memory budget and merged from disk) against the
//! `serde_json::Value` path it replaced: the same matches, in the same order.

use std::path::{Path, PathBuf};

use vigil_detect::{CompileOptions, CompiledRule, Ruleset};
use vigil_hunt::{Hit, Hunter, InputKind};

/// A fresh directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("vigil-hunt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What identifies a hit: (line, rule id or title, time).
fn seen(hits: &[Hit<'_>]) -> Vec<(u64, String, Option<String>)> {
    hits.iter()
        .map(|h| {
            let rule = h.rule.rule();
            let name = rule.id.clone().unwrap_or_else(|| rule.title.clone());
            (h.location.record, name, h.time.clone())
        })
        .collect()
}

/// Every regression event of the SigmaHQ data (`.json` files), one per line.
fn regression_lines(sigma: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for file in vigil_testdata::files_with_extension(&sigma.join("regression_data"), "json") {
        let mut errors = Vec::new();
        vigil_hunt::read_events(
            &file,
            InputKind::Json,
            &mut |_, e| {
                let value = e.to_value().unwrap_or_else(|e| panic!("{e}"));
                lines.push(value.to_string());
            },
            &mut errors,
        );
        assert!(errors.is_empty(), "{errors:?}");
    }
    lines
}

#[test]
fn hunting_json_lines_finds_what_the_serde_json_value_path_finds() {
    let Some(sigma) = super::shared_data::sigma_dir() else {
        return;
    };
    let ruleset = super::shared_data::ruleset(&sigma);
    let lines = regression_lines(&sigma);
    assert!(lines.len() > 100, "{} events", lines.len());
    let dir = TempDir::new("same-hits");
    let path = dir.0.join("events.jsonl");
    // Twice over, so parts of the file start in the middle of the events.
    let all: Vec<&String> = lines.iter().chain(&lines).collect();
    let text: String = all.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, &text).unwrap_or_else(|e| panic!("{e}"));

    // The old path: each line into a `serde_json::Value`, evaluated as one.
    let mut expected = Vec::new();
    for (i, line) in all.iter().enumerate() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}"));
        let time = vigil_hunt::event_time(&value);
        for r in ruleset.match_indices(&value) {
            let rule = ruleset.rules()[r].rule();
            let name = rule.id.clone().unwrap_or_else(|| rule.title.clone());
            expected.push((i as u64 + 1, name, time.clone()));
        }
    }
    assert!(expected.len() > 100, "{} matches", expected.len());

    let whole = Hunter::new(ruleset)
        .threads(1)
        .hunt(std::slice::from_ref(&path), |_| {});
    assert!(whole.errors.is_empty(), "{:?}", whole.errors);
    assert_eq!(whole.events, all.len() as u64);
    assert_eq!(whole.matches, whole.hits.len() as u64);
    let mut got = seen(&whole.hits);
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "the same hits as through serde_json::Value");

    // In parts of 64 KiB on three threads, with 32 KiB for matches (so most go to disk):
    // the same hits in the same order.
    let split = Hunter::new(ruleset)
        .threads(3)
        .part_bytes(64 << 10)
        .memory(32 << 10)
        .hunt(std::slice::from_ref(&path), |_| {});
    assert!(split.errors.is_empty(), "{:?}", split.errors);
    assert_eq!(split.threads, 3);
    assert_eq!(split.events, whole.events);
    assert_eq!(seen(&split.hits), seen(&whole.hits));
    assert_eq!(split.by_level(), whole.by_level());
    let events: Vec<&str> = split.hits.iter().map(|h| h.event.as_str()).collect();
    let before: Vec<&str> = whole.hits.iter().map(|h| h.event.as_str()).collect();
    assert_eq!(events, before);
    // The event printed is the line as read.
    let first = &split.hits[0];
    assert_eq!(
        first.event.as_str(),
        all[first.location.record as usize - 1].as_str()
    );
}

fn rule(yaml: &str) -> CompiledRule {
    CompiledRule::from_yaml(yaml, &CompileOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// Lines of a file read in parts keep their numbers in the whole file, in matches and in
/// errors, and no line is read twice or left out at a part's edge.
#[test]
fn parts_of_a_file_number_their_lines_as_the_whole_file() {
    let ruleset = Ruleset::new(vec![rule(
        "title: Any n\nlevel: low\nlogsource: {product: test}\n\
         detection: {sel: {n|gte: 0}, condition: sel}",
    )]);
    let dir = TempDir::new("parts");
    let path = dir.0.join("a.jsonl");
    let mut text = String::new();
    for n in 1..=500u64 {
        match n {
            77 => text.push_str("{broken\n"),
            100 => text.push('\n'),
            _ => text.push_str(&format!(
                "{{\"n\":{n},\"pad\":\"{}\"}}\n",
                "x".repeat((n % 13) as usize)
            )),
        }
    }
    std::fs::write(&path, &text).unwrap_or_else(|e| panic!("{e}"));
    for part in [1, 7, 100, 1 << 20] {
        let hunt = Hunter::new(&ruleset)
            .threads(2)
            .part_bytes(part)
            .memory(1 << 10)
            .hunt(std::slice::from_ref(&path), |_| {});
        let records: Vec<u64> = hunt.hits.iter().map(|h| h.location.record).collect();
        let expected: Vec<u64> = (1..=500).filter(|n| ![77, 100].contains(n)).collect();
        assert_eq!(records, expected, "parts of {part} bytes");
        let values: Vec<u64> = hunt
            .hits
            .iter()
            .map(|h| h.event.to_value()["n"].as_u64().unwrap_or_default())
            .collect();
        assert_eq!(values, expected, "parts of {part} bytes");
        let errors: Vec<String> = hunt.errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("a.jsonl:77: key must be a string"),
            "{errors:?}"
        );
        assert_eq!((hunt.files, hunt.events), (1, 498));
    }
}

/// A pretty-printed `.json` event is printed on one line, as written otherwise (escapes and
/// number spellings kept).
#[test]
fn json_output_prints_the_event_as_read_on_one_line() {
    let ruleset = Ruleset::new(vec![rule(
        "title: Whoami\nlevel: high\nlogsource: {product: windows}\n\
         detection: {sel: {Image|endswith: '\\whoami.exe'}, condition: sel}",
    )]);
    let dir = TempDir::new("print");
    let path = dir.0.join("a.json");
    let event = "[\n  {\n    \"Image\": \"C:\\\\x\\\\who\\u0061mi.exe\",\n    \"n\": 1.50,\n    \"s\": \"a  b\"\n  }\n]\n";
    std::fs::write(&path, event).unwrap_or_else(|e| panic!("{e}"));
    let hunt = Hunter::new(&ruleset).hunt(std::slice::from_ref(&path), |_| {});
    assert!(hunt.errors.is_empty(), "{:?}", hunt.errors);
    assert_eq!(hunt.hits.len(), 1);
    let mut out = Vec::new();
    hunt.hits[0]
        .write_json(&mut out)
        .unwrap_or_else(|e| panic!("{e}"));
    let line = String::from_utf8(out).unwrap_or_else(|e| panic!("{e}"));
    assert!(!line.contains('\n'), "{line}");
    assert!(
        line.ends_with(r#","event":{"Image":"C:\\x\\who\u0061mi.exe","n":1.50,"s":"a  b"}}"#),
        "{line}"
    );
    let parsed: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parsed, hunt.hits[0].to_json());
}
