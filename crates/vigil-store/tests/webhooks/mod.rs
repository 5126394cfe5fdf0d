//! Webhook endpoints and deliveries: idempotent fan-in, leases, per-alert order, retries,
//! redelivery, org isolation.

use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;
use vigil_store::testing::TestDb;
use vigil_store::*;

both!(
    deliveries_are_idempotent_leased_and_kept_in_alert_order,
    endpoints_stay_in_their_org
);

fn endpoint(name: &str) -> NewWebhookEndpoint {
    NewWebhookEndpoint {
        name: name.into(),
        url: "https://hooks.example/x".into(),
        secret: "encrypted".into(),
        enabled: true,
        min_severity: Some(vigil_core::Severity::High),
        sources: vec!["detection".into()],
        tags: vec![],
        event_kinds: vec![],
        headers: vec![("X-Team".into(), "secops".into())],
        timeout_ms: 5000,
        from_config: false,
    }
}

fn delivery(org: Uuid, ep: Uuid, alert: Uuid, seq: i64) -> NewWebhookDelivery {
    NewWebhookDelivery {
        org_id: org,
        endpoint_id: ep,
        event_id: Uuid::now_v7(),
        alert_id: alert,
        seq,
        kind: "alert.created".into(),
        payload: format!("{{\"seq\":{seq}}}"),
    }
}

