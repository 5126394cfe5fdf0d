//! Every value modifier, and plain values, with true-positive and true-negative events.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::json;
use vigil_detect::{CompileOptions, Error, PlaceholderPolicy};

use crate::{check, rule, try_rule, try_rule_with};

#[test]
fn plain_values_are_case_insensitive_whole_matches() {
    let r = rule("    sel:\n        Image: 'C:\\Windows\\cmd.exe'\n    condition: sel\n");
    check(
        &r,
        &[json!({"Image": "c:\\windows\\CMD.EXE"})],
        &[
            json!({"Image": "C:\\Windows\\cmd.exe.bak"}),
            json!({"Other": "x"}),
        ],
    );
}

#[test]
fn wildcards_and_escapes_follow_the_specification() {
    // `\\*` is a backslash then a wildcard; `\*` alone would be a literal star.
    let r = rule("    sel:\n        a: 'C:\\\\*\\cmd.e?e'\n    condition: sel\n");
    check(
        &r,
        &[
            json!({"a": "C:\\Windows\\System32\\cmd.exe"}),
            json!({"a": "c:\\x\\CMD.EXE"}),
        ],
        &[
            json!({"a": "D:\\x\\cmd.exe"}),
            json!({"a": "C:\\x\\cmd.exxe"}),
        ],
    );
    let r = rule("    sel:\n        a: 'C:\\*'\n    condition: sel\n");
    check(&r, &[json!({"a": "c:*"})], &[json!({"a": "C:\\x"})]);
    // \* and \? are literal; \\ is one backslash; a backslash before anything else stays.
    let r = rule("    sel:\n        a: 'what\\?\\*x\\\\y\\z'\n    condition: sel\n");
    check(
        &r,
        &[json!({"a": "what?*x\\y\\z"})],
        &[
            json!({"a": "whatX*x\\y\\z"}),
            json!({"a": "what?abcx\\y\\z"}),
        ],
    );
}

#[test]
fn numbers_match_numbers_and_numeric_strings() {
    let r = rule("    sel:\n        EventID: 4688\n    condition: sel\n");
    check(
        &r,
        &[json!({"EventID": 4688}), json!({"EventID": "4688"})],
        &[json!({"EventID": 4689}), json!({"EventID": "46880"})],
    );
    let r = rule("    sel:\n        Version: 1.0\n    condition: sel\n");
    check(
        &r,
        &[json!({"Version": 1}), json!({"Version": "1.0"})],
        &[json!({"Version": 1.5})],
    );
    let r = rule("    sel:\n        EventID: '4688'\n    condition: sel\n");
    check(&r, &[json!({"EventID": 4688})], &[json!({"EventID": 1})]);
    let r = rule("    sel:\n        Enabled: true\n    condition: sel\n");
    check(
        &r,
        &[json!({"Enabled": true}), json!({"Enabled": "True"})],
        &[json!({"Enabled": false})],
    );
}

#[test]
fn null_matches_missing_or_null_fields() {
    let r = rule("    sel:\n        a: null\n    condition: sel\n");
    check(
        &r,
        &[json!({}), json!({"a": null})],
        &[json!({"a": ""}), json!({"a": "x"})],
    );
}

#[test]
fn lists_of_values_are_or_and_all_makes_them_and() {
    let r = rule(
        "    sel:\n        a|contains:\n            - foo\n            - bar\n    condition: sel\n",
    );
    check(
        &r,
        &[json!({"a": "xxFOOxx"}), json!({"a": "bar"})],
        &[json!({"a": "baz"})],
    );
    let r = rule(
        "    sel:\n        a|contains|all:\n            - foo\n            - bar\n    condition: sel\n",
    );
    check(
        &r,
        &[json!({"a": "bar-foo"})],
        &[json!({"a": "foo"}), json!({"a": "bar"})],
    );
    // The specification forbids `all` on a single value.
    let err = try_rule("    sel:\n        a|contains|all: foo\n    condition: sel\n").unwrap_err();
    assert!(
        err.to_string().contains("`all` needs a list of values"),
        "{err}"
    );
}

