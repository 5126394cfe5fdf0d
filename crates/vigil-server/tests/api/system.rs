//! Health, readiness, metrics, OpenAPI and Swagger UI, response headers, CORS and graceful
//! shutdown.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vigil_store::Backend;

use crate::helpers::{ADMIN_PW, TestApp, both, spawn_app, spawn_app_with};

both!(
    health_and_ready,
    metrics_are_prometheus_text,
    openapi_document_and_swagger_ui,
    security_headers_and_request_ids,
);
both!(@backend
    cors_allows_only_configured_origins,
    graceful_shutdown_finishes_in_flight_requests,
    shutdown_does_not_wait_past_the_grace_period,
    slow_request_times_out_with_json_503,
);

async fn health_and_ready(app: &TestApp) {
    let r = app.send(Method::GET, "/health", None, None).await;
    let b = r.ok(200);
    assert_eq!(b["status"], "ok");
    assert_eq!(b["version"], env!("CARGO_PKG_VERSION"));
    let r = app.send(Method::GET, "/ready", None, None).await;
    let b = r.ok(200);
    assert_eq!(b["status"], "ready");
    assert_eq!(b["database"], "ok");
    assert_eq!(b["backend"], app.backend.to_string());
    // Also under /api/v1.
    let r = app.send(Method::GET, "/api/v1/health", None, None).await;
    assert_eq!(r.ok(200)["status"], "ok");
    let r = app.send(Method::GET, "/api/v1/ready", None, None).await;
    assert_eq!(r.ok(200)["backend"], app.backend.to_string());
}

async fn metrics_are_prometheus_text(app: &TestApp) {
    let admin = app.admin().await;
    app.get("/api/v1/alerts", &admin.access).await.ok(200);
    app.alert(&admin.access, "counted", "critical").await;
    for path in ["/metrics", "/api/v1/metrics"] {
        let r = app.send(Method::GET, path, None, None).await;
        assert_eq!(r.status, 200, "{path}");
        let ct = r.header("content-type").unwrap();
        assert!(ct.starts_with("text/plain"), "{ct}");
        let text = &r.text;
        for needle in [
            "# TYPE api_request_duration_seconds histogram",
            "api_request_duration_seconds_bucket{",
            "api_request_duration_seconds_count{",
            "security_events_total",
            "alerts_created_total{",
            "auth_logins_total{",
        ] {
            assert!(text.contains(needle), "{path} lacks {needle:?}:\n{text}");
        }
        // The route label is the template, not the concrete path.
        let line = text
            .lines()
            .find(|l| {
                l.starts_with("api_request_duration_seconds_count{")
                    && l.contains("route=\"/api/v1/alerts\"")
                    && l.contains("method=\"GET\"")
                    && l.contains("status=\"200\"")
            })
            .unwrap_or_else(|| panic!("no series for GET /api/v1/alerts 200:\n{text}"));
        let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(n >= 1.0, "{line}");
        assert!(
            !text.contains(&format!("route=\"/api/v1/alerts/{}", uuid::Uuid::nil())),
            "raw ids must not become labels"
        );
    }
}

async fn openapi_document_and_swagger_ui(app: &TestApp) {
    let r = app
        .send(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    let doc = r.ok(200).clone();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "Vigil API");
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/alerts",
        "/alerts/{id}",
        "/alerts/{id}/status",
        "/alerts/{id}/ack",
        "/alerts/{id}/close",
        "/alerts/{id}/history",
        "/alerts/bulk/status",
        "/auth/login",
        "/auth/refresh",
        "/auth/logout",
        "/auth/me",
        "/auth/password",
        "/users",
        "/users/{id}",
        "/users/{id}/password",
        "/agents",
    ] {
        assert!(
            paths.contains_key(p),
            "OpenAPI lacks {p}: {:?}",
            paths.keys()
        );
    }
    assert!(paths["/alerts/{id}/status"]["patch"].is_object());
    assert!(paths["/alerts"]["get"].is_object() && paths["/alerts"]["post"].is_object());
    assert_eq!(doc["servers"][0]["url"], "/api/v1");
    // Regression: the Loki push route and /metrics were served but not documented. Loki's
    // path is outside /api/v1, so it names its own server.
    let loki = &doc["paths"]["/loki/api/v1/push"];
    assert!(loki["post"].is_object(), "{:?}", paths.keys());
    assert_eq!(loki["servers"][0]["url"], "/");
    assert!(loki["post"]["responses"]["413"].is_object(), "{loki}");
    assert!(paths["/metrics"]["get"].is_object(), "{:?}", paths.keys());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for schema in ["Alert", "AlertPage", "ErrorBody", "TokenResponse", "User"] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "schema {schema} missing"
        );
    }

    let r = app.send(Method::GET, "/api/v1/docs/", None, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(r.text.to_lowercase().contains("swagger"), "{}", r.text);
}

