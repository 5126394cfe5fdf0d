//! Tenancy: users of organization `other` can neither see nor change anything of `default`,
//! alerts or users, whatever their role.

use reqwest::Method;
use serde_json::json;
use vigil_core::Role;

use crate::helpers::{ADMIN_PW, TestApp, both, id_of};

both!(
    other_org_cannot_see_or_change_alerts,
    other_org_cannot_see_or_change_users,
);

async fn other_org_cannot_see_or_change_alerts(app: &TestApp) {
    let admin = app.admin().await;
    let a = app
        .create_alert(
            &admin.access,
            json!({ "alert_id": "SHARED-ID", "title": "Default org secret", "severity": "critical", "tags": ["vip"], "agent_id": "agent-1" }),
        )
        .await;
    let id = id_of(&a);
    let other_admin = app.other_org_user("other-admin", Role::Admin).await;
    let other_analyst = app.other_org_user("other-analyst", Role::Analyst).await;

    for s in [&other_admin, &other_analyst] {
        let t = s.access.as_str();
        for q in [
            "",
            "?tag=vip",
            "?q=secret",
            "?severity=critical",
            "?agent_id=agent-1",
            "?status=open",
        ] {
            let page = app
                .get(&format!("/api/v1/alerts{q}"), t)
                .await
                .ok(200)
                .clone();
            assert_eq!(page["total"], 0, "{q}: {page}");
            assert_eq!(page["items"], json!([]), "{q}");
        }
        app.get(&format!("/api/v1/alerts/{id}"), t)
            .await
            .err(404, "not_found");
        app.get(&format!("/api/v1/alerts/{id}/history"), t)
            .await
            .err(404, "not_found");
        app.patch(
            &format!("/api/v1/alerts/{id}/status"),
            t,
            &json!({ "status": "closed" }),
        )
        .await
        .err(404, "not_found");
        app.send(
            Method::POST,
            &format!("/api/v1/alerts/{id}/ack"),
            Some(t),
            None,
        )
        .await
        .err(404, "not_found");
        app.post(
            &format!("/api/v1/alerts/{id}/close"),
            t,
            &json!({ "resolution_notes": "mine now" }),
        )
        .await
        .err(404, "not_found");
        let r = app
            .post(
                "/api/v1/alerts/bulk/status",
                t,
                &json!({ "ids": [id], "status": "false_positive" }),
            )
            .await;
        let b = r.ok(200).clone();
        assert_eq!(b["updated"], 0);
        assert_eq!(b["failed"], 1);
        assert_eq!(b["results"][0]["error"], "not_found");
        assert_eq!(b["results"][0]["ok"], false);
    }

    // The alert is untouched and its history holds only its creation.
    let now = app
        .get(&format!("/api/v1/alerts/{id}"), &admin.access)
        .await
        .ok(200)
        .clone();
    assert_eq!(now, a);
    let h = app
        .get(&format!("/api/v1/alerts/{id}/history"), &admin.access)
        .await
        .ok(200)
        .clone();
    assert_eq!(h.as_array().unwrap().len(), 1, "{h}");

    // alert_id is unique per organization, not globally; each org sees only its own.
    let mine = app
        .create_alert(
            &other_analyst.access,
            json!({ "alert_id": "SHARED-ID", "title": "Other org alert", "severity": "low" }),
        )
        .await;
    assert_ne!(mine["org_id"], a["org_id"]);
    let page = app
        .get("/api/v1/alerts", &admin.access)
        .await
        .ok(200)
        .clone();
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["id"], a["id"]);
    let page = app
        .get("/api/v1/alerts", &other_admin.access)
        .await
        .ok(200)
        .clone();
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["id"], mine["id"]);
    // And the default admin cannot reach the other org's alert either.
    let theirs = id_of(&mine);
    app.get(&format!("/api/v1/alerts/{theirs}"), &admin.access)
        .await
        .err(404, "not_found");
    app.send(
        Method::POST,
        &format!("/api/v1/alerts/{theirs}/ack"),
        Some(&admin.access),
        None,
    )
    .await
    .err(404, "not_found");
}

async fn other_org_cannot_see_or_change_users(app: &TestApp) {
    let admin = app.admin().await;
    let (amy_id, amy_pw) = app.create_user(&admin.access, "amy", "analyst").await;
    let amy = app.login_ok("amy", &amy_pw).await;
    let other_admin = app.other_org_user("other-admin", Role::Admin).await;
    let t = other_admin.access.as_str();

    for uid in [&amy_id, &admin.user_id] {
        app.get(&format!("/api/v1/users/{uid}"), t)
            .await
            .err(404, "not_found");
        app.patch(
            &format!("/api/v1/users/{uid}"),
            t,
            &json!({ "role": "viewer", "disabled": true, "email": "pwned@evil.example" }),
        )
        .await
        .err(404, "not_found");
        app.post(
            &format!("/api/v1/users/{uid}/password"),
            t,
            &json!({ "password": "taken-over-password" }),
        )
        .await
        .err(404, "not_found");
    }
    // Nothing happened: sessions live, passwords unchanged, role and email as before.
    app.get("/api/v1/auth/me", &amy.access).await.ok(200);
    app.get("/api/v1/auth/me", &admin.access).await.ok(200);
    app.login_ok("amy", &amy_pw).await;
    app.login_ok("admin", ADMIN_PW).await;
    app.login("amy", "taken-over-password")
        .await
        .err(401, "invalid_credentials");
    let u = app
        .get(&format!("/api/v1/users/{amy_id}"), &admin.access)
        .await
        .ok(200)
        .clone();
    assert_eq!(u["role"], "analyst");
    assert_eq!(u["disabled"], false);
    assert!(u["email"].is_null());

    // Each admin lists only their own organization.
    let names = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_string())
            .collect()
    };
    let theirs = app.get("/api/v1/users", t).await.ok(200).clone();
    assert_eq!(names(&theirs), vec!["other-admin"]);
    let ours = app
        .get("/api/v1/users", &admin.access)
        .await
        .ok(200)
        .clone();
    assert_eq!(names(&ours), vec!["admin", "amy"]);

    // A user created by the other admin lands in the other org, and usernames are global.
    app.post(
        "/api/v1/users",
        t,
        &json!({ "username": "amy", "password": "another-amy-password", "role": "viewer" }),
    )
    .await
    .err(409, "conflict");
    let r = app
        .post(
            "/api/v1/users",
            t,
            &json!({ "username": "olga", "password": "olga-password-1234", "role": "viewer" }),
        )
        .await;
    let olga = r.ok(201).clone();
    assert_eq!(olga["org_id"], theirs[0]["org_id"]);
    assert_ne!(olga["org_id"], ours[0]["org_id"]);
    app.get(&format!("/api/v1/users/{}", id_of(&olga)), &admin.access)
        .await
        .err(404, "not_found");
}
