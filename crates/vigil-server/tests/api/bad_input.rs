//! Hostile and sloppy input: every one gets a 4xx JSON error (never a 500), and a refused
//! write stores nothing.

use reqwest::Method;
use serde_json::json;
use vigil_store::Backend;

use crate::helpers::{TestApp, assert_error_shape, both, id_of, spawn_app_with};

both!(
    malformed_and_mistyped_alert_bodies,
    content_type_is_required,
    invalid_list_queries,
    invalid_path_parameters,
    validation_failures_are_422,
    unknown_routes_and_methods_are_json,
    login_and_status_bodies,
);
both!(wrong_json_type_in_enum_field_is_422);
both!(@backend oversized_body_is_413);
both!(every_413_on_ingest_and_loki_is_json);

/// Sends a raw body with an explicit content type (or none).
async fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    content_type: Option<&str>,
    body: &str,
) -> crate::helpers::Resp {
    let mut rb = app
        .client
        .request(method, app.url(path))
        .bearer_auth(token)
        .body(body.to_string());
    if let Some(ct) = content_type {
        rb = rb.header("content-type", ct);
    }
    TestApp::finish(rb).await
}

async fn malformed_and_mistyped_alert_bodies(app: &TestApp) {
    let admin = app.admin().await;
    let t = admin.access.as_str();
    app.alert(t, "the only alert", "low").await;
    let json_ct = Some("application/json");
    for (body, status, code) in [
        ("{\"title\": ", 400, "malformed_json"),
        ("{title: 'x'}", 400, "malformed_json"),
        ("not json at all", 400, "malformed_json"),
        ("", 400, "malformed_json"),
        (
            "{\"title\":\"x\",\"severity\":\"low\"} trailing",
            400,
            "malformed_json",
        ),
        // Wrong types and shapes.
        (
            "{\"title\": 5, \"severity\": \"high\"}",
            422,
            "invalid_body",
        ),
        (
            "{\"title\": \"x\", \"severity\": \"high\", \"tags\": \"ssh\"}",
            422,
            "invalid_body",
        ),
        (
            "{\"title\": \"x\", \"severity\": \"high\", \"confidence_score\": \"0.5\"}",
            422,
            "invalid_body",
        ),
        (
            "{\"title\": \"x\", \"severity\": \"high\", \"timestamp\": \"yesterday\"}",
            422,
            "invalid_body",
        ),
        (
            "{\"title\": \"x\", \"severity\": \"high\", \"observables\": [{\"type\": \"ip\"}]}",
            422,
            "invalid_body",
        ),
        (
            "[{\"title\": \"x\", \"severity\": \"high\"}]",
            422,
            "invalid_body",
        ),
        ("null", 422, "invalid_body"),
        // Missing required fields.
        ("{\"severity\": \"high\"}", 422, "invalid_body"),
        ("{\"title\": \"x\"}", 422, "invalid_body"),
        // Unknown enum values.
        (
            "{\"title\": \"x\", \"severity\": \"urgent\"}",
            422,
            "invalid_body",
        ),
        (
            "{\"title\": \"x\", \"severity\": \"high\", \"source\": \"email\"}",
            422,
            "invalid_body",
        ),
        (
            "{\"title\": \"x\", \"severity\": \"high\", \"observables\": [{\"type\": \"ipv9\", \"value\": \"1\"}]}",
            422,
            "invalid_body",
        ),
        // Unknown fields.
        (
            "{\"title\": \"x\", \"severity\": \"high\", \"status\": \"closed\"}",
            422,
            "invalid_body",
        ),
        (
            "{\"title\": \"x\", \"severity\": \"high\", \"org_id\": \"00000000-0000-0000-0000-000000000000\"}",
            422,
            "invalid_body",
        ),
    ] {
        let r = raw(app, Method::POST, "/api/v1/alerts", t, json_ct, body).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
        r.err(status, code);
    }
    let e = raw(
        app,
        Method::POST,
        "/api/v1/alerts",
        t,
        json_ct,
        "{\"title\": \"x\", \"severity\": \"urgent\"}",
    )
    .await;
    let msg = e.body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("urgent"),
        "the message names the bad value: {msg}"
    );
    assert_eq!(app.alert_total(t).await, 1, "nothing was written");
}

