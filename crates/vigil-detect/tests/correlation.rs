//! Correlation rules: parsing, and true-positive / true-negative event sequences per type.

use serde_json::{Value, json};
use vigil_detect::{
    CorrelationEngine, CorrelationMatch, CorrelationRule, CorrelationType, Error, Timespan,
};

const SEC: i64 = 1_000;
const MIN: i64 = 60 * SEC;

fn correlation(body: &str) -> CorrelationRule {
    try_correlation(body).unwrap_or_else(|e| panic!("correlation does not parse: {e}"))
}

fn try_correlation(body: &str) -> vigil_detect::Result<CorrelationRule> {
    CorrelationRule::from_yaml(&format!(
        "title: Test correlation\nid: c0000000-0000-4000-8000-000000000000\nlevel: high\ncorrelation:\n{body}"
    ))
}

fn engine(body: &str) -> CorrelationEngine {
    CorrelationEngine::new(vec![correlation(body)]).unwrap()
}

/// Feeds `(time, matched rules, event)` in order; returns every match with the position of
/// the event that produced it.
fn run(
    engine: &mut CorrelationEngine,
    events: &[(i64, &[&str], Value)],
) -> Vec<(usize, CorrelationMatch)> {
    let mut out = Vec::new();
    for (i, (time, rules, event)) in events.iter().enumerate() {
        for m in engine.process(*time, rules, event) {
            out.push((i, m));
        }
    }
    out
}

const BRUTE: &str = "    type: event_count\n    rules: [failed_login]\n    group-by: [User]\n    timespan: 5m\n    condition:\n        gte: 3\n";

#[test]
fn parses_every_part_of_a_correlation() {
    let c = correlation(
        "    type: value_count\n    rules:\n        - 5638f7c0-ac70-491d-8465-2a65075e0d86\n        - failed_login\n    group-by:\n        - ComputerName\n        - src\n    timespan: 1d\n    condition:\n        field: User\n        gt: 10\n        lte: 20\n    aliases:\n        src:\n            failed_login: SourceIp\n            5638f7c0-ac70-491d-8465-2a65075e0d86: IpAddress\n",
    );
    assert_eq!(c.kind, CorrelationType::ValueCount);
    assert_eq!(c.rules.len(), 2);
    assert_eq!(c.group_by, ["ComputerName", "src"]);
    assert_eq!(c.timespan, Timespan::parse("1d").unwrap());
    assert_eq!(c.field.as_deref(), Some("User"));
    assert_eq!((c.condition.gt, c.condition.lte), (Some(10), Some(20)));
    assert_eq!(c.aliases["src"]["failed_login"], "SourceIp");
    assert!(!c.generate);

    let t = correlation(
        "    type: temporal\n    rules: [a, b, c]\n    group-by: [Host]\n    timespan: 10s\n",
    );
    assert_eq!(t.condition.gte, Some(3), "temporal defaults to all rules");
}

#[test]
fn bad_correlations_name_the_rule_and_the_problem() {
    for (body, what) in [
        (BRUTE.replace("5m", "5 minutes"), "bad timespan `5 minutes`"),
        (BRUTE.replace("5m", "0s"), "must be longer than zero"),
        (
            BRUTE.replace("event_count", "count"),
            "unknown correlation type `count`",
        ),
        (
            BRUTE.replace("gte", "ge"),
            "unknown condition operator `ge`",
        ),
        (
            BRUTE.replace("    condition:\n        gte: 3\n", ""),
            "needs a `condition`",
        ),
        (
            BRUTE.replace("event_count", "value_count"),
            "needs `condition.field`",
        ),
        (
            BRUTE.replace("    timespan: 5m\n", ""),
            "missing `correlation.timespan`",
        ),
        (
            BRUTE.replace("    rules: [failed_login]\n", ""),
            "missing `correlation.rules`",
        ),
        (
            BRUTE.replace("group-by", "groupby"),
            "unknown key `correlation.groupby`",
        ),
        (
            format!("{BRUTE}    aliases:\n        u:\n            other_rule: x\n"),
            "does not reference",
        ),
    ] {
        let err = try_correlation(&body).expect_err(&body).to_string();
        assert!(err.contains("`Test correlation` (c0000000"), "{err}");
        assert!(err.contains(what), "{err} should say {what}");
    }
    let only_upper = correlation(&BRUTE.replace("gte", "lt"));
    let err = CorrelationEngine::new(vec![only_upper]).unwrap_err();
    assert!(matches!(err, Error::InvalidRule { .. }), "{err}");
}

