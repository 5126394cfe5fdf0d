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

const BASE_AND_CORRELATION: &str = "title: Failed login
id: 22222222-2222-4222-8222-222222222222
name: failed_login
logsource: {product: test}
detection:
    sel:
        Outcome: failure
    condition: sel
---
title: Many failed logins
id: 33333333-3333-4333-8333-333333333333
level: high
correlation:
    type: event_count
    rules:
        - failed_login
    group-by:
        - User
    timespan: 5m
    condition:
        gte: 2
";

const ADMIN_FILTER: &str = "title: Not for admins
logsource: {product: test}
filter:
    rules: [22222222-2222-4222-8222-222222222222]
    sel:
        User|startswith: adm_
    condition: sel
";

#[test]
fn load_dir_reads_multi_document_files_with_correlations_and_filters() {
    let dir = TempDir::new("correlation");
    std::fs::write(dir.0.join("mr_failed_logins.yml"), BASE_AND_CORRELATION).unwrap();
    std::fs::write(dir.0.join("nested/mf_admins.yml"), ADMIN_FILTER).unwrap();
    let report = load_dir(&dir.0, &CompileOptions::default()).unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.rules.len(), 1);
    assert_eq!(report.correlations.len(), 1);
    assert_eq!(report.filters.len(), 1);
    assert_eq!(report.rules[0].filters().len(), 1);

    let mut engine = report.correlation_engine().unwrap();
    let ruleset = report.into_ruleset();
    let mut fired = Vec::new();
    for (i, (user, outcome)) in [
        ("bob", "failure"),
        ("adm_eve", "failure"), // filtered: neither a rule match nor counted
        ("adm_eve", "failure"),
        ("bob", "success"),
        ("eve", "failure"),
        ("bob", "failure"), // bob's second failure
    ]
    .into_iter()
    .enumerate()
    {
        let event = json!({"User": user, "Outcome": outcome});
        let matched: Vec<_> = ruleset.matches(&event).collect();
        fired.extend(engine.process_rules(i as i64 * 1000, &matched, &event));
    }
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0].title, "Many failed logins");
    assert_eq!(
        fired[0].group,
        [("User".to_string(), Some("bob".to_string()))]
    );
    let indices: Vec<u64> = fired[0].events.iter().map(|c| c.index).collect();
    assert_eq!(indices, [0, 5]);
    // Referred to by name, known by id too.
    assert!(engine.is_correlation_only("22222222-2222-4222-8222-222222222222"));
}

#[test]
fn load_dir_reports_bad_correlations_and_filters_and_keeps_the_rest() {
    let dir = TempDir::new("correlation-errors");
    std::fs::write(dir.0.join("base.yml"), BASE_AND_CORRELATION).unwrap();
    std::fs::write(
        dir.0.join("unknown_ref.yml"),
        BASE_AND_CORRELATION
            .split("---\n")
            .nth(1)
            .unwrap()
            .replace("Many failed logins", "Unknown ref")
            .replace("333333333333", "444444444444")
            .replace("- failed_login", "- no_such_rule"),
    )
    .unwrap();
    std::fs::write(
        dir.0.join("bad_timespan.yml"),
        // Its base rule under its own id and name: a repeated one is an error of its own.
        BASE_AND_CORRELATION
            .replace("timespan: 5m", "timespan: 5 min")
            .replace("id: 2222", "id: 6666")
            .replace("name: failed_login", "name: failed_login_3"),
    )
    .unwrap();
    std::fs::write(
        dir.0.join("no_field.yml"),
        BASE_AND_CORRELATION
            .replace("event_count", "value_count")
            .replace("id: 2222", "id: 5555")
            .replace("name: failed_login", "name: failed_login_2"),
    )
    .unwrap();
    std::fs::write(
        dir.0.join("nested/filter_unknown.yml"),
        ADMIN_FILTER.replace("22222222-2222-4222-8222-222222222222", "nope"),
    )
    .unwrap();
    let report = load_dir(&dir.0, &CompileOptions::default()).unwrap();
    let texts: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    for (file, what) in [
        (
            "unknown_ref.yml",
            "`Unknown ref` (33333333-3333-4333-8333-444444444444): unknown referenced rule `no_such_rule`",
        ),
        ("bad_timespan.yml", "bad timespan `5 min`"),
        (
            "no_field.yml",
            "value_count correlation needs `condition.field`",
        ),
        (
            "filter_unknown.yml",
            "filter `Not for admins`: unknown referenced rule `nope`",
        ),
    ] {
        let text = texts
            .iter()
            .find(|t| t.contains(file))
            .unwrap_or_else(|| panic!("no error for {file}: {texts:?}"));
        assert!(text.contains(what), "{text} should say {what}");
    }
    assert_eq!(report.errors.len(), 4, "{texts:?}");
    // The base rules of the multi-document files still load, and the good correlation.
    assert_eq!(report.rules.len(), 3);
    assert_eq!(report.correlations.len(), 1);
    assert_eq!(report.filters.len(), 1);
}