#[test]
fn many_contains_values_use_one_automaton_and_still_match_each() {
    let values = ["alpha", "beta", "gamma", "delta", "epsilon"];
    let list: String = values
        .iter()
        .map(|v| format!("            - '{v}'\n"))
        .collect();
    let r = rule(&format!(
        "    sel:\n        a|contains:\n{list}    condition: sel\n"
    ));
    for v in values {
        assert!(
            r.is_match(&json!({"a": format!("x{}y", v.to_uppercase())})),
            "{v}"
        );
    }
    check(&r, &[], &[json!({"a": "zeta"})]);
}

#[test]
fn startswith_and_endswith() {
    let r = rule(
        "    sel:\n        a|startswith: 'C:\\Win'\n        b|endswith: '.EXE'\n    condition: sel\n",
    );
    check(
        &r,
        &[json!({"a": "c:\\windows", "b": "x.exe"})],
        &[
            json!({"a": "d:\\windows", "b": "x.exe"}),
            json!({"a": "c:\\windows", "b": "x.exe.txt"}),
        ],
    );
}

#[test]
fn contains_keeps_inner_wildcards() {
    let r = rule("    sel:\n        a|contains: 'net*user'\n    condition: sel\n");
    check(
        &r,
        &[json!({"a": "cmd /c NET.exe  USER x"})],
        &[json!({"a": "user net"})],
    );
}

#[test]
fn re_is_case_sensitive_unless_i_and_supports_m_and_s() {
    let r = rule("    sel:\n        a|re: '^ab+c$'\n    condition: sel\n");
    check(
        &r,
        &[json!({"a": "abbbc"})],
        &[json!({"a": "ABC"}), json!({"a": "xabc"})],
    );
    let r = rule("    sel:\n        a|re|i: '^ab+c$'\n    condition: sel\n");
    check(&r, &[json!({"a": "ABBC"})], &[json!({"a": "ac"})]);
    let r = rule("    sel:\n        a|re|m: '^two$'\n    condition: sel\n");
    check(
        &r,
        &[json!({"a": "one\ntwo\nthree"})],
        &[json!({"a": "one two"})],
    );
    let r = rule("    sel:\n        a|re|s: 'one.two'\n    condition: sel\n");
    check(
        &r,
        &[json!({"a": "one\ntwo"})],
        &[json!({"a": "one\n\ntwo"})],
    );
    let r = rule("    sel:\n        a|re: 'one.two'\n    condition: sel\n");
    check(&r, &[json!({"a": "one two"})], &[json!({"a": "one\ntwo"})]);
    // Unanchored: a match anywhere counts.
    let r = rule("    sel:\n        a|re: 'b+'\n    condition: sel\n");
    check(&r, &[json!({"a": "abba"})], &[json!({"a": "aaa"})]);
}

#[test]
fn re_sub_modifiers_need_re_and_bad_patterns_are_errors() {
    let err = try_rule("    sel:\n        a|contains|i: x\n    condition: sel\n").unwrap_err();
    assert!(err.to_string().contains("needs `re`"), "{err}");
    let err = try_rule("    sel:\n        a|re: '(?<=x)y'\n    condition: sel\n").unwrap_err();
    assert!(matches!(err, Error::InvalidValue { .. }), "{err}");
    assert!(err.to_string().contains("Test rule"), "{err}");
}

#[test]
fn modifiers_that_cannot_work_together_are_errors() {
    for (mods, reason) in [
        ("re|contains", "`contains` cannot be combined with `re`"),
        ("cidr|base64", "`base64` cannot be combined with `cidr`"),
        ("exists|all", "`all` cannot be combined with `exists`"),
        ("gt|lt", "`gt` and `lt` cannot be combined"),
        ("contains|s", "`s` needs `re`"),
    ] {
        let err = try_rule(&format!(
            "    sel:\n        a|{mods}:\n            - 1\n            - 2\n    condition: sel\n"
        ))
        .unwrap_err();
        assert!(matches!(err, Error::InvalidValue { .. }), "{mods}: {err}");
        assert!(err.to_string().contains(reason), "{mods}: {err}");
    }
}

