//! Alerts: create, read, list with every filter, sorting, skip/limit and cursor pagination,
//! the lifecycle (status, ack, close, reopen), history and bulk status changes.

use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, Duration, TimeZone, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, both, id_of};

both!(
    create_echoes_fields_and_fills_defaults,
    original_post_api_alerts_alias_creates,
    duplicate_alert_id_conflicts,
    get_by_id_and_unknown_id,
    list_filters_match_a_model,
    list_sorting,
    skip_limit_pagination,
    cursor_pagination_sees_every_alert_once,
    status_patch_follows_the_state_machine,
    acknowledge_is_idempotent_and_records_the_actor,
    close_with_notes_false_positive_and_reopen,
    history_records_every_change_in_order,
    bulk_status_reports_per_item,
    large_result_sets_count_with_a_cap_and_page_completely,
);
both!(every_documented_list_parameter_is_accepted);
both!(alert_timestamps_far_in_the_future_are_refused);

async fn create_echoes_fields_and_fills_defaults(app: &TestApp) {
    let admin = app.admin().await;
    let before = Utc::now() - Duration::seconds(5);
    let body = json!({
        "alert_id": "SRC-42:a_b.c",
        "title": "  SSH brute force on web-1  ",
        "description": "1,204 failed logins in 5 minutes",
        "severity": "high",
        "source": "agent",
        "event_type": "ssh_bruteforce",
        "timestamp": "2026-01-15T10:00:00.123456Z",
        "metadata": { "host": "web-1", "count": 1204, "nested": { "a": [1, 2] } },
        "attack_technique_id": "t1110.001",
        "confidence_score": 0.85,
        "agent_id": "agent-7",
        "tags": ["ssh", "vip", " ssh "],
        "observables": [{ "type": "ip", "value": "203.0.113.9" }, { "type": "hash", "value": "abc123" }]
    });
    let a = app.create_alert(&admin.access, body).await;
    uuid::Uuid::parse_str(a["id"].as_str().unwrap()).expect("id is a UUID");
    assert_eq!(a["alert_id"], "SRC-42:a_b.c");
    assert_eq!(a["title"], "SSH brute force on web-1", "title is trimmed");
    assert_eq!(a["description"], "1,204 failed logins in 5 minutes");
    assert_eq!(a["severity"], "high");
    assert_eq!(a["status"], "open");
    assert_eq!(a["source"], "agent");
    assert_eq!(a["event_type"], "ssh_bruteforce");
    assert_eq!(
        a["timestamp"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        Utc.with_ymd_and_hms(2026, 1, 15, 10, 0, 0).unwrap() + Duration::microseconds(123_456)
    );
    assert_eq!(
        a["metadata"],
        json!({ "host": "web-1", "count": 1204, "nested": { "a": [1, 2] } })
    );
    assert_eq!(
        a["attack_technique_id"], "T1110.001",
        "normalised to upper case"
    );
    assert_eq!(a["confidence_score"], 0.85);
    assert_eq!(a["agent_id"], "agent-7");
    assert_eq!(
        a["tags"],
        json!(["ssh", "vip"]),
        "trimmed and de-duplicated"
    );
    assert_eq!(
        a["observables"],
        json!([{ "type": "ip", "value": "203.0.113.9" }, { "type": "hash", "value": "abc123" }])
    );
    for k in [
        "resolution_notes",
        "acknowledged_by",
        "acknowledged_at",
        "closed_by",
        "closed_at",
    ] {
        assert!(a[k].is_null(), "{k} should be null: {a}");
    }
    let org = app.store.get_org_by_name("default").await.unwrap().unwrap();
    assert_eq!(a["org_id"], org.id.to_string());
    let created: DateTime<Utc> = a["created_at"].as_str().unwrap().parse().unwrap();
    assert!(created >= before && created <= Utc::now() + Duration::seconds(5));
    assert_eq!(a["created_at"], a["updated_at"]);

    // Only the required fields: everything else defaulted.
    let m = app.alert(&admin.access, "Minimal", "low").await;
    let aid = m["alert_id"].as_str().unwrap();
    assert!(aid.starts_with("ALERT-"), "{aid}");
    let date = Utc::now().format("%Y%m%d").to_string();
    let yesterday = (Utc::now() - Duration::days(1))
        .format("%Y%m%d")
        .to_string();
    assert!(aid.contains(&date) || aid.contains(&yesterday), "{aid}");
    assert_eq!(m["status"], "open");
    assert_eq!(m["severity"], "low");
    assert_eq!(m["source"], "user");
    assert_eq!(m["event_type"], "generic");
    assert_eq!(m["description"], "");
    assert_eq!(m["metadata"], json!({}));
    assert_eq!(m["tags"], json!([]));
    assert_eq!(m["observables"], json!([]));
    assert!(m["attack_technique_id"].is_null());
    assert!(m["confidence_score"].is_null());
    assert!(m["agent_id"].is_null());
    let ts: DateTime<Utc> = m["timestamp"].as_str().unwrap().parse().unwrap();
    assert!(
        ts >= before && ts <= Utc::now() + Duration::seconds(5),
        "{ts}"
    );
    // Generated ids differ.
    let m2 = app.alert(&admin.access, "Minimal", "low").await;
    assert_ne!(m2["alert_id"], m["alert_id"]);
    assert_ne!(m2["id"], m["id"]);

    // `artifacts` is accepted for observables (original API name).
    let a3 = app
        .create_alert(
            &admin.access,
            json!({ "title": "x", "severity": "medium", "artifacts": [{ "type": "domain", "value": "evil.example" }] }),
        )
        .await;
    assert_eq!(a3["observables"][0]["value"], "evil.example");
    assert_eq!(app.alert_total(&admin.access).await, 4);
}

async fn original_post_api_alerts_alias_creates(app: &TestApp) {
    let admin = app.admin().await;
    let r = app
        .post(
            "/api/alerts",
            &admin.access,
            &json!({ "alert_id": "LEGACY-1", "title": "From the old API", "severity": "critical", "source": "ml_engine" }),
        )
        .await;
    let a = r.ok(201).clone();
    assert_eq!(a["alert_id"], "LEGACY-1");
    assert_eq!(a["source"], "ml_engine");
    let got = app
        .get(&format!("/api/v1/alerts/{}", id_of(&a)), &admin.access)
        .await;
    assert_eq!(got.ok(200), &a);
    // The alias shares the rules: auth, validation, duplicates.
    let r = app
        .send(
            Method::POST,
            "/api/alerts",
            None,
            Some(&json!({ "title": "x", "severity": "low" })),
        )
        .await;
    r.err(401, "unauthorized");
    app.post(
        "/api/alerts",
        &admin.access,
        &json!({ "alert_id": "LEGACY-1", "title": "again", "severity": "low" }),
    )
    .await
    .err(409, "conflict");
    app.post(
        "/api/alerts",
        &admin.access,
        &json!({ "title": "x", "severity": "urgent" }),
    )
    .await
    .err(422, "invalid_body");
    assert_eq!(app.alert_total(&admin.access).await, 1);
}

async fn duplicate_alert_id_conflicts(app: &TestApp) {
    let admin = app.admin().await;
    app.create_alert(
        &admin.access,
        json!({ "alert_id": "DUP-1", "title": "first", "severity": "low" }),
    )
    .await;
    let r = app
        .post(
            "/api/v1/alerts",
            &admin.access,
            &json!({ "alert_id": "DUP-1", "title": "second", "severity": "high", "tags": ["t"] }),
        )
        .await;
    let e = r.err(409, "conflict");
    assert!(e["message"].as_str().unwrap().contains("DUP-1"), "{e}");
    // Nothing of the second one was stored (not even its tag).
    let page = app
        .get("/api/v1/alerts", &admin.access)
        .await
        .ok(200)
        .clone();
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["title"], "first");
    let tagged = app.get("/api/v1/alerts?tag=t", &admin.access).await;
    assert_eq!(tagged.ok(200)["total"], 0);
    // A different alert_id is fine.
    app.create_alert(
        &admin.access,
        json!({ "alert_id": "DUP-2", "title": "second", "severity": "high" }),
    )
    .await;
    assert_eq!(app.alert_total(&admin.access).await, 2);
}

