//! Search through control characters (issue 14, item 11): text with NUL and other control
//! characters is stored as sent and found by the words around them; `q` with a control
//! character is refused instead of matching everything.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, both};
use crate::ingest::enrolled_agent;

both!(
    alert_titles_with_control_characters_are_found_by_their_words,
    event_messages_with_nul_are_found_by_their_words,
    control_characters_in_text_filters_are_refused,
);

fn items(r: &crate::helpers::Resp) -> Vec<Value> {
    r.ok(200)["items"].as_array().expect("items").clone()
}

async fn alert_titles_with_control_characters_are_found_by_their_words(app: &TestApp) {
    let t = app.admin().await.access;
    let titles = [
        "x\u{0}mimikatz dump",
        "start\u{1}beacon\u{1b}[31mcobalt",
        "tab\tseparated\tpowershell",
        "line one\r\nnetcat listener",
    ];
    let mut ids = Vec::new();
    for (i, title) in titles.iter().enumerate() {
        let a = app
            .create_alert(
                &t,
                json!({"title": title, "severity": "high",
                       "description": format!("desc\u{0}word{i} rest"),
                       "metadata": {"cmd\u{0}": "a\u{0}b\u{E000}"},
                       "observables": [{"type": "filename", "value": "v\u{0}w"}]}),
            )
            .await;
        assert_eq!(a["title"], *title);
        ids.push(a["id"].as_str().expect("id").to_owned());
    }
    app.create_alert(&t, json!({"title": "plain alert", "severity": "low"}))
        .await;
    // Words on either side of each control character, and across it as a space.
    for (q, want) in [
        ("mimikatz", 0),
        ("x%20mimikatz%20dump", 0),
        ("beacon", 1),
        ("cobalt", 1),
        ("start%20beacon", 1),
        ("powershell", 2),
        ("tab%20separated", 2),
        ("netcat", 3),
        ("one%20netcat", 3),
        ("word2", 2),
    ] {
        let found = items(&app.get(&format!("/api/v1/alerts?q={q}"), &t).await);
        assert_eq!(found.len(), 1, "q={q}: {found:?}");
        assert_eq!(found[0]["id"], ids[want], "q={q}");
        // Stored and returned as sent.
        assert_eq!(found[0]["title"], titles[want], "q={q}");
    }
    // Every field round-trips exactly, listed and fetched one by one.
    for (i, id) in ids.iter().enumerate() {
        let a = app.get(&format!("/api/v1/alerts/{id}"), &t).await;
        let a = a.ok(200);
        assert_eq!(a["title"], titles[i]);
        assert_eq!(a["description"], format!("desc\u{0}word{i} rest"));
        assert_eq!(a["metadata"], json!({"cmd\u{0}": "a\u{0}b\u{E000}"}));
        assert_eq!(a["observables"][0]["value"], "v\u{0}w");
    }
    assert_eq!(
        items(&app.get("/api/v1/alerts?limit=100", &t).await).len(),
        titles.len() + 1
    );
}

async fn event_messages_with_nul_are_found_by_their_words(app: &TestApp) {
    let admin = app.admin().await.access;
    let (_, cred) = enrolled_agent(app, &admin, "h1").await;
    let message = "Failed password\u{0}for mallory\u{1b}[0m from 203.0.113.7";
    let host = "h\u{0}ost";
    let events = vec![
        json!({"@timestamp": "2026-11-23T10:00:00Z", "event": {"dataset": "auth"},
               "host": {"name": host}, "user": {"name": "mal\u{0}lory\u{E000}"},
               "message": message}),
        json!({"@timestamp": "2026-11-23T10:00:01Z", "event": {"dataset": "auth"},
               "host": {"name": "h1"}, "message": "Accepted password for alice"}),
    ];
    app.post(
        "/api/v1/ingest/events",
        &cred,
        &json!({"batch_id": Uuid::now_v7(), "events": events}),
    )
    .await
    .ok(202);
    for q in [
        "mallory",
        "FAILED%20PASSWORD%20FOR",
        "203.0.113.7",
        "password%20for%20mallory",
    ] {
        let found = items(&app.get(&format!("/api/v1/events?q={q}"), &admin).await);
        assert_eq!(found.len(), 1, "q={q}: {found:?}");
        assert_eq!(found[0]["message"], message, "q={q}");
        assert_eq!(found[0]["host"], host);
        assert_eq!(found[0]["doc"]["user"]["name"], "mal\u{0}lory\u{E000}");
    }
    // Exact filters take the text as stored, NUL included.
    let by_host = items(&app.get("/api/v1/events?host=h%00ost", &admin).await);
    assert_eq!(by_host.len(), 1, "{by_host:?}");
    let by_field = items(
        &app.get("/api/v1/events?field=user.name:mal%00lory%EE%80%80", &admin)
            .await,
    );
    assert_eq!(by_field.len(), 1, "{by_field:?}");
    assert_eq!(
        items(&app.get("/api/v1/events?q=password", &admin).await).len(),
        2
    );
}

async fn control_characters_in_text_filters_are_refused(app: &TestApp) {
    let t = app.admin().await.access;
    app.create_alert(&t, json!({"title": "anything at all", "severity": "low"}))
        .await;
    for path in [
        "/api/v1/alerts?q=%00",
        "/api/v1/alerts?q=a%00",
        "/api/v1/alerts?search=%1b",
        "/api/v1/alerts?tag=%00",
        "/api/v1/events?q=%00",
        "/api/v1/events?q=x%0ay",
    ] {
        let r = app.get(path, &t).await;
        let e = r.err(400, "invalid_query");
        let msg = e["message"].as_str().unwrap_or_default();
        assert!(msg.contains("control character"), "{path}: {msg}");
    }
}