#[test]
fn event_count_fires_per_group_within_the_timespan() {
    let mut e = engine(BRUTE);
    let bob = json!({"User": "bob"});
    let eve = json!({"User": "eve"});
    let failed: &[&str] = &["failed_login"];
    let hits = run(
        &mut e,
        &[
            (0, failed, bob.clone()),
            (10 * SEC, failed, eve.clone()),
            (20 * SEC, failed, bob.clone()),
            (30 * SEC, &["other_rule"], bob.clone()), // not referenced
            (40 * SEC, failed, eve.clone()),
            (50 * SEC, failed, bob.clone()), // bob's third: match
        ],
    );
    assert_eq!(hits.len(), 1, "{hits:?}");
    let (at, m) = &hits[0];
    assert_eq!(*at, 5);
    assert_eq!(m.title, "Test correlation");
    assert_eq!(
        m.id.as_deref(),
        Some("c0000000-0000-4000-8000-000000000000")
    );
    assert_eq!(m.group, [("User".to_string(), Some("bob".to_string()))]);
    assert_eq!(m.count, 3);
    assert_eq!(m.window, (0, 50 * SEC));
    let indices: Vec<u64> = m.events.iter().map(|c| c.index).collect();
    assert_eq!(indices, [0, 2, 5]);

    // The window was emptied by the match: two more are not enough.
    let more = run(
        &mut e,
        &[
            (60 * SEC, failed, bob.clone()),
            (70 * SEC, failed, bob.clone()),
        ],
    );
    assert!(more.is_empty(), "{more:?}");
}

#[test]
fn event_count_does_not_fire_when_events_are_spread_beyond_the_timespan() {
    let mut e = engine(BRUTE);
    let bob = json!({"User": "bob"});
    let failed: &[&str] = &["failed_login"];
    let hits = run(
        &mut e,
        &[
            (0, failed, bob.clone()),
            (3 * MIN, failed, bob.clone()),
            (6 * MIN, failed, bob.clone()), // the first expired: 2 in the window
            (8 * MIN + 1, failed, bob.clone()), // the second expired too
        ],
    );
    assert!(hits.is_empty(), "{hits:?}");
    // Exactly the timespan apart still counts (both ends included).
    let hits = run(&mut e, &[(10 * MIN, failed, bob.clone())]);
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].1.window, (6 * MIN, 10 * MIN));
}

#[test]
fn out_of_order_events_count_within_the_timespan_and_late_ones_are_dropped() {
    let mut e = engine(BRUTE);
    let bob = json!({"User": "bob"});
    let failed: &[&str] = &["failed_login"];
    let hits = run(
        &mut e,
        &[
            (10 * MIN, failed, bob.clone()),
            (2 * MIN, failed, bob.clone()), // older than 10m - 5m: dropped
            (9 * MIN, failed, bob.clone()), // late but inside the window
        ],
    );
    assert!(hits.is_empty());
    assert_eq!(e.late_events(), 1);
    let hits = run(&mut e, &[(8 * MIN, failed, bob.clone())]);
    assert_eq!(hits.len(), 1);
    let times: Vec<i64> = hits[0].1.events.iter().map(|c| c.time).collect();
    assert_eq!(times, [8 * MIN, 9 * MIN, 10 * MIN], "ordered by event time");
}

#[test]
fn an_event_matching_two_referenced_rules_counts_once() {
    let mut e = engine(&BRUTE.replace("[failed_login]", "[failed_login, failed_ssh]"));
    let bob = json!({"User": "bob"});
    let both: &[&str] = &["failed_login", "failed_ssh"];
    let hits = run(&mut e, &[(0, both, bob.clone()), (1, both, bob.clone())]);
    assert!(hits.is_empty(), "{hits:?}");
    assert_eq!(run(&mut e, &[(2, &["failed_ssh"], bob.clone())]).len(), 1);
}