async fn get_by_id_and_unknown_id(app: &TestApp) {
    let admin = app.admin().await;
    let viewer = app.user_session(&admin.access, "vera", "viewer").await;
    let a = app
        .create_alert(
            &admin.access,
            json!({ "title": "Find me", "severity": "medium", "tags": ["x"] }),
        )
        .await;
    let path = format!("/api/v1/alerts/{}", id_of(&a));
    assert_eq!(app.get(&path, &admin.access).await.ok(200), &a);
    assert_eq!(app.get(&path, &viewer.access).await.ok(200), &a);
    let unknown = uuid::Uuid::new_v4();
    let e = app
        .get(&format!("/api/v1/alerts/{unknown}"), &admin.access)
        .await;
    e.err(404, "not_found");
    assert!(
        e.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("alert")
    );
    app.get(&format!("/api/v1/alerts/{unknown}/history"), &admin.access)
        .await
        .err(404, "not_found");
}

/// The test data set: what each alert looks like, so expectations are computed, not typed.
#[derive(Debug, Clone)]
struct Spec {
    alert_id: String,
    severity: &'static str,
    source: &'static str,
    agent_id: String,
    technique: &'static str,
    tags: Vec<&'static str>,
    title: String,
    description: String,
    timestamp: DateTime<Utc>,
    status: &'static str,
}

const SEVERITIES: [&str; 4] = ["low", "medium", "high", "critical"];

fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn specs(n: usize) -> Vec<Spec> {
    (0..n)
        .map(|i| Spec {
            alert_id: format!("M-{i:02}"),
            severity: SEVERITIES[i % 4],
            source: ["agent", "rule", "intel"][i % 3],
            agent_id: format!("agent-{}", i % 2),
            technique: ["T1110.001", "T1110", "T1046"][i % 3],
            tags: if i % 4 == 0 {
                vec!["vip", "ssh"]
            } else {
                vec!["ssh"]
            },
            title: if i % 5 == 0 {
                format!("SSH Brute Force on host {i}")
            } else {
                format!("Port scan {i}")
            },
            description: if i == 7 {
                "matched 100% of weird_text rules".into()
            } else {
                "nothing special".into()
            },
            timestamp: base_time() + Duration::hours(i as i64),
            status: "open",
        })
        .collect()
}

/// Creates the data set through the API (and moves a few alerts out of `open`); returns
/// the specs with their final status and a map from alert_id to internal id.
async fn seed(app: &TestApp, token: &str, n: usize) -> (Vec<Spec>, Vec<String>) {
    let mut specs = specs(n);
    let mut ids = Vec::new();
    for s in &specs {
        let a = app
            .create_alert(
                token,
                json!({
                    "alert_id": s.alert_id,
                    "title": s.title,
                    "description": s.description,
                    "severity": s.severity,
                    "source": s.source,
                    "agent_id": s.agent_id,
                    "attack_technique_id": s.technique,
                    "tags": s.tags,
                    "timestamp": s.timestamp,
                }),
            )
            .await;
        ids.push(id_of(&a));
    }
    if n >= 4 {
        app.post(&format!("/api/v1/alerts/{}/ack", ids[1]), token, &json!({}))
            .await
            .ok(200);
        specs[1].status = "in_progress";
        app.post(
            &format!("/api/v1/alerts/{}/close", ids[2]),
            token,
            &json!({}),
        )
        .await
        .ok(200);
        specs[2].status = "closed";
        app.post(
            &format!("/api/v1/alerts/{}/close", ids[3]),
            token,
            &json!({ "status": "false_positive" }),
        )
        .await
        .ok(200);
        specs[3].status = "false_positive";
    }
    (specs, ids)
}

fn alert_ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|a| a["alert_id"].as_str().unwrap().to_string())
        .collect()
}

