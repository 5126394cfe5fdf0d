//! User management by admins: create, validate, update, self-protection, session
//! revocation on role change and password reset.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{ADMIN_PW, TestApp, both, id_of};

both!(
    admin_creates_users_and_input_is_validated,
    admin_updates_role_email_and_disabled,
    admin_cannot_demote_or_disable_self,
    role_change_ends_that_users_sessions,
    password_reset_ends_sessions_and_sets_the_password,
);

async fn admin_creates_users_and_input_is_validated(app: &TestApp) {
    let admin = app.admin().await;
    let r = app
        .post(
            "/api/v1/users",
            &admin.access,
            &json!({ "username": "alice.b@corp", "password": "correct horse battery", "role": "analyst", "email": "alice@corp.example" }),
        )
        .await;
    let u = r.ok(201).clone();
    assert_eq!(u["username"], "alice.b@corp");
    assert_eq!(u["role"], "analyst");
    assert_eq!(u["email"], "alice@corp.example");
    assert_eq!(u["disabled"], false);
    assert!(u["last_login_at"].is_null());
    assert_eq!(
        u["org_id"],
        app.get("/api/v1/auth/me", &admin.access).await.ok(200)["org_id"]
    );
    assert!(
        !u.as_object()
            .unwrap()
            .keys()
            .any(|k| k.contains("password")),
        "{u}"
    );
    // The new user can log in.
    let s = app.login_ok("alice.b@corp", "correct horse battery").await;
    assert_eq!(s.user_id, id_of(&u));

    let bad = [
        // duplicate username
        (
            json!({ "username": "alice.b@corp", "password": "another-password-1", "role": "viewer" }),
            409,
            "conflict",
        ),
        (
            json!({ "username": "admin", "password": "another-password-1", "role": "viewer" }),
            409,
            "conflict",
        ),
        // weak passwords
        (
            json!({ "username": "bob", "password": "short", "role": "viewer" }),
            422,
            "validation_failed",
        ),
        (
            json!({ "username": "bob", "password": "elevenchars", "role": "viewer" }),
            422,
            "validation_failed",
        ),
        (
            json!({ "username": "bob", "password": "", "role": "viewer" }),
            422,
            "validation_failed",
        ),
        // bad usernames
        (
            json!({ "username": "b b", "password": "a-good-password-1", "role": "viewer" }),
            422,
            "validation_failed",
        ),
        (
            json!({ "username": "bo", "password": "a-good-password-1", "role": "viewer" }),
            422,
            "validation_failed",
        ),
        (
            json!({ "username": "x".repeat(65), "password": "a-good-password-1", "role": "viewer" }),
            422,
            "validation_failed",
        ),
        (
            json!({ "username": "bob;drop", "password": "a-good-password-1", "role": "viewer" }),
            422,
            "validation_failed",
        ),
        // roles and shape
        (
            json!({ "username": "bob", "password": "a-good-password-1", "role": "superuser" }),
            422,
            "invalid_body",
        ),
        (
            json!({ "username": "bob", "password": "a-good-password-1" }),
            422,
            "invalid_body",
        ),
        (
            json!({ "username": "bob", "password": "a-good-password-1", "role": "viewer", "is_admin": true }),
            422,
            "invalid_body",
        ),
        (
            json!({ "username": "bob", "password": 123456789012_i64, "role": "viewer" }),
            422,
            "invalid_body",
        ),
        (
            json!({ "username": "bob", "password": "a-good-password-1", "role": "viewer", "email": "not-an-email" }),
            422,
            "validation_failed",
        ),
    ];
    for (body, status, code) in bad {
        let r = app.post("/api/v1/users", &admin.access, &body).await;
        r.err(status, code);
    }
    // None of those created anyone.
    let list = app
        .get("/api/v1/users", &admin.access)
        .await
        .ok(200)
        .clone();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["admin", "alice.b@corp"]);
    app.login("bob", "a-good-password-1")
        .await
        .err(401, "invalid_credentials");

    // Get one; unknown ids are 404.
    let got = app
        .get(&format!("/api/v1/users/{}", id_of(&u)), &admin.access)
        .await
        .ok(200)
        .clone();
    assert_eq!(got["username"], "alice.b@corp");
    assert!(got["last_login_at"].is_string(), "login was recorded");
    let unknown = uuid::Uuid::new_v4();
    app.get(&format!("/api/v1/users/{unknown}"), &admin.access)
        .await
        .err(404, "not_found");
    app.patch(
        &format!("/api/v1/users/{unknown}"),
        &admin.access,
        &json!({ "email": "x@y.z" }),
    )
    .await
    .err(404, "not_found");
    app.post(
        &format!("/api/v1/users/{unknown}/password"),
        &admin.access,
        &json!({ "password": "a-good-password-1" }),
    )
    .await
    .err(404, "not_found");
}