async fn deliveries_are_idempotent_leased_and_kept_in_alert_order(db: &TestDb) {
    let org = db.store.create_org("acme").await.unwrap().id;
    let wh = db.store.webhook_store();
    let ep = wh.create_endpoint(org, endpoint("siem")).await.unwrap();
    assert_eq!(
        ep.headers,
        vec![("X-Team".to_string(), "secops".to_string())]
    );
    assert_eq!(ep.min_severity, Some(vigil_core::Severity::High));
    let alert = Uuid::now_v7();
    let first = delivery(org, ep.id, alert, 1);
    let second = delivery(org, ep.id, alert, 2);
    let other = delivery(org, ep.id, Uuid::now_v7(), 3);
    let batch = vec![first.clone(), second.clone(), other.clone()];
    assert_eq!(wh.insert_deliveries(&batch).await.unwrap(), 3);
    // The same events again (a redispatch after a crash): nothing new.
    assert_eq!(wh.insert_deliveries(&batch).await.unwrap(), 0);

    let now = Utc::now();
    assert_eq!(wh.due_endpoints(now).await.unwrap(), vec![ep.id]);
    let lease = Duration::from_secs(60);
    let claimed = wh
        .claim_deliveries(ep.id, "a", 10, lease, now)
        .await
        .unwrap();
    // The alert's second change waits for its first.
    assert_eq!(claimed.len(), 2, "{claimed:?}");
    // Leased rows are not claimed twice.
    assert!(
        wh.claim_deliveries(ep.id, "b", 10, lease, now)
            .await
            .unwrap()
            .is_empty()
    );
    let list = wh
        .list_deliveries(org, ep.id, None, None, 10)
        .await
        .unwrap();
    let id_of = |seq: i64| list.iter().find(|d| d.seq == seq).unwrap().id;
    assert!(claimed.contains(&id_of(1)) && claimed.contains(&id_of(3)));

    // A failure: retried later, still blocks the second change.
    let retry_at = now + chrono::Duration::seconds(30);
    let rec = |next| WebhookAttemptRecord {
        at: now,
        outcome: "failed".into(),
        status_code: Some(500),
        latency_ms: 12,
        error: Some("HTTP 500".into()),
        next,
    };
    assert!(
        wh.record_attempt(id_of(1), "a", rec(WebhookNext::Retry(retry_at)))
            .await
            .unwrap()
    );
    // Someone who does not hold the lease cannot record.
    assert!(
        !wh.record_attempt(id_of(3), "b", rec(WebhookNext::Delivered))
            .await
            .unwrap()
    );
    assert!(
        wh.claim_deliveries(ep.id, "a", 10, lease, now)
            .await
            .unwrap()
            .is_empty()
    );
    let later = retry_at + chrono::Duration::seconds(1);
    assert_eq!(
        wh.claim_deliveries(ep.id, "a", 10, lease, later)
            .await
            .unwrap(),
        vec![id_of(1)]
    );
    assert!(
        wh.record_attempt(id_of(1), "a", rec(WebhookNext::Delivered))
            .await
            .unwrap()
    );
    assert_eq!(
        wh.claim_deliveries(ep.id, "a", 10, lease, later)
            .await
            .unwrap(),
        vec![id_of(2)]
    );

    // An expired lease (its owner died) is claimed again by another owner.
    let much_later = later + chrono::Duration::seconds(120);
    let reclaimed = wh
        .claim_deliveries(ep.id, "b", 10, lease, much_later)
        .await
        .unwrap();
    assert_eq!(reclaimed.len(), 2, "{reclaimed:?}");
    assert!(
        wh.record_attempt(id_of(2), "b", rec(WebhookNext::Dead))
            .await
            .unwrap()
    );
    assert!(
        wh.record_attempt(
            id_of(3),
            "b",
            rec(WebhookNext::DisableEndpoint("410 Gone".into()))
        )
        .await
        .unwrap()
    );
    let ep2 = wh.get_endpoint(org, ep.id).await.unwrap().unwrap();
    assert!(!ep2.enabled);
    assert_eq!(ep2.disabled_reason.as_deref(), Some("410 Gone"));
    assert!(wh.enabled_endpoints().await.unwrap().is_empty());

    let d1 = wh.get_delivery(org, id_of(1)).await.unwrap().unwrap();
    assert_eq!(d1.status, WebhookDeliveryStatus::Delivered);
    assert_eq!(d1.attempts, 2);
    assert_eq!(wh.list_attempts(org, id_of(1)).await.unwrap().len(), 2);
    let dead = wh
        .list_deliveries(org, ep.id, Some(WebhookDeliveryStatus::Dead), None, 10)
        .await
        .unwrap();
    assert_eq!(dead.len(), 2);
    // Pages: newest first, `before` continues.
    let page1 = wh.list_deliveries(org, ep.id, None, None, 2).await.unwrap();
    let page2 = wh
        .list_deliveries(org, ep.id, None, Some(page1[1].id), 2)
        .await
        .unwrap();
    assert_eq!(page1.len() + page2.len(), 3);
    assert!(page2.iter().all(|d| !page1.iter().any(|p| p.id == d.id)));

    // Retention: finished rows older than the cut are deleted, newer ones kept.
    assert_eq!(
        wh.prune_deliveries(now - chrono::Duration::hours(1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        wh.list_deliveries(org, ep.id, None, None, 10)
            .await
            .unwrap()
            .len(),
        3
    );

    // Redelivery of everything dead since a time.
    let n = wh
        .redeliver_dead_since(org, ep.id, now - chrono::Duration::hours(1), much_later)
        .await
        .unwrap();
    assert_eq!(n, 2);
    let r = wh.redeliver(org, id_of(1), much_later).await.unwrap();
    assert_eq!(r.status, WebhookDeliveryStatus::Pending);
    let counts = wh.delivery_counts().await.unwrap();
    assert_eq!(counts, vec![(WebhookDeliveryStatus::Pending, 3)]);
    // Pending rows are never pruned.
    let future = much_later + chrono::Duration::days(365);
    assert_eq!(wh.prune_deliveries(future).await.unwrap(), 0);
}

async fn endpoints_stay_in_their_org(db: &TestDb) {
    let a = db.store.create_org("a").await.unwrap().id;
    let b = db.store.create_org("b").await.unwrap().id;
    let wh = db.store.webhook_store();
    let ep = wh.create_endpoint(a, endpoint("siem")).await.unwrap();
    assert!(matches!(
        wh.create_endpoint(a, endpoint("siem")).await,
        Err(Error::Conflict(_))
    ));
    wh.create_endpoint(b, endpoint("siem")).await.unwrap();
    assert!(wh.get_endpoint(b, ep.id).await.unwrap().is_none());
    assert!(wh.endpoint_secret(b, ep.id).await.unwrap().is_none());
    assert!(matches!(
        wh.delete_endpoint(b, ep.id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        wh.update_endpoint(
            b,
            ep.id,
            WebhookEndpointUpdate {
                url: Some("https://evil.example".into()),
                ..Default::default()
            }
        )
        .await,
        Err(Error::NotFound)
    ));
    wh.insert_deliveries(&[delivery(a, ep.id, Uuid::now_v7(), 1)])
        .await
        .unwrap();
    assert!(
        wh.list_deliveries(b, ep.id, None, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let d = wh.list_deliveries(a, ep.id, None, None, 10).await.unwrap()[0].id;
    assert!(wh.get_delivery(b, d).await.unwrap().is_none());
    assert!(matches!(
        wh.redeliver(b, d, Utc::now()).await,
        Err(Error::NotFound)
    ));
    let u = wh
        .update_endpoint(
            a,
            ep.id,
            WebhookEndpointUpdate {
                enabled: Some((false, Some("by admin".into()))),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!u.enabled);
    wh.delete_endpoint(a, ep.id).await.unwrap();
    assert_eq!(wh.list_endpoints(a).await.unwrap().len(), 0);
    assert_eq!(wh.list_endpoints(b).await.unwrap().len(), 1);
}
