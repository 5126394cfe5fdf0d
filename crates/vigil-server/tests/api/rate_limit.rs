//! Per-IP token buckets: the strict one on login/refresh and the general one on the API.

use reqwest::Method;
use serde_json::json;
use vigil_store::Backend;

use crate::helpers::{ADMIN_PW, TestApp, both, spawn_app_with};

both!(@backend
    login_burst_then_429_with_retry_after,
    api_burst_then_429,
    disabled_rate_limit_never_429s,
    forwarded_for_is_used_only_when_trusted,
);
both!(@backend spoofed_forwarded_for_cannot_evade_the_login_limit);

#[track_caller]
fn assert_rate_limited(r: &crate::helpers::Resp, max_wait: u64) {
    let e = r.err(429, "rate_limited");
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After header")
        .parse()
        .expect("Retry-After is whole seconds");
    assert!((1..=max_wait).contains(&retry), "Retry-After {retry}");
    assert!(
        e["message"].as_str().unwrap().contains(&retry.to_string()),
        "{e}"
    );
}

async fn login_burst_then_429_with_retry_after(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| {
        c.rate_limit.enabled = true;
        c.rate_limit.login_burst = 3;
        c.rate_limit.login_per_minute = 1.0;
        c.rate_limit.requests_per_second = 1000.0;
        c.rate_limit.burst = 1000;
    })
    .await
    else {
        return;
    };
    // Three attempts pass (right or wrong password alike) ...
    let s = app.login_ok("admin", ADMIN_PW).await;
    app.login("admin", "wrong-password-1")
        .await
        .err(401, "invalid_credentials");
    app.login("nobody", "wrong-password-1")
        .await
        .err(401, "invalid_credentials");
    // ... the fourth is refused before the password is even checked.
    let r = app.login("admin", ADMIN_PW).await;
    assert_rate_limited(&r, 60);
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(wait >= 50, "one attempt per minute: wait {wait}");
    // X-Forwarded-For is not trusted by default: it cannot buy a fresh bucket.
    let r = TestApp::finish(
        app.client
            .post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", "10.9.9.9")
            .json(&json!({ "username": "admin", "password": ADMIN_PW })),
    )
    .await;
    assert_rate_limited(&r, 60);
    // The OAuth2 form and refresh share the login bucket.
    let r = TestApp::finish(app.client.post(app.url("/api/v1/auth/login")).form(&[
        ("grant_type", "password"),
        ("username", "admin"),
        ("password", ADMIN_PW),
    ]))
    .await;
    assert_rate_limited(&r, 60);
    let r = app
        .send(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(&json!({ "refresh_token": s.refresh })),
        )
        .await;
    assert_rate_limited(&r, 60);
    // Other API calls are not affected by the login limit.
    app.get("/api/v1/alerts", &s.access).await.ok(200);
    // The refused refresh was not a rotation or a reuse: the session is still valid.
    app.get("/api/v1/auth/me", &s.access).await.ok(200);
}

async fn api_burst_then_429(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| {
        c.rate_limit.enabled = true;
        c.rate_limit.requests_per_second = 0.1;
        c.rate_limit.burst = 5;
        c.rate_limit.login_per_minute = 600.0;
        c.rate_limit.login_burst = 100;
    })
    .await
    else {
        return;
    };
    // Unauthenticated requests count too (the limiter runs before authentication).
    for i in 0..5 {
        let r = app.send(Method::GET, "/api/v1/agents", None, None).await;
        assert_eq!(r.status, 401, "request {i}: {}", r.text);
    }
    let r = app.send(Method::GET, "/api/v1/agents", None, None).await;
    assert_rate_limited(&r, 10);
    // Every API path shares the bucket, the original alias included.
    let r = app
        .send(
            Method::POST,
            "/api/alerts",
            None,
            Some(&json!({ "title": "x", "severity": "low" })),
        )
        .await;
    assert_rate_limited(&r, 10);
    let r = app.login("admin", ADMIN_PW).await;
    assert_rate_limited(&r, 10);
    // Health, readiness and metrics are outside /api and never limited.
    for path in ["/health", "/ready", "/metrics"] {
        let r = app.send(Method::GET, path, None, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
    }
    // 429s carry the usual security headers.
    let r = app.send(Method::GET, "/api/v1/agents", None, None).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert!(r.header("x-request-id").is_some());
}

async fn disabled_rate_limit_never_429s(backend: Backend) {
    // The default test server has rate limiting off even with tiny limits configured.
    let Some(app) = spawn_app_with(backend, |c| {
        c.rate_limit.enabled = false;
        c.rate_limit.requests_per_second = 0.001;
        c.rate_limit.burst = 1;
        c.rate_limit.login_burst = 1;
    })
    .await
    else {
        return;
    };
    app.login_ok("admin", ADMIN_PW).await;
    let s = app.login_ok("admin", ADMIN_PW).await;
    for _ in 0..10 {
        app.get("/api/v1/alerts", &s.access).await.ok(200);
    }
}

async fn forwarded_for_is_used_only_when_trusted(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| {
        c.rate_limit.enabled = true;
        c.rate_limit.login_burst = 2;
        c.rate_limit.login_per_minute = 1.0;
        c.server.trust_forwarded_for = true;
    })
    .await
    else {
        return;
    };
    let login_from = |ip: &'static str| {
        TestApp::finish(
            app.client
                .post(app.url("/api/v1/auth/login"))
                .header("x-forwarded-for", ip)
                .json(&json!({ "username": "admin", "password": "wrong-password-1" })),
        )
    };
    login_from("10.0.0.1").await.err(401, "invalid_credentials");
    login_from("10.0.0.1").await.err(401, "invalid_credentials");
    assert_rate_limited(&login_from("10.0.0.1").await, 60);
    // Another client, and the proxy itself (no header), are unaffected.
    login_from("10.0.0.2").await.err(401, "invalid_credentials");
    app.login_ok("admin", ADMIN_PW).await;
}

/// Behind a reverse proxy that appends the peer address (nginx's
/// `$proxy_add_x_forwarded_for`, most load balancers), everything left of the last hop is
/// whatever the client sent. Rotating a made-up first hop must not buy fresh buckets.
async fn spoofed_forwarded_for_cannot_evade_the_login_limit(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| {
        c.rate_limit.enabled = true;
        c.rate_limit.login_burst = 2;
        c.rate_limit.login_per_minute = 1.0;
        c.server.trust_forwarded_for = true;
    })
    .await
    else {
        return;
    };
    let mut statuses = Vec::new();
    for i in 1..=4 {
        // The client sent "10.0.0.i"; the proxy appended the real client 203.0.113.7.
        let r = TestApp::finish(
            app.client
                .post(app.url("/api/v1/auth/login"))
                .header("x-forwarded-for", format!("10.0.0.{i}, 203.0.113.7"))
                .json(&json!({ "username": "admin", "password": "wrong-password-1" })),
        )
        .await;
        statuses.push(r.status);
    }
    assert_eq!(
        statuses,
        vec![401, 401, 429, 429],
        "one real client, one bucket"
    );
}