#[test]
fn cidr_matches_v4_and_v6_networks() {
    let r = rule(
        "    sel:\n        ip|cidr:\n            - '10.0.0.0/8'\n            - 'fe80::/10'\n    condition: sel\n",
    );
    check(
        &r,
        &[json!({"ip": "10.1.2.3"}), json!({"ip": "FE80::1"})],
        &[
            json!({"ip": "11.0.0.1"}),
            json!({"ip": "2001:db8::1"}),
            json!({"ip": "not an ip"}),
        ],
    );
    let err =
        try_rule("    sel:\n        ip|cidr: '10.0.0.0/33'\n    condition: sel\n").unwrap_err();
    assert!(err.to_string().contains("not a CIDR network"), "{err}");
}

#[test]
fn base64_encodes_the_whole_value() {
    let r = rule("    sel:\n        a|base64|contains: 'http://'\n    condition: sel\n");
    let encoded = BASE64.encode("http://");
    check(
        &r,
        &[json!({"a": format!("x {encoded} y")})],
        &[
            json!({"a": "http://"}),
            json!({"a": BASE64.encode("https://")}),
        ],
    );
    let err =
        try_rule("    sel:\n        a|contains|base64: 'x'\n    condition: sel\n").unwrap_err();
    assert!(err.to_string().contains("wildcards"), "{err}");
}

#[test]
fn base64offset_finds_the_value_at_any_alignment() {
    let r = rule("    sel:\n        a|base64offset|contains: '/bin/bash'\n    condition: sel\n");
    for prefix in ["", "a", "ab", "abc"] {
        let encoded = BASE64.encode(format!("{prefix}/bin/bash -i"));
        assert!(r.is_match(&json!({"a": encoded})), "prefix {prefix:?}");
    }
    check(&r, &[], &[json!({"a": BASE64.encode("/bin/sh -i")})]);
}

#[test]
fn utf16_encodings_combine_with_base64() {
    let utf16le: Vec<u8> = "ping".encode_utf16().flat_map(u16::to_le_bytes).collect();
    let utf16be: Vec<u8> = "ping".encode_utf16().flat_map(u16::to_be_bytes).collect();
    for (modifier, bytes) in [
        ("wide", &utf16le),
        ("utf16le", &utf16le),
        ("utf16be", &utf16be),
    ] {
        let r = rule(&format!(
            "    sel:\n        a|{modifier}|base64: 'ping'\n    condition: sel\n"
        ));
        check(
            &r,
            &[json!({"a": BASE64.encode(bytes)})],
            &[json!({"a": BASE64.encode("ping")})],
        );
    }
    let mut with_bom = vec![0xFF, 0xFE];
    with_bom.extend_from_slice(&utf16le);
    let r = rule("    sel:\n        a|utf16|base64: 'ping'\n    condition: sel\n");
    check(
        &r,
        &[json!({"a": BASE64.encode(&with_bom)})],
        &[json!({"a": BASE64.encode(&utf16le)})],
    );
    // The combination SigmaHQ uses for encoded PowerShell.
    let r = rule("    sel:\n        a|wide|base64offset|contains: 'ping'\n    condition: sel\n");
    for prefix in ["", "x", "xy"] {
        let mut bytes: Vec<u8> = prefix.encode_utf16().flat_map(u16::to_le_bytes).collect();
        bytes.extend_from_slice(&utf16le);
        assert!(
            r.is_match(&json!({"a": format!("-enc {}", BASE64.encode(&bytes))})),
            "{prefix:?}"
        );
    }
    check(&r, &[], &[json!({"a": BASE64.encode("ping")})]);
    // Without base64, wide is plain UTF-16LE text.
    let r = rule("    sel:\n        a|wide|contains: 'ab'\n    condition: sel\n");
    check(&r, &[json!({"a": "xa\u{0}b\u{0}y"})], &[json!({"a": "ab"})]);
}

