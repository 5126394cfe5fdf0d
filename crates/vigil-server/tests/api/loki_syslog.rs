//! Log shippers: the Grafana Loki push API (protobuf+snappy exactly as Promtail sends it,
//! JSON, gzip) and syslog over UDP, TCP (util-linux `logger`, octet-counting and newline
//! framing) and TLS.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use vigil_parse::loki::{LokiEntry, LokiStream, encode_push_protobuf};
use vigil_store::Backend;

use crate::helpers::{TestApp, both, spawn_app_with};

both!(
    loki_push_protobuf_json_and_gzip,
    loki_push_refuses_bad_bodies_and_wrong_org,
    loki_entries_over_the_per_event_limit_are_refused,
);
both!(@backend syslog_udp_tcp_and_tls_reach_the_event_store, syslog_messages_follow_the_configured_future_skew);

async fn ingest_key(app: &TestApp, admin: &str) -> String {
    let r = app
        .post(
            "/api/v1/api-keys",
            admin,
            &json!({"name": "promtail", "scopes": ["ingest"]}),
        )
        .await;
    r.ok(201)["key"].as_str().unwrap().to_owned()
}

async fn events(app: &TestApp, admin: &str, query: &str) -> Vec<Value> {
    app.get(&format!("/api/v1/events?limit=1000&{query}"), admin)
        .await
        .ok(200)["items"]
        .as_array()
        .unwrap()
        .clone()
}

/// Polls until `n` events match (syslog is asynchronous).
async fn wait_events(app: &TestApp, admin: &str, query: &str, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let got = events(app, admin, query).await;
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    events(app, admin, query).await
}

fn stream(host: &str, lines: &[&str]) -> LokiStream {
    let mut labels = BTreeMap::new();
    labels.insert("job".to_owned(), "varlogs".to_owned());
    labels.insert("host".to_owned(), host.to_owned());
    labels.insert("filename".to_owned(), "/var/log/auth.log".to_owned());
    LokiStream {
        labels,
        entries: lines
            .iter()
            .enumerate()
            .map(|(i, l)| LokiEntry {
                timestamp: vigil_core::now() + chrono::Duration::milliseconds(i as i64),
                line: (*l).to_owned(),
                structured_metadata: BTreeMap::new(),
            })
            .collect(),
    }
}

fn push(app: &TestApp, key: &str) -> reqwest::RequestBuilder {
    app.client
        .post(app.url("/loki/api/v1/push"))
        .bearer_auth(key)
}

