//! Races: the same change sent many times at once must take effect exactly once, and
//! the losers must get a clean 4xx, never a 500.

use serde_json::{Value, json};

use crate::helpers::{TestApp, both, concurrently, id_of};

both!(
    concurrent_refresh_of_one_token_rotates_once,
    concurrent_status_changes_apply_once,
    concurrent_duplicate_alert_ids_conflict,
    concurrent_acks_record_one_actor,
    a_taken_alert_id_among_concurrent_creates_fails_alone,
);

const N: usize = 8;

fn statuses(rs: &[crate::helpers::Resp]) -> Vec<u16> {
    let mut s: Vec<u16> = rs.iter().map(|r| r.status).collect();
    s.sort();
    s
}

async fn concurrent_refresh_of_one_token_rotates_once(app: &TestApp) {
    let s = app.admin().await;
    let reqs = (0..N)
        .map(|_| {
            app.client
                .post(app.url("/api/v1/auth/refresh"))
                .json(&json!({ "refresh_token": s.refresh }))
        })
        .collect();
    let rs = concurrently(reqs).await;
    let ok: Vec<&crate::helpers::Resp> = rs.iter().filter(|r| r.status == 200).collect();
    assert_eq!(ok.len(), 1, "exactly one rotation: {:?}", statuses(&rs));
    let mut reused = 0;
    for r in rs.iter().filter(|r| r.status != 200) {
        assert_eq!(r.status, 401, "{}", r.text);
        crate::helpers::assert_error_shape(r);
        let code = r.body["error"]["code"].as_str().unwrap();
        assert!(
            code == "refresh_token_reused" || code == "invalid_refresh_token",
            "{code}"
        );
        reused += usize::from(code == "refresh_token_reused");
    }
    assert!(reused >= 1, "the replays were detected as reuse");
    // Reuse revoked the session, including the pair the winner received.
    let winner = crate::helpers::Session::from_body(&ok[0].body);
    app.get("/api/v1/auth/me", &winner.access)
        .await
        .err(401, "session_revoked");
    app.get("/api/v1/auth/me", &s.access)
        .await
        .err(401, "session_revoked");
}

async fn concurrent_status_changes_apply_once(app: &TestApp) {
    let admin = app.admin().await;
    let a = app.alert(&admin.access, "race", "high").await;
    let id = id_of(&a);
    let reqs = (0..N)
        .map(|i| {
            app.client
                .patch(app.url(&format!("/api/v1/alerts/{id}/status")))
                .bearer_auth(&admin.access)
                .json(&json!({ "status": "closed", "resolution_notes": format!("closer {i}") }))
        })
        .collect();
    let rs = concurrently(reqs).await;
    assert_eq!(
        statuses(&rs),
        [vec![200], vec![409; N - 1]].concat(),
        "{:?}",
        rs.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    for r in rs.iter().filter(|r| r.status == 409) {
        r.err(409, "invalid_transition");
    }
    let winner_notes =
        rs.iter().find(|r| r.status == 200).unwrap().body["resolution_notes"].clone();
    let now = app
        .get(&format!("/api/v1/alerts/{id}"), &admin.access)
        .await
        .ok(200)
        .clone();
    assert_eq!(now["status"], "closed");
    assert_eq!(now["resolution_notes"], winner_notes);
    let h = app
        .get(&format!("/api/v1/alerts/{id}/history"), &admin.access)
        .await
        .ok(200)
        .clone();
    let status_changes = h
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["field"] == "status")
        .count();
    assert_eq!(status_changes, 1, "{h:#}");
}

