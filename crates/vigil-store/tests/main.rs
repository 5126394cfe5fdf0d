//! Store tests; every test runs against SQLite and PostgreSQL.

use chrono::Duration;
use uuid::Uuid;
use vigil_core::*;
use vigil_store::Error;
use vigil_store::testing::TestDb;
use vigil_store::*;

/// Generates `NAME::sqlite` and `NAME::postgres` from `async fn NAME(db: &TestDb)`.
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = vigil_store::testing::TestDb::new(vigil_store::Backend::Sqlite).await.unwrap();
                super::$name(&db).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(db) = vigil_store::testing::TestDb::new(vigil_store::Backend::Postgres).await else { return };
                super::$name(&db).await;
            }
        }
    )*};
}

both!(
    filters_sorting_and_pagination,
    cursor_pages_cover_everything_once,
    lifecycle_writes_history,
    duplicate_alert_id_conflicts_per_org,
    orgs_are_isolated,
    refresh_rotation_and_reuse_revokes_family,
    password_change_and_disable_revoke_sessions,
    actions_and_agents,
    count_is_capped_unless_exact,
    concurrent_creates_each_get_their_own_result,
    enrollment_tokens_are_one_time_and_expire,
    agent_credentials_heartbeats_and_revocation,
    api_keys_by_hash_and_revocation,
    event_batches_are_stored_once_and_queryable,
    a_failed_event_batch_stores_nothing_and_long_keys_are_capped,
    detections_fold_into_open_alerts_within_window,
    a_batch_is_stored_whole_with_its_alerts_or_not_at_all,
    ml_features_and_models_are_versioned_per_org,
    search_sees_through_control_characters,
    search_texts_of_older_rows_are_backfilled_once,
);

fn new_alert(i: usize, now: chrono::DateTime<chrono::Utc>) -> NewAlert {
    let sev = Severity::ALL[i % 4];
    NewAlert::parse(
        AlertInput {
            alert_id: Some(format!("A-{i}")),
            title: format!(
                "Alert number {i} {}",
                if i.is_multiple_of(5) {
                    "SSH brute force"
                } else {
                    "port scan"
                }
            ),
            description: if i.is_multiple_of(7) {
                "100% suspicious_thing".into()
            } else {
                String::new()
            },
            severity: sev,
            source: Some(AlertSource::ALL[i % 5]),
            timestamp: Some(now - Duration::minutes(i as i64)),
            attack_technique_id: Some(
                if i.is_multiple_of(2) {
                    "T1110.001"
                } else {
                    "T1046"
                }
                .into(),
            ),
            agent_id: Some(format!("agent-{}", i % 3)),
            tags: if i.is_multiple_of(4) {
                vec!["vip".into(), "ssh".into()]
            } else {
                vec!["ssh".into()]
            },
            ..Default::default()
        },
        now,
    )
    .unwrap()
}

async fn seeded(db: &TestDb, n: usize) -> Uuid {
    let org = db.store.create_org("acme").await.unwrap();
    let now = vigil_core::now();
    let alerts: Vec<_> = (0..n).map(|i| new_alert(i, now)).collect();
    assert_eq!(
        db.store.insert_alerts_bulk(org.id, alerts).await.unwrap(),
        n as u64
    );
    db.store.analyze().await.unwrap();
    org.id
}

fn filter() -> AlertFilter {
    AlertFilter {
        limit: 50,
        descending: true,
        ..Default::default()
    }
}

async fn filters_sorting_and_pagination(db: &TestDb) {
    let org = seeded(db, 60).await;
    let s = &db.store;
    let all = s.list_alerts(org, &filter()).await.unwrap();
    assert_eq!(all.total, 60);
    assert_eq!(all.items.len(), 50);
    // Newest first: A-0 has the latest timestamp.
    assert_eq!(all.items[0].alert_id, "A-0");
    assert!(
        all.items
            .windows(2)
            .all(|w| w[0].timestamp >= w[1].timestamp)
    );

    let f = AlertFilter {
        severities: vec![Severity::High, Severity::Critical],
        ..filter()
    };
    let p = s.list_alerts(org, &f).await.unwrap();
    assert_eq!(p.total, 30);
    assert!(p.items.iter().all(|a| a.severity >= Severity::High));

    let f = AlertFilter {
        technique: Some(AttackTechniqueId::parse("T1110").unwrap()),
        ..filter()
    };
    assert_eq!(s.list_alerts(org, &f).await.unwrap().total, 30);
    let f = AlertFilter {
        tag: Some("vip".into()),
        ..filter()
    };
    assert_eq!(s.list_alerts(org, &f).await.unwrap().total, 15);
    let f = AlertFilter {
        text: Some("ssh BRUTE".into()),
        ..filter()
    };
    assert_eq!(s.list_alerts(org, &f).await.unwrap().total, 12);
    // LIKE metacharacters are literal.
    let f = AlertFilter {
        text: Some("100%".into()),
        ..filter()
    };
    assert_eq!(s.list_alerts(org, &f).await.unwrap().total, 9);
    let f = AlertFilter {
        text: Some("1_0".into()),
        ..filter()
    };
    assert_eq!(s.list_alerts(org, &f).await.unwrap().total, 0);
    let f = AlertFilter {
        agent_id: Some("agent-1".into()),
        sources: vec![AlertSource::Rule, AlertSource::User],
        ..filter()
    };
    let p = s.list_alerts(org, &f).await.unwrap();
    assert!(
        p.total > 0
            && p.items
                .iter()
                .all(|a| a.agent_id.as_deref() == Some("agent-1"))
    );
    let now = vigil_core::now();
    let f = AlertFilter {
        since: Some(now - Duration::minutes(10) - Duration::seconds(1)),
        until: Some(now - Duration::minutes(5) + Duration::seconds(1)),
        ..filter()
    };
    let p = s.list_alerts(org, &f).await.unwrap();
    let ids: Vec<_> = p.items.iter().map(|a| a.alert_id.as_str()).collect();
    assert_eq!(ids, ["A-5", "A-6", "A-7", "A-8", "A-9", "A-10"]);

    let f = AlertFilter {
        sort: AlertSortField::Severity,
        descending: false,
        limit: 5,
        skip: 10,
        ..filter()
    };
    let p = s.list_alerts(org, &f).await.unwrap();
    assert_eq!(p.skip, 10);
    assert_eq!(p.items.len(), 5);
    assert!(p.items.iter().all(|a| a.severity == Severity::Low));
    let f = AlertFilter {
        statuses: vec![AlertStatus::Closed],
        ..filter()
    };
    assert_eq!(s.list_alerts(org, &f).await.unwrap().total, 0);
}

