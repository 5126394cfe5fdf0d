//! The role matrix: every endpoint called as viewer, analyst, admin and without a token,
//! with the exact status each must get; refused writes must change nothing.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, both, id_of};

both!(
    role_matrix,
    roles_are_checked_against_the_token_not_the_body
);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Viewer,
    Analyst,
    Admin,
    Anonymous,
}

const WHO: [Who; 4] = [Who::Viewer, Who::Analyst, Who::Admin, Who::Anonymous];

/// Expected statuses as `[viewer, analyst, admin, anonymous]`.
struct Case {
    name: &'static str,
    method: Method,
    /// `{alert}` and `{user}` are replaced by a fresh target for each caller.
    path: &'static str,
    body: Option<Value>,
    expect: [u16; 4],
}

fn cases() -> Vec<Case> {
    let c = |name, method, path, body: Option<Value>, expect| Case {
        name,
        method,
        path,
        body,
        expect,
    };
    vec![
        c(
            "list alerts",
            Method::GET,
            "/api/v1/alerts",
            None,
            [200, 200, 200, 401],
        ),
        c(
            "get alert",
            Method::GET,
            "/api/v1/alerts/{alert}",
            None,
            [200, 200, 200, 401],
        ),
        c(
            "alert history",
            Method::GET,
            "/api/v1/alerts/{alert}/history",
            None,
            [200, 200, 200, 401],
        ),
        c(
            "create alert",
            Method::POST,
            "/api/v1/alerts",
            Some(json!({ "title": "rbac", "severity": "low" })),
            [403, 201, 201, 401],
        ),
        c(
            "create alert (alias)",
            Method::POST,
            "/api/alerts",
            Some(json!({ "title": "rbac alias", "severity": "low" })),
            [403, 201, 201, 401],
        ),
        c(
            "patch status",
            Method::PATCH,
            "/api/v1/alerts/{alert}/status",
            Some(json!({ "status": "in_progress" })),
            [403, 200, 200, 401],
        ),
        c(
            "patch severity",
            Method::PATCH,
            "/api/v1/alerts/{alert}/severity",
            Some(json!({ "severity": "critical" })),
            [403, 200, 200, 401],
        ),
        c(
            "patch assignee",
            Method::PATCH,
            "/api/v1/alerts/{alert}/assignee",
            Some(json!({ "assignee": "admin" })),
            [403, 200, 200, 401],
        ),
        c(
            "ack",
            Method::POST,
            "/api/v1/alerts/{alert}/ack",
            None,
            [403, 200, 200, 401],
        ),
        c(
            "close",
            Method::POST,
            "/api/v1/alerts/{alert}/close",
            Some(json!({ "resolution_notes": "rbac" })),
            [403, 200, 200, 401],
        ),
        c(
            "bulk status",
            Method::POST,
            "/api/v1/alerts/bulk/status",
            Some(json!({ "ids": ["{alert}"], "status": "closed" })),
            [403, 200, 200, 401],
        ),
        c(
            "list users",
            Method::GET,
            "/api/v1/users",
            None,
            [403, 403, 200, 401],
        ),
        c(
            "create user",
            Method::POST,
            "/api/v1/users",
            Some(
                json!({ "username": "{new_user}", "password": "a-long-enough-password", "role": "viewer" }),
            ),
            [403, 403, 201, 401],
        ),
        c(
            "get user",
            Method::GET,
            "/api/v1/users/{user}",
            None,
            [403, 403, 200, 401],
        ),
        c(
            "patch user",
            Method::PATCH,
            "/api/v1/users/{user}",
            Some(json!({ "email": "changed@example.com" })),
            [403, 403, 200, 401],
        ),
        c(
            "reset password",
            Method::POST,
            "/api/v1/users/{user}/password",
            Some(json!({ "password": "reset-by-the-admin-123" })),
            [403, 403, 204, 401],
        ),
        c(
            "list agents",
            Method::GET,
            "/api/v1/agents",
            None,
            [200, 200, 200, 401],
        ),
        c(
            "me",
            Method::GET,
            "/api/v1/auth/me",
            None,
            [200, 200, 200, 401],
        ),
    ]
}

fn fill(s: &str, alert: &str, user: &str, new_user: &str) -> String {
    s.replace("{alert}", alert)
        .replace("{user}", user)
        .replace("{new_user}", new_user)
}