async fn list_filters_match_a_model(app: &TestApp) {
    let admin = app.admin().await;
    let (specs, _) = seed(app, &admin.access, 12).await;
    let t = |h: i64| {
        (base_time() + Duration::hours(h)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    type Pred = Box<dyn Fn(&Spec) -> bool>;
    let cases: Vec<(String, Pred)> = vec![
        ("".into(), Box::new(|_| true)),
        ("status=open".into(), Box::new(|s| s.status == "open")),
        (
            "status=closed,false_positive".into(),
            Box::new(|s| s.status == "closed" || s.status == "false_positive"),
        ),
        (
            "status=closed&status=in_progress".into(),
            Box::new(|s| s.status == "closed" || s.status == "in_progress"),
        ),
        (
            "severity=critical".into(),
            Box::new(|s| s.severity == "critical"),
        ),
        (
            "severity=high,critical".into(),
            Box::new(|s| s.severity == "high" || s.severity == "critical"),
        ),
        (
            "severity=low&severity=medium".into(),
            Box::new(|s| s.severity == "low" || s.severity == "medium"),
        ),
        ("source=agent".into(), Box::new(|s| s.source == "agent")),
        (
            "source=rule,intel".into(),
            Box::new(|s| s.source == "rule" || s.source == "intel"),
        ),
        (
            "source=ml_engine".into(),
            Box::new(|s| s.source == "ml_engine"),
        ),
        (
            "agent_id=agent-1".into(),
            Box::new(|s| s.agent_id == "agent-1"),
        ),
        ("agent_id=agent-9".into(), Box::new(|_| false)),
        (
            "technique=T1110".into(),
            Box::new(|s| s.technique.starts_with("T1110")),
        ),
        (
            "technique=t1110.001".into(),
            Box::new(|s| s.technique == "T1110.001"),
        ),
        (
            "technique=T1046".into(),
            Box::new(|s| s.technique == "T1046"),
        ),
        ("technique=T1059".into(), Box::new(|_| false)),
        ("tag=vip".into(), Box::new(|s| s.tags.contains(&"vip"))),
        ("tag=ssh".into(), Box::new(|s| s.tags.contains(&"ssh"))),
        ("tag=vi".into(), Box::new(|_| false)),
        (
            "q=brute".into(),
            Box::new(|s| s.title.to_lowercase().contains("brute")),
        ),
        (
            "q=SSH%20BRUTE%20force".into(),
            Box::new(|s| s.title.to_lowercase().contains("ssh brute force")),
        ),
        // LIKE wildcards in the search text are literal.
        (
            "q=100%25".into(),
            Box::new(|s| s.description.contains("100%")),
        ),
        (
            "q=weird_text".into(),
            Box::new(|s| s.description.contains("weird_text")),
        ),
        ("q=t_scan".into(), Box::new(|_| false)),
        ("q=port%25scan".into(), Box::new(|_| false)),
        ("q=%25".into(), Box::new(|s| s.description.contains('%'))),
        (
            format!("since={}", t(3)),
            Box::new(|s| s.timestamp >= base_time() + Duration::hours(3)),
        ),
        (
            format!("until={}", t(5)),
            Box::new(|s| s.timestamp < base_time() + Duration::hours(5)),
        ),
        (
            format!("since={}&until={}", t(3), t(8)),
            Box::new(|s| {
                s.timestamp >= base_time() + Duration::hours(3)
                    && s.timestamp < base_time() + Duration::hours(8)
            }),
        ),
        (
            format!("since={}&until={}", t(3), t(3)),
            Box::new(|_| false),
        ),
        (
            format!("tag=ssh&since={}&until={}", t(2), t(9)),
            Box::new(|s| {
                s.timestamp >= base_time() + Duration::hours(2)
                    && s.timestamp < base_time() + Duration::hours(9)
            }),
        ),
        (
            format!("tag=vip&since={}", t(4)),
            Box::new(|s| {
                s.tags.contains(&"vip") && s.timestamp >= base_time() + Duration::hours(4)
            }),
        ),
        (
            "tag=vip&status=open".into(),
            Box::new(|s| s.tags.contains(&"vip") && s.status == "open"),
        ),
        (
            "tag=ssh&q=brute".into(),
            Box::new(|s| s.title.to_lowercase().contains("brute")),
        ),
        (
            "severity=critical&tag=vip".into(),
            Box::new(|s| s.severity == "critical" && s.tags.contains(&"vip")),
        ),
        (
            "status=open&source=agent&agent_id=agent-0&technique=T1110".into(),
            Box::new(|s| {
                s.status == "open"
                    && s.source == "agent"
                    && s.agent_id == "agent-0"
                    && s.technique.starts_with("T1110")
            }),
        ),
    ];
    for (query, pred) in cases {
        let expected: BTreeSet<String> = specs
            .iter()
            .filter(|s| pred(s))
            .map(|s| s.alert_id.clone())
            .collect();
        let sep = if query.is_empty() { "" } else { "&" };
        let page = app
            .get(
                &format!("/api/v1/alerts?limit=100{sep}{query}"),
                &admin.access,
            )
            .await
            .ok(200)
            .clone();
        let got: BTreeSet<String> = alert_ids(&page).into_iter().collect();
        assert_eq!(got, expected, "filter {query:?}");
        assert_eq!(page["total"], expected.len() as u64, "total for {query:?}");
        // The filter applies to the total too, not only to the page.
        let one = app
            .get(
                &format!("/api/v1/alerts?limit=1{sep}{query}"),
                &admin.access,
            )
            .await
            .ok(200)
            .clone();
        assert_eq!(
            one["total"],
            expected.len() as u64,
            "limit=1 total for {query:?}"
        );
        assert_eq!(
            one["items"].as_array().unwrap().len(),
            expected.len().min(1),
            "{query:?}"
        );
    }
    // Offsets on `since`/`until` are honoured: 03:00+01:00 is 02:00Z.
    let page = app
        .get(
            "/api/v1/alerts?limit=100&since=2026-01-01T03:00:00%2B01:00",
            &admin.access,
        )
        .await
        .ok(200)
        .clone();
    assert_eq!(page["total"], 10, "{}", page);
    // since after until is refused.
    app.get(
        &format!("/api/v1/alerts?since={}&until={}", t(5), t(3)),
        &admin.access,
    )
    .await
    .err(400, "invalid_query");
}

fn sev_rank(s: &Value) -> usize {
    SEVERITIES
        .iter()
        .position(|x| s.as_str() == Some(x))
        .expect("severity")
}

async fn list_sorting(app: &TestApp) {
    let admin = app.admin().await;
    let (specs, _) = seed(app, &admin.access, 12).await;
    let mut by_ts = specs.clone();
    by_ts.sort_by_key(|s| s.timestamp);
    let asc: Vec<String> = by_ts.iter().map(|s| s.alert_id.clone()).collect();
    let desc: Vec<String> = asc.iter().rev().cloned().collect();

    // Default: newest timestamp first.
    let page = app.get("/api/v1/alerts?limit=100", &admin.access).await;
    assert_eq!(alert_ids(page.ok(200)), desc);
    for q in [
        "order=asc",
        "sort=timestamp&order=asc",
        "sort=TIMESTAMP&order=ASC",
    ] {
        let page = app
            .get(&format!("/api/v1/alerts?limit=100&{q}"), &admin.access)
            .await;
        assert_eq!(alert_ids(page.ok(200)), asc, "{q}");
    }
    for q in [
        "sort=-timestamp",
        "sort=timestamp&order=desc",
        "sort=timestamp",
    ] {
        let page = app
            .get(&format!("/api/v1/alerts?limit=100&{q}"), &admin.access)
            .await;
        assert_eq!(alert_ids(page.ok(200)), desc, "{q}");
    }

    for (q, descending) in [
        ("sort=-severity", true),
        ("sort=severity&order=desc", true),
        ("sort=severity&order=asc", false),
    ] {
        let page = app
            .get(&format!("/api/v1/alerts?limit=100&{q}"), &admin.access)
            .await
            .ok(200)
            .clone();
        let ranks: Vec<usize> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| sev_rank(&a["severity"]))
            .collect();
        assert_eq!(ranks.len(), 12);
        let mut sorted = ranks.clone();
        sorted.sort();
        if descending {
            sorted.reverse();
        }
        assert_eq!(ranks, sorted, "{q}");
        let got: BTreeSet<String> = alert_ids(&page).into_iter().collect();
        assert_eq!(got.len(), 12, "{q}");
    }

    // created_at / updated_at: alerts were created in order M-00 .. M-11.
    let page = app
        .get(
            "/api/v1/alerts?limit=100&sort=created_at&order=asc",
            &admin.access,
        )
        .await;
    let ids = alert_ids(page.ok(200));
    let created: Vec<String> = specs.iter().map(|s| s.alert_id.clone()).collect();
    assert_eq!(ids, created);
    // The most recently updated alert is the last one seed() changed (M-03).
    let page = app
        .get("/api/v1/alerts?limit=1&sort=-updated_at", &admin.access)
        .await;
    assert_eq!(alert_ids(page.ok(200)), vec!["M-03".to_string()]);
}

async fn skip_limit_pagination(app: &TestApp) {
    let admin = app.admin().await;
    seed(app, &admin.access, 12).await;
    let all = alert_ids(
        app.get("/api/v1/alerts?limit=100", &admin.access)
            .await
            .ok(200),
    );
    assert_eq!(all.len(), 12);
    // Default page size 50 holds them all.
    let page = app
        .get("/api/v1/alerts", &admin.access)
        .await
        .ok(200)
        .clone();
    assert_eq!(page["limit"], 50);
    assert_eq!(page["skip"], 0);
    assert_eq!(
        page["total_is_exact"], true,
        "12 matches are counted exactly"
    );
    assert_eq!(alert_ids(&page), all);

    let mut seen = Vec::new();
    for (skip, n) in [(0, 5), (5, 5), (10, 2), (12, 0), (100, 0)] {
        let page = app
            .get(
                &format!("/api/v1/alerts?skip={skip}&limit=5"),
                &admin.access,
            )
            .await
            .ok(200)
            .clone();
        assert_eq!(page["total"], 12, "skip {skip}");
        assert_eq!(page["skip"], skip, "skip {skip}");
        assert_eq!(page["limit"], 5);
        let ids = alert_ids(&page);
        assert_eq!(ids.len(), n, "skip {skip}");
        seen.extend(ids);
    }
    assert_eq!(seen, all, "pages concatenate to the full list");
    // `offset` is a synonym of skip; filters and pages combine.
    let page = app
        .get(
            "/api/v1/alerts?offset=2&limit=2&tag=ssh&order=asc",
            &admin.access,
        )
        .await
        .ok(200)
        .clone();
    let asc: Vec<String> = all.iter().rev().cloned().collect();
    assert_eq!(alert_ids(&page), asc[2..4].to_vec());
    assert_eq!(page["total"], 12);
    // Largest page size.
    let page = app.get("/api/v1/alerts?limit=1000", &admin.access).await;
    assert_eq!(page.ok(200)["limit"], 1000);
}

/// Follows `next_cursor` from the first page; returns the pages' alert ids.
async fn follow_cursor(app: &TestApp, token: &str, query: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut url = format!("/api/v1/alerts?{query}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page = app.get(&url, token).await.ok(200).clone();
        pages.push(alert_ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => {
                assert!(!c.is_empty());
                cursor = Some(c.to_string());
            }
            None => return pages,
        }
    }
    panic!("cursor pagination did not end: {query}");
}

async fn cursor_pagination_sees_every_alert_once(app: &TestApp) {
    let admin = app.admin().await;
    let (specs, _) = seed(app, &admin.access, 12).await;
    let everything: HashSet<String> = specs.iter().map(|s| s.alert_id.clone()).collect();
    for (query, expect) in [
        ("limit=5", everything.clone()),
        ("limit=4", everything.clone()),
        ("limit=1", everything.clone()),
        ("limit=5&order=asc", everything.clone()),
        // Severity has many ties: the cursor must still not skip or repeat any alert.
        ("limit=2&sort=-severity", everything.clone()),
        ("limit=3&sort=severity&order=asc", everything.clone()),
        ("limit=5&sort=created_at", everything.clone()),
        ("limit=5&sort=updated_at&order=asc", everything.clone()),
        (
            "limit=2&severity=high,critical",
            specs
                .iter()
                .filter(|s| s.severity == "high" || s.severity == "critical")
                .map(|s| s.alert_id.clone())
                .collect(),
        ),
        // Tag filters read through the tag index: same guarantees.
        ("limit=2&tag=ssh", everything.clone()),
        ("limit=3&tag=ssh&order=asc", everything.clone()),
        ("limit=2&tag=ssh&sort=-severity", everything.clone()),
        (
            "limit=2&tag=ssh&sort=created_at&order=asc",
            everything.clone(),
        ),
        (
            "limit=1&tag=vip&sort=severity",
            specs
                .iter()
                .filter(|s| s.tags.contains(&"vip"))
                .map(|s| s.alert_id.clone())
                .collect(),
        ),
        // skip is ignored once a cursor is given (checked below); on the first page it applies.
        ("limit=5&skip=0", everything.clone()),
    ] {
        let pages = follow_cursor(app, &admin.access, query).await;
        let flat: Vec<String> = pages.iter().flatten().cloned().collect();
        let unique: HashSet<String> = flat.iter().cloned().collect();
        assert_eq!(
            flat.len(),
            unique.len(),
            "{query}: an alert was repeated: {pages:?}"
        );
        assert_eq!(unique, expect, "{query}: pages {pages:?}");
        let limit: usize = query
            .split('&')
            .find_map(|p| p.strip_prefix("limit="))
            .unwrap()
            .parse()
            .unwrap();
        for p in &pages[..pages.len() - 1] {
            assert_eq!(p.len(), limit, "{query}: only the last page may be short");
        }
    }
    // Cursor pages in default order equal the skip/limit pages.
    let all = alert_ids(
        app.get("/api/v1/alerts?limit=100", &admin.access)
            .await
            .ok(200),
    );
    let pages = follow_cursor(app, &admin.access, "limit=5").await;
    assert_eq!(pages.iter().flatten().cloned().collect::<Vec<_>>(), all);
    // With a cursor, skip is ignored and reported as 0; total still counts all matches.
    let first = app
        .get("/api/v1/alerts?limit=5", &admin.access)
        .await
        .ok(200)
        .clone();
    let c = first["next_cursor"].as_str().unwrap();
    let second = app
        .get(
            &format!("/api/v1/alerts?limit=5&skip=3&cursor={c}"),
            &admin.access,
        )
        .await
        .ok(200)
        .clone();
    assert_eq!(alert_ids(&second), all[5..10].to_vec());
    assert_eq!(second["skip"], 0);
    assert_eq!(second["total"], 12);
    // The last page has no cursor; a page of exactly `limit` rows may be followed by an
    // empty one, which has none either.
    let last = app.get("/api/v1/alerts?limit=100", &admin.access).await;
    assert!(last.ok(200)["next_cursor"].is_null());
}

async fn status_patch_follows_the_state_machine(app: &TestApp) {
    let admin = app.admin().await;
    let a = app.alert(&admin.access, "Lifecycle", "high").await;
    let id = id_of(&a);
    let path = format!("/api/v1/alerts/{id}/status");
    let status_of = || async {
        app.get(&format!("/api/v1/alerts/{id}"), &admin.access)
            .await
            .ok(200)["status"]
            .as_str()
            .unwrap()
            .to_string()
    };

    // Same status is not a transition.
    let r = app
        .patch(&path, &admin.access, &json!({ "status": "open" }))
        .await;
    let e = r.err(409, "invalid_transition");
    assert_eq!(e["details"]["from"], "open");
    assert_eq!(e["details"]["to"], "open");
    assert_eq!(
        e["details"]["allowed"],
        json!(["in_progress", "closed", "false_positive"])
    );

    let r = app
        .patch(&path, &admin.access, &json!({ "status": "in_progress" }))
        .await;
    let b = r.ok(200).clone();
    assert_eq!(b["status"], "in_progress");
    assert_eq!(b["acknowledged_by"], "admin");
    assert!(b["acknowledged_at"].is_string());
    let t = |v: &Value| v.as_str().unwrap().parse::<DateTime<Utc>>().unwrap();
    assert!(t(&b["updated_at"]) >= t(&a["updated_at"]));

    let r = app
        .patch(
            &path,
            &admin.access,
            &json!({ "status": "closed", "resolution_notes": "contained" }),
        )
        .await;
    let b = r.ok(200).clone();
    assert_eq!(b["status"], "closed");
    assert_eq!(b["closed_by"], "admin");
    assert!(b["closed_at"].is_string());
    assert_eq!(b["resolution_notes"], "contained");

    // A closed alert can only be reopened.
    for to in ["in_progress", "false_positive", "closed"] {
        let r = app
            .patch(&path, &admin.access, &json!({ "status": to }))
            .await;
        let e = r.err(409, "invalid_transition");
        assert_eq!(e["details"]["from"], "closed");
        assert_eq!(e["details"]["to"], to);
        assert_eq!(e["details"]["allowed"], json!(["open"]));
        let msg = e["message"].as_str().unwrap();
        assert!(msg.contains("closed") && msg.contains(to), "{msg}");
    }
    assert_eq!(status_of().await, "closed");

    // Bad bodies.
    let r = app.patch(&path, &admin.access, &json!({})).await;
    let e = r.err(400, "missing_status");
    assert_eq!(
        e["details"]["allowed"],
        json!(["open", "in_progress", "closed", "false_positive"])
    );
    app.patch(&path, &admin.access, &json!({ "status": null }))
        .await
        .err(400, "missing_status");
    app.patch(&path, &admin.access, &json!({ "resolution_notes": "x" }))
        .await
        .err(400, "missing_status");
    let r = app
        .patch(&path, &admin.access, &json!({ "status": "done" }))
        .await;
    let e = r.err(400, "invalid_status");
    assert!(e["message"].as_str().unwrap().contains("done"));
    assert_eq!(
        e["details"]["allowed"],
        json!(["open", "in_progress", "closed", "false_positive"])
    );
    app.patch(&path, &admin.access, &json!({ "status": 3 }))
        .await
        .err(400, "invalid_status");
    app.patch(&path, &admin.access, &json!({ "status": "" }))
        .await
        .err(400, "invalid_status");
    app.patch(
        &path,
        &admin.access,
        &json!({ "status": "open", "owner": "x" }),
    )
    .await
    .err(400, "invalid_body");
    app.patch(&path, &admin.access, &json!(["open"]))
        .await
        .err(400, "invalid_body");
    app.patch(
        &path,
        &admin.access,
        &json!({ "status": "open", "resolution_notes": 5 }),
    )
    .await
    .err(400, "invalid_body");
    assert_eq!(
        status_of().await,
        "closed",
        "failed requests changed nothing"
    );

    // Reopen: no longer closed by anyone; notes kept.
    let r = app
        .patch(&path, &admin.access, &json!({ "status": "OPEN" }))
        .await;
    let b = r.ok(200).clone();
    assert_eq!(b["status"], "open");
    assert!(b["closed_by"].is_null());
    assert!(b["closed_at"].is_null());
    assert_eq!(b["resolution_notes"], "contained");
    // open -> false_positive directly.
    let r = app
        .patch(&path, &admin.access, &json!({ "status": "false_positive" }))
        .await;
    assert_eq!(r.ok(200)["status"], "false_positive");

    // Unknown alert.
    let unknown = uuid::Uuid::new_v4();
    app.patch(
        &format!("/api/v1/alerts/{unknown}/status"),
        &admin.access,
        &json!({ "status": "closed" }),
    )
    .await
    .err(404, "not_found");
}

async fn acknowledge_is_idempotent_and_records_the_actor(app: &TestApp) {
    let admin = app.admin().await;
    let amy = app.user_session(&admin.access, "amy", "analyst").await;
    let a = app.alert(&admin.access, "Ack me", "critical").await;
    let id = id_of(&a);
    let ack = format!("/api/v1/alerts/{id}/ack");

    let b1 = app
        .send(Method::POST, &ack, Some(&amy.access), None)
        .await
        .ok(200)
        .clone();
    assert_eq!(b1["status"], "in_progress");
    assert_eq!(b1["acknowledged_by"], "amy");
    assert!(b1["acknowledged_at"].is_string());
    let history_len = || async {
        app.get(&format!("/api/v1/alerts/{id}/history"), &admin.access)
            .await
            .ok(200)
            .as_array()
            .unwrap()
            .len()
    };
    let n = history_len().await;

    // Again, by someone else: nothing changes, not even the history.
    let b2 = app
        .send(Method::POST, &ack, Some(&admin.access), None)
        .await
        .ok(200)
        .clone();
    assert_eq!(b2["status"], "in_progress");
    assert_eq!(b2["acknowledged_by"], "amy");
    assert_eq!(b2["acknowledged_at"], b1["acknowledged_at"]);
    assert_eq!(b2["updated_at"], b1["updated_at"]);
    assert_eq!(history_len().await, n);

    // Back to open keeps the acknowledgement; acking again moves it to in_progress.
    app.patch(
        &format!("/api/v1/alerts/{id}/status"),
        &admin.access,
        &json!({ "status": "open" }),
    )
    .await
    .ok(200);
    let b3 = app
        .send(Method::POST, &ack, Some(&admin.access), None)
        .await
        .ok(200)
        .clone();
    assert_eq!(b3["status"], "in_progress");
    assert_eq!(b3["acknowledged_by"], "amy");

    // A closed alert cannot be acknowledged.
    app.post(
        &format!("/api/v1/alerts/{id}/close"),
        &admin.access,
        &json!({}),
    )
    .await
    .ok(200);
    let r = app.send(Method::POST, &ack, Some(&amy.access), None).await;
    let e = r.err(409, "invalid_transition");
    assert_eq!(e["details"]["allowed"], json!(["open"]));

    let unknown = uuid::Uuid::new_v4();
    app.send(
        Method::POST,
        &format!("/api/v1/alerts/{unknown}/ack"),
        Some(&amy.access),
        None,
    )
    .await
    .err(404, "not_found");
}

async fn close_with_notes_false_positive_and_reopen(app: &TestApp) {
    let admin = app.admin().await;
    let amy = app.user_session(&admin.access, "amy", "analyst").await;
    let a = app.alert(&admin.access, "Close me", "medium").await;
    let b = app.alert(&admin.access, "Benign", "low").await;
    let close_a = format!("/api/v1/alerts/{}/close", id_of(&a));
    let close_b = format!("/api/v1/alerts/{}/close", id_of(&b));

    // Only closed or false_positive.
    app.post(&close_a, &amy.access, &json!({ "status": "in_progress" }))
        .await
        .err(400, "invalid_status");
    app.post(&close_a, &amy.access, &json!({ "status": "open" }))
        .await
        .err(400, "invalid_status");
    app.post(&close_a, &amy.access, &json!({ "status": "shut" }))
        .await
        .err(422, "invalid_body");
    app.post(&close_a, &amy.access, &json!({ "notes": "typo" }))
        .await
        .err(422, "invalid_body");
    app.post(
        &close_a,
        &amy.access,
        &json!({ "resolution_notes": "x".repeat(16 * 1024 + 1) }),
    )
    .await
    .err(422, "validation_failed");

    let r = app
        .post(
            &close_a,
            &amy.access,
            &json!({ "resolution_notes": "Password reset, IP blocked" }),
        )
        .await;
    let c = r.ok(200).clone();
    assert_eq!(c["status"], "closed");
    assert_eq!(c["closed_by"], "amy");
    assert!(c["closed_at"].is_string());
    assert_eq!(c["resolution_notes"], "Password reset, IP blocked");
    assert!(
        c["acknowledged_by"].is_null(),
        "closing is not acknowledging"
    );

    let r = app
        .post(
            &close_b,
            &admin.access,
            &json!({ "status": "false_positive", "resolution_notes": "scanner" }),
        )
        .await;
    let fp = r.ok(200).clone();
    assert_eq!(fp["status"], "false_positive");
    assert_eq!(fp["closed_by"], "admin");

    // Closing twice is refused.
    let r = app.post(&close_a, &admin.access, &json!({})).await;
    let e = r.err(409, "invalid_transition");
    assert_eq!(e["details"]["from"], "closed");
    app.post(&close_b, &admin.access, &json!({ "status": "closed" }))
        .await
        .err(409, "invalid_transition");

    // Reopen both.
    for id in [id_of(&a), id_of(&b)] {
        let r = app
            .patch(
                &format!("/api/v1/alerts/{id}/status"),
                &amy.access,
                &json!({ "status": "open" }),
            )
            .await;
        let o = r.ok(200).clone();
        assert_eq!(o["status"], "open");
        assert!(o["closed_by"].is_null() && o["closed_at"].is_null());
    }
    // And close again, without notes: the earlier notes stay.
    let c2 = app
        .post(&close_a, &amy.access, &json!({}))
        .await
        .ok(200)
        .clone();
    assert_eq!(c2["status"], "closed");
    assert_eq!(c2["resolution_notes"], "Password reset, IP blocked");

    // Status filter sees the result.
    let page = app
        .get("/api/v1/alerts?status=closed", &admin.access)
        .await
        .ok(200)
        .clone();
    assert_eq!(
        alert_ids(&page),
        vec![a["alert_id"].as_str().unwrap().to_string()]
    );

    let unknown = uuid::Uuid::new_v4();
    app.post(
        &format!("/api/v1/alerts/{unknown}/close"),
        &admin.access,
        &json!({}),
    )
    .await
    .err(404, "not_found");
}

async fn history_records_every_change_in_order(app: &TestApp) {
    let admin = app.admin().await;
    let amy = app.user_session(&admin.access, "amy", "analyst").await;
    let viewer = app.user_session(&admin.access, "vic", "viewer").await;
    let a = app.alert(&admin.access, "Audited", "high").await;
    let id = id_of(&a);

    app.send(
        Method::POST,
        &format!("/api/v1/alerts/{id}/ack"),
        Some(&amy.access),
        None,
    )
    .await
    .ok(200);
    app.post(
        &format!("/api/v1/alerts/{id}/close"),
        &admin.access,
        &json!({ "resolution_notes": "done" }),
    )
    .await
    .ok(200);
    // A refused change writes no history.
    app.patch(
        &format!("/api/v1/alerts/{id}/status"),
        &amy.access,
        &json!({ "status": "in_progress" }),
    )
    .await
    .err(409, "invalid_transition");
    app.patch(
        &format!("/api/v1/alerts/{id}/status"),
        &amy.access,
        &json!({ "status": "open" }),
    )
    .await
    .ok(200);

    let h = app
        .get(&format!("/api/v1/alerts/{id}/history"), &viewer.access)
        .await
        .ok(200)
        .clone();
    let rows: Vec<(String, String, Value, Value)> = h
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["alert_id"], id.as_str());
            (
                e["changed_by"].as_str().unwrap().to_string(),
                e["field"].as_str().unwrap().to_string(),
                e["old_value"].clone(),
                e["new_value"].clone(),
            )
        })
        .collect();
    let row =
        |who: &str, f: &str, old: Value, new: Value| (who.to_string(), f.to_string(), old, new);
    assert_eq!(
        rows,
        vec![
            row("admin", "created", Value::Null, json!("open")),
            row("amy", "acknowledged_by", Value::Null, json!("amy")),
            row("amy", "status", json!("open"), json!("in_progress")),
            row("admin", "status", json!("in_progress"), json!("closed")),
            row("admin", "closed_by", Value::Null, json!("admin")),
            row("admin", "resolution_notes", Value::Null, json!("done")),
            row("amy", "status", json!("closed"), json!("open")),
            row("amy", "closed_by", json!("admin"), Value::Null),
        ],
        "{h:#}"
    );
    // Oldest first, ids increasing.
    let entries = h.as_array().unwrap();
    for w in entries.windows(2) {
        assert!(w[0]["id"].as_i64().unwrap() < w[1]["id"].as_i64().unwrap());
        let t0: DateTime<Utc> = w[0]["changed_at"].as_str().unwrap().parse().unwrap();
        let t1: DateTime<Utc> = w[1]["changed_at"].as_str().unwrap().parse().unwrap();
        assert!(t0 <= t1);
    }
    // Another alert's history is its own.
    let other = app.alert(&admin.access, "Other", "low").await;
    let h2 = app
        .get(
            &format!("/api/v1/alerts/{}/history", id_of(&other)),
            &admin.access,
        )
        .await
        .ok(200)
        .clone();
    assert_eq!(h2.as_array().unwrap().len(), 1);
    assert_eq!(h2[0]["field"], "created");
}