#[test]
fn windash_accepts_all_five_dashes() {
    let r = rule("    sel:\n        a|windash|contains: ' -enc '\n    condition: sel\n");
    for dash in ["-", "/", "\u{2013}", "\u{2014}", "\u{2015}"] {
        assert!(
            r.is_match(&json!({"a": format!("powershell {dash}ENC abc")})),
            "{dash}"
        );
    }
    check(
        &r,
        &[],
        &[
            json!({"a": "powershell +enc abc"}),
            json!({"a": "powershell enc abc"}),
        ],
    );
    // Only option dashes (not preceded by a word character) are replaced.
    let r = rule("    sel:\n        a|windash: 'a-b'\n    condition: sel\n");
    check(&r, &[json!({"a": "a-b"})], &[json!({"a": "a/b"})]);
    let r = rule("    sel:\n        a|contains|windash: '-foo'\n    condition: sel\n");
    check(&r, &[json!({"a": "x /foo"})], &[json!({"a": "x foo"})]);
}

#[test]
fn exists_checks_presence() {
    let r = rule("    sel:\n        a|exists: true\n    condition: sel\n");
    check(
        &r,
        &[json!({"a": ""}), json!({"a": 0})],
        &[json!({}), json!({"a": null})],
    );
    let r = rule("    sel:\n        a|exists: false\n    condition: sel\n");
    check(&r, &[json!({}), json!({"a": null})], &[json!({"a": "x"})]);
    assert!(try_rule("    sel:\n        a|exists: yes please\n    condition: sel\n").is_err());
}

#[test]
fn fieldref_compares_two_fields() {
    let r = rule("    sel:\n        a|fieldref: b\n    condition: sel\n");
    check(
        &r,
        &[json!({"a": "X", "b": "x"}), json!({"a": 5, "b": "5"})],
        &[json!({"a": "x", "b": "y"}), json!({"a": "x"})],
    );
    let r = rule("    sel:\n        a|fieldref|contains: b\n    condition: sel\n");
    check(
        &r,
        &[json!({"a": "aXYa", "b": "xy"})],
        &[json!({"a": "axa", "b": "xy"})],
    );
    let r = rule("    sel:\n        a|fieldref|startswith: b\n    condition: sel\n");
    check(
        &r,
        &[json!({"a": "xyz", "b": "xy"})],
        &[json!({"a": "zxy", "b": "xy"})],
    );
    let r = rule("    sel:\n        a|fieldref|endswith: b\n    condition: sel\n");
    check(
        &r,
        &[json!({"a": "zxy", "b": "xy"})],
        &[json!({"a": "xyz", "b": "xy"})],
    );
}

#[test]
fn expand_resolves_placeholders_and_rejects_unknown_ones_by_default() {
    let detection = "    sel:\n        a|expand: '%dc%\\share'\n    condition: sel\n";
    let err = try_rule(detection).unwrap_err();
    assert!(
        matches!(err, Error::UnresolvedPlaceholder { ref placeholder, .. } if placeholder == "dc"),
        "{err}"
    );
    assert!(err.to_string().contains("Test rule"), "{err}");

    let mut opts = CompileOptions {
        placeholders: HashMap::from([(
            "dc".to_string(),
            vec!["DC1".to_string(), "DC2".to_string()],
        )]),
        ..CompileOptions::default()
    };
    let r = try_rule_with(detection, &opts).unwrap();
    check(
        &r,
        &[json!({"a": "dc1\\share"}), json!({"a": "DC2\\share"})],
        &[json!({"a": "DC3\\share"})],
    );

    opts.placeholders.clear();
    opts.unresolved_placeholders = PlaceholderPolicy::NoMatch;
    let r = try_rule_with(
        "    sel:\n        a|expand: '%dc%'\n    other:\n        b: 1\n    condition: sel or other\n",
        &opts,
    )
    .unwrap();
    check(&r, &[json!({"b": 1})], &[json!({"a": "%dc%"})]);

    opts.placeholders.insert("share".into(), vec!["c$".into()]);
    opts.unresolved_placeholders = PlaceholderPolicy::Wildcard;
    let r = try_rule_with(
        "    sel:\n        a|expand: '%dc%\\%share%'\n    condition: sel\n",
        &opts,
    )
    .unwrap();
    check(
        &r,
        &[json!({"a": "anything\\C$"})],
        &[json!({"a": "anything\\d$"})],
    );
}

