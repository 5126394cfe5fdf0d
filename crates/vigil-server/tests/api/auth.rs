//! Login (JSON and OAuth2 form), the current user, refresh rotation and reuse detection,
//! logout, password change, disabled accounts, and rejected tokens.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};
use vigil_server::auth::Claims;

use crate::helpers::{ADMIN_PW, Session, TestApp, both, spawn_app_with};

both!(
    login_with_json_and_oauth2_form,
    wrong_password_and_unknown_user_are_the_same_401,
    me_returns_the_caller,
    refresh_rotates_the_token,
    reused_refresh_token_revokes_the_whole_session,
    logout_ends_access_and_refresh_tokens,
    changing_own_password_ends_sessions,
    disabled_user_cannot_log_in_and_loses_sessions,
    expired_token_is_rejected,
    forged_and_tampered_tokens_are_rejected,
    missing_or_garbage_authorization_is_401,
);
both!(@backend
    session_ended_elsewhere_stops_without_cache,
    session_ended_elsewhere_is_seen_after_the_cache_ttl,
);
both!(@backend session_cache_is_not_extended_by_use);

async fn refresh(app: &TestApp, token: &str) -> crate::helpers::Resp {
    app.send(
        Method::POST,
        "/api/v1/auth/refresh",
        None,
        Some(&json!({ "refresh_token": token })),
    )
    .await
}

async fn me(app: &TestApp, token: &str) -> crate::helpers::Resp {
    app.get("/api/v1/auth/me", token).await
}

fn check_token_response(b: &Value, username: &str) {
    assert_eq!(b["token_type"], "bearer");
    assert_eq!(b["expires_in"], 900);
    assert_eq!(b["refresh_expires_in"], 7 * 24 * 3600);
    let access = b["access_token"].as_str().unwrap();
    assert_eq!(access.split('.').count(), 3, "access token is a JWT");
    assert!(b["refresh_token"].as_str().unwrap().len() >= 40);
    assert_eq!(b["user"]["username"], username);
    let user = b["user"].as_object().unwrap();
    assert!(
        !user.keys().any(|k| k.contains("password")),
        "user leaks a password field: {b}"
    );
}

async fn login_with_json_and_oauth2_form(app: &TestApp) {
    let r = app.login("admin", ADMIN_PW).await;
    let b = r.ok(200);
    check_token_response(b, "admin");
    assert_eq!(b["user"]["role"], "admin");
    assert!(b["user"]["last_login_at"].is_string());
    let json_session = Session::from_body(b);

    let form = app.client.post(app.url("/api/v1/auth/login")).form(&[
        ("grant_type", "password"),
        ("username", "admin"),
        ("password", ADMIN_PW),
        ("scope", ""),
    ]);
    let r = TestApp::finish(form).await;
    let b = r.ok(200);
    check_token_response(b, "admin");
    let form_session = Session::from_body(b);
    assert_ne!(form_session.access, json_session.access);
    assert_ne!(form_session.refresh, json_session.refresh);
    // Both sessions work.
    me(app, &json_session.access).await.ok(200);
    me(app, &form_session.access).await.ok(200);

    // A wrong password in a form is the same 401; another grant type is refused.
    let r = TestApp::finish(app.client.post(app.url("/api/v1/auth/login")).form(&[
        ("grant_type", "password"),
        ("username", "admin"),
        ("password", "not-the-password"),
    ]))
    .await;
    r.err(401, "invalid_credentials");
    let r = TestApp::finish(app.client.post(app.url("/api/v1/auth/login")).form(&[
        ("grant_type", "client_credentials"),
        ("username", "admin"),
        ("password", ADMIN_PW),
    ]))
    .await;
    r.err(400, "unsupported_grant_type");
    // A form without the password field.
    let r = TestApp::finish(
        app.client
            .post(app.url("/api/v1/auth/login"))
            .form(&[("username", "admin")]),
    )
    .await;
    assert_eq!(r.status / 100, 4, "{}", r.text);
    crate::helpers::assert_error_shape(&r);
}