#[test]
fn value_count_counts_distinct_values_per_group() {
    let mut e = engine(
        "    type: value_count\n    rules: [failed_login]\n    group-by: [Host]\n    timespan: 1h\n    condition:\n        field: User\n        gte: 3\n",
    );
    let failed: &[&str] = &["failed_login"];
    let ev = |host: &str, user: &str| json!({"Host": host, "User": user});
    let hits = run(
        &mut e,
        &[
            (0, failed, ev("h1", "alice")),
            (1, failed, ev("h1", "alice")), // same user: still one distinct value
            (2, failed, ev("h1", "bob")),
            (3, failed, ev("h2", "carol")),     // another host
            (4, failed, json!({"Host": "h1"})), // no User: not counted
            (5, failed, ev("h1", "bob")),
        ],
    );
    assert!(hits.is_empty(), "{hits:?}");
    let hits = run(&mut e, &[(6, failed, ev("h1", "carol"))]);
    assert_eq!(hits.len(), 1);
    let m = &hits[0].1;
    assert_eq!(m.count, 3);
    assert_eq!(m.group, [("Host".to_string(), Some("h1".to_string()))]);
    assert_eq!(m.kind, CorrelationType::ValueCount);
}

const RECON: &str = "    type: temporal\n    rules: [whoami, net_user, ipconfig]\n    group-by: [Host]\n    timespan: 5m\n";

#[test]
fn temporal_needs_every_rule_in_any_order_per_group() {
    let mut e = engine(RECON);
    let h1 = json!({"Host": "h1"});
    let h2 = json!({"Host": "h2"});
    let hits = run(
        &mut e,
        &[
            (0, &["ipconfig"], h1.clone()),
            (SEC, &["whoami"], h1.clone()),
            (2 * SEC, &["whoami"], h1.clone()),
            (3 * SEC, &["net_user"], h2.clone()), // other host
        ],
    );
    assert!(hits.is_empty(), "{hits:?}");
    let hits = run(&mut e, &[(4 * SEC, &["net_user"], h1.clone())]);
    assert_eq!(hits.len(), 1);
    let m = &hits[0].1;
    assert_eq!(m.count, 3);
    let rules: Vec<usize> = m.events.iter().map(|c| c.rule).collect();
    assert_eq!(rules, [2, 0, 1], "latest hit of each rule, by time");
    assert_eq!(m.window, (0, 4 * SEC));
}

#[test]
fn temporal_does_not_fire_when_a_rule_falls_out_of_the_window() {
    let mut e = engine(RECON);
    let h1 = json!({"Host": "h1"});
    let hits = run(
        &mut e,
        &[
            (0, &["whoami"], h1.clone()),
            (MIN, &["net_user"], h1.clone()),
            (6 * MIN, &["ipconfig"], h1.clone()), // whoami expired
        ],
    );
    assert!(hits.is_empty(), "{hits:?}");
    // A late whoami inside the window [1m, 6m] completes it.
    assert_eq!(run(&mut e, &[(5 * MIN, &["whoami"], h1.clone())]).len(), 1);
}

