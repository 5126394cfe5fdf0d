//! rsigma-eval beside our engine: both must agree on which rules match each event.
//!
//! Both engines evaluate every rule they both load on every event, without logsource
//! filtering (neither has pipelines here), and see the same field values
//! ([`crate::rsigma_event::Shared`]). A disagreement fails the test unless it is in
//! [`ALLOWED`] with the reason it is accepted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use vigil_detect::{CompileOptions, CompiledRule};

use crate::rsigma_event::Shared;
use crate::shared_data::{RULE_DIRS, case_events, info_files, sigma_dir};

/// Disagreements accepted after review: (rule id, event label, reason). The event label is the
/// regression case's directory (relative to `sigma/`) or the crafted event's name.
const ALLOWED: &[(&str, &str, &str)] = &[
    (
        "crafted-number",
        "padded-numbers",
        "spec reading: the specification (sigma-rules-specification.md, sigma-appendix-modifiers.md \
         v2.1.0) does not say how a number in a rule compares with a string in an event; ours \
         compares such strings as text (\"4688\" matches 4688, \"04688\" does not), rsigma-eval \
         parses them as numbers",
    ),
    (
        "crafted-lt",
        "padded-numbers",
        "spec reading: sigma-appendix-modifiers.md v2.1.0, Numeric Modifiers, only says \
         \"Field is less than the value\", not which strings are numbers; ours accepts \
         surrounding whitespace (\" 9 \", see FieldValue::as_f64), rsigma-eval does not",
    ),
    (
        "crafted-lte",
        "padded-numbers",
        "spec reading: same as crafted-lt on padded-numbers (whitespace around a numeric string)",
    ),
];

/// A rule both engines compiled.
struct Pair {
    id: String,
    ours: CompiledRule,
    theirs: rsigma_eval::CompiledRule,
}

fn theirs_from_yaml(text: &str) -> Result<rsigma_eval::CompiledRule, String> {
    let collection = rsigma_parser::parse_sigma_yaml(text).map_err(|e| e.to_string())?;
    if !collection.errors.is_empty() {
        return Err(collection.errors.join("; "));
    }
    match collection.rules.as_slice() {
        [rule] => rsigma_eval::compile_rule(rule).map_err(|e| e.to_string()),
        rules => Err(format!("{} detection rules in the file", rules.len())),
    }
}

/// Rules loaded by one engine only, by rule id (or file) and the other engine's error.
#[derive(Default)]
struct LoadDiff {
    ours_only: Vec<(String, String)>,
    theirs_only: Vec<(String, String)>,
    neither: usize,
}

fn load_pair(id: String, text: &str, diff: &mut LoadDiff) -> Option<Pair> {
    let ours = CompiledRule::from_yaml(text, &CompileOptions::default());
    let theirs = theirs_from_yaml(text);
    match (ours, theirs) {
        (Ok(ours), Ok(theirs)) => Some(Pair { id, ours, theirs }),
        (Ok(_), Err(e)) => {
            diff.ours_only.push((id, e));
            None
        }
        (Err(e), Ok(_)) => {
            diff.theirs_only.push((id, e.to_string()));
            None
        }
        (Err(_), Err(_)) => {
            diff.neither += 1;
            None
        }
    }
}

/// Matches of each engine on one event, as sets of rule ids.
fn matches(rules: &[Pair], event: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    let shared = Shared(event);
    let mut ours = BTreeSet::new();
    let mut theirs = BTreeSet::new();
    for p in rules {
        if p.ours.is_match(event) {
            ours.insert(p.id.clone());
        }
        if rsigma_eval::evaluate_rule(&p.theirs, &shared).is_some() {
            theirs.insert(p.id.clone());
        }
    }
    (ours, theirs)
}