async fn concurrent_duplicate_alert_ids_conflict(app: &TestApp) {
    let admin = app.admin().await;
    let reqs = (0..N)
        .map(|i| {
            app.client
                .post(app.url("/api/v1/alerts"))
                .bearer_auth(&admin.access)
                .json(&json!({ "alert_id": "RACE-1", "title": format!("copy {i}"), "severity": "low", "tags": ["race"] }))
        })
        .collect();
    let rs = concurrently(reqs).await;
    assert_eq!(
        statuses(&rs),
        [vec![201], vec![409; N - 1]].concat(),
        "{:?}",
        rs.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    for r in rs.iter().filter(|r| r.status == 409) {
        r.err(409, "conflict");
    }
    let page = app
        .get("/api/v1/alerts?tag=race", &admin.access)
        .await
        .ok(200)
        .clone();
    assert_eq!(page["total"], 1, "{page}");
    let winner = rs.iter().find(|r| r.status == 201).unwrap();
    assert_eq!(page["items"][0]["id"], winner.body["id"]);
    // Distinct ids at the same time all succeed.
    let reqs = (0..N)
        .map(|i| {
            app.client
                .post(app.url("/api/v1/alerts"))
                .bearer_auth(&admin.access)
                .json(&json!({ "alert_id": format!("PAR-{i}"), "title": "parallel", "severity": "medium" }))
        })
        .collect();
    let rs = concurrently(reqs).await;
    assert_eq!(statuses(&rs), vec![201; N]);
    let ids: std::collections::HashSet<Value> = rs.iter().map(|r| r.body["id"].clone()).collect();
    assert_eq!(ids.len(), N);
    assert_eq!(app.alert_total(&admin.access).await, N as u64 + 1);
}

async fn concurrent_acks_record_one_actor(app: &TestApp) {
    let admin = app.admin().await;
    let mut sessions = vec![admin.clone()];
    for name in ["ana", "ben", "cat"] {
        sessions.push(app.user_session(&admin.access, name, "analyst").await);
    }
    let a = app.alert(&admin.access, "ack race", "critical").await;
    let id = id_of(&a);
    let reqs = sessions
        .iter()
        .map(|s| {
            app.client
                .post(app.url(&format!("/api/v1/alerts/{id}/ack")))
                .bearer_auth(&s.access)
        })
        .collect();
    let rs = concurrently(reqs).await;
    assert_eq!(statuses(&rs), vec![200; sessions.len()]);
    // Everyone sees the same single owner.
    let owners: std::collections::HashSet<Value> = rs
        .iter()
        .map(|r| r.body["acknowledged_by"].clone())
        .collect();
    assert_eq!(owners.len(), 1, "{owners:?}");
    let h = app
        .get(&format!("/api/v1/alerts/{id}/history"), &admin.access)
        .await
        .ok(200)
        .clone();
    let fields: Vec<&str> = h
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        vec!["created", "acknowledged_by", "status"],
        "{h:#}"
    );
}

/// Creates arriving together are written by one group commit (SQLite and PostgreSQL): the
/// one whose `alert_id` is taken answers 409, every other one 201 and is stored.
async fn a_taken_alert_id_among_concurrent_creates_fails_alone(app: &TestApp) {
    let admin = app.admin().await;
    app.create_alert(
        &admin.access,
        json!({ "alert_id": "TAKEN-1", "title": "first", "severity": "low" }),
    )
    .await;
    const M: usize = 40;
    let reqs = (0..M)
        .map(|i| {
            let alert_id = if i == M / 2 { "TAKEN-1".to_owned() } else { format!("GC-{i}") };
            app.client
                .post(app.url("/api/v1/alerts"))
                .bearer_auth(&admin.access)
                .json(&json!({ "alert_id": alert_id, "title": format!("group {i}"), "severity": "high", "tags": ["gc"] }))
        })
        .collect();
    let rs = concurrently(reqs).await;
    for (i, r) in rs.iter().enumerate() {
        if i == M / 2 {
            r.err(409, "conflict");
        } else {
            assert_eq!(r.status, 201, "{i}: {}", r.text);
            assert_eq!(r.body["alert_id"], format!("GC-{i}"));
        }
    }
    let page = app
        .get("/api/v1/alerts?tag=gc&limit=100", &admin.access)
        .await
        .ok(200)
        .clone();
    assert_eq!(page["total"], M - 1, "{page}");
}
