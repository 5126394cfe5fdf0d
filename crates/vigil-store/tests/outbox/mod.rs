//! The outbox (migration 0008): every alert write path writes exactly one event per alert
//! changed, in the same transaction; claims are leased so two dispatchers never hold the
//! same row; dispatched rows are pruned.

use std::collections::HashSet;
use std::time::Duration as StdDuration;

use chrono::Duration;
use uuid::Uuid;
use vigil_core::*;
use vigil_store::Error;
use vigil_store::testing::TestDb;
use vigil_store::*;

both!(
    every_alert_write_path_writes_one_event,
    a_failed_write_leaves_no_event_and_a_failed_event_no_write,
    claims_are_leased_marked_and_pruned,
    two_stores_never_claim_the_same_row,
);

/// Every event of `org`, oldest first.
async fn events(db: &TestDb, org: Uuid) -> Vec<AlertEvent> {
    db.store.outbox_store().after(org, 0, 10_000).await.unwrap()
}

fn kinds(events: &[AlertEvent]) -> Vec<AlertEventKind> {
    events.iter().map(|e| e.kind).collect()
}

fn changes(e: &AlertEvent) -> Vec<(&str, Option<&str>, Option<&str>)> {
    e.changes
        .iter()
        .map(|c| (c.field.as_str(), c.old.as_deref(), c.new.as_deref()))
        .collect()
}