async fn admin_updates_role_email_and_disabled(app: &TestApp) {
    let admin = app.admin().await;
    let (id, pw) = app.create_user(&admin.access, "eddy", "viewer").await;
    let ed = app.login_ok("eddy", &pw).await;
    let path = format!("/api/v1/users/{id}");

    // Email only: the user's session survives.
    let u = app
        .patch(&path, &admin.access, &json!({ "email": "ed@example.com" }))
        .await
        .ok(200)
        .clone();
    assert_eq!(u["email"], "ed@example.com");
    assert_eq!(u["role"], "viewer");
    assert_eq!(u["disabled"], false);
    app.get("/api/v1/auth/me", &ed.access).await.ok(200);
    // Same role again is not a change either.
    app.patch(&path, &admin.access, &json!({ "role": "viewer" }))
        .await
        .ok(200);
    app.get("/api/v1/auth/me", &ed.access).await.ok(200);

    // Bad updates.
    app.patch(&path, &admin.access, &json!({ "email": "no at sign" }))
        .await
        .err(422, "validation_failed");
    app.patch(&path, &admin.access, &json!({ "role": "root" }))
        .await
        .err(422, "invalid_body");
    app.patch(&path, &admin.access, &json!({ "disabled": "yes" }))
        .await
        .err(422, "invalid_body");
    app.patch(&path, &admin.access, &json!({ "username": "eddie" }))
        .await
        .err(422, "invalid_body");
    // An empty update is a no-op.
    let same = app
        .patch(&path, &admin.access, &json!({}))
        .await
        .ok(200)
        .clone();
    assert_eq!(same["email"], "ed@example.com");

    // Role and disabled together.
    let u = app
        .patch(
            &path,
            &admin.access,
            &json!({ "role": "analyst", "disabled": true }),
        )
        .await
        .ok(200)
        .clone();
    assert_eq!(u["role"], "analyst");
    assert_eq!(u["disabled"], true);
    assert_eq!(u["email"], "ed@example.com");
    let got = app.get(&path, &admin.access).await.ok(200).clone();
    assert_eq!(got, u);
    app.login("eddy", &pw).await.err(401, "invalid_credentials");
    let u = app
        .patch(&path, &admin.access, &json!({ "disabled": false }))
        .await
        .ok(200)
        .clone();
    assert_eq!(u["disabled"], false);
    let s = app.login_ok("eddy", &pw).await;
    let me = app.get("/api/v1/auth/me", &s.access).await.ok(200).clone();
    assert_eq!(me["role"], "analyst");
}

async fn admin_cannot_demote_or_disable_self(app: &TestApp) {
    let admin = app.admin().await;
    let path = format!("/api/v1/users/{}", admin.user_id);
    for body in [
        json!({ "role": "analyst" }),
        json!({ "role": "viewer" }),
        json!({ "disabled": true }),
        json!({ "role": "admin", "disabled": true }),
        json!({ "email": "me@example.com", "role": "viewer" }),
    ] {
        app.patch(&path, &admin.access, &body)
            .await
            .err(400, "cannot_modify_self");
    }
    // Still an enabled admin with a live session; the refused email change did not apply.
    let me = app
        .get("/api/v1/auth/me", &admin.access)
        .await
        .ok(200)
        .clone();
    assert_eq!(me["role"], "admin");
    assert_eq!(me["disabled"], false);
    assert!(me["email"].is_null());
    // Harmless self-updates are allowed.
    let u = app
        .patch(
            &path,
            &admin.access,
            &json!({ "email": "root@example.com", "role": "admin", "disabled": false }),
        )
        .await
        .ok(200)
        .clone();
    assert_eq!(u["email"], "root@example.com");
    app.get("/api/v1/auth/me", &admin.access).await.ok(200);

    // Another admin may demote this one.
    let (_, pw2) = app
        .create_user(&admin.access, "second-admin", "admin")
        .await;
    let second = app.login_ok("second-admin", &pw2).await;
    let u = app
        .patch(&path, &second.access, &json!({ "role": "analyst" }))
        .await
        .ok(200)
        .clone();
    assert_eq!(u["role"], "analyst");
    app.get("/api/v1/auth/me", &admin.access)
        .await
        .err(401, "session_revoked");
    let again = app.login_ok("admin", ADMIN_PW).await;
    app.get("/api/v1/users", &again.access)
        .await
        .err(403, "forbidden");
}