async fn cursor_pages_cover_everything_once(db: &TestDb) {
    let org = seeded(db, 37).await;
    let sorts = [
        AlertSortField::Timestamp,
        AlertSortField::Severity,
        AlertSortField::CreatedAt,
    ];
    // Every sort, both directions, plain and through the tag join ("ssh" is on every alert).
    for sort in sorts {
        for tag in [None, Some("ssh".to_string())] {
            for descending in [true, false] {
                let mut f = AlertFilter {
                    sort,
                    descending,
                    limit: 10,
                    tag: tag.clone(),
                    ..Default::default()
                };
                let mut seen = Vec::new();
                let mut last_key: Option<(i16, chrono::DateTime<chrono::Utc>)> = None;
                loop {
                    let p = db.store.list_alerts(org, &f).await.unwrap();
                    assert_eq!(p.total, 37);
                    for a in &p.items {
                        let key = match sort {
                            AlertSortField::Severity => (a.severity.rank(), a.timestamp),
                            AlertSortField::CreatedAt => (0, a.created_at),
                            _ => (0, a.timestamp),
                        };
                        if let Some(prev) = last_key {
                            assert!(
                                if descending { prev >= key } else { prev <= key },
                                "{sort:?} out of order"
                            );
                        }
                        last_key = Some(key);
                    }
                    seen.extend(p.items.iter().map(|a| a.id));
                    match p.next_cursor {
                        Some(c) => f.cursor = Some(decode_cursor(&c).unwrap()),
                        None => break,
                    }
                }
                let mut uniq = seen.clone();
                uniq.sort();
                uniq.dedup();
                assert_eq!(
                    (seen.len(), uniq.len()),
                    (37, 37),
                    "{sort:?} desc={descending} tag={tag:?}"
                );
            }
        }
    }
}

async fn lifecycle_writes_history(db: &TestDb) {
    let org = db.store.create_org("o").await.unwrap();
    let a = db
        .store
        .create_alert(org.id, new_alert(1, vigil_core::now()), "amy")
        .await
        .unwrap();
    let got = db.store.get_alert(org.id, a.id).await.unwrap().unwrap();
    assert_eq!(got, a, "stored and returned alert differ");
    let a2 = db
        .store
        .update_alert(org.id, a.id, &AlertChange::Acknowledge, "bob")
        .await
        .unwrap();
    assert_eq!(a2.status, AlertStatus::InProgress);
    let closed = db
        .store
        .update_alert(
            org.id,
            a.id,
            &AlertChange::Status {
                to: AlertStatus::Closed,
                notes: Some("done".into()),
            },
            "bob",
        )
        .await
        .unwrap();
    assert_eq!(closed.closed_by.as_deref(), Some("bob"));
    assert_eq!(
        db.store.get_alert(org.id, a.id).await.unwrap().unwrap(),
        closed
    );
    let err = db
        .store
        .update_alert(
            org.id,
            a.id,
            &AlertChange::Status {
                to: AlertStatus::InProgress,
                notes: None,
            },
            "bob",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transition { .. }), "{err:?}");
    let h = db.store.alert_history(org.id, a.id).await.unwrap().unwrap();
    let fields: Vec<_> = h
        .iter()
        .map(|e| (e.field.as_str(), e.changed_by.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            ("created", "amy"),
            ("acknowledged_by", "bob"),
            ("status", "bob"),
            ("status", "bob"),
            ("closed_by", "bob"),
            ("resolution_notes", "bob")
        ]
    );
    assert_eq!(h[2].old_value.as_deref(), Some("open"));
    assert_eq!(h[3].new_value.as_deref(), Some("closed"));
    assert!(matches!(
        db.store
            .update_alert(org.id, Uuid::new_v4(), &AlertChange::Acknowledge, "x")
            .await,
        Err(Error::NotFound)
    ));
}

async fn duplicate_alert_id_conflicts_per_org(db: &TestDb) {
    let o1 = db.store.create_org("one").await.unwrap();
    let o2 = db.store.create_org("two").await.unwrap();
    let now = vigil_core::now();
    db.store
        .create_alert(o1.id, new_alert(1, now), "a")
        .await
        .unwrap();
    let e = db
        .store
        .create_alert(o1.id, new_alert(1, now), "a")
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Conflict(ref m) if m.contains("A-1")),
        "{e:?}"
    );
    // Nothing half-written: still exactly one alert and one history row.
    let p = db.store.list_alerts(o1.id, &filter()).await.unwrap();
    assert_eq!(p.total, 1);
    db.store
        .create_alert(o2.id, new_alert(1, now), "a")
        .await
        .unwrap();
    assert!(matches!(
        db.store.create_org("one").await,
        Err(Error::Conflict(_))
    ));
}

async fn orgs_are_isolated(db: &TestDb) {
    let o1 = db.store.create_org("one").await.unwrap();
    let o2 = db.store.create_org("two").await.unwrap();
    let a = db
        .store
        .create_alert(o1.id, new_alert(1, vigil_core::now()), "a")
        .await
        .unwrap();
    assert!(db.store.get_alert(o2.id, a.id).await.unwrap().is_none());
    assert!(db.store.alert_history(o2.id, a.id).await.unwrap().is_none());
    assert_eq!(
        db.store.list_alerts(o2.id, &filter()).await.unwrap().total,
        0
    );
    assert!(matches!(
        db.store
            .update_alert(o2.id, a.id, &AlertChange::Acknowledge, "x")
            .await,
        Err(Error::NotFound)
    ));
    let u = db
        .store
        .create_user(NewUser {
            org_id: o1.id,
            username: "alice".into(),
            email: None,
            password_hash: "h".into(),
            role: Role::Viewer,
        })
        .await
        .unwrap();
    assert!(
        db.store
            .get_user(Some(o2.id), u.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        db.store
            .update_user(
                Some(o2.id),
                u.id,
                UserUpdate {
                    role: Some(Role::Admin),
                    ..Default::default()
                }
            )
            .await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        db.store.set_password(Some(o2.id), u.id, "x").await,
        Err(Error::NotFound)
    ));
    assert_eq!(db.store.list_users(Some(o2.id)).await.unwrap().len(), 0);
}