#[test]
fn numeric_comparisons() {
    for (m, yes, no) in [
        ("lt", 9, 10),
        ("lte", 10, 11),
        ("gt", 11, 10),
        ("gte", 10, 9),
    ] {
        let r = rule(&format!(
            "    sel:\n        n|{m}: 10\n    condition: sel\n"
        ));
        check(
            &r,
            &[json!({"n": yes}), json!({"n": yes.to_string()})],
            &[json!({"n": no}), json!({"n": "ten"})],
        );
    }
    assert!(try_rule("    sel:\n        n|lt: ten\n    condition: sel\n").is_err());
}

#[test]
fn cased_makes_comparisons_case_sensitive() {
    let r = rule("    sel:\n        a|cased|contains: 'Foo'\n    condition: sel\n");
    check(&r, &[json!({"a": "xFooy"})], &[json!({"a": "xfooy"})]);
    let r = rule("    sel:\n        a|cased: 'Fo*'\n    condition: sel\n");
    check(&r, &[json!({"a": "Foo"})], &[json!({"a": "foo"})]);
}

#[test]
fn unsupported_modifier_is_an_error_naming_rule_and_modifier() {
    let err = try_rule("    sel:\n        a|sortof: x\n    condition: sel\n").unwrap_err();
    let Error::UnsupportedModifier {
        rule,
        field,
        modifier,
    } = &err
    else {
        panic!("{err}");
    };
    assert!(
        rule.contains("Test rule") && rule.contains("00000000-0000"),
        "{rule}"
    );
    assert_eq!((field.as_str(), modifier.as_str()), ("a|sortof", "sortof"));
}

#[test]
fn keywords_search_the_whole_event() {
    let r = rule(
        "    keywords:\n        - 'mimikatz'\n        - 'sekurlsa::*'\n    condition: keywords\n",
    );
    check(
        &r,
        &[
            json!({"cmd": "run MIMIKATZ.exe"}),
            json!({"x": {"y": ["a", "sekurlsa::logonpasswords"]}}),
            // Lower-cased, the Kelvin sign is a `k`.
            json!({"cmd": "run MIMI\u{212A}ATZ.exe"}),
        ],
        &[
            json!({"cmd": "benign"}),
            json!({"product": "Microsoft® Windows®", "cmd": "mimi katz"}),
        ],
    );
    let r = rule(
        "    keywords:\n        '|all':\n            - 'foo'\n            - 'bar'\n    condition: keywords\n",
    );
    check(
        &r,
        &[json!({"a": "foo", "b": "bar"})],
        &[json!({"a": "foo"})],
    );
}

#[test]
fn multi_valued_fields_match_any_element() {
    let r = rule("    sel:\n        tags|endswith: '.exe'\n    condition: sel\n");
    check(
        &r,
        &[json!({"tags": ["a.txt", "b.EXE"]})],
        &[json!({"tags": ["a.txt"]})],
    );
}

/// Regular expressions gate their rule in a ruleset's literal prefilter (on lower-cased text):
/// a case-insensitive one still finds upper-case text, a case-sensitive one only its case, and
/// a rule whose literal is absent is not reported.
#[test]
fn regex_rules_behind_the_prefilter_match_as_alone() {
    let rules = vec![
        rule("    sel:\n        CommandLine|re|i: 'wget .*http'\n    condition: sel\n"),
        rule("    sel:\n        CommandLine|re: 'Invoke-[A-Z]+'\n    condition: sel\n"),
    ];
    let set = vigil_detect::Ruleset::new(rules);
    let hits = |cmd: &str| {
        let ev = json!({ "CommandLine": cmd });
        set.matches(&ev).count()
    };
    assert_eq!(hits("WGET -q HTTP://x/y"), 1);
    assert_eq!(hits("powershell Invoke-WEBREQUEST"), 1);
    assert_eq!(hits("powershell invoke-webrequest"), 0);
    assert_eq!(hits("curl http://x"), 0);
    assert_eq!(hits("WGET x; Invoke-X"), 1);
    assert_eq!(hits("wget http Invoke-EXPRESSION"), 2);
}