/// One disagreement: rule id, event label, which engine matched.
type Disagreement = (String, String, &'static str);

#[derive(Default)]
struct Stats {
    events: usize,
    evaluations: usize,
    agreed_matches: usize,
    disagreements: Vec<Disagreement>,
}

impl Stats {
    fn compare(&mut self, rules: &[Pair], label: &str, event: &Value) {
        let (ours, theirs) = matches(rules, event);
        self.events += 1;
        self.evaluations += rules.len();
        self.agreed_matches += ours.intersection(&theirs).count();
        for id in ours.difference(&theirs) {
            self.disagreements
                .push((id.clone(), label.to_string(), "only ours matches"));
        }
        for id in theirs.difference(&ours) {
            self.disagreements
                .push((id.clone(), label.to_string(), "only rsigma-eval matches"));
        }
    }

    /// Prints the statistics and every disagreement; panics on unexplained ones and on
    /// allowlist entries for `scope` that no longer happen.
    fn check(self, scope: &str, is_in_scope: impl Fn(&str) -> bool) {
        println!(
            "{scope}: {} events, {} rule/event pairs, {} matches agreed, {} disagreements",
            self.events,
            self.evaluations,
            self.agreed_matches,
            self.disagreements.len()
        );
        let mut unexplained = Vec::new();
        let mut used = BTreeSet::new();
        for (rule, event, side) in &self.disagreements {
            match ALLOWED.iter().position(|(r, e, _)| r == rule && e == event) {
                Some(i) => {
                    used.insert(i);
                    println!("  allowed: {rule} on {event}: {side} ({})", ALLOWED[i].2);
                }
                None => {
                    println!("  DISAGREE: {rule} on {event}: {side}");
                    unexplained.push(format!("{rule} on {event}: {side}"));
                }
            }
        }
        let stale: Vec<_> = ALLOWED
            .iter()
            .enumerate()
            .filter(|(i, (_, e, _))| is_in_scope(e) && !used.contains(i))
            .map(|(_, (r, e, _))| format!("{r} on {e}"))
            .collect();
        assert!(
            unexplained.is_empty(),
            "{} unexplained disagreements: {unexplained:#?}",
            unexplained.len()
        );
        assert!(
            stale.is_empty(),
            "allowlist entries that no longer apply: {stale:#?}"
        );
    }
}

/// One small rule per modifier (and plain values, wildcards, numbers, null, keywords,
/// conditions); `expand` is left out because placeholders are configuration, not matching.
const CRAFTED_RULES: &[(&str, &str)] = &[
    ("plain", "sel:\n    Image: 'C:\\Windows\\System32\\cmd.exe'"),
    ("wildcards", "sel:\n    Image: '*\\cmd.e?e'"),
    ("escaped-wildcard", "sel:\n    CommandLine: 'echo \\*'"),
    ("number", "sel:\n    EventID: 4688"),
    ("null", "sel:\n    ParentImage: null"),
    ("contains", "sel:\n    CommandLine|contains: 'whoami'"),
    ("startswith", "sel:\n    Image|startswith: 'C:\\Windows\\'"),
    ("endswith", "sel:\n    Image|endswith: '\\powershell.exe'"),
    (
        "contains-all",
        "sel:\n    CommandLine|contains|all:\n        - ' -enc '\n        - 'hidden'",
    ),
    ("re", "sel:\n    CommandLine|re: '^cmd(\\.exe)? /c'"),
    ("re-i", "sel:\n    CommandLine|re|i: '^CMD'"),
    ("re-m", "sel:\n    CommandLine|re|m: '^second$'"),
    ("re-s", "sel:\n    CommandLine|re|s: 'first.second'"),
    ("cased", "sel:\n    CommandLine|cased|contains: 'WhoAmI'"),
    (
        "cidr",
        "sel:\n    DestinationIp|cidr:\n        - '10.0.0.0/8'\n        - 'fe80::/10'",
    ),
    ("base64", "sel:\n    Payload|base64: 'secret'"),
    (
        "base64offset",
        "sel:\n    CommandLine|base64offset|contains: 'Invoke-Mimikatz'",
    ),
    (
        "wide-base64offset",
        "sel:\n    CommandLine|wide|base64offset|contains: 'IEX'",
    ),
    (
        "utf16le-base64offset",
        "sel:\n    CommandLine|utf16le|base64offset|contains: 'IEX'",
    ),
    (
        "utf16be-base64offset",
        "sel:\n    CommandLine|utf16be|base64offset|contains: 'IEX'",
    ),
    (
        "utf16-base64offset",
        "sel:\n    CommandLine|utf16|base64offset|contains: 'IEX'",
    ),
    (
        "windash",
        "sel:\n    CommandLine|windash|contains: ' -exec bypass'",
    ),
    ("exists-true", "sel:\n    ParentImage|exists: true"),
    ("exists-false", "sel:\n    ParentImage|exists: false"),
    ("fieldref", "sel:\n    Image|fieldref: ParentImage"),
    ("lt", "sel:\n    Count|lt: 10"),
    ("lte", "sel:\n    Count|lte: 10"),
    ("gt", "sel:\n    Count|gt: 10"),
    ("gte", "sel:\n    Count|gte: 10"),
    (
        "keywords",
        "keywords:\n    - 'mimikatz'\n    - 'sekurlsa::'",
    ),
    ("re-cased-by-default", "sel:\n    CommandLine|re: 'WhoAmI'"),
    (
        "contains-wildcards",
        "sel:\n    CommandLine|contains: 'net?exe*user'",
    ),
    ("empty-string", "sel:\n    Description: ''"),
    (
        "unicode-case",
        "sel:\n    Description|contains: '\u{e4}rger \u{431}\u{435}\u{437}'",
    ),
    ("number-as-string", "sel:\n    EventID: '4688'"),
    ("list-field", "sel:\n    Tags|endswith: '-b'"),
    (
        "one-of",
        "sel_a:\n    Image|endswith: '\\cmd.exe'\nsel_b:\n    Image|endswith: '\\whoami.exe'",
    ),
    (
        "and-not",
        "sel:\n    Image|endswith: '\\cmd.exe'\nfilter:\n    CommandLine|contains: 'dir'",
    ),
];

fn crafted_condition(name: &str) -> &'static str {
    match name {
        "keywords" => "keywords",
        "one-of" => "1 of sel_*",
        "and-not" => "sel and not filter",
        _ => "sel",
    }
}

fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

fn utf16be(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_be_bytes()).collect()
}

/// Events hitting and missing each crafted rule.
fn crafted_events() -> Vec<(&'static str, Value)> {
    let b64 = |b: &[u8]| BASE64.encode(b);
    vec![
        (
            "cmd-whoami",
            json!({"Image": "C:\\WINDOWS\\system32\\CMD.EXE", "CommandLine": "cmd.exe /c whoami",
                   "ParentImage": "C:\\Windows\\explorer.exe", "EventID": 4688, "Count": 10}),
        ),
        (
            "cmd-dir",
            json!({"Image": "C:\\Windows\\System32\\cmd.exe", "CommandLine": "cmd /c dir",
                   "ParentImage": null, "EventID": "4688", "Count": "9"}),
        ),
        (
            "cmd-exe-bak",
            json!({"Image": "C:\\Windows\\System32\\cmd.exe.bak", "CommandLine": "echo *",
                   "Count": 11}),
        ),
        (
            "echo-literal",
            json!({"Image": "D:\\tools\\cmd.exe", "CommandLine": "echo x", "EventID": 46880}),
        ),
        (
            "powershell-enc",
            json!({"Image": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\PowerShell.exe",
                   "CommandLine": "powershell -w HIDDEN -enc SQBFAFgA", "Count": 10.5}),
        ),
        (
            "powershell-slash",
            json!({"Image": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
                   "CommandLine": "powershell /exec bypass \u{2013}nop", "Count": -1}),
        ),
        (
            "powershell-endash",
            json!({"Image": "C:\\x\\powershell.exe", "CommandLine": "powershell \u{2013}exec bypass"}),
        ),
        (
            "multiline",
            json!({"Image": "C:\\a.exe", "CommandLine": "first\nsecond\nthird"}),
        ),
        (
            "cased",
            json!({"Image": "C:\\a.exe", "CommandLine": "run WhoAmI now"}),
        ),
        (
            "cased-lower",
            json!({"Image": "C:\\a.exe", "CommandLine": "run whoami now"}),
        ),
        (
            "network",
            json!({"DestinationIp": "10.1.2.3", "Payload": b64(b"secret")}),
        ),
        (
            "network-v6",
            json!({"DestinationIp": "FE80::1", "Payload": b64(b"secrets")}),
        ),
        (
            "network-public",
            json!({"DestinationIp": "8.8.8.8", "Payload": "secret"}),
        ),
        (
            "base64offset-0",
            json!({"CommandLine": format!("x {}", b64(b"Invoke-Mimikatz -x"))}),
        ),
        (
            "base64offset-1",
            json!({"CommandLine": b64(b"_Invoke-Mimikatz")}),
        ),
        (
            "base64offset-2",
            json!({"CommandLine": b64(b"__Invoke-Mimikatz")}),
        ),
        ("wide-0", json!({"CommandLine": b64(&utf16le("IEX (x)"))})),
        ("wide-1", json!({"CommandLine": b64(&utf16le("aIEX"))})),
        ("wide-2", json!({"CommandLine": b64(&utf16le("abIEX"))})),
        ("utf16be", json!({"CommandLine": b64(&utf16be("IEX"))})),
        (
            "utf16-bom",
            json!({"CommandLine": b64(&[[0xff, 0xfe].as_slice(), &utf16le("IEX")].concat())}),
        ),
        (
            "fieldref-equal",
            json!({"Image": "C:\\x.exe", "ParentImage": "c:\\X.EXE"}),
        ),
        (
            "keywords",
            json!({"Image": "C:\\x.exe", "CommandLine": "x.exe SEKURLSA::logonpasswords", "Other": ["a", "MIMIKATZ"]}),
        ),
        (
            "windows-shaped",
            json!({"Event": {
                "System": {"EventID": {"#text": "4688"}, "Channel": "Security"},
                "EventData": {"Image": "C:\\Windows\\System32\\whoami.exe",
                              "CommandLine": "whoami /all", "ParentImage": "C:\\Windows\\System32\\cmd.exe"}}}),
        ),
        (
            "windash-emdash",
            json!({"CommandLine": "powershell \u{2014}exec bypass", "Description": ""}),
        ),
        (
            "windash-bar",
            json!({"CommandLine": "powershell \u{2015}exec bypass", "Description": null}),
        ),
        (
            "wildcards-in-contains",
            json!({"CommandLine": "C:\\net.exe localgroup user x", "EventID": " 4688"}),
        ),
        (
            "wildcards-in-contains-miss",
            json!({"CommandLine": "C:\\net.exe", "Count": "10.0"}),
        ),
        (
            "unicode-case",
            json!({"Description": "\u{c4}RGER \u{411}\u{415}\u{417} grenzen"}),
        ),
        (
            "list-field",
            json!({"Tags": ["tag-a", "TAG-B"], "EventID": [4688, 1], "Count": [1, 20]}),
        ),
        (
            "padded-numbers",
            json!({"EventID": "04688", "Count": " 9 "}),
        ),
        ("empty", json!({})),
    ]
}