async fn loki_push_protobuf_json_and_gzip(app: &TestApp) {
    let admin = app.admin().await.access;
    let key = ingest_key(app, &admin).await;
    let failures: Vec<String> = (0..10)
        .map(|i| format!("Nov 23 10:00:{i:02} bastion sshd[9{i}]: Failed password for root from 198.51.100.7 port 4{i}000 ssh2"))
        .collect();
    let lines: Vec<&str> = failures.iter().map(String::as_str).collect();
    // Protobuf + snappy, Content-Type as Promtail sends it.
    let body = encode_push_protobuf(&[stream("bastion-1", &lines)]);
    let r = TestApp::finish(
        push(app, &key)
            .header("content-type", "application/x-protobuf")
            .body(body.clone()),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    // The same body again (a client retry) is stored once.
    let r = TestApp::finish(
        push(app, &key)
            .header("content-type", "application/x-protobuf")
            .body(body),
    )
    .await;
    assert_eq!(r.status, 204);
    let got = events(app, &admin, "host=bastion").await; // the line names its host
    assert_eq!(got.len(), 10);
    let e = &got[0]["doc"];
    assert_eq!(e["event"]["dataset"], "auth", "{e}");
    assert_eq!(e["source"]["ip"], "198.51.100.7");
    assert_eq!(e["log"]["file"]["path"], "/var/log/auth.log");
    assert_eq!(e["labels"]["job"], "varlogs");
    // Parsed lines run through detection: ten failures from one source is brute force.
    let alerts = app.get("/api/v1/alerts?limit=100", &admin).await;
    assert!(
        alerts.ok(200)["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["title"] == "SSH Brute Force"),
        "{}",
        alerts.text
    );

    // JSON, gzip-compressed, with structured metadata, in the caller's org by name.
    let ns = (vigil_core::now().timestamp_nanos_opt().unwrap()).to_string();
    let json_body = json!({"streams": [{"stream": {"service_name": "web", "host": "web-1"},
        "values": [[ns, "GET /index.html 200", {"trace_id": "abc"}]]}]});
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&serde_json::to_vec(&json_body).unwrap())
        .unwrap();
    let r = TestApp::finish(
        push(app, &key)
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .header("x-scope-orgid", "default")
            .body(gz.finish().unwrap()),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let got = events(app, &admin, "host=web-1").await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["doc"]["labels"]["trace_id"], "abc");
    assert_eq!(got[0]["channel"], "loki");
    // Basic auth (Promtail's basic_auth) with the key as password.
    let body = encode_push_protobuf(&[stream("basic-host", &["hello"])]);
    let r = TestApp::finish(
        app.client
            .post(app.url("/loki/api/v1/push"))
            .basic_auth("tenant", Some(&key))
            .header("content-type", "application/x-protobuf")
            .body(body),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
}

async fn loki_push_refuses_bad_bodies_and_wrong_org(app: &TestApp) {
    let admin = app.admin().await.access;
    let key = ingest_key(app, &admin).await;
    let r = TestApp::finish(
        push(app, &key)
            .header("content-type", "application/x-protobuf")
            .body("garbage"),
    )
    .await;
    r.err(400, "invalid_push");
    let r = TestApp::finish(
        push(app, &key)
            .header("content-type", "application/json")
            .body("{\"streams\": 5}"),
    )
    .await;
    r.err(400, "invalid_push");
    let r = TestApp::finish(
        push(app, &key)
            .header("content-type", "application/json")
            .header("x-scope-orgid", "someone-else")
            .body("{\"streams\": []}"),
    )
    .await;
    r.err(403, "forbidden");
    let r = TestApp::finish(app.client.post(app.url("/loki/api/v1/push")).body("{}")).await;
    r.err(401, "unauthorized");
    // An empty push is fine (Loki answers 204 too).
    let r = TestApp::finish(
        push(app, &key)
            .header("content-type", "application/json")
            .body("{\"streams\": []}"),
    )
    .await;
    assert_eq!(r.status, 204);
    let _ = Method::GET;
}

fn self_signed(
    dir: &std::path::Path,
) -> (
    std::path::PathBuf,
    std::path::PathBuf,
    rustls_pki_types::CertificateDer<'static>,
) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    (cert, key, ck.cert.der().clone())
}

async fn syslog_udp_tcp_and_tls_reach_the_event_store(backend: Backend) {
    let dir = std::env::temp_dir().join(format!("vigil-tls-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key, der) = self_signed(&dir);
    let Some(app) = spawn_app_with(backend, |c| {
        c.syslog.udp = Some("127.0.0.1:0".into());
        c.syslog.tcp = Some("127.0.0.1:0".into());
        c.syslog.tls = Some("127.0.0.1:0".into());
        c.syslog.tls_cert = Some(cert.clone());
        c.syslog.tls_key = Some(key.clone());
    })
    .await
    else {
        return;
    };
    let admin = app.admin().await.access;
    let udp = app.syslog.udp.unwrap();
    let tcp = app.syslog.tcp.unwrap();
    let logger = |args: &[&str]| {
        let o = std::process::Command::new("logger")
            .args(args)
            .output()
            .expect("util-linux logger");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    // util-linux logger: RFC 5424 over UDP, RFC 3164 over TCP with octet counting.
    logger(&[
        "-n",
        "127.0.0.1",
        "-P",
        &udp.port().to_string(),
        "-d",
        "--rfc5424",
        "-t",
        "sshd",
        "--id=4242",
        "Failed password for invalid user admin from 192.0.2.10 port 40000 ssh2",
    ]);
    logger(&[
        "-n",
        "127.0.0.1",
        "-P",
        &tcp.port().to_string(),
        "-T",
        "--octet-count",
        "--rfc3164",
        "-t",
        "sudo",
        "alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/bash",
    ]);
    // Newline framing, two messages in one write.
    let mut s = tokio::net::TcpStream::connect(tcp).await.unwrap();
    s.write_all(
        b"<13>Nov 23 10:00:00 h1 app: first line\n<13>Nov 23 10:00:01 h1 app: second line\n",
    )
    .await
    .unwrap();
    s.shutdown().await.unwrap();
    // TLS (RFC 5425: octet counting).
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp_stream = tokio::net::TcpStream::connect(app.syslog.tls.unwrap())
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp_stream).await.unwrap();
    let msg = "<38>1 2026-11-23T10:00:00Z tls-host sshd 77 - - Accepted publickey for bob from 192.0.2.20 port 5000 ssh2";
    tls.write_all(format!("{} {msg}", msg.len()).as_bytes())
        .await
        .unwrap();
    tls.shutdown().await.unwrap();

    let got = wait_events(&app, &admin, "dataset=auth", 3).await;
    let by_msg = |needle: &str| {
        got.iter()
            .find(|e| e["message"].as_str().unwrap_or("").contains(needle))
            .cloned()
    };
    let udp_ev = by_msg("invalid user admin").expect("UDP event");
    assert_eq!(udp_ev["doc"]["source"]["ip"], "192.0.2.10");
    assert_eq!(udp_ev["doc"]["event"]["outcome"], "failure");
    assert_eq!(udp_ev["channel"], "syslog");
    let sudo = by_msg("COMMAND=/bin/bash").expect("TCP event");
    assert_eq!(sudo["doc"]["user"]["name"], "alice");
    let tls_ev = by_msg("Accepted publickey for bob").expect("TLS event");
    assert_eq!(tls_ev["host"], "tls-host");
    let plain = wait_events(&app, &admin, "q=line", 2).await;
    assert_eq!(plain.len(), 2, "both newline-framed messages");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Regression: syslog messages were held to the default skew (300 s) whatever
/// `[ingest] max_future_skew_secs` said. Two minutes ahead is within the default, beyond 60.
async fn syslog_messages_follow_the_configured_future_skew(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| {
        c.syslog.tcp = Some("127.0.0.1:0".into());
        c.ingest.max_future_skew_secs = 60;
    })
    .await
    else {
        return;
    };
    let admin = app.admin().await.access;
    let ahead = vigil_core::now() + chrono::Duration::seconds(120);
    let claimed = vigil_core::event::format_timestamp(ahead);
    let mut s = tokio::net::TcpStream::connect(app.syslog.tcp.unwrap())
        .await
        .unwrap();
    s.write_all(format!("<13>1 {claimed} skew-host app - - - skew-marker\n").as_bytes())
        .await
        .unwrap();
    s.shutdown().await.unwrap();
    let got = wait_events(&app, &admin, "q=skew-marker", 1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let doc = &got[0]["doc"];
    assert_eq!(doc["event"]["created_raw"], claimed.as_str(), "{doc}");
    assert!(
        doc["tags"]
            .as_array()
            .is_some_and(|t| t.contains(&json!("_timestamp_in_future"))),
        "{doc}"
    );
}

/// Regression: the per-event limit of `/ingest/events` (256 KiB) did not apply to Loki
/// pushes, which stored entries of any size.
async fn loki_entries_over_the_per_event_limit_are_refused(app: &TestApp) {
    let admin = app.admin().await.access;
    let key = ingest_key(app, &admin).await;
    let big = format!("huge-entry {}", "x".repeat(300 * 1024));
    let body = encode_push_protobuf(&[stream("limit-host", &["small-entry fits", &big])]);
    let r = TestApp::finish(
        push(app, &key)
            .header("content-type", "application/x-protobuf")
            .body(body),
    )
    .await;
    let e = r.err(400, "entry_too_large");
    assert!(
        e["message"].as_str().unwrap().starts_with("1 of 2 entries"),
        "{e}"
    );
    let got = events(app, &admin, "host=limit-host").await;
    assert_eq!(got.len(), 1, "the entry within the limit is stored");
    assert!(
        got[0]["message"].as_str().unwrap().contains("small-entry"),
        "{}",
        got[0]
    );
}