async fn security_headers_and_request_ids(app: &TestApp) {
    let admin = app.admin().await;
    let responses = [
        app.send(Method::GET, "/health", None, None).await,
        app.get("/api/v1/alerts", &admin.access).await,
        app.send(Method::GET, "/api/v1/alerts", None, None).await,
        app.send(Method::GET, "/api/v1/nope", None, None).await,
        app.post("/api/v1/alerts", &admin.access, &json!({})).await,
    ];
    let mut ids = std::collections::HashSet::new();
    for r in &responses {
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{r:?}");
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert!(r.header("content-security-policy").is_some());
        let rid = r.header("x-request-id").expect("x-request-id");
        uuid::Uuid::parse_str(rid).expect("generated request ids are UUIDs");
        assert!(ids.insert(rid.to_string()), "request ids are unique");
    }
    // A request id the client sends is kept.
    let r = TestApp::finish(
        app.client
            .get(app.url("/health"))
            .header("x-request-id", "trace-abc-123"),
    )
    .await;
    assert_eq!(r.header("x-request-id"), Some("trace-abc-123"));
    // Swagger UI gets a CSP that lets it load its own scripts, still no framing.
    let r = app.send(Method::GET, "/api/v1/docs/", None, None).await;
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    let csp = r.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    // No CORS headers when no origin is configured.
    for r in [
        TestApp::finish(
            app.client
                .get(app.url("/api/v1/alerts"))
                .bearer_auth(&admin.access)
                .header("origin", "http://allowed.example"),
        )
        .await,
        TestApp::finish(
            app.client
                .request(Method::OPTIONS, app.url("/api/v1/alerts"))
                .header("origin", "http://allowed.example")
                .header("access-control-request-method", "GET"),
        )
        .await,
    ] {
        for (k, _) in r.headers.iter() {
            assert!(
                !k.as_str().starts_with("access-control-"),
                "unexpected CORS header {k}"
            );
        }
    }
}

async fn preflight(app: &TestApp, origin: &str) -> crate::helpers::Resp {
    TestApp::finish(
        app.client
            .request(Method::OPTIONS, app.url("/api/v1/alerts"))
            .header("origin", origin)
            .header("access-control-request-method", "PATCH")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            ),
    )
    .await
}