/// Valid JSON with a number, boolean, null or array where an enum (severity, source,
/// observable type, role, close status) is expected is a type error like any other: 422
/// `invalid_body`, not 400 `malformed_json`.
async fn wrong_json_type_in_enum_field_is_422(app: &TestApp) {
    let admin = app.admin().await;
    let t = admin.access.as_str();
    let a = id_of(&app.alert(t, "the only alert", "low").await);
    let json_ct = Some("application/json");
    let mut failures = Vec::new();
    for (path, body) in [
        (
            "/api/v1/alerts".to_string(),
            r#"{"title": "x", "severity": 3}"#,
        ),
        (
            "/api/v1/alerts".to_string(),
            r#"{"title": "x", "severity": null}"#,
        ),
        (
            "/api/v1/alerts".to_string(),
            r#"{"title": "x", "severity": true}"#,
        ),
        (
            "/api/v1/alerts".to_string(),
            r#"{"title": "x", "severity": ["high"]}"#,
        ),
        (
            "/api/v1/alerts".to_string(),
            r#"{"title": "x", "severity": "high", "source": 1}"#,
        ),
        (
            "/api/v1/alerts".to_string(),
            r#"{"title": "x", "severity": "high", "observables": [{"type": 5, "value": "v"}]}"#,
        ),
        (
            "/api/v1/users".to_string(),
            r#"{"username": "bob", "password": "a-good-password-1", "role": 2}"#,
        ),
        (format!("/api/v1/alerts/{a}/close"), r#"{"status": 1}"#),
    ] {
        let r = raw(app, Method::POST, &path, t, json_ct, body).await;
        if r.status != 422 || r.body["error"]["code"] != "invalid_body" {
            failures.push(format!("{path} {body} -> {} {}", r.status, r.text));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(app.alert_total(t).await, 1);
}

async fn content_type_is_required(app: &TestApp) {
    let admin = app.admin().await;
    let t = admin.access.as_str();
    let body = r#"{"title": "x", "severity": "low"}"#;
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
    ] {
        let r = raw(app, Method::POST, "/api/v1/alerts", t, ct, body).await;
        r.err(415, "unsupported_media_type");
    }
    // application/json with parameters, and +json types, are fine.
    let r = raw(
        app,
        Method::POST,
        "/api/v1/alerts",
        t,
        Some("application/json; charset=utf-8"),
        body,
    )
    .await;
    r.ok(201);
    let a = id_of(&r.body);
    // Other JSON endpoints check it too.
    let r = raw(
        app,
        Method::PATCH,
        &format!("/api/v1/alerts/{a}/status"),
        t,
        None,
        r#"{"status": "closed"}"#,
    )
    .await;
    r.err(415, "unsupported_media_type");
    let r = raw(
        app,
        Method::POST,
        "/api/v1/alerts/bulk/status",
        t,
        Some("text/plain"),
        "{}",
    )
    .await;
    r.err(415, "unsupported_media_type");
    let r = raw(app, Method::POST, "/api/v1/users", t, None, "{}").await;
    r.err(415, "unsupported_media_type");
    let r = TestApp::finish(
        app.client
            .post(app.url("/api/v1/auth/login"))
            .header("content-type", "text/plain")
            .body(r#"{"username": "admin", "password": "x"}"#),
    )
    .await;
    r.err(415, "unsupported_media_type");
    assert_eq!(app.alert_total(t).await, 1);
    let got = app
        .get(&format!("/api/v1/alerts/{a}"), t)
        .await
        .ok(200)
        .clone();
    assert_eq!(got["status"], "open");
}

async fn invalid_list_queries(app: &TestApp) {
    let admin = app.admin().await;
    let t = admin.access.as_str();
    app.alert(t, "one", "low").await;
    let long_q = "x".repeat(257);
    let queries = [
        "limit=0".to_string(),
        "limit=1001".into(),
        "limit=5000".into(),
        "limit=-1".into(),
        "limit=ten".into(),
        "limit=".into(),
        "skip=-1".into(),
        "skip=abc".into(),
        "skip=1.5".into(),
        "offset=-3".into(),
        "cursor=garbage".into(),
        "cursor=".into(),
        "cursor=e30".into(), // base64 of "{}"
        "cursor=%F0%9F%92%A5".into(),
        "status=done".into(),
        "status=open,done".into(),
        "severity=urgent".into(),
        "severity=high&severity=urgent".into(),
        "source=email".into(),
        "technique=T1".into(),
        "technique=1059".into(),
        "since=yesterday".into(),
        "until=2026-13-01T00:00:00Z".into(),
        "since=2026-01-01".into(),
        "sort=color".into(),
        "sort=-".into(),
        "order=sideways".into(),
        format!("q={long_q}"),
        "foo=1".into(),
        "page=2".into(),
        "LIMIT=5".into(),
    ];
    for q in &queries {
        let r = app.get(&format!("/api/v1/alerts?{q}"), t).await;
        let e = r.err(400, "invalid_query");
        assert!(!e["message"].as_str().unwrap().is_empty(), "{q}");
    }
    let r = app.get("/api/v1/alerts?foo=1", t).await;
    let msg = r.body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("foo"), "unknown parameter is named: {msg}");
    // Valid edge values still work.
    for q in [
        "limit=1",
        "limit=1000",
        "skip=0",
        "q=",
        "status=open,,closed",
        "technique=t1110",
    ] {
        app.get(&format!("/api/v1/alerts?{q}"), t).await.ok(200);
    }
}

async fn invalid_path_parameters(app: &TestApp) {
    let admin = app.admin().await;
    let t = admin.access.as_str();
    let a = id_of(&app.alert(t, "one", "low").await);
    for (method, path, body) in [
        (Method::GET, "/api/v1/alerts/not-a-uuid", None),
        (Method::GET, "/api/v1/alerts/123", None),
        (
            Method::GET,
            "/api/v1/alerts/00000000-0000-0000-0000-00000000000g",
            None,
        ),
        (Method::GET, "/api/v1/alerts/not-a-uuid/history", None),
        (
            Method::PATCH,
            "/api/v1/alerts/xyz/status",
            Some(json!({ "status": "closed" })),
        ),
        (Method::POST, "/api/v1/alerts/xyz/ack", None),
        (Method::POST, "/api/v1/alerts/xyz/close", Some(json!({}))),
        (Method::GET, "/api/v1/users/xyz", None),
        (
            Method::PATCH,
            "/api/v1/users/xyz",
            Some(json!({ "email": "a@b.c" })),
        ),
        (
            Method::POST,
            "/api/v1/users/xyz/password",
            Some(json!({ "password": "a-long-password-1" })),
        ),
    ] {
        let r = app.send(method.clone(), path, Some(t), body.as_ref()).await;
        assert_eq!(r.status, 400, "{method} {path}: {}", r.text);
        r.err(400, "invalid_path");
    }
    let got = app
        .get(&format!("/api/v1/alerts/{a}"), t)
        .await
        .ok(200)
        .clone();
    assert_eq!(got["status"], "open");
    // A UUID in upper case or without dashes is still the same id.
    let upper = a.to_uppercase();
    app.get(&format!("/api/v1/alerts/{upper}"), t).await.ok(200);
}

async fn validation_failures_are_422(app: &TestApp) {
    let admin = app.admin().await;
    let t = admin.access.as_str();
    app.alert(t, "the only alert", "low").await;
    let base = || json!({ "title": "x", "severity": "high" });
    let with = |k: &str, v: serde_json::Value| {
        let mut b = base();
        b[k] = v;
        b
    };
    let cases = [
        with("confidence_score", json!(2.0)),
        with("confidence_score", json!(-0.1)),
        with("title", json!("   ")),
        with("title", json!("")),
        with("title", json!("t".repeat(513))),
        with("description", json!("d".repeat(16 * 1024 + 1))),
        with("attack_technique_id", json!("bad")),
        with("attack_technique_id", json!("T1059.01")),
        with("alert_id", json!("has space")),
        with("alert_id", json!("")),
        with("alert_id", json!("a".repeat(129))),
        with("alert_id", json!("semi;colon")),
        with("metadata", json!([1, 2])),
        with("metadata", json!("string")),
        with("tags", json!(vec!["t"; 65])),
        with("tags", json!(["a\u{0}b"])),
        with("agent_id", json!("")),
        with("event_type", json!("")),
        with("observables", json!([{ "type": "ip", "value": "" }])),
    ];
    for body in cases {
        let r = app.post("/api/v1/alerts", t, &body).await;
        assert_eq!(r.status, 422, "{body}: {}", r.text);
        r.err(422, "validation_failed");
    }
    // Boundaries are accepted.
    app.create_alert(t, with("confidence_score", json!(1.0)))
        .await;
    app.create_alert(t, with("confidence_score", json!(0.0)))
        .await;
    app.create_alert(t, with("title", json!("t".repeat(512))))
        .await;
    assert_eq!(
        app.alert_total(t).await,
        4,
        "only the valid alerts were written"
    );
}

async fn unknown_routes_and_methods_are_json(app: &TestApp) {
    let admin = app.admin().await;
    let t = admin.access.as_str();
    for path in [
        "/api/v1/nope",
        "/nope",
        "/api/v2/alerts",
        "/api/v1/alerts/x/y/z",
        "/api/v1/",
        "/",
    ] {
        let r = app.send(Method::GET, path, Some(t), None).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text);
        r.err(404, "not_found");
        // Unauthenticated too: a missing route is 404, not 401.
        let r = app.send(Method::GET, path, None, None).await;
        r.err(404, "not_found");
    }
    let id = uuid::Uuid::new_v4();
    for (method, path) in [
        (Method::DELETE, "/api/v1/alerts".to_string()),
        (Method::PUT, "/api/v1/alerts".to_string()),
        (Method::DELETE, format!("/api/v1/alerts/{id}")),
        (Method::PUT, format!("/api/v1/alerts/{id}/status")),
        (Method::GET, format!("/api/v1/alerts/{id}/ack")),
        (Method::GET, "/api/v1/alerts/bulk/status".to_string()),
        (Method::GET, "/api/alerts".to_string()),
        (Method::GET, "/api/v1/auth/login".to_string()),
        (Method::POST, "/health".to_string()),
        (Method::POST, "/metrics".to_string()),
        (Method::DELETE, "/api/v1/users".to_string()),
    ] {
        let r = app.send(method.clone(), &path, Some(t), None).await;
        assert_eq!(r.status, 405, "{method} {path}: {}", r.text);
        r.err(405, "method_not_allowed");
    }
}

async fn login_and_status_bodies(app: &TestApp) {
    let admin = app.admin().await;
    let t = admin.access.as_str();
    let a = id_of(&app.alert(t, "one", "low").await);
    let json_ct = Some("application/json");
    // Login.
    for (body, status, code) in [
        ("{\"username\": ", 400, "malformed_json"),
        ("{\"username\": \"admin\"}", 422, "invalid_body"),
        ("{\"username\": 1, \"password\": 2}", 422, "invalid_body"),
        ("[]", 422, "invalid_body"),
    ] {
        let r = TestApp::finish(
            app.client
                .post(app.url("/api/v1/auth/login"))
                .header("content-type", "application/json")
                .body(body),
        )
        .await;
        r.err(status, code);
    }
    // Very long credentials are an ordinary 401.
    let r = app.login(&"u".repeat(10_000), "p").await;
    r.err(401, "invalid_credentials");
    let r = app.login("admin", &"p".repeat(100_000)).await;
    r.err(401, "invalid_credentials");

    // Status bodies.
    let path = format!("/api/v1/alerts/{a}/status");
    let r = raw(app, Method::PATCH, &path, t, json_ct, "{\"status\": ").await;
    r.err(400, "malformed_json");
    let r = raw(app, Method::PATCH, &path, t, json_ct, "\"closed\"").await;
    r.err(400, "invalid_body");
    let close = format!("/api/v1/alerts/{a}/close");
    let r = raw(app, Method::POST, &close, t, json_ct, "").await;
    r.err(400, "malformed_json");
    let r = raw(
        app,
        Method::POST,
        &close,
        t,
        json_ct,
        "{\"resolution_notes\": 1}",
    )
    .await;
    r.err(422, "invalid_body");
    let r = raw(
        app,
        Method::POST,
        "/api/v1/alerts/bulk/status",
        t,
        json_ct,
        "{\"ids\": [",
    )
    .await;
    r.err(400, "malformed_json");
    let got = app
        .get(&format!("/api/v1/alerts/{a}"), t)
        .await
        .ok(200)
        .clone();
    assert_eq!(got["status"], "open");
    // Non-ASCII and control characters in text are stored as given, not a 500.
    let weird = app
        .create_alert(
            t,
            json!({ "title": "Ünïcödé 🚨 ' OR 1=1 --", "description": "line1\nline2\t\"q\"", "severity": "low", "tags": ["日本"] }),
        )
        .await;
    assert_eq!(weird["title"], "Ünïcödé 🚨 ' OR 1=1 --");
    let page = app.get("/api/v1/alerts?tag=%E6%97%A5%E6%9C%AC", t).await;
    assert_eq!(page.ok(200)["total"], 1);
    let page = app.get("/api/v1/alerts?q=%27%20OR%201%3D1", t).await;
    assert_eq!(page.ok(200)["total"], 1);
}

async fn oversized_body_is_413(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| c.server.body_limit_bytes = 4096).await else {
        return;
    };
    let admin = app.admin().await;
    let t = admin.access.as_str();
    app.alert(t, "small", "low").await;
    let big = json!({ "title": "big", "severity": "low", "description": "x".repeat(10 * 1024) });
    let r = app.post("/api/v1/alerts", t, &big).await;
    r.err(413, "payload_too_large");
    // Just under the limit is fine.
    let fits = json!({ "title": "fits", "severity": "low", "description": "x".repeat(3500) });
    app.post("/api/v1/alerts", t, &fits).await.ok(201);
    // Other endpoints share the limit.
    let r = app
        .post(
            "/api/v1/alerts/bulk/status",
            t,
            &json!({ "ids": vec![uuid::Uuid::new_v4(); 200], "status": "closed" }),
        )
        .await;
    r.err(413, "payload_too_large");
    let r = app.login("admin", &"p".repeat(10 * 1024)).await;
    assert_eq!(r.status, 413, "{}", r.text);
    assert_error_shape(&r);
    assert_eq!(app.alert_total(t).await, 2);
}