async fn user(db: &TestDb) -> User {
    let o = db.store.create_org("o").await.unwrap();
    db.store
        .create_user(NewUser {
            org_id: o.id,
            username: "bob".into(),
            email: Some("b@x".into()),
            password_hash: "h".into(),
            role: Role::Analyst,
        })
        .await
        .unwrap()
}

async fn refresh_rotation_and_reuse_revokes_family(db: &TestDb) {
    let u = user(db).await;
    let now = vigil_core::now();
    let exp = now + Duration::days(1);
    let sid = db
        .store
        .create_session(u.id, b"t1", exp, now)
        .await
        .unwrap();
    assert!(db.store.session_active(sid, now).await.unwrap());
    assert_eq!(
        db.store
            .rotate_refresh_token(b"t1", b"t2", exp, now)
            .await
            .unwrap(),
        RefreshOutcome::Rotated {
            user_id: u.id,
            session_id: sid
        }
    );
    assert_eq!(
        db.store
            .rotate_refresh_token(b"t2", b"t3", exp, now)
            .await
            .unwrap(),
        RefreshOutcome::Rotated {
            user_id: u.id,
            session_id: sid
        }
    );
    // t1 was spent: presenting it again revokes the family, so t3 dies too.
    assert_eq!(
        db.store
            .rotate_refresh_token(b"t1", b"t4", exp, now)
            .await
            .unwrap(),
        RefreshOutcome::Reused { session_id: sid }
    );
    assert!(!db.store.session_active(sid, now).await.unwrap());
    assert_eq!(
        db.store
            .rotate_refresh_token(b"t3", b"t5", exp, now)
            .await
            .unwrap(),
        RefreshOutcome::Invalid
    );
    assert_eq!(
        db.store
            .rotate_refresh_token(b"nope", b"t6", exp, now)
            .await
            .unwrap(),
        RefreshOutcome::Invalid
    );
    // Expired token.
    let sid2 = db
        .store
        .create_session(
            u.id,
            b"e1",
            now - Duration::seconds(1),
            now - Duration::days(1),
        )
        .await
        .unwrap();
    assert!(!db.store.session_active(sid2, now).await.unwrap());
    assert_eq!(
        db.store
            .rotate_refresh_token(b"e1", b"e2", exp, now)
            .await
            .unwrap(),
        RefreshOutcome::Invalid
    );
    // Logout by token.
    let sid3 = db
        .store
        .create_session(u.id, b"l1", exp, now)
        .await
        .unwrap();
    assert!(db.store.revoke_session_by_token(b"l1", now).await.unwrap());
    assert!(!db.store.session_active(sid3, now).await.unwrap());
    assert!(!db.store.revoke_session_by_token(b"l1", now).await.unwrap());
}

