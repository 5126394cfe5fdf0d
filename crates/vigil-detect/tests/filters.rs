//! Filter rules: a match of the filter suppresses the rules it names.

use std::sync::Arc;

use serde_json::json;
use vigil_detect::{CompileOptions, FilterRule};

use crate::rule;

const FILTER: &str = "title: Filter admin accounts\nid: f0000000-0000-4000-8000-000000000000\nlogsource:\n    product: test\nfilter:\n    rules:\n        - 00000000-0000-4000-8000-000000000000\n    selection:\n        User|startswith: 'adm_'\n    condition: selection\n";

#[test]
fn a_filter_suppresses_the_rule_it_names() {
    let filter = FilterRule::from_yaml(FILTER, &CompileOptions::default()).unwrap();
    assert_eq!(filter.rules, ["00000000-0000-4000-8000-000000000000"]);
    let mut r = rule("    sel:\n        Image|endswith: '\\rar.exe'\n    condition: sel\n");
    assert!(filter.applies_to(r.rule()));
    assert!(filter.logsource_fits(&r.rule().logsource));
    r.add_filter(Arc::new(filter));
    let admin = json!({"Image": "C:\\rar.exe", "User": "ADM_bob"});
    let user = json!({"Image": "C:\\rar.exe", "User": "bob"});
    let other = json!({"Image": "C:\\zip.exe", "User": "bob"});
    crate::check(&r, &[user], &[admin, other]);
}

#[test]
fn bad_filters_name_the_filter_and_the_problem() {
    for (text, what) in [
        (
            FILTER.replace("    condition: selection\n", ""),
            "needs a selection and a `condition`",
        ),
        (
            FILTER.replace("condition: selection", "condition: nope"),
            "unknown search identifier `nope`",
        ),
        (
            FILTER.replace(
                "    rules:\n        - 00000000-0000-4000-8000-000000000000\n",
                "",
            ),
            "missing `filter.rules`",
        ),
        (
            FILTER.replace("logsource:\n    product: test\n", ""),
            "missing `logsource`",
        ),
        (
            FILTER.replace("startswith", "startswit"),
            "unsupported modifier `startswit`",
        ),
    ] {
        let err = FilterRule::from_yaml(&text, &CompileOptions::default())
            .expect_err(&text)
            .to_string();
        assert!(err.contains("Filter admin accounts"), "{err}");
        assert!(err.contains(what), "{err} should say {what}");
    }
}