async fn role_matrix(app: &TestApp) {
    let admin = app.admin().await;
    let viewer = app
        .user_session(&admin.access, "vic-viewer", "viewer")
        .await;
    let analyst = app
        .user_session(&admin.access, "ann-analyst", "analyst")
        .await;
    let cases = cases();
    let mut expected_alerts = 0u64;
    let mut failures = Vec::new();
    for who in WHO {
        let token = match who {
            Who::Viewer => Some(viewer.access.as_str()),
            Who::Analyst => Some(analyst.access.as_str()),
            Who::Admin => Some(admin.access.as_str()),
            Who::Anonymous => None,
        };
        let i = WHO.iter().position(|w| *w == who).unwrap();
        for (n, case) in cases.iter().enumerate() {
            // Fresh targets per call so every write meets an open alert and an untouched user.
            let alert = app
                .alert(&admin.access, &format!("target {who:?} {n}"), "medium")
                .await;
            expected_alerts += 1;
            let alert_id = id_of(&alert);
            let user_id = if case.path.contains("{user}") {
                app.create_user(&admin.access, &format!("target-{i}-{n}"), "viewer")
                    .await
                    .0
            } else {
                String::new()
            };
            let new_user = format!("new-{i}-{n}");
            let path = fill(case.path, &alert_id, &user_id, &new_user);
            let body = case.body.as_ref().map(|b| {
                serde_json::from_str::<Value>(&fill(&b.to_string(), &alert_id, &user_id, &new_user))
                    .unwrap()
            });
            let r = app
                .send(case.method.clone(), &path, token, body.as_ref())
                .await;
            let want = case.expect[i];
            if r.status != want {
                failures.push(format!(
                    "{} as {who:?}: got {} want {want}: {}",
                    case.name, r.status, r.text
                ));
                continue;
            }
            match want {
                401 => {
                    r.err(401, "unauthorized");
                }
                403 => {
                    let e = r.err(403, "forbidden");
                    let m = e["message"].as_str().unwrap();
                    assert!(m.contains("role"), "{m}");
                }
                201 if case.path.ends_with("alerts") => expected_alerts += 1,
                _ => {}
            }
            // A refused write changed nothing.
            if want == 401 || want == 403 {
                let now = app
                    .get(&format!("/api/v1/alerts/{alert_id}"), &admin.access)
                    .await
                    .ok(200)
                    .clone();
                assert_eq!(now, alert, "{} as {who:?} changed the alert", case.name);
                if !user_id.is_empty() {
                    let u = app
                        .get(&format!("/api/v1/users/{user_id}"), &admin.access)
                        .await
                        .ok(200)
                        .clone();
                    assert!(
                        u["email"].is_null(),
                        "{} as {who:?} changed the user",
                        case.name
                    );
                    // The password was not reset: the original one still works.
                    if case.name == "reset password" {
                        app.login_ok(
                            &format!("target-{i}-{n}"),
                            &format!("target-{i}-{n}-password-1234"),
                        )
                        .await;
                    }
                }
                if case.name == "create user" {
                    let r = app.login(&new_user, "a-long-enough-password").await;
                    r.err(401, "invalid_credentials");
                }
            } else if case.name == "reset password" {
                app.login_ok(&format!("target-{i}-{n}"), "reset-by-the-admin-123")
                    .await;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "RBAC mismatches:\n{}",
        failures.join("\n")
    );
    assert_eq!(app.alert_total(&admin.access).await, expected_alerts);
}

/// A viewer cannot gain rights by naming a role anywhere in a request.
async fn roles_are_checked_against_the_token_not_the_body(app: &TestApp) {
    let admin = app.admin().await;
    let (viewer_id, pw) = app.create_user(&admin.access, "vivian", "viewer").await;
    let pw = pw.as_str();
    let viewer = app.login_ok("vivian", pw).await;
    // Promote self: 403, and still a viewer.
    app.patch(
        &format!("/api/v1/users/{viewer_id}"),
        &viewer.access,
        &json!({ "role": "admin" }),
    )
    .await
    .err(403, "forbidden");
    let me = app
        .get("/api/v1/auth/me", &viewer.access)
        .await
        .ok(200)
        .clone();
    assert_eq!(me["role"], "viewer");
    // An admin promotion takes effect only with a new login (old token revoked).
    app.patch(
        &format!("/api/v1/users/{viewer_id}"),
        &admin.access,
        &json!({ "role": "analyst" }),
    )
    .await
    .ok(200);
    app.alert(&admin.access, "exists", "low").await;
    app.post(
        "/api/v1/alerts",
        &viewer.access,
        &json!({ "title": "x", "severity": "low" }),
    )
    .await
    .err(401, "session_revoked");
    let promoted = app.login_ok("vivian", pw).await;
    app.post(
        "/api/v1/alerts",
        &promoted.access,
        &json!({ "title": "x", "severity": "low" }),
    )
    .await
    .ok(201);
    app.get("/api/v1/users", &promoted.access)
        .await
        .err(403, "forbidden");
}