#[test]
fn temporal_ordered_needs_the_listed_order() {
    let body = "    type: temporal_ordered\n    rules: [failed_logins, successful_login]\n    group-by: [User]\n    timespan: 1h\n";
    let bob = json!({"User": "bob"});
    let mut e = engine(body);
    // Success before failure: no match.
    let hits = run(
        &mut e,
        &[
            (0, &["successful_login"], bob.clone()),
            (MIN, &["failed_logins"], bob.clone()),
        ],
    );
    assert!(hits.is_empty(), "{hits:?}");
    // Now a success after the failure: match.
    let hits = run(&mut e, &[(2 * MIN, &["successful_login"], bob.clone())]);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].1.window, (MIN, 2 * MIN));

    // Out of order arrival: the order that counts is event time.
    let mut e = engine(body);
    let hits = run(
        &mut e,
        &[
            (10 * MIN, &["successful_login"], bob.clone()),
            (5 * MIN, &["failed_logins"], bob.clone()), // earlier, arrives late
        ],
    );
    assert_eq!(hits.len(), 1, "{hits:?}");
    let mut e = engine(body);
    let hits = run(
        &mut e,
        &[
            (5 * MIN, &["successful_login"], bob.clone()),
            (10 * MIN, &["failed_logins"], bob.clone()),
        ],
    );
    assert!(hits.is_empty(), "{hits:?}");
    // Another user's success does not complete bob's sequence.
    let hits = run(
        &mut e,
        &[(11 * MIN, &["successful_login"], json!({"User": "eve"}))],
    );
    assert!(hits.is_empty(), "{hits:?}");
}

#[test]
fn aliases_group_different_fields_together() {
    let mut e = engine(
        "    type: temporal\n    rules: [internal_error, new_network_connection]\n    group-by: [internal_ip]\n    timespan: 10s\n    aliases:\n        internal_ip:\n            internal_error: destination.ip\n            new_network_connection: source.ip\n",
    );
    let hits = run(
        &mut e,
        &[
            (
                0,
                &["internal_error"],
                json!({"destination": {"ip": "10.0.0.1"}}),
            ),
            (
                SEC,
                &["new_network_connection"],
                json!({"source": {"ip": "10.0.0.2"}}),
            ),
        ],
    );
    assert!(hits.is_empty(), "{hits:?}");
    let hits = run(
        &mut e,
        &[(
            2 * SEC,
            &["new_network_connection"],
            json!({"source": {"ip": "10.0.0.1"}}),
        )],
    );
    assert_eq!(hits.len(), 1);
    assert_eq!(
        hits[0].1.group,
        [("internal_ip".to_string(), Some("10.0.0.1".to_string()))]
    );
}

#[test]
fn groups_are_capped_by_evicting_the_least_recently_updated() {
    let mut e = engine(&BRUTE.replace("gte: 3", "gte: 2")).with_max_groups(2);
    let failed: &[&str] = &["failed_login"];
    let user = |u: &str| json!({"User": u});
    run(
        &mut e,
        &[
            (0, failed, user("a")),
            (1, failed, user("b")),
            (2, failed, user("c")), // evicts a
        ],
    );
    assert_eq!(e.group_count(), 2);
    assert_eq!(e.evicted_groups(), 1);
    assert!(
        run(&mut e, &[(3, failed, user("a"))]).is_empty(),
        "a's first hit was evicted"
    );
    // b was evicted by a's return; c is still there.
    assert_eq!(run(&mut e, &[(4, failed, user("c"))]).len(), 1);
}

#[test]
fn expired_groups_are_swept() {
    let mut e = engine(&BRUTE.replace("gte: 3", "gte: 1000"));
    let failed: &[&str] = &["failed_login"];
    for i in 0..(vigil_detect::correlation::SWEEP_EVERY as i64) {
        e.process(i * MIN, failed, &json!({"User": format!("u{i}")}));
    }
    assert!(e.group_count() <= 6, "{} groups kept", e.group_count());
}

#[test]
fn correlation_only_rules_are_reported() {
    let e = engine(BRUTE);
    assert!(e.is_correlation_only("failed_login"));
    assert!(!e.is_correlation_only("other"));
    let e = CorrelationEngine::new(vec![correlation(&format!("{BRUTE}    generate: true\n"))]);
    let e = e.unwrap();
    assert!(!e.is_correlation_only("failed_login"));
}