async fn bulk_status_reports_per_item(app: &TestApp) {
    let admin = app.admin().await;
    let x = id_of(&app.alert(&admin.access, "X", "low").await);
    let y = id_of(&app.alert(&admin.access, "Y", "low").await);
    let z = id_of(&app.alert(&admin.access, "Z", "low").await);
    app.post(
        &format!("/api/v1/alerts/{z}/close"),
        &admin.access,
        &json!({}),
    )
    .await
    .ok(200);
    let unknown = uuid::Uuid::new_v4().to_string();

    let r = app
        .post(
            "/api/v1/alerts/bulk/status",
            &admin.access,
            &json!({ "ids": [x, unknown, z, y], "status": "in_progress" }),
        )
        .await;
    let b = r.ok(200).clone();
    assert_eq!(b["updated"], 2, "{b}");
    assert_eq!(b["failed"], 2, "{b}");
    let results = b["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    let summary: Vec<(String, bool, Value)> = results
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["ok"].as_bool().unwrap(),
                r["error"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (x.clone(), true, Value::Null),
            (unknown.clone(), false, json!("not_found")),
            (z.clone(), false, json!("invalid_transition")),
            (y.clone(), true, Value::Null),
        ]
    );
    assert!(results[2]["message"].as_str().unwrap().contains("closed"));
    for (id, status) in [(&x, "in_progress"), (&y, "in_progress"), (&z, "closed")] {
        let a = app
            .get(&format!("/api/v1/alerts/{id}"), &admin.access)
            .await
            .ok(200)
            .clone();
        assert_eq!(a["status"], status, "{id}");
    }

    // Closing with notes applies them to every updated alert.
    let r = app
        .post(
            "/api/v1/alerts/bulk/status",
            &admin.access,
            &json!({ "ids": [x, y], "status": "closed", "resolution_notes": "bulk triage" }),
        )
        .await;
    assert_eq!(r.ok(200)["updated"], 2);
    for id in [&x, &y] {
        let a = app
            .get(&format!("/api/v1/alerts/{id}"), &admin.access)
            .await
            .ok(200)
            .clone();
        assert_eq!(a["status"], "closed");
        assert_eq!(a["resolution_notes"], "bulk triage");
        assert_eq!(a["closed_by"], "admin");
    }

    // Bad requests change nothing.
    let cases = [
        (json!({ "status": "open" }), 400, "invalid_body"),
        (json!({ "ids": [], "status": "open" }), 400, "invalid_body"),
        (
            json!({ "ids": ["not-a-uuid"], "status": "open" }),
            400,
            "invalid_body",
        ),
        (json!({ "ids": x, "status": "open" }), 400, "invalid_body"),
        (json!({ "ids": [x] }), 400, "missing_status"),
        (
            json!({ "ids": [x], "status": "reopened" }),
            400,
            "invalid_status",
        ),
        (
            json!({ "ids": [x], "status": "open", "force": true }),
            400,
            "invalid_body",
        ),
        (
            json!({ "ids": vec![x.clone(); 1001], "status": "open" }),
            400,
            "invalid_body",
        ),
    ];
    for (body, status, code) in cases {
        let r = app
            .post("/api/v1/alerts/bulk/status", &admin.access, &body)
            .await;
        r.err(status, code);
    }
    let closed = app
        .get("/api/v1/alerts?status=closed", &admin.access)
        .await
        .ok(200)
        .clone();
    assert_eq!(closed["total"], 3, "nothing was reopened");
}

