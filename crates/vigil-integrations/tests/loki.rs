use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use vigil_integrations::loki::{
    LokiClient, LokiConfig, LokiDirection, LokiEntry, LokiError, LokiQueryResult, LokiStream,
    events_to_streams, result_to_events,
};

use crate::fakes::{self, FakeLoki};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap()
}

fn ns(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap()
}

/// Lines every 10 minutes for 7 hours in two streams.
fn seed(f: &FakeLoki) {
    let mut s = f.state.streams.lock().unwrap();
    let labels = |host: &str| {
        json!({"job": "varlogs", "host": host, "filename": "/var/log/auth.log"})
            .as_object()
            .unwrap()
            .clone()
    };
    let lines = |ip: &str| {
        (0..42)
            .map(|i| {
                (
                    ns(t0() + chrono::Duration::minutes(10 * i)),
                    format!("Nov 30 10:00:00 web-1 sshd[812]: Failed password for root from {ip} port 5{i:04} ssh2"),
                )
            })
            .collect::<Vec<_>>()
    };
    s.push((labels("web-1"), lines("203.0.113.9")));
    s.push((labels("web-2"), lines("198.51.100.7")));
}

fn client(f: &FakeLoki, tenant: &str) -> LokiClient {
    let mut c = LokiConfig::new(&f.url);
    c.tenant = tenant.into();
    c.timeout = Duration::from_millis(500);
    c.split_interval = Duration::from_secs(3600);
    LokiClient::new(c).unwrap()
}

#[tokio::test]
async fn query_range_streams_become_events_with_the_tenant_header() {
    let f = fakes::loki(Some("team-a")).await;
    seed(&f);
    let c = client(&f, "team-a");
    let r = c
        .query_range(
            "{job=\"varlogs\", host=\"web-1\"}",
            t0(),
            t0() + chrono::Duration::hours(1),
            100,
            LokiDirection::Forward,
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.len(), 6);
    let events = result_to_events(&r);
    assert_eq!(events.len(), 6);
    assert_eq!(events[0]["event"]["dataset"], "auth");
    assert_eq!(events[0]["event"]["outcome"], "failure");
    assert_eq!(events[0]["source"]["ip"], "203.0.113.9");
    assert_eq!(events[0]["host"]["name"], "web-1");
    assert_eq!(events[0]["labels"]["job"], "varlogs");
    let (tenant, params) = f.state.queries.lock().unwrap()[0].clone();
    assert_eq!(tenant.as_deref(), Some("team-a"));
    assert_eq!(params["start"], ns(t0()).to_string());
    assert_eq!(params["direction"], "forward");
    // Without the tenant, Loki refuses.
    let e = client(&f, "")
        .query_range(
            "{job=\"varlogs\"}",
            t0(),
            t0(),
            10,
            LokiDirection::Backward,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(
        e,
        LokiError::Api {
            status: 401,
            message: "no org id".into()
        }
    );
}

#[tokio::test]
async fn long_ranges_are_split_and_joined() {
    let f = fakes::loki(None).await;
    seed(&f);
    let c = client(&f, "");
    let (start, end) = (t0(), t0() + chrono::Duration::hours(7));
    // One request over 7 h exceeds the fake's 3 h max_query_length: Loki's plain-text 400.
    let e = c
        .query_range(
            "{job=\"varlogs\"}",
            start,
            end,
            5000,
            LokiDirection::Forward,
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, LokiError::Api { status: 400, message } if message.contains("exceeds the limit")),
        "{e:?}"
    );
    let before = f.state.queries.lock().unwrap().len();
    let r = c
        .query_range_split("{job=\"varlogs\"}", start, end, 10_000, None)
        .await
        .unwrap();
    assert_eq!(f.state.queries.lock().unwrap().len() - before, 7);
    let LokiQueryResult::Streams(streams) = &r else {
        panic!("{r:?}")
    };
    assert_eq!(streams.len(), 2, "one stream per label set across pieces");
    assert!(streams.iter().all(|s| s.entries.len() == 42));
    assert!(
        streams[0]
            .entries
            .windows(2)
            .all(|w| w[0].timestamp < w[1].timestamp)
    );
    // A piece that fills the per-request limit is continued, not cut.
    let mut small = LokiConfig::new(&f.url);
    small.limit_per_query = 4;
    let r = LokiClient::new(small)
        .unwrap()
        .query_range_split("{job=\"varlogs\"}", start, end, 10_000, None)
        .await
        .unwrap();
    assert_eq!(r.len(), 84, "every line of both streams");
    // The total limit stops early.
    let r = c
        .query_range_split("{job=\"varlogs\"}", start, end, 15, None)
        .await
        .unwrap();
    assert_eq!(r.len(), 15);
}

