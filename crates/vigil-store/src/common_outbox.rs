// The outbox (`outbox.rs`) for both SQL backends; included by `common.rs`. The write side is
// `insert_outbox_tx`, called by every alert write path inside its own transaction; the
// caller wakes the notifier after its COMMIT.

/// An event about `alert` as it is after the change, ready for the outbox (its `seq` is
/// given by the database).
fn alert_event(
    kind: vigil_core::AlertEventKind,
    actor: &str,
    alert: &Alert,
    changes: Vec<vigil_core::AlertFieldChange>,
    now: DateTime<Utc>,
) -> vigil_core::AlertEvent {
    vigil_core::AlertEvent {
        schema: vigil_core::ALERT_EVENT_SCHEMA,
        id: Uuid::now_v7(),
        seq: 0,
        kind,
        org_id: alert.org_id,
        occurred_at: now,
        actor: actor.to_string(),
        alert: alert.clone(),
        changes,
    }
}

/// The audited field changes of a lifecycle change, as event changes.
fn event_changes(changes: &[FieldChange]) -> Vec<vigil_core::AlertFieldChange> {
    changes
        .iter()
        .map(|c| vigil_core::AlertFieldChange::new(c.field, c.old.clone(), c.new.clone()))
        .collect()
}

/// Writes `events` into the outbox inside the caller's transaction.
async fn insert_outbox_tx(
    tx: &mut sqlx::Transaction<'_, Db>,
    events: &[vigil_core::AlertEvent],
) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let payloads = events
        .iter()
        .map(serde_json::to_string)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::InvalidInput(format!("alert event cannot be encoded: {e}")))?;
    for r in fixed_chunks(events.len()) {
        let mut q = QueryBuilder::<Db>::new(
            "INSERT INTO outbox (event_id, org_id, alert_id, kind, occurred_at, payload) ",
        );
        q.push_values(events[r.clone()].iter().zip(&payloads[r]), |mut b, (e, p)| {
            b.push_bind(e.id)
                .push_bind(e.org_id)
                .push_bind(e.alert.id)
                .push_bind(e.kind.as_str())
                .push_bind(e.occurred_at)
                .push_bind(p.as_str());
        });
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Outbox rows read back: the payload with `seq` from its column. A row whose payload does
/// not parse is returned in the second list (it can never be delivered).
fn outbox_events(rows: Vec<(i64, String)>) -> (Vec<vigil_core::AlertEvent>, Vec<i64>) {
    let mut events = Vec::with_capacity(rows.len());
    let mut bad = Vec::new();
    for (seq, payload) in rows {
        match serde_json::from_str::<vigil_core::AlertEvent>(&payload) {
            Ok(mut e) => {
                e.seq = seq;
                events.push(e);
            }
            Err(e) => {
                tracing::error!(seq, error = %e, "outbox row does not hold a valid alert event; dropped");
                bad.push(seq);
            }
        }
    }
    events.sort_by_key(|e| e.seq);
    (events, bad)
}

#[async_trait::async_trait]
impl crate::OutboxStore for StoreImpl {
    async fn claim(
        &self,
        owner: &str,
        limit: u32,
        lease: std::time::Duration,
    ) -> Result<Vec<vigil_core::AlertEvent>> {
        // Most polls find nothing: a read answers that without taking the writer (SQLite's
        // one writer is alert creation's too).
        let any: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM outbox WHERE dispatched_at IS NULL LIMIT 1")
                .fetch_optional(&self.read)
                .await?;
        if any.is_none() {
            return Ok(Vec::new());
        }
        let now = vigil_core::now();
        let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
        // PostgreSQL: a row another dispatcher is claiming right now is skipped, not waited
        // for; SQLite has one writer, so claims never overlap.
        let lock = match BACKEND {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let rows: Vec<(i64, String)> = sqlx::query_as(&format!(
            "UPDATE outbox SET claimed_until = $1, claimed_by = $2 WHERE seq IN (\
             SELECT seq FROM outbox WHERE dispatched_at IS NULL \
             AND (claimed_until IS NULL OR claimed_until < $3 OR claimed_by = $2) \
             ORDER BY seq LIMIT $4{lock}) RETURNING seq, payload"
        ))
        .bind(until)
        .bind(owner)
        .bind(now)
        .bind(i64::from(limit.max(1)))
        .fetch_all(self.writer())
        .await?;
        let (events, bad) = outbox_events(rows);
        if !bad.is_empty() {
            self.mark_dispatched(&bad).await?;
        }
        Ok(events)
    }

    async fn mark_dispatched(&self, seqs: &[i64]) -> Result<()> {
        let now = vigil_core::now();
        for r in fixed_chunks(seqs.len()) {
            let mut q = QueryBuilder::<Db>::new("UPDATE outbox SET dispatched_at = ");
            q.push_bind(now)
                .push(", claimed_until = NULL WHERE seq IN (");
            let mut s = q.separated(", ");
            for seq in &seqs[r] {
                s.push_bind(*seq);
            }
            q.push(")");
            q.build().execute(self.writer()).await?;
        }
        Ok(())
    }

    async fn after(&self, org: Uuid, after: i64, limit: u32) -> Result<Vec<vigil_core::AlertEvent>> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT seq, payload FROM outbox WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(org)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        Ok(outbox_events(rows).0)
    }

    async fn latest_seq(&self, org: Uuid) -> Result<i64> {
        let n: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM outbox WHERE org_id = $1")
            .bind(org)
            .fetch_one(&self.read)
            .await?;
        Ok(n.unwrap_or(0))
    }

    async fn pending(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE dispatched_at IS NULL")
            .fetch_one(&self.read)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn prune(&self, dispatched_before: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM outbox WHERE dispatched_at IS NOT NULL AND dispatched_at < $1",
        )
        .bind(dispatched_before)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }

    fn notifier(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.outbox_notify.clone()
    }
}