async fn cors_allows_only_configured_origins(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| {
        c.server.cors_origins = vec![
            "http://allowed.example".into(),
            "https://app.example:8443/".into(),
        ];
    })
    .await
    else {
        return;
    };
    let r = preflight(&app, "http://allowed.example").await;
    assert!(r.status == 200 || r.status == 204, "{}", r.status);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://allowed.example")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    let methods = r
        .header("access-control-allow-methods")
        .unwrap()
        .to_ascii_uppercase();
    assert!(
        methods.contains("PATCH") && methods.contains("POST"),
        "{methods}"
    );
    let headers = r
        .header("access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        headers.contains("authorization") && headers.contains("content-type"),
        "{headers}"
    );
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    // The trailing slash in the configuration is ignored.
    let r = preflight(&app, "https://app.example:8443").await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example:8443")
    );

    for evil in [
        "http://evil.example",
        "http://allowed.example.evil.example",
        "https://allowed.example",
        "null",
    ] {
        let r = preflight(&app, evil).await;
        assert!(
            r.header("access-control-allow-origin").is_none(),
            "{evil} was allowed"
        );
    }

    // Actual requests: allowed origin is echoed, others not.
    let admin = app.admin().await;
    let r = TestApp::finish(
        app.client
            .get(app.url("/api/v1/alerts"))
            .bearer_auth(&admin.access)
            .header("origin", "http://allowed.example"),
    )
    .await;
    r.ok(200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://allowed.example")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert!(
        r.header("vary")
            .is_some_and(|v| v.to_ascii_lowercase().contains("origin"))
    );
    let r = TestApp::finish(
        app.client
            .get(app.url("/api/v1/alerts"))
            .bearer_auth(&admin.access)
            .header("origin", "http://evil.example"),
    )
    .await;
    r.ok(200);
    assert!(r.header("access-control-allow-origin").is_none());
    // Errors carry CORS headers too, so browsers can read them.
    let r = TestApp::finish(
        app.client
            .get(app.url("/api/v1/alerts"))
            .header("origin", "http://allowed.example"),
    )
    .await;
    r.err(401, "unauthorized");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://allowed.example")
    );
}

async fn graceful_shutdown_finishes_in_flight_requests(backend: Backend) {
    let Some(mut app) = spawn_app(backend).await else {
        return;
    };
    app.send(Method::GET, "/health", None, None).await.ok(200);
    let addr = format!("127.0.0.1:{}", app.port);

    // A request whose body has only partly arrived when shutdown starts.
    let body = json!({ "username": "admin", "password": ADMIN_PW }).to_string();
    let (first, rest) = body.split_at(10);
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(first.as_bytes()).await.unwrap();
    conn.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;

    let port = app.port;
    let stopped = tokio::spawn(async move { app.shutdown().await });

    // New connections are refused once the server stops accepting.
    let mut refused = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            refused = true;
            break;
        }
    }
    assert!(
        refused,
        "port {port} still accepts connections after shutdown"
    );
    assert!(
        !stopped.is_finished(),
        "server stopped before the in-flight request finished"
    );

    // The in-flight request still completes.
    conn.write_all(rest.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut buf))
        .await
        .expect("in-flight response within the grace period")
        .unwrap();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("access_token"), "{text}");

    let result = tokio::time::timeout(Duration::from_secs(10), stopped)
        .await
        .expect("run_until_stopped returns after the last request")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
    );
}

/// Opens a connection and sends a login request whose body stops after 10 bytes.
async fn half_sent_login(port: u16) -> tokio::net::TcpStream {
    let addr = format!("127.0.0.1:{port}");
    let body = json!({ "username": "admin", "password": ADMIN_PW }).to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&body.as_bytes()[..10]).await.unwrap();
    conn.flush().await.unwrap();
    conn
}

async fn shutdown_does_not_wait_past_the_grace_period(backend: Backend) {
    let Some(mut app) = spawn_app_with(backend, |c| c.server.shutdown_grace_secs = 1).await else {
        return;
    };
    // A client that never finishes its request.
    let _stuck = half_sent_login(app.port).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(10), app.shutdown())
        .await
        .expect("shutdown is bounded by the grace period");
    assert!(result.is_ok(), "{result:?}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "took {took:?}"
    );
}

async fn slow_request_times_out_with_json_503(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| c.server.request_timeout_secs = 1).await else {
        return;
    };
    // A body that trickles in too slowly (slowloris) is cut off by the request timeout.
    let mut conn = half_sent_login(app.port).await;
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // Read until the full JSON body has arrived (the server may keep the connection open).
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut chunk))
            .await
            .expect("the server answers a stalled request")
            .unwrap();
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if n == 0 || text.trim_end().ends_with('}') {
            break;
        }
    }
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&buf).to_string();
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("\"code\":\"timeout\""), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{text}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // The server is fine afterwards.
    app.send(Method::GET, "/health", None, None).await.ok(200);
}