async fn every_alert_write_path_writes_one_event(db: &TestDb) {
    let s = &db.store;
    let outbox = s.outbox_store();
    let org = s.create_org("o").await.unwrap().id;
    let other = s.create_org("p").await.unwrap().id;
    let now = vigil_core::now();

    // API creation (group commit on SQLite).
    let a = s
        .create_alert(org, super::new_alert(1, now), "alice")
        .await
        .unwrap();
    let ev = events(db, org).await;
    assert_eq!(kinds(&ev), [AlertEventKind::Created]);
    assert_eq!(ev[0].alert, a, "the snapshot is the alert as returned");
    assert_eq!((ev[0].actor.as_str(), ev[0].org_id), ("alice", org));
    assert!(ev[0].changes.is_empty() && ev[0].schema == ALERT_EVENT_SCHEMA);
    assert!(ev[0].seq > 0);

    // Bulk insert: one event per alert.
    let bulk: Vec<_> = (2..5).map(|i| super::new_alert(i, now)).collect();
    assert_eq!(s.insert_alerts_bulk(org, bulk).await.unwrap(), 3);
    let ev = events(db, org).await;
    assert_eq!(ev.len(), 4);
    assert!(
        ev[1..]
            .iter()
            .all(|e| e.kind == AlertEventKind::Created && e.actor == "system")
    );

    // Detections: created, then folded (the snapshot shows the fold).
    let det = |i: usize, secs: i64| Detection {
        alert: super::new_alert(i, now),
        dedup_key: Some("rule|host".into()),
        seen: now + Duration::seconds(secs),
    };
    let out = s
        .record_detections(org, vec![det(10, 1), det(11, 2)], Duration::minutes(10))
        .await
        .unwrap();
    let DetectionOutcome::Created(raised) = out[0] else {
        panic!("{out:?}")
    };
    let ev = events(db, org).await;
    assert_eq!(ev.len(), 6);
    let (created, folded) = (&ev[4], &ev[5]);
    assert_eq!(created.kind, AlertEventKind::Created);
    assert_eq!(created.actor, "detection");
    assert_eq!(created.alert.last_seen, Some(now + Duration::seconds(1)));
    assert_eq!(folded.kind, AlertEventKind::Folded);
    assert_eq!(folded.alert.id, raised);
    assert_eq!(folded.alert.event_count, 2);
    assert_eq!(folded.alert.last_seen, Some(now + Duration::seconds(2)));
    assert_eq!(changes(folded), [("event_count", Some("1"), Some("2"))]);
    assert_eq!(
        folded.alert,
        s.get_alert(org, raised).await.unwrap().unwrap(),
        "the fold's snapshot (from RETURNING) is the stored alert"
    );

    // The ingest path: a batch with a detection.
    s.event_store()
        .append_batch(
            org,
            Some(Uuid::now_v7()),
            "api",
            vec![],
            vec![det(12, 3)],
            Duration::minutes(10),
            now,
        )
        .await
        .unwrap();
    let ev = events(db, org).await;
    assert_eq!(kinds(&ev[6..]), [AlertEventKind::Folded]);
    assert_eq!(ev[6].alert.event_count, 3);

    // Lifecycle: acknowledge, severity, assignee, close; a change that changes nothing
    // writes nothing.
    let id = a.id;
    let critical = AlertChange::Severity {
        to: Severity::Critical,
    };
    for change in [&AlertChange::Acknowledge, &critical] {
        // Twice: the second time changes nothing.
        for _ in 0..2 {
            s.update_alert(org, id, change, "bob").await.unwrap();
        }
    }
    let assigned = s
        .update_alert(
            org,
            id,
            &AlertChange::Assign {
                to: Some("carol".into()),
            },
            "bob",
        )
        .await
        .unwrap();
    assert_eq!(assigned.assignee.as_deref(), Some("carol"));
    let close = AlertChange::Status {
        to: AlertStatus::FalsePositive,
        notes: Some("scanner".into()),
    };
    s.update_alert(org, id, &close, "bob").await.unwrap();
    assert!(s.update_alert(org, id, &close, "bob").await.is_err());
    s.update_alert(
        org,
        id,
        &AlertChange::Status {
            to: AlertStatus::Open,
            notes: None,
        },
        "bob",
    )
    .await
    .unwrap();
    let ev = events(db, org).await;
    let life = &ev[7..];
    assert_eq!(
        kinds(life),
        [
            AlertEventKind::StatusChanged,
            AlertEventKind::SeverityChanged,
            AlertEventKind::Assigned,
            AlertEventKind::Closed,
            AlertEventKind::StatusChanged,
        ]
    );
    assert_eq!(
        changes(&life[0]),
        [
            ("acknowledged_by", None, Some("bob")),
            ("status", Some("open"), Some("in_progress"))
        ]
    );
    assert_eq!(
        changes(&life[1]),
        [("severity", Some("medium"), Some("critical"))]
    );
    assert_eq!(changes(&life[2]), [("assignee", None, Some("carol"))]);
    assert_eq!(life[3].alert.status, AlertStatus::FalsePositive);
    assert_eq!(life[3].alert.closed_by.as_deref(), Some("bob"));
    assert!(life.iter().all(|e| e.actor == "bob" && e.alert.id == id));
    // Severity and assignee are stored and audited like status changes.
    let stored = s.get_alert(org, id).await.unwrap().unwrap();
    assert_eq!(
        (stored.severity, stored.assignee.as_deref()),
        (Severity::Critical, Some("carol"))
    );
    assert_eq!(life[4].alert, stored);
    let history = s.alert_history(org, id).await.unwrap().unwrap();
    assert!(
        history
            .iter()
            .any(|h| h.field == "severity" && h.new_value.as_deref() == Some("critical"))
    );
    assert!(
        history
            .iter()
            .any(|h| h.field == "assignee" && h.new_value.as_deref() == Some("carol"))
    );

    // Triage.
    let t = s
        .create_triage(
            org,
            NewTriage {
                alert_id: id,
                provider: "ollama".into(),
                model: "m".into(),
                prompt_version: "1".into(),
                created_by: "auto-triage".into(),
                analysis: serde_json::json!({}),
                suggestions: vec![],
            },
        )
        .await
        .unwrap();
    let ev = events(db, org).await;
    let last = ev.last().unwrap();
    assert_eq!(last.kind, AlertEventKind::Triaged);
    assert_eq!(
        changes(last),
        [("triage", None, Some(t.id.to_string().as_str()))]
    );
    assert_eq!(ev.len(), 13);

    // Ids unique, seqs increasing, nothing visible to another organization.
    let ids: HashSet<Uuid> = ev.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), ev.len());
    assert!(ev.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(outbox.latest_seq(org).await.unwrap(), last.seq);
    assert_eq!(outbox.latest_seq(other).await.unwrap(), 0);
    assert!(outbox.after(other, 0, 100).await.unwrap().is_empty());
    assert_eq!(outbox.after(org, ev[10].seq, 100).await.unwrap(), ev[11..]);
    assert_eq!(outbox.pending().await.unwrap(), 13);
}

