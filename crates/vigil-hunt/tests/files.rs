//! Inputs of every kind, and bad files and lines reported and skipped.

use std::path::{Path, PathBuf};

use vigil_detect::{CompileOptions, CompiledRule, Level, Ruleset};
use vigil_hunt::{Error, Hunter, Progress};

fn rule(yaml: &str) -> CompiledRule {
    CompiledRule::from_yaml(yaml, &CompileOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn ruleset() -> Ruleset {
    Ruleset::new(vec![
        rule(
            "title: Whoami\nid: 11111111-1111-1111-1111-111111111111\nlevel: medium\n\
             logsource: {product: windows, category: process_creation}\n\
             detection: {sel: {Image|endswith: '\\whoami.exe'}, condition: sel}",
        ),
        rule(
            "title: Failed password\nlevel: low\nlogsource: {product: linux}\n\
             detection: {kw: ['Failed password'], condition: kw}",
        ),
    ])
}

/// A fresh directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("vigil-hunt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        TempDir(dir)
    }

    fn write(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, content).unwrap_or_else(|e| panic!("{e}"));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn whoami(time: &str) -> String {
    format!(
        r##"{{"Event":{{"System":{{"EventID":1,"Computer":"pc1","TimeCreated":{{"#attributes":{{"SystemTime":"{time}"}}}}}},"EventData":{{"Image":"C:\\Windows\\System32\\whoami.exe","CommandLine":"whoami /all"}}}}}}"##
    )
}

#[test]
fn every_input_kind_is_read_and_hits_sort_by_time() {
    let dir = TempDir::new("kinds");
    dir.write("one.json", whoami("2024-01-03T00:00:00Z").as_bytes());
    dir.write(
        "many.json",
        format!(
            "[{}, {}]",
            whoami("2024-01-02T00:00:00Z"),
            r#"{"Image": "C:\\notepad.exe"}"#
        )
        .as_bytes(),
    );
    dir.write(
        "lines.jsonl",
        format!("{}\n\n{}\n", whoami("2024-01-01T00:00:00Z"), "{}").as_bytes(),
    );
    dir.write(
        "auth.log",
        b"Jan 1 sshd: Accepted password\nJan 1 sshd: Failed password for root\n",
    );
    let ruleset = ruleset();
    let mut planned = None;
    let mut done = 0;
    let hunt = Hunter::new(&ruleset).hunt(std::slice::from_ref(&dir.0), |p| match p {
        Progress::Planned { files, .. } => planned = Some(files),
        Progress::FileDone { .. } => done += 1,
        Progress::FileStarted { .. } => {}
    });
    assert!(hunt.errors.is_empty(), "{:?}", hunt.errors);
    assert_eq!((planned, done, hunt.files), (Some(4), 4, 4));
    assert_eq!(hunt.events, 7);
    let got: Vec<(Option<&str>, String)> = hunt
        .hits
        .iter()
        .map(|h| (h.time.as_deref(), h.location.to_string()))
        .collect();
    let at = |name: &str, record: u64| format!("{}:{record}", dir.0.join(name).display());
    assert_eq!(
        got,
        vec![
            (Some("2024-01-01T00:00:00Z"), at("lines.jsonl", 1)),
            (Some("2024-01-02T00:00:00Z"), at("many.json", 1)),
            (Some("2024-01-03T00:00:00Z"), at("one.json", 1)),
            (None, at("auth.log", 2)),
        ]
    );
    let first = &hunt.hits[0];
    assert_eq!(
        first.key_fields(),
        vec![
            ("Computer", "pc1".to_string()),
            ("EventID", "1".to_string()),
            ("Image", "C:\\Windows\\System32\\whoami.exe".to_string()),
            ("CommandLine", "whoami /all".to_string()),
        ]
    );
    let json = first.to_json();
    assert_eq!(json["level"], "medium");
    assert_eq!(json["rule"]["id"], "11111111-1111-1111-1111-111111111111");
    assert_eq!(
        json["event"]["Event"]["EventData"]["CommandLine"],
        "whoami /all"
    );
    assert_eq!(hunt.by_level(), vec![(Level::Medium, 3), (Level::Low, 1)]);
    assert_eq!(hunt.top_rules(1)[0].2, 3);
}

#[test]
fn min_level_drops_lower_hits() {
    let dir = TempDir::new("level");
    dir.write("auth.log", b"Failed password\n");
    dir.write("a.json", whoami("2024-01-01T00:00:00Z").as_bytes());
    let ruleset = ruleset();
    let hunt = Hunter::new(&ruleset)
        .min_level(Level::Medium)
        .hunt(std::slice::from_ref(&dir.0), |_| {});
    assert_eq!(hunt.hits.len(), 1);
    assert_eq!(hunt.hits[0].rule.rule().title, "Whoami");
    assert_eq!(hunt.events, 2);
    // The lower hit is counted, not lost: the summary says what the filter hid.
    assert_eq!(hunt.min_level, Some(Level::Medium));
    assert_eq!(hunt.below_min_level, vec![(Level::Low, 1)]);
    assert_eq!(hunt.hidden(), 1);
}

#[test]
fn bad_files_and_lines_are_reported_and_skipped() {
    let dir = TempDir::new("bad");
    dir.write(
        "events.jsonl",
        format!("{}\n{{not json\n{}\n", whoami("t1"), whoami("t2")).as_bytes(),
    );
    dir.write("broken.json", b"{\"a\": ");
    dir.write("fake.evtx", b"this is not an event log");
    dir.write("auth.log", b"Failed password\n");
    let missing = dir.0.join("missing.json");
    let pattern = dir.0.join("*.nothing");
    let ruleset = ruleset();
    let hunt = Hunter::new(&ruleset).hunt(&[dir.0.clone(), missing, pattern], |_| {});
    assert_eq!(hunt.hits.len(), 3, "the good lines and files still count");
    let errors: Vec<String> = hunt.errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 5, "{errors:#?}");
    let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
    assert!(has("missing.json: no such file"), "{errors:#?}");
    assert!(has("*.nothing: no such file"), "{errors:#?}");
    assert!(has("events.jsonl:2: key must be a string"), "{errors:#?}");
    assert!(has("broken.json:1: EOF"), "{errors:#?}");
    assert!(has("fake.evtx: not a readable EVTX file"), "{errors:#?}");
    assert!(
        hunt.errors
            .iter()
            .any(|e| matches!(e, Error::Parse { line: Some(2), .. }))
    );
}