/// The specification's closing example: many failed logins (a correlation) followed by a
/// successful login of the same user, the outer correlation grouping by `User` while the
/// inner one groups by `Computer`.
fn chain(generate_inner: bool) -> CorrelationEngine {
    let outer = CorrelationRule::from_yaml(&format!(
        "title: Failed logins then success\nid: b180ead8-d58f-40b2-ae54-c8940995b9b6\nlevel: high\n\
         correlation:\n    type: temporal_ordered\n    rules: [multiple_failed_login, successful_login]\n\
         \x20   group-by: [User]\n    timespan: 10m\n    generate: {generate_inner}\n"
    ))
    .unwrap();
    let inner = CorrelationRule::from_yaml(
        "title: Multiple failed logons\nid: a8418a5a-5fc4-46b5-b23b-6c73beb19d41\nname: multiple_failed_login\n\
         correlation:\n    type: event_count\n    rules: [failed_login]\n    group-by: [Computer]\n\
         \x20   timespan: 10m\n    condition:\n        gte: 3\n",
    )
    .unwrap();
    CorrelationEngine::new(vec![outer, inner]).unwrap()
}

#[test]
fn chained_correlations_feed_their_matches_to_the_correlations_that_refer_to_them() {
    let fail = |user: &str| json!({"User": user, "Computer": "dc1"});
    let events: Vec<(i64, &[&str], Value)> = vec![
        (0, &["successful_login"], fail("bob")), // a success before the failures: no order
        (MIN, &["failed_login"], fail("eve")),
        (2 * MIN, &["failed_login"], fail("eve")),
        (3 * MIN, &["failed_login"], fail("bob")), // completes the inner one, as bob
        (4 * MIN, &["successful_login"], fail("eve")), // eve did not complete it
        (5 * MIN, &["successful_login"], fail("bob")),
    ];
    let mut e = chain(false);
    let fired = run(&mut e, &events);
    // Only the outer correlation is reported (the inner one is its input, not generated).
    assert_eq!(fired.len(), 1, "{fired:?}");
    let (at, m) = &fired[0];
    assert_eq!(*at, 5);
    assert_eq!(m.title, "Failed logins then success");
    assert_eq!(m.group, [("User".to_string(), Some("bob".to_string()))]);
    assert_eq!(m.count, 2);
    // The hits: the event that completed the inner correlation, then the success.
    let hits: Vec<(u64, usize)> = m.events.iter().map(|c| (c.index, c.rule)).collect();
    assert_eq!(hits, [(3, 0), (5, 1)]);

    // The true negative: the success comes first, then the failures.
    let mut e = chain(false);
    let reversed: Vec<(i64, &[&str], Value)> = vec![
        (0, &["successful_login"], fail("bob")),
        (MIN, &["failed_login"], fail("bob")),
        (2 * MIN, &["failed_login"], fail("bob")),
        (3 * MIN, &["failed_login"], fail("bob")),
    ];
    assert!(run(&mut e, &reversed).is_empty());
}

#[test]
fn a_chained_correlation_with_generate_also_reports_the_one_it_refers_to() {
    let fail = json!({"User": "bob", "Computer": "dc1"});
    let events: Vec<(i64, &[&str], Value)> = vec![
        (0, &["failed_login"], fail.clone()),
        (MIN, &["failed_login"], fail.clone()),
        (2 * MIN, &["failed_login"], fail.clone()),
        (3 * MIN, &["successful_login"], fail),
    ];
    let mut e = chain(true);
    let titles: Vec<(usize, String)> = run(&mut e, &events)
        .into_iter()
        .map(|(i, m)| (i, m.title))
        .collect();
    assert_eq!(
        titles,
        [
            (2, "Multiple failed logons".to_string()),
            (3, "Failed logins then success".to_string())
        ]
    );
}

#[test]
fn correlations_referring_to_themselves_through_a_chain_are_refused() {
    let a = CorrelationRule::from_yaml(
        "title: A\nname: a\ncorrelation:\n    type: event_count\n    rules: [b]\n    timespan: 1m\n    condition: {gte: 1}\n",
    )
    .unwrap();
    let b = CorrelationRule::from_yaml(
        "title: B\nname: b\ncorrelation:\n    type: event_count\n    rules: [a, x]\n    timespan: 1m\n    condition: {gte: 1}\n",
    )
    .unwrap();
    let err = CorrelationEngine::new(vec![a, b]).unwrap_err().to_string();
    assert!(err.contains("chain of correlations"), "{err}");
}