/// Raw SQL on the test database (a second connection beside the store's).
async fn exec(db: &TestDb, sql: &[&str]) {
    use sqlx::Connection;
    match db.store.backend() {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            for q in sql {
                sqlx::query(q).execute(&mut c).await.unwrap();
            }
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
            for q in sql {
                sqlx::query(q).execute(&mut c).await.unwrap();
            }
        }
    }
}

/// Makes every outbox insert fail (as a full disk would), until [`outbox_heals`].
async fn outbox_fails(db: &TestDb) {
    match db.store.backend() {
        Backend::Sqlite => exec(db, &["CREATE TRIGGER no_outbox BEFORE INSERT ON outbox \
                BEGIN SELECT RAISE(ABORT, 'outbox unavailable'); END"]).await,
        Backend::Postgres => exec(db, &[
            "CREATE FUNCTION no_outbox() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'outbox unavailable'; END $$",
            "CREATE TRIGGER no_outbox BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION no_outbox()",
        ]).await,
    }
}

async fn outbox_heals(db: &TestDb) {
    match db.store.backend() {
        Backend::Sqlite => exec(db, &["DROP TRIGGER no_outbox"]).await,
        Backend::Postgres => {
            exec(
                db,
                &[
                    "DROP TRIGGER no_outbox ON outbox",
                    "DROP FUNCTION no_outbox()",
                ],
            )
            .await
        }
    }
}

async fn a_failed_write_leaves_no_event_and_a_failed_event_no_write(db: &TestDb) {
    let s = &db.store;
    let org = s.create_org("o").await.unwrap().id;
    let now = vigil_core::now();
    let a = s
        .create_alert(org, super::new_alert(1, now), "x")
        .await
        .unwrap();
    // A conflicting creation: no alert, no event.
    assert!(matches!(
        s.create_alert(org, super::new_alert(1, now), "x").await,
        Err(Error::Conflict(_))
    ));
    // A batch whose second detection conflicts: rolled back whole, the first's event too.
    let det = |i: usize| Detection {
        alert: super::new_alert(i, now),
        dedup_key: None,
        seen: now,
    };
    let r = s
        .event_store()
        .append_batch(
            org,
            Some(Uuid::now_v7()),
            "api",
            vec![],
            vec![det(2), det(1)],
            Duration::minutes(10),
            now,
        )
        .await;
    assert!(matches!(r, Err(Error::Conflict(_))), "{r:?}");
    assert_eq!(kinds(&events(db, org).await), [AlertEventKind::Created]);

    // The outbox cannot be written: no change goes in without its event.
    outbox_fails(db).await;
    assert!(
        s.create_alert(org, super::new_alert(3, now), "x")
            .await
            .is_err()
    );
    assert!(
        s.insert_alerts_bulk(org, vec![super::new_alert(4, now)])
            .await
            .is_err()
    );
    assert!(
        s.record_detections(org, vec![det(5)], Duration::minutes(10))
            .await
            .is_err()
    );
    assert!(
        s.update_alert(org, a.id, &AlertChange::Acknowledge, "x")
            .await
            .is_err()
    );
    assert!(
        s.update_alert(
            org,
            a.id,
            &AlertChange::Severity {
                to: Severity::Critical
            },
            "x"
        )
        .await
        .is_err()
    );
    let triage = NewTriage {
        alert_id: a.id,
        provider: "p".into(),
        model: "m".into(),
        prompt_version: "1".into(),
        created_by: "x".into(),
        analysis: serde_json::json!({}),
        suggestions: vec![],
    };
    assert!(s.create_triage(org, triage.clone()).await.is_err());
    let page = s.list_alerts(org, &super::filter()).await.unwrap();
    assert_eq!(
        page.items,
        std::slice::from_ref(&a),
        "only the first alert exists, unchanged"
    );
    assert!(s.list_triage(org, a.id).await.unwrap().unwrap().is_empty());
    assert_eq!(s.alert_history(org, a.id).await.unwrap().unwrap().len(), 1);

    // Healed: the same writes go through, each with its event.
    outbox_heals(db).await;
    s.create_alert(org, super::new_alert(3, now), "x")
        .await
        .unwrap();
    s.update_alert(org, a.id, &AlertChange::Acknowledge, "x")
        .await
        .unwrap();
    s.create_triage(org, triage).await.unwrap();
    assert_eq!(
        kinds(&events(db, org).await),
        [
            AlertEventKind::Created,
            AlertEventKind::Created,
            AlertEventKind::StatusChanged,
            AlertEventKind::Triaged
        ]
    );
}