/// The OpenAPI document and the server agree: every query parameter documented for
/// `GET /alerts` is accepted with a sensible value.
async fn every_documented_list_parameter_is_accepted(app: &TestApp) {
    let admin = app.admin().await;
    let t = admin.access.as_str();
    seed(app, t, 3).await;
    let first = app.get("/api/v1/alerts?limit=1", t).await.ok(200).clone();
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    let doc = app
        .send(Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .ok(200)
        .clone();
    let params = doc["paths"]["/alerts"]["get"]["parameters"]
        .as_array()
        .expect("documented parameters")
        .clone();
    assert!(params.len() >= 14, "{params:?}");
    let mut failures = Vec::new();
    for p in &params {
        assert_eq!(p["in"], "query");
        let name = p["name"].as_str().unwrap();
        let value = match name {
            "status" => "open".to_string(),
            "severity" => "high".into(),
            "source" => "agent".into(),
            "agent_id" => "agent-0".into(),
            "technique" => "T1110".into(),
            "tag" => "ssh".into(),
            "q" => "scan".into(),
            "since" => "2026-01-01T00:00:00Z".into(),
            "until" => "2026-02-01T00:00:00Z".into(),
            "sort" => "severity".into(),
            "order" => "asc".into(),
            "skip" => "1".into(),
            "limit" => "2".into(),
            "cursor" => cursor.clone(),
            "exact_total" => "true".into(),
            other => panic!("no sample value for documented parameter '{other}'; add one"),
        };
        let r = app.get(&format!("/api/v1/alerts?{name}={value}"), t).await;
        if r.status != 200 {
            failures.push(format!("{name}={value}: {} {}", r.status, r.text));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let page = app
        .get("/api/v1/alerts?exact_total=true", t)
        .await
        .ok(200)
        .clone();
    assert_eq!(page["total"], 3);
    assert_eq!(page["total_is_exact"], true);
}

/// 1,001 alerts with many equal timestamps and severities (stored in bulk): counts stop at
/// the documented caps, and cursor pages still return every alert exactly once.
async fn large_result_sets_count_with_a_cap_and_page_completely(app: &TestApp) {
    let admin = app.admin().await;
    let t = admin.access.as_str();
    let org = app.store.get_org_by_name("default").await.unwrap().unwrap();
    let now = vigil_core::now();
    let n = 1001;
    let alerts: Vec<vigil_core::NewAlert> = (0..n)
        .map(|i| {
            vigil_core::NewAlert::parse(
                vigil_core::AlertInput {
                    alert_id: Some(format!("BULK-{i:04}")),
                    title: format!("bulk alert {i}"),
                    severity: vigil_core::Severity::ALL[i % 4],
                    // Only 7 distinct timestamps: lots of ties for the keyset.
                    timestamp: Some(base_time() + Duration::minutes((i % 7) as i64)),
                    tags: vec!["bulk".into()],
                    ..Default::default()
                },
                now,
            )
            .unwrap()
        })
        .collect();
    assert_eq!(
        app.store.insert_alerts_bulk(org.id, alerts).await.unwrap(),
        n as u64
    );

    // Below the 10,000 cap: exact.
    let page = app.get("/api/v1/alerts?limit=1", t).await.ok(200).clone();
    assert_eq!(page["total"], n as u64);
    assert_eq!(page["total_is_exact"], true);
    let page = app
        .get("/api/v1/alerts?limit=1&tag=bulk", t)
        .await
        .ok(200)
        .clone();
    assert_eq!(page["total"], n as u64);
    assert_eq!(page["total_is_exact"], true);
    // A text search counts up to 1,000: beyond, total is that lower bound.
    let page = app
        .get("/api/v1/alerts?limit=1&q=bulk", t)
        .await
        .ok(200)
        .clone();
    assert_eq!(page["total"], 1000, "{}", page["total"]);
    assert_eq!(page["total_is_exact"], false);
    // Exactly at the cap is still exact.
    let first = id_of(&page["items"][0]);
    app.post(&format!("/api/v1/alerts/{first}/close"), t, &json!({}))
        .await
        .ok(200);
    let page = app
        .get("/api/v1/alerts?limit=1&q=bulk&status=open", t)
        .await
        .ok(200)
        .clone();
    assert_eq!(page["total"], 1000);
    assert_eq!(page["total_is_exact"], true);
    let page = app
        .get("/api/v1/alerts?limit=1&q=alert%209", t)
        .await
        .ok(200)
        .clone();
    // "alert 9", "alert 9x", "alert 9xx": 1 + 10 + 100
    assert_eq!(page["total"], 111);
    assert_eq!(page["total_is_exact"], true);

    for query in [
        "limit=100",
        "limit=1000",
        "limit=100&sort=-severity",
        "limit=250&tag=bulk&order=asc",
        "limit=300&q=bulk",
    ] {
        let pages = follow_cursor(app, t, query).await;
        let flat: Vec<String> = pages.iter().flatten().cloned().collect();
        let unique: HashSet<&String> = flat.iter().collect();
        assert_eq!(unique.len(), flat.len(), "{query}: repeated alerts");
        assert_eq!(flat.len(), n, "{query}: {} pages", pages.len());
    }
    // Skip/limit beyond the first thousand.
    let page = app
        .get("/api/v1/alerts?skip=1000&limit=5", t)
        .await
        .ok(200)
        .clone();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
}

/// Regression: `"timestamp": "9999-12-31T..."` was stored, and such an alert sorts above
/// every real one for ever. Beyond `[ingest] max_future_skew_secs` (default 300) it is
/// refused.
async fn alert_timestamps_far_in_the_future_are_refused(app: &TestApp) {
    let admin = app.admin().await;
    let t = admin.access.as_str();
    for path in ["/api/v1/alerts", "/api/alerts"] {
        let r = app
            .post(
                path,
                t,
                &json!({"title": "from the future", "severity": "low",
                        "timestamp": "9999-12-31T23:59:59Z"}),
            )
            .await;
        let e = r.err(422, "validation_failed");
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains("max_future_skew_secs"),
            "{e}"
        );
        let later = Utc::now() + Duration::seconds(600);
        app.post(
            path,
            t,
            &json!({"title": "ten minutes ahead", "severity": "low", "timestamp": later}),
        )
        .await
        .err(422, "validation_failed");
    }
    // Within the skew (a sender's clock a little fast), and in the past: accepted.
    let soon = Utc::now() + Duration::seconds(60);
    app.post(
        "/api/v1/alerts",
        t,
        &json!({"title": "a minute ahead", "severity": "low", "timestamp": soon}),
    )
    .await
    .ok(201);
    app.post(
        "/api/v1/alerts",
        t,
        &json!({"title": "old", "severity": "low", "timestamp": "2001-01-01T00:00:00Z"}),
    )
    .await
    .ok(201);
    assert_eq!(app.alert_total(t).await, 2);
}