#[test]
fn glob_patterns_pick_files_of_one_directory() {
    let dir = TempDir::new("glob");
    dir.write("a.json", whoami("t").as_bytes());
    dir.write("b.json", whoami("t").as_bytes());
    dir.write("c.log", b"Failed password\n");
    let ruleset = ruleset();
    let hunt = Hunter::new(&ruleset).hunt(&[dir.0.join("*.json")], |_| {});
    assert_eq!((hunt.files, hunt.hits.len()), (2, 2));
    assert!(hunt.errors.is_empty());
    let _: &Path = &hunt.hits[0].location.path;
}

/// A line longer than the limit is reported and skipped without being held; the lines
/// after it are read.
#[test]
fn an_overlong_line_is_skipped_and_the_next_lines_read() {
    let dir = TempDir::new("long");
    let mut text = vec![b'x'; vigil_hunt::MAX_LINE_BYTES + 10];
    text.extend_from_slice(b"\nMay  1 09:00:00 web1 sshd[1]: Failed password for root\n");
    dir.write("auth.log", &text);
    let ruleset = ruleset();
    let hunt = Hunter::new(&ruleset).hunt(std::slice::from_ref(&dir.0), |_| {});
    assert_eq!(hunt.hits.len(), 1);
    assert_eq!(hunt.hits[0].location.record, 2);
    let errors: Vec<String> = hunt.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].ends_with("auth.log:1: line longer than 16 MiB skipped"),
        "{errors:?}"
    );
}

/// A JSON array is read element by element: events before a syntax error are kept, and
/// scalars and values back to back are events too.
#[test]
fn json_arrays_stream_and_keep_the_events_before_an_error() {
    let bytes = format!(
        "[{}, {}]\n{{\"a\": 1}} 7 [{}, {{\"broken\": ",
        whoami("2024-01-01T00:00:00Z"),
        whoami("2024-01-02T00:00:00Z"),
        whoami("2024-01-03T00:00:00Z")
    );
    let mut records = Vec::new();
    let mut errors = Vec::new();
    vigil_hunt::read_events_from_bytes(
        Path::new("x.json"),
        vigil_hunt::InputKind::Json,
        bytes.as_bytes(),
        &mut |record, event| {
            records.push((record, event.to_value().unwrap_or_else(|e| panic!("{e}"))))
        },
        &mut errors,
    );
    let numbers: Vec<u64> = records.iter().map(|(r, _)| *r).collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5]);
    assert_eq!(records[2].1, serde_json::json!({"a": 1}));
    assert_eq!(records[3].1, serde_json::json!(7));
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .to_string()
            .starts_with("x.json:2: EOF while parsing"),
        "{}",
        errors[0]
    );
}

/// `--from`/`--to` in the library: events outside, and events without a time, are counted
/// and not evaluated.
#[test]
fn the_time_range_leaves_out_events_outside_it_and_without_a_time() {
    let dir = TempDir::new("range");
    let lines: Vec<String> = [
        "2024-01-01T00:00:00Z",
        "2024-01-02T12:00:00Z",
        "2024-01-03T00:00:00Z",
    ]
    .iter()
    .map(|t| whoami(t))
    .collect();
    dir.write(
        "a.jsonl",
        format!("{}\n{{\"Image\": \"x\"}}\n", lines.join("\n")).as_bytes(),
    );
    let ruleset = ruleset();
    let now = "2024-02-01T00:00:00Z".parse().unwrap();
    let range = vigil_hunt::TimeRange::parse(Some("2024-01-02"), Some("2024-01-02T23:00:00Z"), now)
        .unwrap();
    let hunt = Hunter::new(&ruleset)
        .time_range(range)
        .threads(2)
        .hunt(std::slice::from_ref(&dir.0), |_| {});
    assert_eq!((hunt.events, hunt.out_of_range), (1, 3));
    assert_eq!(hunt.hits.len(), 1);
    assert_eq!(hunt.hits[0].time.as_deref(), Some("2024-01-02T12:00:00Z"));
}