#[tokio::test]
async fn metric_queries_give_matrix_and_vector_results() {
    let f = fakes::loki(None).await;
    seed(&f);
    let c = client(&f, "");
    let r = c
        .query_range(
            "count_over_time({host=\"web-1\"}[1m])",
            t0(),
            t0() + chrono::Duration::hours(1),
            100,
            LokiDirection::Backward,
            Some(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    let LokiQueryResult::Matrix(m) = &r else {
        panic!("{r:?}")
    };
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].values.len(), 6);
    assert_eq!(m[0].values[0], (t0(), 1.0));
    let ev = result_to_events(&r);
    assert_eq!(ev[0]["event"]["dataset"], "loki.metric");
    assert_eq!(ev[0]["metric"]["value"], 1.0);
    assert_eq!(ev[0]["host"]["name"], "web-1");
    let v = c
        .query(
            "count_over_time({job=\"varlogs\"}[30m])",
            t0() + chrono::Duration::minutes(30),
            100,
        )
        .await
        .unwrap();
    let LokiQueryResult::Vector(v) = v else {
        panic!()
    };
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].value, 3.0, "lines at 10, 20 and 30 minutes");
    let logs = c
        .query("{host=\"web-2\"}", t0() + chrono::Duration::minutes(30), 2)
        .await
        .unwrap();
    let LokiQueryResult::Streams(s) = &logs else {
        panic!("{logs:?}")
    };
    assert_eq!(s[0].entries.len(), 2);
    assert_eq!(
        s[0].entries[0].timestamp,
        t0() + chrono::Duration::minutes(30),
        "newest first"
    );
}

#[tokio::test]
async fn bad_logql_slow_answers_and_garbage() {
    let f = fakes::loki(None).await;
    let c = client(&f, "");
    let e = c.query("job=varlogs", t0(), 10).await.unwrap_err();
    assert!(
        matches!(&e, LokiError::Api { status: 400, message } if message.starts_with("parse error")),
        "{e:?}"
    );
    *f.state.delay.lock().unwrap() = Duration::from_secs(2);
    let e = c
        .query_range("{a=\"b\"}", t0(), t0(), 1, LokiDirection::Forward, None)
        .await
        .unwrap_err();
    assert!(matches!(e, LokiError::Timeout { .. }), "{e:?}");
    // Nothing listening.
    let dead = LokiClient::new(LokiConfig::new("http://127.0.0.1:9")).unwrap();
    assert!(matches!(
        dead.query("{a=\"b\"}", t0(), 1).await,
        Err(LokiError::Unreachable { .. })
    ));
}

#[tokio::test]
async fn pushes_are_snappy_protobuf_loki_decodes() {
    let f = fakes::loki(Some("t")).await;
    let c = client(&f, "t");
    let docs = [
        json!({"host": {"name": "web-1"}, "event": {"dataset": "auth", "original": "sshd[1]: Failed password"}}),
        json!({"host": {"name": "web-1"}, "event": {"dataset": "auth"}, "message": "second"}),
        json!({"event": {"dataset": "process"}, "process": {"name": "bash"}}),
    ];
    let events: Vec<_> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| (t0() + chrono::Duration::seconds(i as i64), "agent", d))
        .collect();
    let streams = events_to_streams(events);
    assert_eq!(streams.len(), 2);
    c.push(&streams).await.unwrap();
    let pushed = f.state.pushed.lock().unwrap().clone();
    assert_eq!(pushed, streams);
    let auth = pushed
        .iter()
        .find(|s| s.labels.get("dataset").map(String::as_str) == Some("auth"))
        .unwrap();
    assert_eq!(auth.labels["host"], "web-1");
    assert_eq!(auth.labels["job"], "vigil");
    assert_eq!(auth.entries[0].line, "sshd[1]: Failed password");
    assert_eq!(auth.entries[1].line, "second");
    // A stream without labels is refused by Loki: the 400 text is passed on.
    let bad = LokiStream {
        labels: BTreeMap::new(),
        entries: vec![LokiEntry {
            timestamp: t0(),
            line: "x".into(),
            structured_metadata: BTreeMap::new(),
        }],
    };
    let e = c.push(&[bad]).await.unwrap_err();
    assert!(matches!(&e, LokiError::Api { status: 400, .. }), "{e:?}");
}
