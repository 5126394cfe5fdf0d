//! AI triage storage (migration 0004_ai): stored with the alert, decisions per suggestion,
//! and nothing visible or changeable from another organization.

use vigil_core::*;
use vigil_store::Error;
use vigil_store::testing::TestDb;

both!(
    triage_is_stored_decided_and_isolated,
    events_after_pages_in_storage_order
);

async fn events_after_pages_in_storage_order(db: &TestDb) {
    let s = &db.store;
    let org = s.create_org("a").await.unwrap().id;
    let other = s.create_org("b").await.unwrap().id;
    let t = now();
    // Stored in this order, with event times going backwards (a late batch).
    for i in 0..5 {
        let e = vigil_store::NewEvent {
            timestamp: t - chrono::Duration::minutes(i),
            host: None,
            dataset: None,
            message: Some(format!("m{i}")),
            doc: serde_json::json!({"message": format!("m{i}")}).to_string(),
        };
        s.event_store()
            .append_events(org, None, "api", vec![e], t)
            .await
            .unwrap();
    }
    let first = s.events_after(org, None, 3).await.unwrap();
    let msgs: Vec<_> = first.iter().map(|e| e.message.clone().unwrap()).collect();
    assert_eq!(msgs, ["m0", "m1", "m2"]);
    let rest = s.events_after(org, Some(first[2].id), 10).await.unwrap();
    assert_eq!(rest.len(), 2);
    assert_eq!(rest[1].message.as_deref(), Some("m4"));
    assert!(
        s.events_after(org, Some(rest[1].id), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.events_after(other, None, 10).await.unwrap().is_empty());
}

fn suggestion(index: u32, kind: &str, value: &str) -> TriageSuggestion {
    TriageSuggestion {
        index,
        kind: kind.into(),
        value: value.into(),
        status: SuggestionStatus::Pending,
        decided_by: None,
        decided_at: None,
    }
}

async fn triage_is_stored_decided_and_isolated(db: &TestDb) {
    let s = &db.store;
    let org = s.create_org("a").await.unwrap().id;
    let other = s.create_org("b").await.unwrap().id;
    let alert = s
        .create_alert(org, super::new_alert(1, now()), "t")
        .await
        .unwrap();
    let new = |by: &str| NewTriage {
        alert_id: alert.id,
        provider: "ollama".into(),
        model: "mistral".into(),
        prompt_version: "vigil-analysis-v1".into(),
        created_by: by.into(),
        analysis: serde_json::json!({"summary": "s", "verdict": "false_positive"}),
        suggestions: vec![
            suggestion(0, "verdict", "false_positive"),
            suggestion(1, "action", "block 203.0.113.9"),
        ],
    };
    // Another org cannot attach a triage to this alert, nor list or decide.
    assert!(matches!(
        s.create_triage(other, new("x")).await,
        Err(Error::NotFound)
    ));
    let t1 = s.create_triage(org, new("alice")).await.unwrap();
    let t2 = s.create_triage(org, new("auto-triage")).await.unwrap();
    let list = s.list_triage(org, alert.id).await.unwrap().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].id, t2.id, "newest first");
    assert_eq!(list[1], t1);
    assert_eq!(s.list_triage(other, alert.id).await.unwrap(), None);
    assert!(matches!(
        s.decide_suggestion(
            other,
            alert.id,
            t1.id,
            0,
            SuggestionStatus::Accepted,
            "eve",
            now()
        )
        .await,
        Err(Error::NotFound)
    ));
    let at = now();
    let d = s
        .decide_suggestion(
            org,
            alert.id,
            t1.id,
            1,
            SuggestionStatus::Dismissed,
            "bob",
            at,
        )
        .await
        .unwrap();
    assert_eq!(d.suggestions[1].status, SuggestionStatus::Dismissed);
    assert_eq!(d.suggestions[1].decided_by.as_deref(), Some("bob"));
    assert_eq!(d.suggestions[1].decided_at, Some(at));
    assert_eq!(d.suggestions[0].status, SuggestionStatus::Pending);
    let again = s.list_triage(org, alert.id).await.unwrap().unwrap();
    assert_eq!(
        again[1].suggestions, d.suggestions,
        "the decision is stored"
    );
    assert!(matches!(
        s.decide_suggestion(
            org,
            alert.id,
            t1.id,
            9,
            SuggestionStatus::Accepted,
            "bob",
            at
        )
        .await,
        Err(Error::InvalidInput(_))
    ));
    // A suggestion never changes the alert.
    let a = s.get_alert(org, alert.id).await.unwrap().unwrap();
    assert_eq!(a.status, AlertStatus::Open);
    assert_eq!(a.severity, alert.severity);
}