async fn password_change_and_disable_revoke_sessions(db: &TestDb) {
    let u = user(db).await;
    let now = vigil_core::now();
    let exp = now + Duration::days(1);
    let s1 = db.store.create_session(u.id, b"a", exp, now).await.unwrap();
    db.store.set_password(None, u.id, "new").await.unwrap();
    assert!(!db.store.session_active(s1, now).await.unwrap());
    assert_eq!(
        db.store.get_credentials("bob").await.unwrap().unwrap().1,
        "new"
    );
    let s2 = db.store.create_session(u.id, b"b", exp, now).await.unwrap();
    let up = db
        .store
        .update_user(
            None,
            u.id,
            UserUpdate {
                disabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(up.disabled);
    assert!(!db.store.session_active(s2, now).await.unwrap());
    assert_eq!(db.store.count_users().await.unwrap(), 1);
}

async fn actions_and_agents(db: &TestDb) {
    let o = db.store.create_org("o").await.unwrap();
    let a = db
        .store
        .create_alert(o.id, new_alert(3, vigil_core::now()), "x")
        .await
        .unwrap();
    let act = db
        .store
        .create_action(
            o.id,
            NewAction {
                alert_id: Some(a.id),
                action_type: "block_ip".into(),
                parameters: serde_json::json!({"ip":"10.0.0.1"}),
                created_by: Some("x".into()),
            },
        )
        .await
        .unwrap();
    let done = db
        .store
        .finish_action(
            o.id,
            act.id,
            ActionStatus::Succeeded,
            serde_json::json!({"ok":true}),
        )
        .await
        .unwrap();
    assert_eq!(done.status, ActionStatus::Succeeded);
    assert!(done.completed_at.is_some());
    assert_eq!(
        db.store.list_actions(o.id, Some(a.id)).await.unwrap(),
        vec![done]
    );
    let other = db.store.create_org("p").await.unwrap();
    assert!(
        db.store
            .list_actions(other.id, None)
            .await
            .unwrap()
            .is_empty()
    );
    let agent = Agent {
        id: Uuid::new_v4(),
        org_id: o.id,
        hostname: "web-1".into(),
        ip: Some("127.0.0.1".into()),
        os: Some("linux".into()),
        version: Some("0.1.0".into()),
        status: AgentStatus::Online,
        last_seen: Some(vigil_core::now()),
        created_at: vigil_core::now(),
        revoked_at: None,
        last_metrics: None,
    };
    db.store.upsert_agent(&agent).await.unwrap();
    let mut moved = agent.clone();
    moved.hostname = "web-2".into();
    db.store.upsert_agent(&moved).await.unwrap();
    assert_eq!(db.store.list_agents(o.id).await.unwrap(), vec![moved]);
}

async fn count_is_capped_unless_exact(db: &TestDb) {
    let n = TOTAL_COUNT_CAP as usize + 50;
    let org = seeded(db, n).await;
    let p = db.store.list_alerts(org, &filter()).await.unwrap();
    assert_eq!((p.total, p.total_is_exact), (TOTAL_COUNT_CAP, false));
    let f = AlertFilter {
        exact_total: true,
        ..filter()
    };
    let p = db.store.list_alerts(org, &f).await.unwrap();
    assert_eq!((p.total, p.total_is_exact), (n as u64, true));
    // Small result sets are exact without asking.
    let f = AlertFilter {
        agent_id: Some("agent-1".into()),
        severities: vec![Severity::Low],
        ..filter()
    };
    let p = db.store.list_alerts(org, &f).await.unwrap();
    assert!(p.total_is_exact && p.total > 0 && p.total < TOTAL_COUNT_CAP);
}

async fn concurrent_creates_each_get_their_own_result(db: &TestDb) {
    let org = db.store.create_org("o").await.unwrap().id;
    let now = vigil_core::now();
    let mut tasks = Vec::new();
    for i in 0..110 {
        let store = db.store.clone();
        let mut a = new_alert(i, now);
        if i >= 100 {
            a.alert_id = "DUP".into();
        }
        tasks.push(tokio::spawn(async move {
            store.create_alert(org, a, "racer").await
        }));
    }
    let mut ok = 0;
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(a) => {
                ok += 1;
                let stored = db.store.get_alert(org, a.id).await.unwrap().unwrap();
                assert_eq!(stored, a);
                let h = db.store.alert_history(org, a.id).await.unwrap().unwrap();
                assert_eq!(h.len(), 1);
                assert_eq!(h[0].changed_by, "racer");
            }
            Err(Error::Conflict(m)) => {
                assert!(m.contains("DUP"), "{m}");
                conflicts += 1;
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!((ok, conflicts), (101, 9));
    let f = AlertFilter {
        exact_total: true,
        ..filter()
    };
    assert_eq!(db.store.list_alerts(org, &f).await.unwrap().total, 101);
    let f = AlertFilter {
        tag: Some("ssh".into()),
        ..f
    };
    assert_eq!(db.store.list_alerts(org, &f).await.unwrap().total, 101);
}

/// PostgreSQL's alert creation is a group commit too: creates queued while every committer
/// is busy (here: waiting on a table lock) go in together, in one transaction (one
/// `created_at`), and a conflicting `alert_id` among them fails alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_group_commit_writes_queued_creates_together_and_fails_only_the_conflict() {
    use sqlx::Connection;
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let org = db.store.create_org("o").await.unwrap().id;
    let now = vigil_core::now();
    db.store
        .create_alert(org, new_alert(0, now), "first")
        .await
        .unwrap();
    let mut lock = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut lock).await.unwrap();
    sqlx::query("LOCK TABLE alerts IN SHARE MODE")
        .execute(&mut lock)
        .await
        .unwrap();
    const N: usize = 60;
    let started = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 1..=N {
        let (store, started) = (db.store.clone(), started.clone());
        let mut a = new_alert(i, now);
        if i == N / 2 {
            a.alert_id = "A-0".into();
        }
        tasks.push(tokio::spawn(async move {
            started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            store.create_alert(org, a, "racer").await
        }));
    }
    // Every committer holds a batch and waits on the lock; the rest queue behind them.
    let committers = PgStore::group_committers(4) as i64;
    let mut probe = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut probe)
        .await
        .unwrap();
        if waiting == committers && started.load(std::sync::atomic::Ordering::SeqCst) == N {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out: {waiting} of {committers} committers waiting on the lock"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    sqlx::query("COMMIT").execute(&mut lock).await.unwrap();
    let mut created = std::collections::HashSet::new();
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(a) => {
                assert_eq!(db.store.get_alert(org, a.id).await.unwrap().unwrap(), a);
                created.insert(a.created_at);
            }
            Err(Error::Conflict(m)) => {
                assert!(m.contains("A-0"), "{m}");
                conflicts += 1;
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(conflicts, 1);
    // One transaction per committer's held batch, one for the queue behind them (and at
    // most one more for a create that was still on its way to the queue).
    assert!(
        created.len() as i64 <= committers + 2,
        "{} transactions for {} creates",
        created.len(),
        N - 1
    );
    let f = AlertFilter {
        exact_total: true,
        ..filter()
    };
    assert_eq!(db.store.list_alerts(org, &f).await.unwrap().total, N as u64);
}

fn token(org: Uuid, hash: &[u8], expires_in: Duration) -> NewEnrollmentToken {
    NewEnrollmentToken {
        org_id: org,
        token_hash: hash.to_vec(),
        description: Some("rack 4".into()),
        created_by: "admin".into(),
        expires_at: vigil_core::now() + expires_in,
    }
}

fn registration(host: &str, cred: &[u8]) -> NewAgentRegistration {
    NewAgentRegistration {
        hostname: host.into(),
        os: Some("linux".into()),
        version: Some("0.1.0".into()),
        ip: None,
        credential_hash: cred.to_vec(),
    }
}

async fn enrollment_tokens_are_one_time_and_expire(db: &TestDb) {
    let org = db.store.create_org("o").await.unwrap().id;
    let t = db
        .store
        .create_enrollment_token(token(org, b"tok-1", Duration::hours(1)))
        .await
        .unwrap();
    db.store
        .create_enrollment_token(token(org, b"tok-old", Duration::seconds(-1)))
        .await
        .unwrap();
    let now = vigil_core::now();
    let agent = db
        .store
        .register_agent(b"tok-1", registration("web-1", b"cred-1"), now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((agent.org_id, agent.hostname.as_str()), (org, "web-1"));
    assert_eq!(agent.status, AgentStatus::Online);
    // Spent, expired and unknown tokens register nothing.
    for hash in [&b"tok-1"[..], b"tok-old", b"nope"] {
        assert!(
            db.store
                .register_agent(hash, registration("x", b"cred-x"), now)
                .await
                .unwrap()
                .is_none()
        );
    }
    let listed = db.store.list_enrollment_tokens(org).await.unwrap();
    let used = listed.iter().find(|x| x.id == t.id).unwrap();
    assert_eq!(used.agent_id, Some(agent.id));
    assert!(used.used_at.is_some());
    assert_eq!(db.store.list_agents(org).await.unwrap().len(), 1);
    let other = db.store.create_org("p").await.unwrap().id;
    assert!(
        db.store
            .list_enrollment_tokens(other)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn agent_credentials_heartbeats_and_revocation(db: &TestDb) {
    let org = db.store.create_org("o").await.unwrap().id;
    db.store
        .create_enrollment_token(token(org, b"t", Duration::hours(1)))
        .await
        .unwrap();
    let a = db
        .store
        .register_agent(b"t", registration("h", b"cred"), vigil_core::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        db.store
            .agent_by_credential(b"cred")
            .await
            .unwrap()
            .unwrap()
            .id,
        a.id
    );
    assert!(
        db.store
            .agent_by_credential(b"other")
            .await
            .unwrap()
            .is_none()
    );
    let metrics = serde_json::json!({"cpu": {"total": 12.5}});
    let hb = HeartbeatUpdate {
        version: Some("0.2.0".into()),
        metrics: Some(metrics.clone()),
        ..Default::default()
    };
    db.store
        .record_heartbeat(org, a.id, hb, vigil_core::now())
        .await
        .unwrap();
    let got = db.store.get_agent(org, a.id).await.unwrap().unwrap();
    assert_eq!(
        (got.version.as_deref(), got.last_metrics),
        (Some("0.2.0"), Some(metrics))
    );
    assert_eq!(
        got.os.as_deref(),
        Some("linux"),
        "a heartbeat without os keeps the old one"
    );
    // Another org sees nothing and cannot touch it.
    let other = db.store.create_org("p").await.unwrap().id;
    assert!(db.store.get_agent(other, a.id).await.unwrap().is_none());
    assert!(matches!(
        db.store.revoke_agent(other, a.id, vigil_core::now()).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        db.store
            .record_heartbeat(other, a.id, HeartbeatUpdate::default(), vigil_core::now())
            .await,
        Err(Error::NotFound)
    ));
    let revoked = db
        .store
        .revoke_agent(org, a.id, vigil_core::now())
        .await
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(revoked.status, AgentStatus::Offline);
    assert!(
        db.store
            .agent_by_credential(b"cred")
            .await
            .unwrap()
            .is_none()
    );
    // An old heartbeat makes an agent stale, an older one offline.
    assert_eq!(
        AgentStatus::from_last_seen(
            Some(vigil_core::now() - Duration::minutes(5)),
            vigil_core::now()
        ),
        AgentStatus::Stale
    );
    assert_eq!(
        AgentStatus::from_last_seen(
            Some(vigil_core::now() - Duration::hours(1)),
            vigil_core::now()
        ),
        AgentStatus::Offline
    );
}

async fn api_keys_by_hash_and_revocation(db: &TestDb) {
    let org = db.store.create_org("o").await.unwrap().id;
    let k = db
        .store
        .create_api_key(NewApiKey {
            org_id: org,
            name: "promtail".into(),
            key_hash: b"k1".to_vec(),
            scopes: vec![ApiScope::Ingest],
            created_by: "admin".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        db.store.api_key_by_hash(b"k1").await.unwrap(),
        Some(k.clone())
    );
    assert_eq!(db.store.list_api_keys(org).await.unwrap(), vec![k.clone()]);
    let other = db.store.create_org("p").await.unwrap().id;
    assert!(matches!(
        db.store
            .revoke_api_key(other, k.id, vigil_core::now())
            .await,
        Err(Error::NotFound)
    ));
    let r = db
        .store
        .revoke_api_key(org, k.id, vigil_core::now())
        .await
        .unwrap();
    assert!(r.revoked_at.is_some());
    assert!(db.store.api_key_by_hash(b"k1").await.unwrap().is_none());
}

fn event(i: usize, t0: chrono::DateTime<chrono::Utc>) -> NewEvent {
    let host = format!("host-{}", i % 3);
    let msg = format!("Failed password for user{i} from 10.0.0.{i} port 22");
    NewEvent {
        timestamp: t0 + Duration::seconds(i as i64),
        host: Some(host.clone()),
        dataset: Some(
            if i.is_multiple_of(2) {
                "auth"
            } else {
                "syslog"
            }
            .into(),
        ),
        message: Some(msg.clone()),
        doc: serde_json::json!({
            "@timestamp": vigil_core::event::format_timestamp(t0 + Duration::seconds(i as i64)),
            "message": msg, "host": {"name": host}, "source": {"ip": format!("10.0.0.{i}"), "port": 22 + i}
        })
        .to_string(),
    }
}

async fn event_batches_are_stored_once_and_queryable(db: &TestDb) {
    let org = db.store.create_org("o").await.unwrap().id;
    let events = db.store.event_store();
    let t0 = vigil_core::now() - Duration::hours(1);
    let batch = Uuid::now_v7();
    let all: Vec<NewEvent> = (0..30).map(|i| event(i, t0)).collect();
    let out = events
        .append_events(org, Some(batch), "agent", all.clone(), vigil_core::now())
        .await
        .unwrap();
    assert_eq!(
        out,
        AppendOutcome {
            stored: 30,
            duplicate: false
        }
    );
    assert!(events.batch_seen(org, batch).await.unwrap());
    let again = events
        .append_events(org, Some(batch), "agent", all.clone(), vigil_core::now())
        .await
        .unwrap();
    assert_eq!(
        again,
        AppendOutcome {
            stored: 0,
            duplicate: true
        }
    );
    assert_eq!(
        events.count_events(org).await.unwrap(),
        30,
        "a re-sent batch adds nothing"
    );
    // The same batch id in another org is another batch.
    let other = db.store.create_org("p").await.unwrap().id;
    assert!(!events.batch_seen(other, batch).await.unwrap());

    let f = EventFilter {
        limit: 1000,
        ..Default::default()
    };
    let page = events.query_events(org, &f).await.unwrap();
    assert_eq!(page.items.len(), 30);
    assert!(
        page.items
            .windows(2)
            .all(|w| w[0].timestamp >= w[1].timestamp),
        "newest first"
    );
    assert!(
        events
            .query_events(other, &f)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let q = |f: EventFilter| {
        let events = events.clone();
        async move {
            events
                .query_events(org, &EventFilter { limit: 1000, ..f })
                .await
                .unwrap()
                .items
        }
    };
    assert_eq!(
        q(EventFilter {
            host: Some("host-1".into()),
            ..Default::default()
        })
        .await
        .len(),
        10
    );
    assert_eq!(
        q(EventFilter {
            dataset: Some("auth".into()),
            ..Default::default()
        })
        .await
        .len(),
        15
    );
    assert_eq!(
        q(EventFilter {
            text: Some("USER17 FROM".into()),
            ..Default::default()
        })
        .await
        .len(),
        1
    );
    let by_ip = q(EventFilter {
        fields: vec![("source.ip".into(), "10.0.0.7".into())],
        ..Default::default()
    })
    .await;
    assert_eq!(by_ip.len(), 1);
    assert_eq!(by_ip[0].doc["source"]["port"], 29);
    let by_port = q(EventFilter {
        fields: vec![("source.port".into(), "29".into())],
        ..Default::default()
    })
    .await;
    assert_eq!(by_port.len(), 1, "numbers compare as written");
    let ranged = q(EventFilter {
        from: Some(t0 + Duration::seconds(10)),
        to: Some(t0 + Duration::seconds(20)),
        ..Default::default()
    })
    .await;
    assert_eq!(ranged.len(), 10);
    let bad = events
        .query_events(
            org,
            &EventFilter {
                fields: vec![("a'b".into(), "x".into())],
                limit: 10,
                ..Default::default()
            },
        )
        .await;
    assert!(matches!(bad, Err(Error::InvalidInput(_))));

    // Cursor pages cover everything once.
    let mut seen = std::collections::HashSet::new();
    let mut cursor = None;
    loop {
        let p = events
            .query_events(
                org,
                &EventFilter {
                    limit: 7,
                    cursor: cursor.clone(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        for e in &p.items {
            assert!(seen.insert(e.id));
        }
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 30);

    // Retention. A replay of a month-old line received now is kept like the others.
    let replayed = event(99, vigil_core::now() - Duration::days(30));
    events
        .append_events(
            org,
            Some(Uuid::now_v7()),
            "agent",
            vec![replayed],
            vigil_core::now(),
        )
        .await
        .unwrap();
    assert_eq!(
        events
            .purge_events(vigil_core::now() - Duration::days(1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        events
            .purge_events(vigil_core::now() + Duration::seconds(1))
            .await
            .unwrap(),
        31
    );
    assert!(!events.batch_seen(org, batch).await.unwrap());
}

async fn a_failed_event_batch_stores_nothing_and_long_keys_are_capped(db: &TestDb) {
    let org = db.store.create_org("o").await.unwrap().id;
    let events = db.store.event_store();
    let t0 = vigil_core::now();
    // An unknown organization: the reference is checked (at commit on SQLite), the whole
    // batch is refused and its id is not kept, so a retry is not taken for a duplicate.
    let ghost = Uuid::now_v7();
    let batch = Uuid::now_v7();
    let all: Vec<NewEvent> = (0..600).map(|i| event(i, t0)).collect();
    assert!(
        events
            .append_events(ghost, Some(batch), "agent", all, vigil_core::now())
            .await
            .is_err()
    );
    assert!(!events.batch_seen(ghost, batch).await.unwrap());
    assert_eq!(events.count_events(ghost).await.unwrap(), 0);

    // Host and dataset are in the listing index's key: over-long values are cut, not refused.
    let mut long = event(1, t0);
    long.host = Some("h".repeat(5000));
    long.dataset = Some("é".repeat(3000));
    events
        .append_events(org, Some(batch), "agent", vec![long], vigil_core::now())
        .await
        .unwrap();
    let page = events
        .query_events(
            org,
            &EventFilter {
                host: Some("h".repeat(vigil_store::MAX_KEY_CHARS)),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(
        page.items[0].dataset.as_deref(),
        Some("é".repeat(vigil_store::MAX_KEY_CHARS).as_str())
    );
}

async fn detections_fold_into_open_alerts_within_window(db: &TestDb) {
    let org = db.store.create_org("o").await.unwrap().id;
    let now = vigil_core::now();
    let det = |i: usize, key: Option<&str>| Detection {
        alert: new_alert(i, now),
        dedup_key: key.map(String::from),
        seen: now + Duration::seconds(i as i64),
    };
    let out = db
        .store
        .record_detections(
            org,
            vec![
                det(1, Some("r1|h1")),
                det(2, Some("r1|h1")),
                det(3, Some("r1|h2")),
                det(4, None),
            ],
            Duration::minutes(10),
        )
        .await
        .unwrap();
    let DetectionOutcome::Created(first) = out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(out[1], DetectionOutcome::Folded(first));
    assert!(matches!(out[2], DetectionOutcome::Created(_)));
    assert!(matches!(out[3], DetectionOutcome::Created(_)));
    let a = db.store.get_alert(org, first).await.unwrap().unwrap();
    assert_eq!(a.event_count, 2);
    assert_eq!(
        a.last_seen,
        Some(vigil_core::truncate_micros(now + Duration::seconds(2)))
    );
    // A closed alert no longer absorbs: the next detection raises a new one.
    let close = AlertChange::Status {
        to: AlertStatus::Closed,
        notes: None,
    };
    db.store
        .update_alert(org, first, &close, "analyst")
        .await
        .unwrap();
    let out = db
        .store
        .record_detections(org, vec![det(5, Some("r1|h1"))], Duration::minutes(10))
        .await
        .unwrap();
    assert!(matches!(out[0], DetectionOutcome::Created(id) if id != first));
    // Outside the window nothing folds either.
    let out = db
        .store
        .record_detections(org, vec![det(6, Some("r1|h2"))], Duration::zero())
        .await
        .unwrap();
    assert!(matches!(out[0], DetectionOutcome::Created(_)));
    // Another org's alerts never absorb.
    let other = db.store.create_org("p").await.unwrap().id;
    let out = db
        .store
        .record_detections(other, vec![det(7, Some("r1|h1"))], Duration::minutes(10))
        .await
        .unwrap();
    assert!(matches!(out[0], DetectionOutcome::Created(_)));
}

/// `append_batch`: events, batch id and alerts commit together. A detection that cannot be
/// written (here: its alert id is taken) takes the events and the batch id down with it,
/// so the batch can be sent again; a duplicate batch raises nothing.
async fn a_batch_is_stored_whole_with_its_alerts_or_not_at_all(db: &TestDb) {
    let org = db.store.create_org("o").await.unwrap().id;
    let events = db.store.event_store();
    let now = vigil_core::now();
    let det = |i: usize, key: Option<&str>| Detection {
        alert: new_alert(i, now),
        dedup_key: key.map(String::from),
        seen: now,
    };
    let send = |batch: Uuid, evs: Vec<NewEvent>, dets: Vec<Detection>| {
        events.append_batch(
            org,
            Some(batch),
            "agent",
            evs,
            dets,
            Duration::minutes(10),
            now,
        )
    };
    let batch = Uuid::now_v7();
    let evs: Vec<NewEvent> = (0..3).map(|i| event(i, now)).collect();
    let (out, raised) = send(
        batch,
        evs.clone(),
        vec![det(1, Some("k")), det(2, Some("k"))],
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        AppendOutcome {
            stored: 3,
            duplicate: false
        }
    );
    let DetectionOutcome::Created(first) = raised[0] else {
        panic!("{raised:?}")
    };
    assert_eq!(
        raised,
        [
            DetectionOutcome::Created(first),
            DetectionOutcome::Folded(first)
        ]
    );

    // The same batch again: nothing stored, nothing raised or folded.
    let (out, raised) = send(batch, evs, vec![det(3, Some("k"))]).await.unwrap();
    assert!(out.duplicate && raised.is_empty(), "{out:?} {raised:?}");
    assert_eq!(
        db.store
            .get_alert(org, first)
            .await
            .unwrap()
            .unwrap()
            .event_count,
        2
    );
    assert_eq!(events.count_events(org).await.unwrap(), 3);

    // A batch whose second alert fails: none of it is stored, its id is not taken.
    let failing = Uuid::now_v7();
    let evs: Vec<NewEvent> = (10..12).map(|i| event(i, now)).collect();
    let r = send(failing, evs.clone(), vec![det(4, None), det(1, None)]).await;
    assert!(matches!(r, Err(Error::Conflict(_))), "{r:?}");
    assert_eq!(events.count_events(org).await.unwrap(), 3);
    assert!(!events.batch_seen(org, failing).await.unwrap());
    let alerts = db.store.list_alerts(org, &filter()).await.unwrap().items;
    assert_eq!(
        alerts.len(),
        1,
        "the failed batch's first alert stays out: {alerts:?}"
    );
    let (out, raised) = send(failing, evs, vec![det(4, None)]).await.unwrap();
    assert_eq!(
        out,
        AppendOutcome {
            stored: 2,
            duplicate: false
        }
    );
    assert!(matches!(raised[..], [DetectionOutcome::Created(_)]));
    assert_eq!(events.count_events(org).await.unwrap(), 5);
}

async fn ml_features_and_models_are_versioned_per_org(db: &TestDb) {
    let a = db.store.create_org("ml-a").await.unwrap().id;
    let b = db.store.create_org("ml-b").await.unwrap().id;
    let ml = db.store.ml_store();
    let now = vigil_core::now();
    let rows: Vec<NewFeatureRow> = (0..30)
        .map(|i| NewFeatureRow {
            feature_set: "network".into(),
            entity: format!("agent-{}", i % 2),
            window_start: now - Duration::minutes(60 - i),
            values: vec![i as f64, 0.5, 1e-300, -2.25],
        })
        .collect();
    ml.append_features(a, rows.clone()).await.unwrap();
    let since = now - Duration::hours(2);
    assert_eq!(
        ml.feature_entities(a, "network", since).await.unwrap(),
        [("agent-0".to_owned(), 15), ("agent-1".to_owned(), 15)]
    );
    let got = ml
        .feature_rows(a, "network", Some("agent-1"), since, 5)
        .await
        .unwrap();
    assert_eq!(got.len(), 5);
    // Newest first, values exactly as written.
    assert_eq!(got[0], rows[29]);
    assert_eq!(
        ml.feature_rows(a, "network", None, since, 100)
            .await
            .unwrap()
            .len(),
        30
    );
    // Another org sees nothing.
    assert!(
        ml.feature_entities(b, "network", since)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        ml.feature_rows(b, "network", None, since, 100)
            .await
            .unwrap()
            .is_empty()
    );

    let model = |n: u8| NewModel {
        feature_set: "network".into(),
        entity: "agent-0".into(),
        trained_at: now,
        sample_count: 15,
        features: vec!["flows".into(), "bytes_out".into()],
        threshold: 0.55,
        training_secs: 0.01,
        model: vec![n; 64],
    };
    for n in 1..=7u8 {
        let m = ml.save_model(a, model(n)).await.unwrap();
        assert_eq!(m.version, i64::from(n));
    }
    let latest = ml.latest_models(a).await.unwrap();
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[0].version, 7);
    assert_eq!(latest[0].model, vec![7u8; 64]);
    assert_eq!(latest[0].features, ["flows", "bytes_out"]);
    assert_eq!(latest[0].trained_at, vigil_core::truncate_micros(now));
    assert!(ml.latest_models(b).await.unwrap().is_empty());
    // Org b's first model is its own version 1.
    assert_eq!(ml.save_model(b, model(9)).await.unwrap().version, 1);
    assert_eq!(ml.latest_models(a).await.unwrap()[0].version, 7);

    assert_eq!(
        ml.purge_features(now - Duration::minutes(40))
            .await
            .unwrap(),
        20
    );
    assert_eq!(
        ml.feature_rows(a, "network", None, since, 100)
            .await
            .unwrap()
            .len(),
        10
    );
}
mod ai;
mod outbox;

fn alert_titled(title: &str, description: &str) -> NewAlert {
    NewAlert::parse(
        AlertInput {
            title: title.into(),
            description: description.into(),
            severity: Severity::High,
            metadata: Some(serde_json::json!({"k\u{0}": ["v\u{0}", "\u{E000}0", "\\u0000"]})),
            agent_id: Some("agent\u{0}1".into()),
            event_type: Some("type\u{E000}".into()),
            ..Default::default()
        },
        vigil_core::now(),
    )
    .unwrap()
}

fn text_filter(text: &str) -> AlertFilter {
    AlertFilter {
        text: Some(text.into()),
        limit: 100,
        ..Default::default()
    }
}

fn nul_event(message: &str, user: &str) -> NewEvent {
    NewEvent::with_doc(
        vigil_core::now(),
        Some("h\u{0}1".into()),
        Some("auth".into()),
        Some(message.into()),
        &serde_json::json!({"message": message, "user": {"name": user}, "k\u{0}\u{E000}": 1}),
    )
}

/// Titles, descriptions and event messages with NUL and other control characters are
/// stored as given (every field round-trips) and found by the words around them.
async fn search_sees_through_control_characters(db: &TestDb) {
    let org = db.store.create_org("o").await.unwrap().id;
    let titles = [
        "x\u{0}mimikatz dump",
        "a\u{1}b\u{1b}[31mred\u{1b}[0m",
        "tab\there\r\nnext line",
        "private \u{E000}0 use",
    ];
    let mut ids = Vec::new();
    for t in titles {
        let a = db
            .store
            .create_alert(org, alert_titled(t, "before\u{0}after"), "u")
            .await
            .unwrap();
        ids.push(a.id);
    }
    for (q, want) in [
        ("mimikatz", 0),
        ("x mimikatz dump", 0),
        ("red", 1),
        ("a b [31mred [0m", 1),
        ("here next", 2),
        ("\u{E000}0 use", 3),
    ] {
        let page = db.store.list_alerts(org, &text_filter(q)).await.unwrap();
        let got: Vec<Uuid> = page.items.iter().map(|a| a.id).collect();
        assert_eq!(got, [ids[want]], "q={q:?}");
        assert_eq!(page.items[0].title, titles[want]);
    }
    assert_eq!(
        db.store
            .list_alerts(org, &text_filter("after"))
            .await
            .unwrap()
            .items
            .len(),
        4
    );
    for (id, title) in ids.iter().zip(titles) {
        let a = db.store.get_alert(org, *id).await.unwrap().unwrap();
        let want = alert_titled(title, "before\u{0}after");
        assert_eq!(
            (
                &a.title,
                &a.description,
                &a.metadata,
                &a.agent_id,
                &a.event_type
            ),
            (
                &want.title,
                &want.description,
                &want.metadata,
                &want.agent_id,
                &want.event_type
            )
        );
    }
    let by_agent = AlertFilter {
        agent_id: Some("agent\u{0}1".into()),
        limit: 100,
        ..Default::default()
    };
    assert_eq!(
        db.store
            .list_alerts(org, &by_agent)
            .await
            .unwrap()
            .items
            .len(),
        4
    );

    let events = db.store.event_store();
    let stored = [
        nul_event("Failed\u{0}password for mallory", "mal\u{0}lory"),
        nul_event("quiet line", "bob"),
    ];
    events
        .append_events(org, None, "api", stored.to_vec(), vigil_core::now())
        .await
        .unwrap();
    let query = |f: EventFilter| {
        let events = events.clone();
        async move {
            events
                .query_events(org, &EventFilter { limit: 100, ..f })
                .await
                .unwrap()
                .items
        }
    };
    let found = query(EventFilter {
        text: Some("PASSWORD for".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].message, stored[0].message);
    assert_eq!(found[0].host.as_deref(), Some("h\u{0}1"));
    let doc: serde_json::Value = serde_json::from_str(&stored[0].doc).unwrap();
    assert_eq!(found[0].doc, doc);
    assert_eq!(
        query(EventFilter {
            text: Some("failed password".into()),
            ..Default::default()
        })
        .await
        .len(),
        1
    );
    let by_field = query(EventFilter {
        fields: vec![("user.name".into(), "mal\u{0}lory".into())],
        ..Default::default()
    })
    .await;
    assert_eq!(by_field.len(), 1);
    assert_eq!(
        query(EventFilter {
            host: Some("h\u{0}1".into()),
            ..Default::default()
        })
        .await
        .len(),
        2
    );
}

/// Rows from before migration 0006 get their search texts when the store migrates, once.
async fn search_texts_of_older_rows_are_backfilled_once(db: &TestDb) {
    let org = db.store.create_org("o").await.unwrap().id;
    db.store
        .create_alert(org, alert_titled("old\u{0}mimikatz", "d\u{0}e"), "u")
        .await
        .unwrap();
    db.store
        .event_store()
        .append_events(
            org,
            None,
            "api",
            vec![nul_event("old\u{0}event line", "u")],
            vigil_core::now(),
        )
        .await
        .unwrap();
    // As an older version left them: no search texts, and the migration's marker.
    let reset = [
        "UPDATE alerts SET title_search = NULL, description_search = NULL",
        "UPDATE events SET message_search = NULL",
        "INSERT INTO pending_backfills (name) VALUES ('0006_search_text')",
    ];
    match db.store.backend() {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            for sql in reset {
                sqlx::query(sql).execute(&pool).await.unwrap();
            }
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            for sql in reset {
                sqlx::query(sql).execute(&pool).await.unwrap();
            }
        }
    }
    let events = db.store.event_store();
    let event_text = |text: &str| EventFilter {
        text: Some(text.into()),
        limit: 10,
        ..Default::default()
    };
    // Across the control character, only the search text matches.
    assert!(
        db.store
            .list_alerts(org, &text_filter("old mimikatz"))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        events
            .query_events(org, &event_text("old event"))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    db.store.migrate().await.unwrap();
    let found = db
        .store
        .list_alerts(org, &text_filter("old mimikatz"))
        .await
        .unwrap();
    assert_eq!(found.items.len(), 1);
    assert_eq!(found.items[0].title, "old\u{0}mimikatz");
    assert_eq!(
        db.store
            .list_alerts(org, &text_filter("d e"))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert_eq!(
        events
            .query_events(org, &event_text("old event"))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    // Done once: a later start does not scan again (the marker is gone).
    let left: i64 = match db.store.backend() {
        Backend::Sqlite => sqlx::query_scalar("SELECT COUNT(*) FROM pending_backfills")
            .fetch_one(&sqlx::SqlitePool::connect(&db.url).await.unwrap())
            .await
            .unwrap(),
        Backend::Postgres => sqlx::query_scalar("SELECT COUNT(*) FROM pending_backfills")
            .fetch_one(&sqlx::PgPool::connect(&db.url).await.unwrap())
            .await
            .unwrap(),
    };
    assert_eq!(left, 0);
}
mod webhooks;
