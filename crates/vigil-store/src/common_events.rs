// `EventStore` for both SQL backends; included by `common.rs`. The one backend-specific
// piece, reading a field out of the JSON document, is `push_json_text` in each backend file.

/// Event columns per row in a multi-row INSERT.
const EVENT_CHUNKS: [usize; 5] = [500, 64, 16, 4, 1];

fn event_chunks(len: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < len {
        let left = len - start;
        let size = EVENT_CHUNKS.iter().copied().find(|s| *s <= left).unwrap_or(1);
        out.push(start..start + size);
        start += size;
    }
    out
}

/// A stored `host` or `dataset`: at most `MAX_KEY_CHARS` characters (they are in the
/// listing index's key).
fn capped_key(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(|s| vigil_core::event::truncate_chars(s, crate::events::MAX_KEY_CHARS))
}

/// A JSON document's text as this backend stores it.
fn db_json_text(doc: &str) -> std::borrow::Cow<'_, str> {
    if ESCAPES_NUL { crate::text::encode_json_nul(doc) } else { std::borrow::Cow::Borrowed(doc) }
}

/// An event read back: its text as it was given.
fn event_from_row(r: crate::rows::EventRow) -> crate::StoredEvent {
    let mut e = crate::StoredEvent::from(r);
    if ESCAPES_NUL {
        e.host = e.host.map(from_db_text);
        e.dataset = e.dataset.map(from_db_text);
        e.message = e.message.map(from_db_text);
        e.doc = from_db_json(std::mem::take(&mut e.doc));
    }
    e
}

/// Writes a batch's id marker and its events into `tx`. With a batch id stored before,
/// writes nothing and answers `duplicate` (the caller then ends the transaction unused).
async fn append_events_tx(
    tx: &mut sqlx::Transaction<'_, Db>,
    org: Uuid,
    batch: Option<Uuid>,
    channel: &str,
    events: &[crate::NewEvent],
    now: DateTime<Utc>,
) -> Result<crate::AppendOutcome> {
    if let Some(batch) = batch {
        let fresh: Option<Uuid> = sqlx::query_scalar(
            "INSERT INTO ingest_batches (org_id, batch_id, received_at, event_count) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING batch_id",
        )
        .bind(org)
        .bind(batch)
        .bind(now)
        .bind(i64::try_from(events.len()).unwrap_or(i64::MAX))
        .fetch_optional(&mut **tx)
        .await?;
        if fresh.is_none() {
            return Ok(crate::AppendOutcome { stored: 0, duplicate: true });
        }
    }
    for r in event_chunks(events.len()) {
        // Plain `?` placeholders on SQLite: with numbered or named ones it looks each one
        // up by a scan of the statement's list of names (quadratic in a 4,500-value INSERT).
        let mut q = QueryBuilder::<Db>::new(format!(
            "{INSERT_EVENTS} (id, org_id, timestamp, ingested_at, host, dataset, channel, message, doc, message_search) "
        ));
        q.push_values(&events[r], |mut b, e| {
            b.push_bind(Uuid::now_v7())
                .push_bind(org)
                .push_bind(vigil_core::truncate_micros(e.timestamp))
                .push_bind(now)
                .push_bind(capped_key(&e.host).map(db_text))
                .push_bind(capped_key(&e.dataset).map(db_text))
                .push_bind(channel)
                .push_bind(e.message.as_deref().map(db_text))
                .push_bind(db_json_text(&e.doc))
                .push_unseparated(JSON_PARAM_CAST)
                .push_bind(e.message.as_deref().and_then(crate::text::search_text));
        });
        q.build().execute(&mut **tx).await?;
    }
    Ok(crate::AppendOutcome { stored: events.len(), duplicate: false })
}

#[async_trait::async_trait]
impl EventStore for StoreImpl {
    async fn append_events(
        &self,
        org: Uuid,
        batch: Option<Uuid>,
        channel: &str,
        events: Vec<crate::NewEvent>,
        now: DateTime<Utc>,
    ) -> Result<crate::AppendOutcome> {
        let (outcome, _) = self
            .append_batch(org, batch, channel, events, Vec::new(), chrono::Duration::zero(), now)
            .await?;
        Ok(outcome)
    }