async fn wrong_password_and_unknown_user_are_the_same_401(app: &TestApp) {
    let wrong = app.login("admin", "wrong-password-123").await;
    let e1 = wrong.err(401, "invalid_credentials").clone();
    let unknown = app.login("nobody", "wrong-password-123").await;
    let e2 = unknown.err(401, "invalid_credentials").clone();
    // Nothing tells the two apart.
    assert_eq!(e1, e2);
    assert!(wrong.body.get("access_token").is_none());
    // Case matters: usernames are exact.
    app.login("ADMIN", ADMIN_PW)
        .await
        .err(401, "invalid_credentials");
    // Empty credentials are a 401 too, not a 500.
    app.login("", "").await.err(401, "invalid_credentials");
}

async fn me_returns_the_caller(app: &TestApp) {
    let admin = app.admin().await;
    let b = me(app, &admin.access).await.ok(200).clone();
    assert_eq!(b["username"], "admin");
    assert_eq!(b["role"], "admin");
    assert_eq!(b["id"], admin.user_id.as_str());
    assert_eq!(b["disabled"], false);
    let org = app.store.get_org_by_name("default").await.unwrap().unwrap();
    assert_eq!(b["org_id"], org.id.to_string());

    let analyst = app.user_session(&admin.access, "amy", "analyst").await;
    let b = me(app, &analyst.access).await.ok(200).clone();
    assert_eq!(b["username"], "amy");
    assert_eq!(b["role"], "analyst");
    assert_eq!(b["id"], analyst.user_id.as_str());
}

async fn refresh_rotates_the_token(app: &TestApp) {
    let s1 = app.admin().await;
    let r = refresh(app, &s1.refresh).await;
    let b = r.ok(200);
    check_token_response(b, "admin");
    let s2 = Session::from_body(b);
    assert_ne!(s2.refresh, s1.refresh, "refresh token must rotate");
    assert_eq!(s2.user_id, s1.user_id);
    // The new pair works, and the rotated session is the same one (old access still valid).
    me(app, &s2.access).await.ok(200);
    me(app, &s1.access).await.ok(200);
    // The new refresh token rotates again.
    let s3 = Session::from_body(refresh(app, &s2.refresh).await.ok(200));
    assert_ne!(s3.refresh, s2.refresh);
    me(app, &s3.access).await.ok(200);

    // Unknown and malformed refresh requests.
    refresh(app, "not-a-real-refresh-token")
        .await
        .err(401, "invalid_refresh_token");
    let r = app
        .send(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(&json!({ "refresh_token": s3.refresh, "extra": 1 })),
        )
        .await;
    r.err(422, "invalid_body");
    let r = app
        .send(Method::POST, "/api/v1/auth/refresh", None, Some(&json!({})))
        .await;
    r.err(422, "invalid_body");
    // Those failures did not spend s3's refresh token.
    refresh(app, &s3.refresh).await.ok(200);
}

async fn reused_refresh_token_revokes_the_whole_session(app: &TestApp) {
    let s1 = app.admin().await;
    let other = app.admin().await; // another session of the same user
    let s2 = Session::from_body(refresh(app, &s1.refresh).await.ok(200));
    let s3 = Session::from_body(refresh(app, &s2.refresh).await.ok(200));
    me(app, &s3.access).await.ok(200);

    // s1.refresh was spent: presenting it again is theft or replay.
    refresh(app, &s1.refresh)
        .await
        .err(401, "refresh_token_reused");

    // Everything descended from that login is dead ...
    refresh(app, &s3.refresh)
        .await
        .err(401, "invalid_refresh_token");
    for access in [&s1.access, &s2.access, &s3.access] {
        let r = me(app, access).await;
        r.err(401, "session_revoked");
        assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    }
    // ... and presenting the reused token again stays refused.
    let r = refresh(app, &s1.refresh).await;
    assert_eq!(r.status, 401, "{}", r.text);
    // The user's other session is untouched.
    me(app, &other.access).await.ok(200);
    refresh(app, &other.refresh).await.ok(200);
}