async fn role_change_ends_that_users_sessions(app: &TestApp) {
    let admin = app.admin().await;
    let (id, pw) = app.create_user(&admin.access, "rita", "analyst").await;
    let (_, pw2) = app.create_user(&admin.access, "bystander", "analyst").await;
    let rita = app.login_ok("rita", &pw).await;
    let rita2 = app.login_ok("rita", &pw).await;
    let other = app.login_ok("bystander", &pw2).await;
    app.alert(&rita.access, "before demotion", "low").await;

    let u = app
        .patch(
            &format!("/api/v1/users/{id}"),
            &admin.access,
            &json!({ "role": "viewer" }),
        )
        .await
        .ok(200)
        .clone();
    assert_eq!(u["role"], "viewer");

    // Every session of rita ended, so the analyst token cannot be used any more ...
    for s in [&rita, &rita2] {
        let r = app
            .post(
                "/api/v1/alerts",
                &s.access,
                &json!({ "title": "after demotion", "severity": "low" }),
            )
            .await;
        r.err(401, "session_revoked");
        app.send(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(&json!({ "refresh_token": s.refresh })),
        )
        .await
        .err(401, "invalid_refresh_token");
    }
    // ... a new login carries the new role ...
    let again = app.login_ok("rita", &pw).await;
    let me = app
        .get("/api/v1/auth/me", &again.access)
        .await
        .ok(200)
        .clone();
    assert_eq!(me["role"], "viewer");
    app.post(
        "/api/v1/alerts",
        &again.access,
        &json!({ "title": "after demotion", "severity": "low" }),
    )
    .await
    .err(403, "forbidden");
    app.get("/api/v1/alerts", &again.access).await.ok(200);
    // ... and nobody else was logged out.
    app.get("/api/v1/auth/me", &other.access).await.ok(200);
    app.get("/api/v1/auth/me", &admin.access).await.ok(200);
    assert_eq!(app.alert_total(&admin.access).await, 1);
}

async fn password_reset_ends_sessions_and_sets_the_password(app: &TestApp) {
    let admin = app.admin().await;
    let (id, pw) = app.create_user(&admin.access, "paula", "analyst").await;
    let paula = app.login_ok("paula", &pw).await;
    let path = format!("/api/v1/users/{id}/password");

    app.post(&path, &admin.access, &json!({ "password": "too-short" }))
        .await
        .err(422, "validation_failed");
    app.post(&path, &admin.access, &json!({}))
        .await
        .err(422, "invalid_body");
    app.post(
        &path,
        &admin.access,
        &json!({ "password": "a-new-password-123", "notify": true }),
    )
    .await
    .err(422, "invalid_body");
    // Failed resets changed nothing.
    app.get("/api/v1/auth/me", &paula.access).await.ok(200);

    let r = app
        .post(
            &path,
            &admin.access,
            &json!({ "password": "a-new-password-123" }),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    app.get("/api/v1/auth/me", &paula.access)
        .await
        .err(401, "session_revoked");
    app.send(
        Method::POST,
        "/api/v1/auth/refresh",
        None,
        Some(&json!({ "refresh_token": paula.refresh })),
    )
    .await
    .err(401, "invalid_refresh_token");
    app.login("paula", &pw)
        .await
        .err(401, "invalid_credentials");
    let s = app.login_ok("paula", "a-new-password-123").await;
    app.get("/api/v1/auth/me", &s.access).await.ok(200);
    // The admin's own session is untouched.
    app.get("/api/v1/auth/me", &admin.access).await.ok(200);

    // An admin resetting their own password through this endpoint ends their own sessions.
    let r = app
        .post(
            &format!("/api/v1/users/{}/password", admin.user_id),
            &admin.access,
            &json!({ "password": "the-admins-new-password" }),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    app.get("/api/v1/auth/me", &admin.access)
        .await
        .err(401, "session_revoked");
    app.login_ok("admin", "the-admins-new-password").await;
}
