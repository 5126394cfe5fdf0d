//! Condition forms over real rules: boolean operators, precedence, quantifiers, lists of maps.

use serde_json::json;
use vigil_detect::Error;

use crate::{check, rule, try_rule};

const SEARCHES: &str = "    sel_a:\n        a: 1\n    sel_b:\n        b: 1\n    filter:\n        f: 1\n    _internal:\n        i: 1\n";

fn with(condition: &str) -> vigil_detect::CompiledRule {
    rule(&format!("{SEARCHES}    condition: {condition}\n"))
}

#[test]
fn and_or_not() {
    check(
        &with("sel_a and sel_b"),
        &[json!({"a": 1, "b": 1})],
        &[json!({"a": 1})],
    );
    check(
        &with("sel_a or sel_b"),
        &[json!({"b": 1})],
        &[json!({"f": 1})],
    );
    check(
        &with("sel_a and not filter"),
        &[json!({"a": 1})],
        &[json!({"a": 1, "f": 1})],
    );
}

#[test]
fn not_binds_tighter_than_and_which_binds_tighter_than_or() {
    let r = with("sel_a or sel_b and not filter");
    check(
        &r,
        &[json!({"a": 1, "f": 1}), json!({"b": 1})],
        &[json!({"b": 1, "f": 1})],
    );
    let r = with("(sel_a or sel_b) and not filter");
    check(&r, &[json!({"a": 1})], &[json!({"a": 1, "f": 1})]);
    let r = with("not (sel_a or sel_b)");
    check(&r, &[json!({"f": 1})], &[json!({"a": 1})]);
}

#[test]
fn one_of_and_all_of_patterns() {
    check(&with("1 of sel_*"), &[json!({"b": 1})], &[json!({"f": 1})]);
    check(
        &with("all of sel_*"),
        &[json!({"a": 1, "b": 1})],
        &[json!({"a": 1})],
    );
    check(
        &with("all of sel_* and not 1 of filter*"),
        &[json!({"a": 1, "b": 1})],
        &[json!({"a": 1, "b": 1, "f": 1})],
    );
}

#[test]
fn them_excludes_underscore_identifiers() {
    check(&with("1 of them"), &[json!({"f": 1})], &[json!({"i": 1})]);
    check(
        &with("all of them"),
        &[json!({"a": 1, "b": 1, "f": 1})],
        &[json!({"a": 1, "b": 1, "i": 1})],
    );
}

#[test]
fn list_of_maps_is_or_and_a_map_is_and() {
    let r = rule("    sel:\n        - a: 1\n          b: 2\n        - c: 3\n    condition: sel\n");
    check(
        &r,
        &[json!({"a": 1, "b": 2}), json!({"c": 3})],
        &[json!({"a": 1}), json!({"b": 2})],
    );
}

#[test]
fn condition_lists_mean_any() {
    let r = rule(&format!(
        "{SEARCHES}    condition:\n        - sel_a\n        - sel_b\n"
    ));
    check(&r, &[json!({"a": 1}), json!({"b": 1})], &[json!({"f": 1})]);
}

#[test]
fn bad_conditions_name_the_rule_and_the_problem() {
    for (condition, reason) in [
        ("sel_a and nope", "unknown search identifier `nope`"),
        ("1 of nothing*", "matches no search identifier"),
        ("(sel_a", "missing `)`"),
        ("sel_a | count() > 3", "aggregations"),
    ] {
        let err = try_rule(&format!("{SEARCHES}    condition: {condition}\n")).unwrap_err();
        assert!(matches!(err, Error::Condition { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("Test rule") && text.contains(reason),
            "{text}"
        );
    }
}