/// Regression: ingest and the Loki push answered a body over the route's limit with axum's
/// `text/plain` "Failed to buffer the request body".
async fn every_413_on_ingest_and_loki_is_json(app: &TestApp) {
    use std::io::Write;
    let admin = app.admin().await;
    let key = app
        .post(
            "/api/v1/api-keys",
            &admin.access,
            &json!({"name": "shipper", "scopes": ["ingest"]}),
        )
        .await
        .ok(201)["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let over_wire_limit = vec![b' '; 16 * 1024 * 1024 + 1];
    // 64 MiB + 1 of JSON whitespace: tiny on the wire, over the limit once decompressed.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for _ in 0..64 {
        gz.write_all(&vec![b' '; 1024 * 1024]).unwrap();
    }
    gz.write_all(b" ").unwrap();
    let bomb = gz.finish().unwrap();
    for path in ["/api/v1/ingest/events", "/loki/api/v1/push"] {
        for (what, body, gzip) in [
            ("wire", over_wire_limit.clone(), false),
            ("gzip", bomb.clone(), true),
        ] {
            let mut rb = app
                .client
                .post(app.url(path))
                .bearer_auth(&key)
                .header("content-type", "application/json")
                .body(body);
            if gzip {
                rb = rb.header("content-encoding", "gzip");
            }
            let r = TestApp::finish(rb).await;
            assert_eq!(r.status, 413, "{path} {what}: {}", r.text);
            assert!(
                r.header("content-type")
                    .is_some_and(|c| c.starts_with("application/json")),
                "{path} {what}: {:?}",
                r.header("content-type")
            );
            // Over the body limit, or (a decompression bomb) over the ingest memory budget
            // first: either way a JSON error with its code.
            assert_error_shape(&r);
            let code = r.body["error"]["code"].as_str().unwrap_or_default();
            assert!(
                code == "payload_too_large" || code == "batch_too_large",
                "{path} {what}: {}",
                r.text
            );
        }
    }
}