async fn logout_ends_access_and_refresh_tokens(app: &TestApp) {
    let s = app.admin().await;
    let other = app.admin().await;
    let r = app
        .send(Method::POST, "/api/v1/auth/logout", Some(&s.access), None)
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    me(app, &s.access).await.err(401, "session_revoked");
    app.get("/api/v1/alerts", &s.access)
        .await
        .err(401, "session_revoked");
    refresh(app, &s.refresh)
        .await
        .err(401, "invalid_refresh_token");
    // Logging out twice: the token is already dead.
    let r = app
        .send(Method::POST, "/api/v1/auth/logout", Some(&s.access), None)
        .await;
    r.err(401, "session_revoked");
    // Without a token.
    let r = app
        .send(Method::POST, "/api/v1/auth/logout", None, None)
        .await;
    r.err(401, "unauthorized");
    // Only that session ended.
    me(app, &other.access).await.ok(200);
}

async fn changing_own_password_ends_sessions(app: &TestApp) {
    let admin = app.admin().await;
    let (_, pw) = app.create_user(&admin.access, "pat", "analyst").await;
    let s = app.login_ok("pat", &pw).await;
    let s_other = app.login_ok("pat", &pw).await;
    let new_pw = "a-much-better-passphrase";

    // Wrong current password.
    let r = app
        .post(
            "/api/v1/auth/password",
            &s.access,
            &json!({ "current_password": "wrong-password-xyz", "new_password": new_pw }),
        )
        .await;
    r.err(401, "invalid_credentials");
    // Too short a new password.
    let r = app
        .post(
            "/api/v1/auth/password",
            &s.access,
            &json!({ "current_password": pw, "new_password": "short" }),
        )
        .await;
    r.err(422, "validation_failed");
    // Neither failure changed anything.
    me(app, &s.access).await.ok(200);
    app.login("pat", new_pw)
        .await
        .err(401, "invalid_credentials");

    let r = app
        .post(
            "/api/v1/auth/password",
            &s.access,
            &json!({ "current_password": pw, "new_password": new_pw }),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    // Every session of the user ended, this one included.
    me(app, &s.access).await.err(401, "session_revoked");
    me(app, &s_other.access).await.err(401, "session_revoked");
    refresh(app, &s.refresh)
        .await
        .err(401, "invalid_refresh_token");
    app.login("pat", &pw).await.err(401, "invalid_credentials");
    let s2 = app.login_ok("pat", new_pw).await;
    me(app, &s2.access).await.ok(200);
    // Other users' sessions are untouched.
    me(app, &admin.access).await.ok(200);
}

async fn disabled_user_cannot_log_in_and_loses_sessions(app: &TestApp) {
    let admin = app.admin().await;
    let (id, pw) = app.create_user(&admin.access, "dora", "analyst").await;
    let s = app.login_ok("dora", &pw).await;
    me(app, &s.access).await.ok(200);

    let r = app
        .patch(
            &format!("/api/v1/users/{id}"),
            &admin.access,
            &json!({ "disabled": true }),
        )
        .await;
    assert_eq!(r.ok(200)["disabled"], true);

    me(app, &s.access).await.err(401, "session_revoked");
    refresh(app, &s.refresh)
        .await
        .err(401, "invalid_refresh_token");
    // The right password is refused exactly like a wrong one.
    app.login("dora", &pw).await.err(401, "invalid_credentials");

    // Enabling again allows a new login; the old session stays dead.
    let r = app
        .patch(
            &format!("/api/v1/users/{id}"),
            &admin.access,
            &json!({ "disabled": false }),
        )
        .await;
    assert_eq!(r.ok(200)["disabled"], false);
    me(app, &s.access).await.err(401, "session_revoked");
    let s2 = app.login_ok("dora", &pw).await;
    me(app, &s2.access).await.ok(200);
}

fn claims_of(app: &TestApp, s: &Session) -> Claims {
    // Decode with the server's own secret, so the claims are exactly what it issued.
    let mut v = jsonwebtoken::Validation::new(Algorithm::HS256);
    v.set_issuer(&["vigil"]);
    jsonwebtoken::decode::<Claims>(
        &s.access,
        &jsonwebtoken::DecodingKey::from_secret(&app.jwt_secret()),
        &v,
    )
    .expect("the server's token verifies with the secret in <data_dir>/jwt-secret")
    .claims
}

fn sign(claims: &Claims, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

async fn expired_token_is_rejected(app: &TestApp) {
    let s = app.admin().await;
    let mut c = claims_of(app, &s);
    let now = chrono::Utc::now().timestamp();
    // A fresh token signed by us with the server's key is accepted (the forging works) ...
    c.iat = now;
    c.exp = now + 60;
    me(app, &sign(&c, &app.jwt_secret())).await.ok(200);
    // ... and the same token expired a minute ago (beyond the 5 s leeway) is not.
    c.iat = now - 120;
    c.exp = now - 60;
    let r = me(app, &sign(&c, &app.jwt_secret())).await;
    r.err(401, "token_expired");
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    // The session itself is still fine.
    me(app, &s.access).await.ok(200);
}

async fn forged_and_tampered_tokens_are_rejected(app: &TestApp) {
    let admin = app.admin().await;
    let viewer = app.user_session(&admin.access, "vic", "viewer").await;
    let secret = app.jwt_secret();

    // Signed with another key.
    let c = claims_of(app, &admin);
    let forged = sign(&c, b"another-secret-that-is-long-enough-0123456789");
    me(app, &forged).await.err(401, "invalid_token");

    // A viewer's token with the payload changed to admin, original signature kept.
    let mut vc = claims_of(app, &viewer);
    vc.role = vigil_core::Role::Admin;
    let tampered_payload = sign(&vc, b"irrelevant-key-just-to-get-a-payload-000")
        .split('.')
        .nth(1)
        .unwrap()
        .to_string();
    let mut parts: Vec<&str> = viewer.access.split('.').collect();
    parts[1] = &tampered_payload;
    let tampered = parts.join(".");
    app.get("/api/v1/users", &tampered)
        .await
        .err(401, "invalid_token");
    // The untampered viewer token is still only a viewer.
    app.get("/api/v1/users", &viewer.access)
        .await
        .err(403, "forbidden");

    // Signature stripped / alg none.
    let mut parts: Vec<&str> = admin.access.split('.').collect();
    parts[2] = "";
    me(app, &parts.join(".")).await.err(401, "invalid_token");
    let none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
    let none_token = format!("{none_header}.{}.", admin.access.split('.').nth(1).unwrap());
    me(app, &none_token).await.err(401, "invalid_token");

    // Right key, wrong token type or issuer.
    let mut c2 = c.clone();
    c2.typ = "refresh".into();
    me(app, &sign(&c2, &secret)).await.err(401, "invalid_token");
    let mut c3 = c.clone();
    c3.iss = "someone-else".into();
    me(app, &sign(&c3, &secret)).await.err(401, "invalid_token");

    // Right key, but a session that never existed.
    let mut c4 = c.clone();
    c4.sid = uuid::Uuid::new_v4();
    me(app, &sign(&c4, &secret))
        .await
        .err(401, "session_revoked");
}

async fn missing_or_garbage_authorization_is_401(app: &TestApp) {
    // Missing.
    let r = app.send(Method::GET, "/api/v1/alerts", None, None).await;
    r.err(401, "unauthorized");
    let www = r.header("www-authenticate").expect("WWW-Authenticate");
    assert!(www.starts_with("Bearer"), "{www}");

    for value in [
        "Basic YWRtaW46cGFzc3dvcmQ=",
        "Bearer",
        "Bearer ",
        "Token abc",
        "garbage",
    ] {
        let r = TestApp::finish(
            app.client
                .get(app.url("/api/v1/auth/me"))
                .header("authorization", value),
        )
        .await;
        r.err(401, "unauthorized");
        assert!(
            r.header("www-authenticate")
                .is_some_and(|w| w.starts_with("Bearer")),
            "{value}"
        );
    }
    for value in ["Bearer garbage", "Bearer a.b.c", "bearer x.y"] {
        let r = TestApp::finish(
            app.client
                .get(app.url("/api/v1/auth/me"))
                .header("authorization", value),
        )
        .await;
        r.err(401, "invalid_token");
    }
    // A non-UTF-8 header value.
    let r = TestApp::finish(app.client.get(app.url("/api/v1/auth/me")).header(
        "authorization",
        reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
    ))
    .await;
    r.err(401, "unauthorized");
}

/// Ends a session the way another replica or the `vigil` CLI would: in the database only.
async fn revoke_elsewhere(app: &TestApp, s: &Session) {
    let sid = claims_of(app, s).sid;
    app.store
        .revoke_session(sid, vigil_core::now())
        .await
        .unwrap();
}

async fn session_ended_elsewhere_stops_without_cache(backend: vigil_store::Backend) {
    let Some(app) = spawn_app_with(backend, |c| c.auth.session_cache_secs = 0).await else {
        return;
    };
    let s = app.admin().await;
    me(&app, &s.access).await.ok(200);
    revoke_elsewhere(&app, &s).await;
    me(&app, &s.access).await.err(401, "session_revoked");
    // Disabling through the store (as the CLI does) is seen at once too.
    let s2 = app.admin().await;
    me(&app, &s2.access).await.ok(200);
    let id = uuid::Uuid::parse_str(&s2.user_id).unwrap();
    app.store
        .update_user(
            None,
            id,
            vigil_store::UserUpdate {
                disabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    me(&app, &s2.access).await.err(401, "session_revoked");
}

async fn session_ended_elsewhere_is_seen_after_the_cache_ttl(backend: vigil_store::Backend) {
    let Some(app) = spawn_app_with(backend, |c| c.auth.session_cache_secs = 1).await else {
        return;
    };
    let s = app.admin().await;
    me(&app, &s.access).await.ok(200);
    revoke_elsewhere(&app, &s).await;
    // Without traffic in between, the cached "active" expires after the TTL.
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    me(&app, &s.access).await.err(401, "session_revoked");
    // Sessions ended through this server stop at once, cache or not.
    let s2 = app.admin().await;
    me(&app, &s2.access).await.ok(200);
    let r = app
        .send(Method::POST, "/api/v1/auth/logout", Some(&s2.access), None)
        .await;
    assert_eq!(r.status, 204);
    me(&app, &s2.access).await.err(401, "session_revoked");
}

async fn session_cache_is_not_extended_by_use(backend: vigil_store::Backend) {
    let Some(app) = spawn_app_with(backend, |c| c.auth.session_cache_secs = 1).await else {
        return;
    };
    let s = app.admin().await;
    me(&app, &s.access).await.ok(200);
    revoke_elsewhere(&app, &s).await;
    let revoked_at = std::time::Instant::now();
    // Keep using the token (more often than the TTL): the revocation must still be seen
    // once the TTL has passed, i.e. within about a second.
    let mut statuses = Vec::new();
    while revoked_at.elapsed() < std::time::Duration::from_millis(2500) {
        let r = me(&app, &s.access).await;
        statuses.push((revoked_at.elapsed().as_millis(), r.status));
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let late: Vec<_> = statuses.iter().filter(|(ms, _)| *ms > 1500).collect();
    assert!(!late.is_empty());
    assert!(
        late.iter().all(|(_, st)| *st == 401),
        "a session revoked elsewhere is still accepted long after the cache TTL: {statuses:?}"
    );
}