    async fn append_batch(
        &self,
        org: Uuid,
        batch: Option<Uuid>,
        channel: &str,
        events: Vec<crate::NewEvent>,
        detections: Vec<Detection>,
        dedup_window: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<(crate::AppendOutcome, Vec<DetectionOutcome>)> {
        let now = vigil_core::truncate_micros(now);
        let mut tx = self.writer().begin().await?;
        let outcome = append_events_tx(&mut tx, org, batch, channel, &events, now).await?;
        if outcome.duplicate {
            // Its detections were raised when the batch was first stored.
            return Ok((outcome, Vec::new()));
        }
        let raised = record_detections_tx(&mut tx, org, detections, dedup_window, now).await?;
        tx.commit().await?;
        if !raised.is_empty() {
            self.outbox_notify.notify_one();
        }
        Ok((outcome, raised))
    }

    async fn count_events(&self, org: Uuid) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE org_id = $1")
            .bind(org)
            .fetch_one(&self.read)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn batch_seen(&self, org: Uuid, batch: Uuid) -> Result<bool> {
        let found: Option<Uuid> = sqlx::query_scalar(
            "SELECT batch_id FROM ingest_batches WHERE org_id = $1 AND batch_id = $2",
        )
        .bind(org)
        .bind(batch)
        // A reader: on SQLite the writer connection is busy storing batches, and this early
        // check must not queue behind them (`append_events` decides, in its transaction).
        .fetch_optional(&self.read)
        .await?;
        Ok(found.is_some())
    }

    async fn query_events(&self, org: Uuid, f: &crate::EventFilter) -> Result<crate::EventPage> {
        let limit = f.limit.clamp(1, MAX_LIMIT);
        let cursor = f.cursor.as_deref().map(crate::decode_cursor).transpose()?;
        let mut qb = QueryBuilder::<Db>::new(format!("SELECT {} FROM events", crate::rows::EVENT_COLS));
        qb.push(" WHERE org_id = ").push_bind(org);
        if let Some(from) = f.from {
            qb.push(" AND timestamp >= ").push_bind(from);
        }
        if let Some(to) = f.to {
            qb.push(" AND timestamp < ").push_bind(to);
        }
        if let Some(host) = &f.host {
            qb.push(" AND host = ").push_bind(db_text(host));
        }
        if let Some(dataset) = &f.dataset {
            qb.push(" AND dataset = ").push_bind(db_text(dataset));
        }
        if let Some(text) = &f.text {
            // The search text where one was stored (the message has control characters).
            qb.push(" AND LOWER(COALESCE(message_search, message)) LIKE ")
                .push_bind(like_pattern(text))
                .push(" ESCAPE '\\'");
        }
        for (path, value) in &f.fields {
            if !crate::events::valid_field_path(path) {
                return Err(Error::InvalidInput(format!("'{path}' is not a field path")));
            }
            qb.push(" AND ");
            push_json_text(&mut qb, path);
            qb.push(" = ").push_bind(db_text(value));
        }
        if let Some(c) = &cursor {
            let ts = DateTime::<Utc>::from_timestamp_micros(c.key)
                .ok_or_else(|| Error::InvalidInput("cursor is not valid".into()))?;
            qb.push(" AND (timestamp < ")
                .push_bind(ts)
                .push(" OR (timestamp = ")
                .push_bind(ts)
                .push(" AND id < ")
                .push_bind(c.id)
                .push("))");
        }
        qb.push(" ORDER BY timestamp DESC, id DESC LIMIT ")
            .push_bind(i64::try_from(limit + 1).unwrap_or(i64::MAX));
        let mut rows: Vec<crate::StoredEvent> = qb
            .build_query_as::<crate::rows::EventRow>()
            .fetch_all(&self.read)
            .await?
            .into_iter()
            .map(event_from_row)
            .collect();
        let more = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = match rows.last() {
            Some(last) if more => Some(encode_cursor(&Cursor {
                key: last.timestamp.timestamp_micros(),
                ts: None,
                id: last.id,
            })),
            _ => None,
        };
        Ok(crate::EventPage { items: rows, next_cursor })
    }

    async fn purge_events(&self, before: DateTime<Utc>) -> Result<u64> {
        // Per organization, so each delete walks the (org_id, timestamp, id) index; no
        // extra index on the hot insert path just for retention. An event is kept for the
        // retention period after it was received too, so a replay of old logs can still be
        // investigated (it is not purged by the next sweep).
        let orgs: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM organizations")
            .fetch_all(self.writer())
            .await?;
        let mut gone = 0;
        for org in orgs {
            gone += sqlx::query("DELETE FROM events WHERE org_id = $1 AND timestamp < $2 AND ingested_at < $2")
                .bind(org)
                .bind(before)
                .execute(self.writer())
                .await?
                .rows_affected();
        }
        sqlx::query("DELETE FROM ingest_batches WHERE received_at < $1")
            .bind(before)
            .execute(self.writer())
            .await?;
        Ok(gone)
    }
}
