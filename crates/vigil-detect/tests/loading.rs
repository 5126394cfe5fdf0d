//! Loading a directory of rules: good ones kept, bad ones reported with file and reason.

use std::path::PathBuf;

use serde_json::json;
use vigil_detect::{CompileOptions, Error, load_dir};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("vigil-detect-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("nested")).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const GOOD: &str = "title: Good\nid: 11111111-1111-4111-8111-111111111111\nlogsource: {product: windows}\ndetection:\n    sel:\n        Image|endswith: '\\evil.exe'\n    condition: sel\n";

#[test]
fn load_dir_keeps_good_rules_and_reports_each_bad_one() {
    let dir = TempDir::new("load");
    std::fs::write(dir.0.join("good.yml"), GOOD).unwrap();
    std::fs::write(
        dir.0.join("nested/bad_modifier.yaml"),
        GOOD.replace("Good", "Bad Modifier")
            .replace("endswith", "endswithh"),
    )
    .unwrap();
    std::fs::write(
        dir.0.join("nested/bad_condition.yml"),
        GOOD.replace("Good", "Bad Condition")
            .replace("condition: sel", "condition: sel and other"),
    )
    .unwrap();
    std::fs::write(dir.0.join("nested/not_yaml.yml"), "title: [unclosed\n").unwrap();
    std::fs::write(dir.0.join("notes.txt"), "ignored").unwrap();

    let report = load_dir(&dir.0, &CompileOptions::default()).unwrap();
    assert_eq!(report.rules.len(), 1);
    assert_eq!(report.rules[0].rule().title, "Good");
    assert_eq!(report.errors.len(), 3);
    let texts: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    for (file, what) in [
        ("bad_modifier.yaml", "unsupported modifier `endswithh`"),
        ("bad_condition.yml", "unknown search identifier `other`"),
        ("not_yaml.yml", "invalid YAML"),
    ] {
        let text = texts
            .iter()
            .find(|t| t.contains(file))
            .unwrap_or_else(|| panic!("no error for {file}: {texts:?}"));
        assert!(text.contains(what), "{text}");
    }
    assert!(
        report
            .errors
            .iter()
            .all(|e| matches!(e, Error::InFile { .. }))
    );
    let reasons = report.rejection_reasons();
    assert_eq!(reasons.len(), 3, "{reasons:?}");

    let ruleset = report.into_ruleset();
    let hit =
        json!({"Event": {"System": {"EventID": 1}, "EventData": {"Image": "C:\\x\\EVIL.exe"}}});
    let names: Vec<&str> = ruleset
        .matches(&hit)
        .map(|r| r.rule().title.as_str())
        .collect();
    assert_eq!(names, ["Good"]);
    assert_eq!(ruleset.matches(&json!({"Image": "good.exe"})).count(), 0);
}

#[test]
fn load_dir_fails_only_for_an_unreadable_directory() {
    let err = load_dir(
        &std::env::temp_dir().join("vigil-detect-does-not-exist"),
        &CompileOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
}