#[test]
fn rsigma_agrees_on_crafted_events_for_each_modifier() {
    let mut diff = LoadDiff::default();
    let rules: Vec<Pair> = CRAFTED_RULES
        .iter()
        .filter_map(|(name, detection)| {
            let detection: String = detection.lines().map(|l| format!("    {l}\n")).collect();
            let text = format!(
                "title: Crafted {name}\nid: crafted-{name}\nlogsource:\n    product: test\ndetection:\n{detection}    condition: {}\n",
                crafted_condition(name)
            );
            load_pair(format!("crafted-{name}"), &text, &mut diff)
        })
        .collect();
    assert!(
        diff.ours_only.is_empty() && diff.theirs_only.is_empty() && diff.neither == 0,
        "crafted rules not loaded by both: ours only {:?}, theirs only {:?}, neither {}",
        diff.ours_only,
        diff.theirs_only,
        diff.neither
    );
    let mut stats = Stats::default();
    let mut fired = BTreeSet::new();
    for (label, event) in crafted_events() {
        fired.extend(matches(&rules, &event).0);
        stats.compare(&rules, label, &event);
    }
    // Every crafted rule must fire somewhere, or it tests nothing.
    let silent: Vec<_> = rules
        .iter()
        .filter(|p| !fired.contains(&p.id))
        .map(|p| &p.id)
        .collect();
    assert!(
        silent.is_empty(),
        "crafted rules matching no crafted event: {silent:?}"
    );
    stats.check("crafted", |e| !e.contains('/'));
}

fn yml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            yml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
            out.push(path);
        }
    }
}

#[test]
fn rsigma_agrees_on_sigmahq_regression_events() {
    let Some(sigma) = sigma_dir() else { return };
    let mut files = Vec::new();
    for dir in RULE_DIRS {
        yml_files(&sigma.join(dir), &mut files);
    }
    files.sort();
    let mut diff = LoadDiff::default();
    let mut rules = Vec::new();
    for path in &files {
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let ours = CompiledRule::from_yaml(&text, &CompileOptions::default());
        let id = ours
            .as_ref()
            .ok()
            .and_then(|r| r.rule().id.clone())
            .unwrap_or_else(|| {
                path.strip_prefix(&sigma)
                    .unwrap_or(path)
                    .display()
                    .to_string()
            });
        rules.extend(load_pair(id, &text, &mut diff));
    }
    println!(
        "{} rule files: {} loaded by both, {} by ours only, {} by rsigma-eval only, {} by neither",
        files.len(),
        rules.len(),
        diff.ours_only.len(),
        diff.theirs_only.len(),
        diff.neither
    );
    for (id, e) in &diff.ours_only {
        println!("  ours only: {id}: rsigma-eval says {e}");
    }
    for (id, e) in &diff.theirs_only {
        println!("  rsigma-eval only: {id}: ours says {e}");
    }

    let mut infos = Vec::new();
    info_files(&sigma.join("regression_data"), &mut infos);
    infos.sort();
    assert!(!infos.is_empty(), "no regression cases found");
    let mut stats = Stats::default();
    let mut per_rule: BTreeMap<String, usize> = BTreeMap::new();
    for info in &infos {
        let case_dir = info.parent().unwrap_or(Path::new("."));
        let label = case_dir
            .strip_prefix(&sigma)
            .unwrap_or(case_dir)
            .display()
            .to_string();
        for event in case_events(case_dir) {
            stats.compare(&rules, &label, &event);
        }
    }
    for (rule, _, _) in &stats.disagreements {
        *per_rule.entry(rule.clone()).or_default() += 1;
    }
    println!("rules disagreeing: {}", per_rule.len());
    stats.check("regression", |e| e.contains('/'));
}
