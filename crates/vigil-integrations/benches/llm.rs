//! Cost of the work around a model call: building a prompt from an aggregate and sample
//! lines (sanitizing, delimiting, hashing), validating an answer, and the Loki forwarder's
//! event → push-stream → snappy protobuf path. Run:
//! `cargo bench -p vigil-integrations --bench llm -- --warm-up-time 1 --measurement-time 3`.

use std::collections::BTreeMap;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use vigil_integrations::llm::{build_prompt, validate_analysis};
use vigil_integrations::loki::{
    LokiEntry, LokiQueryResult, LokiStream, events_to_streams, result_to_events,
};

fn bench(c: &mut Criterion) {
    let lines: Vec<String> = (0..60)
        .map(|i| format!("2026-12-01T10:00:{:02}Z host=web-1 dataset=auth outcome=failure text=Failed password for root from 203.0.113.{i} port 5{i:04} ssh2 \u{1b}[31m{}", i % 60, "x".repeat(200)))
        .collect();
    let context = json!({
        "event_count": 5000,
        "by_host": (0..10).map(|i| json!({"key": format!("web-{i}"), "count": 500})).collect::<Vec<_>>(),
        "failed_authentications": {"total": 1200, "by_source_ip": (0..10).map(|i| json!({"key": format!("203.0.113.{i}"), "count": 120})).collect::<Vec<_>>()},
        "findings": (0..10).map(|i| json!({"severity": "high", "text": format!("finding {i}")})).collect::<Vec<_>>(),
    });
    let mut g = c.benchmark_group("llm");
    g.throughput(Throughput::Elements(1));
    g.bench_function("build_prompt_60_lines", |b| {
        b.iter(|| std::hint::black_box(build_prompt("analyse", &context, &lines)))
    });
    let answer = json!({
        "summary": "Repeated failed SSH logins from 203.0.113.9 followed by a success.",
        "verdict": "true_positive", "suggested_severity": "high",
        "attack_techniques": ["T1110.001", "T1078"],
        "entities": [{"kind": "ip", "value": "203.0.113.9"}, {"kind": "user", "value": "root"}],
        "recommended_actions": ["Block 203.0.113.9", "Reset the root password"], "confidence": 0.8
    })
    .to_string();
    g.bench_function("validate_analysis", |b| {
        b.iter(|| std::hint::black_box(validate_analysis(&answer).is_ok()))
    });
    g.finish();

    let docs: Vec<serde_json::Value> = (0..1000)
        .map(|i| json!({"host": {"name": format!("web-{}", i % 4)}, "event": {"dataset": "auth",
            "original": format!("Dec  1 10:00:00 web-1 sshd[812]: Failed password for root from 203.0.113.9 port {i} ssh2")}}))
        .collect();
    let t = chrono::Utc::now();
    let mut g = c.benchmark_group("loki");
    g.throughput(Throughput::Elements(docs.len() as u64));
    g.bench_function("forward_encode_1000_events", |b| {
        b.iter(|| {
            let streams = events_to_streams(docs.iter().map(|d| (t, "agent", d)));
            std::hint::black_box(vigil_parse::loki::encode_push_protobuf(&streams))
        })
    });
    let result = LokiQueryResult::Streams(vec![LokiStream {
        labels: BTreeMap::from([("job".into(), "auth".into()), ("host".into(), "web-1".into())]),
        entries: (0..1000)
            .map(|i| LokiEntry {
                timestamp: t,
                line: format!("Dec  1 10:00:00 web-1 sshd[812]: Failed password for root from 203.0.113.9 port {i} ssh2"),
                structured_metadata: BTreeMap::new(),
            })
            .collect(),
    }]);
    g.bench_function("query_result_to_events_1000_lines", |b| {
        b.iter(|| std::hint::black_box(result_to_events(&result)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