#[test]
fn load_dir_links_chained_correlations_and_rejects_broken_chains() {
    let dir = TempDir::new("chains");
    // Named so the chain can refer to it, and a correlation over it.
    let named = BASE_AND_CORRELATION.replace(
        "title: Many failed logins\n",
        "title: Many failed logins\nname: many_failed_logins\n",
    );
    let chain = "title: Failed logins then success
id: 66666666-6666-4666-8666-666666666666
correlation:
    type: temporal_ordered
    rules: [many_failed_logins, successful_login]
    group-by: [User]
    timespan: 10m
---
title: Successful login
name: successful_login
logsource: {product: test}
detection:
    sel:
        Outcome: success
    condition: sel
";
    std::fs::write(dir.0.join("base.yml"), &named).unwrap();
    std::fs::write(dir.0.join("chain.yml"), chain).unwrap();
    // A chain over a correlation that is itself rejected, and two correlations in a cycle.
    std::fs::write(
        dir.0.join("broken.yml"),
        "title: Over a bad one
id: 77777777-7777-4777-8777-777777777777
correlation:
    type: event_count
    rules: [bad_inner]
    timespan: 1m
    condition: {gte: 1}
---
title: Bad inner
name: bad_inner
correlation:
    type: event_count
    rules: [no_such_rule]
    timespan: 1m
    condition: {gte: 1}
---
title: Cycle A
name: cycle_a
correlation:
    type: event_count
    rules: [cycle_b]
    timespan: 1m
    condition: {gte: 1}
---
title: Cycle B
name: cycle_b
correlation:
    type: event_count
    rules: [cycle_a, failed_login]
    timespan: 1m
    condition: {gte: 1}
",
    )
    .unwrap();
    let report = load_dir(&dir.0, &CompileOptions::default()).unwrap();
    let texts: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    for what in [
        "`Bad inner`: unknown referenced rule `no_such_rule`",
        "`Over a bad one` (77777777-7777-4777-8777-777777777777): refers to correlation `bad_inner`, which was rejected",
        "refers to itself through a chain of correlations",
    ] {
        assert!(texts.iter().any(|t| t.contains(what)), "{what}: {texts:?}");
    }
    let mut titles: Vec<&str> = report
        .correlations
        .iter()
        .map(|c| c.title.as_str())
        .collect();
    titles.sort_unstable();
    // One of the cycle is refused; the other then refers to a rejected correlation.
    assert_eq!(titles, ["Failed logins then success", "Many failed logins"]);
    assert_eq!(report.errors.len(), 4, "{texts:?}");

    // The chain runs: bob fails twice, then succeeds.
    let mut engine = report.correlation_engine().unwrap();
    let ruleset = report.into_ruleset();
    let mut fired = Vec::new();
    for (i, outcome) in ["failure", "failure", "success"].into_iter().enumerate() {
        let event = json!({"User": "bob", "Outcome": outcome});
        let matched: Vec<_> = ruleset.matches(&event).collect();
        fired.extend(engine.process_rules(i as i64 * 1000, &matched, &event));
    }
    let titles: Vec<&str> = fired.iter().map(|m| m.title.as_str()).collect();
    assert_eq!(titles, ["Failed logins then success"]);
}

/// A user's filter and correlation naming built-in rules by id (shared with the CLI and
/// server tests).
pub const USER_RULES_ON_BUILTIN: &str = include_str!("fixtures/user_rules_on_builtin.yml");

/// A user directory's filter and correlation naming built-in rules (by id), loaded with the
/// pack in one `load`: both resolve. A rule reusing a built-in id is an error for the user's
/// copy, and the built-in rule is the one kept.
#[test]
fn one_load_resolves_a_user_directorys_references_to_built_in_rules() {
    let dir = TempDir::new("one-load");
    // SSH Authentication Failure and Sudo Attempt by a User Not in Sudoers, built in.
    let ssh_failure = "09403289-3a54-4657-b8bb-97dcf4cd3714";
    let not_in_sudoers = "a1894dc3-4879-49e8-877a-376dd1ec8cf8";
    std::fs::write(dir.0.join("mine.yml"), USER_RULES_ON_BUILTIN).unwrap();
    std::fs::write(
        dir.0.join("nested/copy.yml"),
        format!(
            "title: My copy\nid: {ssh_failure}\nlogsource: {{product: linux}}\n\
             detection: {{kw: [x], condition: kw}}\n"
        ),
    )
    .unwrap();

    let report = vigil_detect::load(
        true,
        std::slice::from_ref(&dir.0),
        &CompileOptions::default(),
    )
    .unwrap();
    let texts: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    assert_eq!(texts.len(), 1, "{texts:#?}");
    assert!(
        texts[0].contains("copy.yml")
            && texts[0].contains(&format!("duplicate id `{ssh_failure}`"))
            && texts[0].contains("builtin:rules/linux/ssh_auth_failure.yml"),
        "{texts:?}"
    );
    assert!(matches!(report.errors[0].root(), Error::Duplicate { .. }));
    let kept: Vec<&str> = report
        .rules
        .iter()
        .filter(|r| r.rule().id.as_deref() == Some(ssh_failure))
        .map(|r| r.rule().title.as_str())
        .collect();
    assert_eq!(kept, ["SSH Authentication Failure"]);
    assert!(
        report
            .correlations
            .iter()
            .any(|c| c.title == "Three SSH Failures From One Address")
    );
    let sudo = report
        .rules
        .iter()
        .find(|r| r.rule().id.as_deref() == Some(not_in_sudoers))
        .unwrap();
    assert_eq!(sudo.filters().len(), 1);
    let probe = |user: &str| {
        json!({"event": {"dataset": "auth"}, "process": {"name": "sudo"}, "user": {"name": user},
               "message": format!("{user} : user NOT in sudoers ; TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/sh")})
    };
    assert!(
        !sudo.is_match(&probe("deploy")),
        "the user's filter applies"
    );
    assert!(sudo.is_match(&probe("mallory")));

    // The user's rules loaded on their own, as the server and `vigil hunt` did: both
    // references are unknown.
    std::fs::remove_file(dir.0.join("nested/copy.yml")).unwrap();
    let alone = load_dir(&dir.0, &CompileOptions::default()).unwrap();
    assert!(alone.correlations.is_empty());
    let unknown = alone
        .errors
        .iter()
        .filter(|e| e.to_string().contains("unknown referenced rule"))
        .count();
    assert_eq!(unknown, 2, "{:?}", alone.errors);
}