async fn claims_are_leased_marked_and_pruned(db: &TestDb) {
    let s = &db.store;
    let outbox = s.outbox_store();
    let org = s.create_org("o").await.unwrap().id;
    let now = vigil_core::now();
    let notified = outbox.notifier();
    let woken = notified.notified();
    let alerts: Vec<_> = (0..5).map(|i| super::new_alert(i, now)).collect();
    s.insert_alerts_bulk(org, alerts).await.unwrap();
    tokio::time::timeout(StdDuration::from_secs(10), woken)
        .await
        .expect("the commit wakes the notifier");
    let all = events(db, org).await;
    let long = StdDuration::from_secs(60);

    let a = outbox.claim("a", 3, long).await.unwrap();
    assert_eq!(a, all[..3], "oldest first, as written");
    let b = outbox.claim("b", 10, long).await.unwrap();
    assert_eq!(b, all[3..], "rows leased to a are skipped");
    assert!(outbox.claim("c", 10, long).await.unwrap().is_empty());
    // A dispatcher claims its own rows again (a failed round is retried at once).
    assert_eq!(outbox.claim("a", 10, long).await.unwrap(), a);

    let seqs: Vec<i64> = a.iter().map(|e| e.seq).collect();
    outbox.mark_dispatched(&seqs).await.unwrap();
    assert_eq!(outbox.pending().await.unwrap(), 2);
    assert!(outbox.claim("a", 10, long).await.unwrap().is_empty());

    // b dies holding a short lease: once it runs out, c takes the rows over.
    outbox
        .claim("b", 10, StdDuration::from_millis(1))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(10);
    let taken = loop {
        let got = outbox.claim("c", 10, long).await.unwrap();
        if !got.is_empty() || tokio::time::Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    };
    assert_eq!(taken, all[3..]);

    // Only dispatched rows are pruned, by their dispatch time.
    assert_eq!(outbox.prune(now - Duration::hours(1)).await.unwrap(), 0);
    assert_eq!(
        outbox
            .prune(vigil_core::now() + Duration::seconds(1))
            .await
            .unwrap(),
        3
    );
    assert_eq!(outbox.pending().await.unwrap(), 2);
    assert_eq!(events(db, org).await, all[3..]);
    // The cursor survives pruning: seqs are never reused.
    s.create_alert(org, super::new_alert(9, now), "x")
        .await
        .unwrap();
    assert!(outbox.latest_seq(org).await.unwrap() > all[4].seq);
}

/// Two stores on one database (two replicas) dispatch concurrently: every row is claimed by
/// exactly one of them while leases are live.
async fn two_stores_never_claim_the_same_row(db: &TestDb) {
    let org = db.store.create_org("o").await.unwrap().id;
    let now = vigil_core::now();
    let alerts: Vec<_> = (0..300).map(|i| super::new_alert(i, now)).collect();
    db.store.insert_alerts_bulk(org, alerts).await.unwrap();
    let mut tasks = Vec::new();
    for owner in ["replica-a", "replica-b"] {
        let store = vigil_store::connect(&db.url, 4)
            .await
            .unwrap()
            .outbox_store();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = store
                    .claim(owner, 7, StdDuration::from_secs(300))
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return got;
                }
                let seqs: Vec<i64> = batch.iter().map(|e| e.seq).collect();
                store.mark_dispatched(&seqs).await.unwrap();
                got.extend(seqs);
            }
        }));
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for t in tasks {
        let got = t.await.unwrap();
        total += got.len();
        seen.extend(got);
    }
    assert_eq!(total, 300, "no row dispatched twice");
    assert_eq!(seen.len(), 300, "every row dispatched");
    assert_eq!(db.store.outbox_store().pending().await.unwrap(), 0);
}
