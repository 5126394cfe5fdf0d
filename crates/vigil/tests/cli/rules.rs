//! `vigil rules lint` and `vigil rules test`.

use std::path::Path;

use super::{text, tmp, vigil};

const GOOD: &str = "title: Whoami\nid: 5e2c0d0a-1111-4aaa-8bbb-000000000001\nlevel: low\n\
    description: whoami run\ntags: [attack.discovery, attack.t1033]\n\
    logsource: {product: linux, category: process_creation}\n\
    detection: {sel: {CommandLine|contains: whoami}, condition: sel}\n\
    x-vigil-tests:\n  common: {event.category: process, event.type: start, host.os.type: linux}\n\
    \x20 true_positives: [{process.command_line: 'whoami'}]\n\
    \x20 true_negatives: [{process.command_line: 'id'}]\n";

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A rule like GOOD with another id, title and detection.
fn rule(n: u32, extra: &str, detection: &str) -> String {
    format!(
        "title: Rule {n}\nid: 5e2c0d0a-1111-4aaa-8bbb-00000000010{n}\n{extra}\
         logsource: {{product: linux, category: process_creation}}\ndetection: {detection}\n"
    )
}

#[test]
fn rules_lint_reports_each_broken_rule_and_still_lints_the_rest() {
    let d = tmp();
    let r = d.0.join("rules");
    let meta = "level: low\ndescription: d\ntags: [attack.execution, attack.t1059]\n";
    write(&r, "good.yml", GOOD);
    write(&r, "a/bad_yaml.yml", "title: [unclosed\nid: x\n");
    write(
        &r,
        "a/modifier.yml",
        &rule(1, meta, "{sel: {CommandLine|containz: x}, condition: sel}"),
    );
    // Too big to compile: rejected rather than left to eat memory or time.
    write(
        &r,
        "b/regex.yml",
        &rule(
            2,
            meta,
            "{sel: {CommandLine|re: '(\\w{1000}){1000}'}, condition: sel}",
        ),
    );
    write(
        &r,
        "b/duplicate.yml",
        &GOOD.replace("title: Whoami", "title: Whoami Again"),
    );
    write(
        &r,
        "c/bare.yml",
        "title: Bare\nlogsource: {product: linux}\ndetection: {kw: [x], condition: kw}\n",
    );
    write(
        &r,
        "c/unmapped.yml",
        &rule(3, meta, "{sel: {Foo: x}, condition: sel}")
            .replace("product: linux", "product: mainframe"),
    );
    write(
        &r,
        "c/tags.yml",
        &rule(
            4,
            "level: low\ndescription: d\ntags: [Attack.T1059]\n",
            "{kw: [x], condition: kw}",
        ),
    );
    write(
        &r,
        "c/redos.yml",
        &rule(
            6,
            meta,
            "{sel: {CommandLine|re: '^(\\w+\\s?)*$'}, condition: sel}",
        ),
    );
    write(&r, "notes.txt", "not a rule");

    let o = vigil(&d.0, &["rules", "lint", "rules"], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    let has = |needle: &str| {
        assert!(
            out.lines().any(|l| l.contains(needle)),
            "no line with {needle:?} in:\n{out}"
        )
    };
    has("error: rules/a/bad_yaml.yml: invalid YAML");
    has(
        "error: rules/a/modifier.yml: rule `Rule 1` (5e2c0d0a-1111-4aaa-8bbb-000000000101): unsupported modifier `containz`",
    );
    has(
        "error: rules/b/regex.yml: rule `Rule 2` (5e2c0d0a-1111-4aaa-8bbb-000000000102): field `CommandLine`: regular expression not supported",
    );
    has(
        "error: rules/b/duplicate.yml: rule Whoami Again (5e2c0d0a-1111-4aaa-8bbb-000000000001): duplicate id",
    );
    has("error: rules/good.yml: rule Whoami (5e2c0d0a-1111-4aaa-8bbb-000000000001): duplicate id");
    has("warning: rules/c/bare.yml: rule Bare: missing `id`");
    has("warning: rules/c/bare.yml: rule Bare: missing `level`");
    has("warning: rules/c/bare.yml: rule Bare: missing `tags`");
    has(
        "warning: rules/c/unmapped.yml: rule Rule 3 (5e2c0d0a-1111-4aaa-8bbb-000000000103): logsource {product: mainframe, category: process_creation} is mapped by no processing pipeline",
    );
    has(
        "warning: rules/c/tags.yml: rule Rule 4 (5e2c0d0a-1111-4aaa-8bbb-000000000104): tag `Attack.T1059`",
    );
    // Accepted (linear-time regex here), but a warning for those converting the rule.
    has(
        "warning: rules/c/redos.yml: rule Rule 6 (5e2c0d0a-1111-4aaa-8bbb-000000000106): field `CommandLine`: regex `^(\\w+\\s?)*$` repeats a repetition without bound",
    );
    // The good rules still load: good, duplicate, bare, unmapped, tags, redos.
    // The duplicate id is reported on both files and the later rule is not loaded.
    has("9 files, 8 documents: 5 rules, 0 correlations, 0 filters loaded; 5 errors, 8 warnings");
    assert!(!out.contains("notes.txt"), "{out}");

    // Only warnings: exit 0, or 1 with --deny-warnings.
    let w = d.0.join("warn");
    write(
        &w,
        "bare.yml",
        "title: Bare\nlogsource: {product: linux}\ndetection: {kw: [x], condition: kw}\n",
    );
    assert_eq!(
        vigil(&d.0, &["rules", "lint", "warn"], &[]).status.code(),
        Some(0)
    );
    assert_eq!(
        vigil(&d.0, &["rules", "lint", "--deny-warnings", "warn"], &[])
            .status
            .code(),
        Some(1)
    );
    let o = vigil(&d.0, &["rules", "lint", "missing"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("missing"), "{:?}", text(&o));

    // The built-in pack is clean: embedded (no DIR), and as a directory on its own (with the
    // embedded pack as context each of its rules would be a duplicate of itself).
    let o = vigil(&d.0, &["rules", "lint"], &[]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("0 errors, 0 warnings"), "{out}");
    let pack = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vigil-detect/rules");
    let args = ["rules", "lint", "--no-builtin", pack.to_str().unwrap()];
    let o = vigil(&d.0, &args, &[]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("0 errors, 0 warnings"), "{out}");
}

/// A user directory's filter and correlation naming built-in rules lint and test clean: the
/// directory is checked with the built-in pack as context, as `vigil hunt` loads it.
#[test]
fn rules_lint_and_test_resolve_references_to_built_in_rules() {
    let d = tmp();
    let r = d.0.join("mine");
    write(&r, "tuning.yml", super::USER_RULES_ON_BUILTIN);
    let o = vigil(&d.0, &["rules", "lint", "mine"], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(
        out.contains("1 files, 2 documents: 0 rules, 1 correlations, 1 filters loaded; 0 errors"),
        "{out}"
    );
    let o = vigil(&d.0, &["rules", "test", "mine"], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(out.contains("1 passed, 0 failed"), "{out}");

    // On their own the references are unknown; a built-in id reused is a duplicate.
    let o = vigil(&d.0, &["rules", "lint", "--no-builtin", "mine"], &[]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("unknown referenced rule"), "{out}");
    write(
        &r,
        "copy.yml",
        &GOOD.replace(
            "5e2c0d0a-1111-4aaa-8bbb-000000000001",
            "a1894dc3-4879-49e8-877a-376dd1ec8cf8",
        ),
    );
    let o = vigil(&d.0, &["rules", "lint", "mine"], &[]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("duplicate id `a1894dc3-4879-49e8-877a-376dd1ec8cf8`: used by builtin:rules/linux/sudo_not_in_sudoers.yml"),
        "{out}"
    );
}

#[test]
fn rules_test_passes_on_the_built_in_pack() {
    let d = tmp();
    let o = vigil(&d.0, &["rules", "test"], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    let files =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../vigil-detect/rules"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| std::fs::read_dir(e.path()).unwrap().count())
            .sum::<usize>();
    assert!(files > 40, "{files}");
    assert!(
        out.contains(&format!(
            "{files} passed, 0 failed, 0 without tests; 0 rule documents did not load"
        )),
        "{out}"
    );
    assert!(
        out.contains("ok    builtin:rules/linux/ssh_brute_force.yml: SSH Brute Force"),
        "{out}"
    );
}

#[test]
fn rules_test_fails_a_rule_whose_embedded_events_are_wrong() {
    let d = tmp();
    let r = d.0.join("rules");
    write(&r, "good.yml", GOOD);
    // The true positive does not match, the true negative does.
    let wrong = GOOD
        .replace(
            "5e2c0d0a-1111-4aaa-8bbb-000000000001",
            "5e2c0d0a-1111-4aaa-8bbb-000000000002",
        )
        .replace("title: Whoami", "title: Whoami Wrong")
        .replace("'whoami'}]", "'hostname'}]")
        .replace("'id'}]", "'whoami /all'}]");
    write(&r, "wrong.yml", &wrong);
    write(
        &r,
        "untested.yml",
        &rule(5, "level: low\n", "{kw: [x], condition: kw}"),
    );
    // A correlation over the good rule whose sequence expects too much.
    write(
        &r,
        "corr.yml",
        "title: Many Whoami\nid: 5e2c0d0a-1111-4aaa-8bbb-000000000009\nlevel: medium\n\
         correlation: {type: event_count, rules: [5e2c0d0a-1111-4aaa-8bbb-000000000001], \
         group-by: [host.name], timespan: 1m, condition: {gte: 2}}\n\
         x-vigil-tests:\n  common: {event.category: process, event.type: start, host.os.type: linux, host.name: h}\n\
         \x20 sequences:\n  - {name: two runs, expect: 2, events: [{at: 0, event: {process.command_line: whoami}}, {at: 1, event: {process.command_line: whoami}}]}\n",
    );
    let o = vigil(&d.0, &["rules", "test", "-v", "rules"], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(
        out.contains(
            "ok    rules/good.yml: Whoami (5e2c0d0a-1111-4aaa-8bbb-000000000001) (2 cases)"
        ),
        "{out}"
    );
    assert!(out.contains("FAIL  rules/wrong.yml: Whoami Wrong"), "{out}");
    assert!(out.contains("true_positives[0] does not match"), "{out}");
    assert!(out.contains("true_negatives[0] matches"), "{out}");
    assert!(out.contains("FAIL  rules/corr.yml: Many Whoami"), "{out}");
    assert!(out.contains("two runs: fired 1 times, expected 2"), "{out}");
    assert!(out.contains("--    rules/untested.yml: Rule 5"), "{out}");
    assert!(out.contains("1 passed, 2 failed, 1 without tests"), "{out}");

    // Fixed, the directory passes.
    std::fs::remove_file(r.join("wrong.yml")).unwrap();
    std::fs::write(
        r.join("corr.yml"),
        std::fs::read_to_string(r.join("corr.yml"))
            .unwrap()
            .replace("expect: 2", "expect: 1"),
    )
    .unwrap();
    let o = vigil(&d.0, &["rules", "test", "rules"], &[]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    // A rule that does not load fails the run.
    write(&r, "broken.yml", "title: [");
    let o = vigil(&d.0, &["rules", "test", "rules"], &[]);
    assert_eq!(o.status.code(), Some(1), "{:?}", text(&o));
    assert!(
        text(&o).0.contains("error: rules/broken.yml"),
        "{:?}",
        text(&o)
    );
}
