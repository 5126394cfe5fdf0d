// The one implementation of `Store`, compiled once per backend: `sqlite.rs` and `postgres.rs`
// each define `Db`, `StoreImpl`, `BACKEND`, `FOR_UPDATE` and `migrator()`, then `include!`
// this file. SQL text is shared; `$N` placeholders work on both databases.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{Pool, QueryBuilder};
use uuid::Uuid;
use vigil_core::{
    Action, ActionStatus, Agent, Alert, AlertFilter, AlertHistoryEntry, AlertPage, AlertSortField,
    ApiKey, Cursor, EnrollmentToken, NewAlert, Organization, User,
};

use crate::rows::{
    AGENT_COLS, ALERT_COLS, API_KEY_COLS, ActionRow, AgentRow, AlertRow, ApiKeyRow, ENROLLMENT_COLS,
    EnrollmentRow, HistoryRow, OrgRow, USER_COLS, UserRow,
};
use crate::{
    AlertChange, Backend, Detection, DetectionOutcome, Error, EventStore, FieldChange, HeartbeatUpdate,
    NewAction, NewAgentRegistration, NewApiKey, NewEnrollmentToken, NewUser, RefreshOutcome, Result,
    Store, UserUpdate, apply_change, encode_cursor,
};

/// Largest page a listing returns.
pub const MAX_LIMIT: u64 = 1000;

fn sort_column(f: AlertSortField) -> &'static str {
    match f {
        AlertSortField::Timestamp => "timestamp",
        AlertSortField::CreatedAt => "created_at",
        AlertSortField::UpdatedAt => "updated_at",
        AlertSortField::Severity => "severity",
    }
}

fn cursor_key(a: &Alert, f: AlertSortField) -> i64 {
    match f {
        AlertSortField::Timestamp => a.timestamp.timestamp_micros(),
        AlertSortField::CreatedAt => a.created_at.timestamp_micros(),
        AlertSortField::UpdatedAt => a.updated_at.timestamp_micros(),
        AlertSortField::Severity => i64::from(a.severity.rank()),
    }
}

/// Text as this backend stores it (PostgreSQL escapes U+0000; see `text.rs`).
fn db_text(s: &str) -> std::borrow::Cow<'_, str> {
    if ESCAPES_NUL { crate::text::encode_nul(s) } else { std::borrow::Cow::Borrowed(s) }
}

/// Text as it was given, from its stored form.
fn from_db_text(s: String) -> String {
    if ESCAPES_NUL { crate::text::decode_nul(s) } else { s }
}

/// A JSON value as this backend stores it.
fn db_json(v: &serde_json::Value) -> std::borrow::Cow<'_, serde_json::Value> {
    if ESCAPES_NUL { crate::text::encode_json_value_nul(v) } else { std::borrow::Cow::Borrowed(v) }
}

/// A JSON value as it was given, from its stored form.
fn from_db_json(mut v: serde_json::Value) -> serde_json::Value {
    if ESCAPES_NUL {
        crate::text::decode_json_nul(&mut v);
    }
    v
}

/// An alert read back: its free-text fields as they were given.
fn alert_from_row(r: AlertRow) -> Result<Alert> {
    let mut a = r.into_alert()?;
    if ESCAPES_NUL {
        a.title = from_db_text(a.title);
        a.description = from_db_text(a.description);
        a.event_type = from_db_text(a.event_type);
        a.agent_id = a.agent_id.map(from_db_text);
        a.metadata = from_db_json(a.metadata);
        for o in &mut a.observables {
            o.value = from_db_text(std::mem::take(&mut o.value));
        }
    }
    Ok(a)
}

fn like_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// Appends the WHERE conditions of a filter (without pagination). With `tag_joined`, the
/// tag condition is already part of a join on `alert_tags t`.
fn push_filter<'a>(qb: &mut QueryBuilder<'a, Db>, org: Uuid, f: &'a AlertFilter, tag_joined: bool) {
    qb.push(" WHERE alerts.org_id = ").push_bind(org);
    if !f.statuses.is_empty() {
        qb.push(" AND alerts.status IN (");
        let mut s = qb.separated(", ");
        for st in &f.statuses {
            s.push_bind(st.as_str());
        }
        qb.push(")");
    }
    if !f.severities.is_empty() {
        qb.push(" AND alerts.severity IN (");
        let mut s = qb.separated(", ");
        for sv in &f.severities {
            s.push_bind(sv.rank());
        }
        qb.push(")");
    }
    if !f.sources.is_empty() {
        qb.push(" AND alerts.source IN (");
        let mut s = qb.separated(", ");
        for so in &f.sources {
            s.push_bind(so.as_str());
        }
        qb.push(")");
    }
    if let Some(a) = &f.agent_id {
        qb.push(" AND alerts.agent_id = ").push_bind(db_text(a));
    }
    if let Some(t) = &f.technique {
        // A parent technique matches its sub-techniques through technique_base.
        if t.as_str().contains('.') {
            qb.push(" AND alerts.attack_technique_id = ").push_bind(t.as_str());
        } else {
            qb.push(" AND alerts.technique_base = ").push_bind(t.as_str());
        }
    }
    if let Some(tag) = &f.tag
        && !tag_joined
    {
        qb.push(" AND alerts.id IN (SELECT alert_id FROM alert_tags WHERE org_id = ")
            .push_bind(org)
            .push(" AND tag = ")
            .push_bind(tag.as_str())
            .push(")");
    }
    if let Some(text) = &f.text {
        let p = like_pattern(text);
        // The search text where one was stored (the text has control characters), the
        // text itself otherwise.
        qb.push(" AND (LOWER(COALESCE(alerts.title_search, alerts.title)) LIKE ")
            .push_bind(p.clone())
            .push(" ESCAPE '\\' OR LOWER(COALESCE(alerts.description_search, alerts.description)) LIKE ")
            .push_bind(p)
            .push(" ESCAPE '\\')");
    }
    let ts = if tag_joined { "t.timestamp" } else { "alerts.timestamp" };
    if let Some(s) = f.since {
        qb.push(format!(" AND {ts} >= ")).push_bind(s);
    }
    if let Some(u) = f.until {
        qb.push(format!(" AND {ts} < ")).push_bind(u);
    }
}

/// `FROM` clause: with a tag filter, alerts are reached through the tag index.
fn push_from<'a>(qb: &mut QueryBuilder<'a, Db>, org: Uuid, f: &'a AlertFilter) -> bool {
    match &f.tag {
        Some(tag) => {
            qb.push(" FROM alert_tags t JOIN alerts ON alerts.id = t.alert_id AND t.org_id = ")
                .push_bind(org)
                .push(" AND t.tag = ")
                .push_bind(tag.as_str());
            true
        }
        None => {
            qb.push(" FROM alerts");
            false
        }
    }
}

async fn insert_history(
    tx: &mut sqlx::Transaction<'_, Db>,
    org: Uuid,
    alert: Uuid,
    actor: &str,
    at: DateTime<Utc>,
    change: &FieldChange,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO alert_history (alert_id, org_id, changed_by, changed_at, field, old_value, new_value) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(alert)
    .bind(org)
    .bind(actor)
    .bind(at)
    .bind(change.field)
    .bind(change.old.as_deref())
    .bind(change.new.as_deref())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// `FROM ... WHERE ...` of a count. A filter on a tag (and time) alone is counted on the
/// tag index without touching the alerts table.
fn push_count_source<'a>(qb: &mut QueryBuilder<'a, Db>, org: Uuid, f: &'a AlertFilter) {
    let tag_only = f.statuses.is_empty()
        && f.severities.is_empty()
        && f.sources.is_empty()
        && f.agent_id.is_none()
        && f.technique.is_none()
        && f.text.is_none();
    match &f.tag {
        Some(tag) if tag_only => {
            qb.push(" FROM alert_tags t WHERE t.org_id = ")
                .push_bind(org)
                .push(" AND t.tag = ")
                .push_bind(tag.as_str());
            if let Some(s) = f.since {
                qb.push(" AND t.timestamp >= ").push_bind(s);
            }
            if let Some(u) = f.until {
                qb.push(" AND t.timestamp < ").push_bind(u);
            }
        }
        _ => {
            let joined = push_from(qb, org, f);
            push_filter(qb, org, f, joined);
        }
    }
}

fn technique_base(t: &vigil_core::AttackTechniqueId) -> String {
    t.as_str().split('.').next().unwrap_or_default().to_string()
}

/// A new alert waiting to be written.
pub(crate) struct PendingAlert {
    pub org: Uuid,
    pub alert: NewAlert,
    pub actor: String,
    /// Detections: the key later detections fold into this alert by, and when it was seen.
    pub dedup_key: Option<String>,
    pub last_seen: Option<DateTime<Utc>>,
}

impl PendingAlert {
    fn new(org: Uuid, alert: NewAlert, actor: &str) -> Self {
        Self { org, alert, actor: actor.to_string(), dedup_key: None, last_seen: None }
    }
}

/// Rows per multi-row INSERT (at most 23 parameters each; well under both databases' limits).
const INSERT_CHUNK: usize = 500;

/// Splits `len` rows into chunks whose sizes come from a small fixed set, so multi-row
/// statements have few distinct SQL texts and stay in the prepared-statement cache
/// (a batch of 37 is 16 + 16 + 4 + 1, not a one-off 37-row statement).
fn fixed_chunks(len: usize) -> Vec<std::ops::Range<usize>> {
    const SIZES: [usize; 5] = [INSERT_CHUNK, 64, 16, 4, 1];
    let mut out = Vec::new();
    let mut start = 0;
    while start < len {
        let left = len - start;
        let size = SIZES.iter().copied().find(|s| *s <= left).unwrap_or(1);
        out.push(start..start + size);
        start += size;
    }
    out
}

/// Observables as this backend stores them (their values are attacker text).
fn db_observables(o: &[vigil_core::Observable]) -> std::borrow::Cow<'_, [vigil_core::Observable]> {
    if ESCAPES_NUL && o.iter().any(|o| matches!(db_text(&o.value), std::borrow::Cow::Owned(_))) {
        let mut owned = o.to_vec();
        for x in &mut owned {
            x.value = db_text(&x.value).into_owned();
        }
        std::borrow::Cow::Owned(owned)
    } else {
        std::borrow::Cow::Borrowed(o)
    }
}

fn alert_from_new(id: Uuid, org: Uuid, a: NewAlert, now: DateTime<Utc>) -> Alert {
    Alert {
        id,
        alert_id: a.alert_id,
        org_id: org,
        title: a.title,
        description: a.description,
        severity: a.severity,
        status: vigil_core::AlertStatus::Open,
        source: a.source,
        event_type: a.event_type,
        timestamp: a.timestamp,
        created_at: now,
        updated_at: now,
        metadata: a.metadata,
        attack_technique_id: a.attack_technique_id.map(String::from),
        confidence_score: a.confidence_score,
        agent_id: a.agent_id,
        tags: a.tags,
        observables: a.observables,
        resolution_notes: None,
        acknowledged_by: None,
        acknowledged_at: None,
        closed_by: None,
        closed_at: None,
        assignee: None,
        event_count: 1,
        last_seen: None,
    }
}

/// Inserts alerts with their tags, `created` history rows and `alert.created` outbox rows
/// using multi-row statements. Returns, per input, the new alert, or `None` when its
/// `alert_id` already exists in its organization (that item writes nothing; the others are
/// unaffected). The caller wakes the outbox notifier after its COMMIT.
async fn insert_alerts_tx(
    tx: &mut sqlx::Transaction<'_, Db>,
    items: &[PendingAlert],
    now: DateTime<Utc>,
) -> Result<Vec<Option<Alert>>> {
    let ids: Vec<Uuid> = items.iter().map(|_| Uuid::now_v7()).collect();
    let bases: Vec<Option<String>> = items
        .iter()
        .map(|p| p.alert.attack_technique_id.as_ref().map(technique_base))
        .collect();
    let mut inserted = std::collections::HashSet::with_capacity(items.len());
    for r in fixed_chunks(items.len()) {
        let (chunk, chunk_ids, chunk_bases) = (&items[r.clone()], &ids[r.clone()], &bases[r]);
        let mut q = QueryBuilder::<Db>::new(
            "INSERT INTO alerts (id, org_id, alert_id, title, description, severity, status, source, \
             event_type, timestamp, created_at, updated_at, metadata, attack_technique_id, \
             technique_base, confidence_score, agent_id, tags, observables, title_search, \
             description_search, dedup_key, last_seen) ",
        );
        q.push_values(chunk.iter().zip(chunk_ids).zip(chunk_bases), |mut b, ((p, id), base)| {
            let a = &p.alert;
            b.push_bind(*id)
                .push_bind(p.org)
                .push_bind(a.alert_id.as_str())
                .push_bind(db_text(&a.title))
                .push_bind(db_text(&a.description))
                .push_bind(a.severity.rank())
                .push_bind("open")
                .push_bind(a.source.as_str())
                .push_bind(db_text(&a.event_type))
                .push_bind(a.timestamp)
                .push_bind(now)
                .push_bind(now)
                .push_bind(Json(db_json(&a.metadata)))
                .push_bind(a.attack_technique_id.as_ref().map(|t| t.as_str()))
                .push_bind(base.as_deref())
                .push_bind(a.confidence_score)
                .push_bind(a.agent_id.as_deref().map(|s| db_text(s).into_owned()))
                .push_bind(Json(&a.tags))
                .push_bind(Json(db_observables(&a.observables)))
                .push_bind(crate::text::search_text(&a.title))
                .push_bind(crate::text::search_text(&a.description))
                .push_bind(p.dedup_key.as_deref().map(|k| db_text(k).into_owned()))
                .push_bind(p.last_seen);
        });
        q.push(" ON CONFLICT (org_id, alert_id) DO NOTHING RETURNING id");
        let got: Vec<Uuid> = q.build_query_scalar().fetch_all(&mut **tx).await?;
        inserted.extend(got);
    }
    // Tags, history and events of the rows that went in.
    let mut tag_rows = Vec::new();
    let mut hist_rows = Vec::new();
    let mut alerts = Vec::with_capacity(items.len());
    let mut events = Vec::with_capacity(inserted.len());
    for (p, id) in items.iter().zip(&ids) {
        if inserted.contains(id) {
            tag_rows.extend(p.alert.tags.iter().map(|t| (*id, p.org, t.as_str(), p.alert.timestamp)));
            hist_rows.push((*id, p.org, p.actor.as_str()));
            let mut alert = alert_from_new(*id, p.org, p.alert.clone(), now);
            alert.last_seen = p.last_seen;
            events.push(alert_event(vigil_core::AlertEventKind::Created, &p.actor, &alert, Vec::new(), now));
            alerts.push(Some(alert));
        } else {
            alerts.push(None);
        }
    }
    for r in fixed_chunks(tag_rows.len()) {
        let chunk = &tag_rows[r];
        let mut q = QueryBuilder::<Db>::new("INSERT INTO alert_tags (alert_id, org_id, tag, timestamp) ");
        q.push_values(chunk, |mut b, (id, org, tag, ts)| {
            b.push_bind(*id).push_bind(*org).push_bind(*tag).push_bind(*ts);
        });
        q.build().execute(&mut **tx).await?;
    }
    for r in fixed_chunks(hist_rows.len()) {
        let chunk = &hist_rows[r];
        let mut q = QueryBuilder::<Db>::new(
            "INSERT INTO alert_history (alert_id, org_id, changed_by, changed_at, field, old_value, new_value) ",
        );
        q.push_values(chunk, |mut b, (id, org, actor)| {
            b.push_bind(*id)
                .push_bind(*org)
                .push_bind(*actor)
                .push_bind(now)
                .push_bind("created")
                .push_bind(None::<&str>)
                .push_bind("open");
        });
        q.build().execute(&mut **tx).await?;
    }
    insert_outbox_tx(tx, &events).await?;
    Ok(alerts)
}

/// Inserts alerts in one transaction and wakes `outbox` after its COMMIT.
async fn insert_in_tx(
    pool: &Pool<Db>,
    items: &[PendingAlert],
    now: DateTime<Utc>,
    outbox: &tokio::sync::Notify,
) -> Result<Vec<Option<Alert>>> {
    let mut tx = pool.begin().await?;
    let r = insert_alerts_tx(&mut tx, items, now).await?;
    tx.commit().await?;
    if r.iter().any(Option::is_some) {
        outbox.notify_one();
    }
    Ok(r)
}

fn finish(p: &PendingAlert, alert: Option<Alert>) -> Result<Alert> {
    alert.ok_or_else(|| Error::Conflict(format!("an alert with alert_id '{}' exists", p.alert.alert_id)))
}

/// Writes a batch in one transaction; if the transaction itself fails, retries each item
/// alone so every caller gets its own precise error.
pub(crate) async fn insert_alerts(
    pool: &Pool<Db>,
    items: Vec<PendingAlert>,
    outbox: &tokio::sync::Notify,
) -> Vec<Result<Alert>> {
    let now = vigil_core::now();
    match insert_in_tx(pool, &items, now, outbox).await {
        Ok(alerts) => items.iter().zip(alerts).map(|(p, a)| finish(p, a)).collect(),
        Err(e) if items.len() == 1 => vec![Err(e)],
        Err(e) => {
            tracing::warn!(error = %e, batch = items.len(), "alert batch failed; retrying items one by one");
            let mut out = Vec::with_capacity(items.len());
            for p in items {
                let r = insert_in_tx(pool, std::slice::from_ref(&p), now, outbox).await;
                out.push(match r {
                    Ok(alerts) => finish(&p, alerts.into_iter().next().flatten()),
                    Err(e) => Err(e),
                });
            }
            out
        }
    }
}

/// One alert creation waiting for a group commit.
struct CreateRequest {
    alert: PendingAlert,
    reply: tokio::sync::oneshot::Sender<Result<Alert>>,
}

/// Most alerts one group commit writes.
const GROUP_COMMIT_MAX: usize = 512;

/// Group commit for alert creation, on both backends: concurrent `create_alert` calls are
/// queued and written together in one transaction (`insert_alerts`: each item still
/// succeeds or fails on its own, a conflicting `alert_id` fails only its own caller), so a
/// burst costs one COMMIT (one WAL fsync / one round trip per statement) instead of one per
/// alert. Under no load a batch is a single alert and nothing waits. `committers` tasks take
/// batches from one queue: SQLite has one writer, PostgreSQL commits several at once.
#[derive(Clone)]
struct GroupCommit(tokio::sync::mpsc::Sender<CreateRequest>);

impl GroupCommit {
    fn start(
        pool: Pool<Db>,
        committers: usize,
        outbox: std::sync::Arc<tokio::sync::Notify>,
    ) -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel(4 * GROUP_COMMIT_MAX);
        let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
        for _ in 0..committers.max(1) {
            tokio::spawn(Self::committer(pool.clone(), rx.clone(), outbox.clone()));
        }
        Self(tx)
    }

    /// Takes what is queued (up to [`GROUP_COMMIT_MAX`]), writes it, answers each caller;
    /// while it writes, the next committer takes the queue. Ends when the store is dropped.
    async fn committer(
        pool: Pool<Db>,
        rx: std::sync::Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<CreateRequest>>>,
        outbox: std::sync::Arc<tokio::sync::Notify>,
    ) {
        loop {
            let batch = {
                let mut rx = rx.lock().await;
                let Some(first) = rx.recv().await else { return };
                let mut batch = vec![first];
                while batch.len() < GROUP_COMMIT_MAX {
                    match rx.try_recv() {
                        Ok(r) => batch.push(r),
                        Err(_) => break,
                    }
                }
                batch
            };
            let (items, replies): (Vec<_>, Vec<_>) =
                batch.into_iter().map(|r| (r.alert, r.reply)).unzip();
            let results = insert_alerts(&pool, items, &outbox).await;
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(result);
            }
        }
    }

    async fn create(&self, alert: PendingAlert) -> Result<Alert> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.0
            .send(CreateRequest { alert, reply })
            .await
            .map_err(|_| Error::Config("the alert writer has stopped".into()))?;
        rx.await
            .map_err(|_| Error::Config("the alert writer has stopped".into()))?
    }
}

/// Raises each detection as a new alert, or folds it into the open alert with its dedup
/// key raised within `window`, inside `tx`, with an outbox row each (`alert.created` or
/// `alert.folded`, the alert as the fold left it). The caller wakes the outbox notifier
/// after its COMMIT.
async fn record_detections_tx(
    tx: &mut sqlx::Transaction<'_, Db>,
    org: Uuid,
    detections: Vec<Detection>,
    window: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<Vec<DetectionOutcome>> {
    let mut out = Vec::with_capacity(detections.len());
    for d in detections {
        let seen = vigil_core::truncate_micros(d.seen);
        if let Some(key) = &d.dedup_key {
            // The folded alert comes back whole: its event needs no second read.
            let folded: Option<AlertRow> = sqlx::query_as(&format!(
                "UPDATE alerts SET event_count = event_count + 1, updated_at = $1, \
                 last_seen = CASE WHEN last_seen IS NULL OR last_seen < $2 THEN $2 ELSE last_seen END \
                 WHERE id = (SELECT id FROM alerts WHERE org_id = $3 AND dedup_key = $4 \
                    AND status IN ('open', 'in_progress') AND created_at >= $5 \
                    ORDER BY created_at DESC LIMIT 1) RETURNING {ALERT_COLS}"
            ))
            .bind(now)
            .bind(seen)
            .bind(org)
            .bind(db_text(key))
            .bind(now - window)
            .fetch_optional(&mut **tx)
            .await?;
            if let Some(row) = folded {
                let alert = alert_from_row(row)?;
                let changes = vec![vigil_core::AlertFieldChange::new(
                    "event_count",
                    Some((alert.event_count - 1).to_string()),
                    Some(alert.event_count.to_string()),
                )];
                let event = alert_event(vigil_core::AlertEventKind::Folded, "detection", &alert, changes, now);
                insert_outbox_tx(tx, std::slice::from_ref(&event)).await?;
                out.push(DetectionOutcome::Folded(alert.id));
                continue;
            }
        }
        let pending = PendingAlert {
            dedup_key: d.dedup_key,
            last_seen: Some(seen),
            ..PendingAlert::new(org, d.alert, "detection")
        };
        let alerts = insert_alerts_tx(tx, std::slice::from_ref(&pending), now).await?;
        let Some(alert) = alerts.into_iter().next().flatten() else {
            return Err(Error::Conflict(format!(
                "alert id '{}' already exists",
                pending.alert.alert_id
            )));
        };
        out.push(DetectionOutcome::Created(alert.id));
    }
    Ok(out)
}

impl StoreImpl {
    async fn fetch_alert<'e, E>(exec: E, org: Uuid, id: Uuid, lock: bool) -> Result<Option<Alert>>
    where
        E: sqlx::Executor<'e, Database = Db>,
    {
        let sql = format!(
            "SELECT {ALERT_COLS} FROM alerts WHERE alerts.id = $1 AND alerts.org_id = $2{}",
            if lock { FOR_UPDATE } else { "" }
        );
        sqlx::query_as::<_, AlertRow>(&sql)
            .bind(id)
            .bind(org)
            .fetch_optional(exec)
            .await?
            .map(alert_from_row)
            .transpose()
    }

    fn writer(&self) -> &Pool<Db> {
        &self.write
    }

    /// Fills the search texts of rows written before migration 0006 (once: the migration
    /// leaves a marker that is removed when this is done). In Rust rather than SQL because
    /// SQLite's string functions stop at, or ignore, a NUL. Only rows with a control
    /// character (or U+E000) in them get one, found by `needs_search_sql`.
    async fn backfill_search_text(&self) -> Result<()> {
        const MARKER: &str = "0006_search_text";
        let pending: Option<String> =
            sqlx::query_scalar("SELECT name FROM pending_backfills WHERE name = $1")
                .bind(MARKER)
                .fetch_optional(self.writer())
                .await?;
        if pending.is_none() {
            return Ok(());
        }
        let mut tx = self.writer().begin().await?;
        let alerts: Vec<(Uuid, String, String)> = sqlx::query_as(&format!(
            "SELECT id, title, description FROM alerts WHERE {} OR {}",
            needs_search_sql("title"),
            needs_search_sql("description")
        ))
        .fetch_all(&mut *tx)
        .await?;
        for (id, title, description) in &alerts {
            sqlx::query("UPDATE alerts SET title_search = $1, description_search = $2 WHERE id = $3")
                .bind(crate::text::search_text(&from_db_text(title.clone())))
                .bind(crate::text::search_text(&from_db_text(description.clone())))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let events: Vec<(Uuid, String)> = sqlx::query_as(&format!(
            "SELECT id, message FROM events WHERE message IS NOT NULL AND {}",
            needs_search_sql("message")
        ))
        .fetch_all(&mut *tx)
        .await?;
        for (id, message) in &events {
            sqlx::query("UPDATE events SET message_search = $1 WHERE id = $2")
                .bind(crate::text::search_text(&from_db_text(message.clone())))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM pending_backfills WHERE name = $1")
            .bind(MARKER)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(alerts = alerts.len(), events = events.len(), "search texts backfilled");
        Ok(())
    }

    /// Reads an agent through the writer, so a row just written is seen.
    async fn get_agent_writer(&self, org: Uuid, id: Uuid) -> Result<Option<Agent>> {
        sqlx::query_as::<_, AgentRow>(&format!(
            "SELECT {AGENT_COLS} FROM agents WHERE org_id = $1 AND id = $2"
        ))
        .bind(org)
        .bind(id)
        .fetch_optional(self.writer())
        .await?
        .map(AgentRow::into_agent)
        .transpose()
    }
}

include!("common_events.rs");
include!("common_ml.rs");
include!("common_ai.rs");
include!("common_stream.rs");
include!("common_outbox.rs");
include!("common_webhooks.rs");

#[async_trait::async_trait]
impl Store for StoreImpl {
    fn backend(&self) -> Backend {
        BACKEND
    }

    async fn migrate(&self) -> Result<()> {
        migrator().run(self.writer()).await?;
        self.backfill_search_text().await?;
        // Planner statistics: SQLite has none until they are gathered (cheap when fresh).
        sqlx::query(OPTIMIZE_SQL).execute(self.writer()).await?;
        Ok(())
    }

    async fn analyze(&self) -> Result<()> {
        sqlx::query(ANALYZE_SQL).execute(self.writer()).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        self.check_file()?;
        // A write through the writer, committed: a read can succeed while every write fails.
        sqlx::query(
            "INSERT INTO ready_probe (id, checked_at) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
        )
        .bind(vigil_core::now().timestamp())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }

    async fn create_org(&self, name: &str) -> Result<Organization> {
        let org = Organization {
            id: Uuid::now_v7(),
            name: name.to_string(),
            created_at: vigil_core::now(),
        };
        sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(org.id)
            .bind(&org.name)
            .bind(org.created_at)
            .execute(self.writer())
            .await
            .map_err(|e| match Error::from(e) {
                Error::Conflict(_) => Error::Conflict(format!("organization '{name}' exists")),
                e => e,
            })?;
        Ok(org)
    }

    async fn get_org_by_name(&self, name: &str) -> Result<Option<Organization>> {
        Ok(
            sqlx::query_as::<_, OrgRow>("SELECT id, name, created_at FROM organizations WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.read)
                .await?
                .map(OrgRow::into_org),
        )
    }

    async fn list_orgs(&self) -> Result<Vec<Organization>> {
        Ok(
            sqlx::query_as::<_, OrgRow>("SELECT id, name, created_at FROM organizations ORDER BY name")
                .fetch_all(&self.read)
                .await?
                .into_iter()
                .map(OrgRow::into_org)
                .collect(),
        )
    }

    async fn count_users(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.read)
            .await?;
        Ok(n as u64)
    }

    async fn create_user(&self, u: NewUser) -> Result<User> {
        let user = User {
            id: Uuid::now_v7(),
            org_id: u.org_id,
            username: u.username,
            email: u.email,
            role: u.role,
            disabled: false,
            created_at: vigil_core::now(),
            last_login_at: None,
        };
        sqlx::query(
            "INSERT INTO users (id, org_id, username, email, password_hash, role, disabled, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(user.id)
        .bind(user.org_id)
        .bind(&user.username)
        .bind(user.email.as_deref())
        .bind(&u.password_hash)
        .bind(user.role.as_str())
        .bind(false)
        .bind(user.created_at)
        .execute(self.writer())
        .await
        .map_err(|e| match Error::from(e) {
            Error::Conflict(_) => {
                Error::Conflict(format!("username '{}' is taken", user.username))
            }
            e => e,
        })?;
        Ok(user)
    }

    async fn get_user(&self, org: Option<Uuid>, id: Uuid) -> Result<Option<User>> {
        let sql = format!(
            "SELECT {USER_COLS} FROM users WHERE id = $1 AND ($2 IS NULL OR org_id = $2)"
        );
        sqlx::query_as::<_, UserRow>(&sql)
            .bind(id)
            .bind(org)
            .fetch_optional(&self.read)
            .await?
            .map(UserRow::into_user)
            .transpose()
    }

    async fn get_user_by_username(&self, username: &str) -> Result<Option<User>> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE username = $1");
        sqlx::query_as::<_, UserRow>(&sql)
            .bind(username)
            .fetch_optional(&self.read)
            .await?
            .map(UserRow::into_user)
            .transpose()
    }

    async fn get_credentials(&self, username: &str) -> Result<Option<(User, String)>> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE username = $1");
        let Some(row) = sqlx::query_as::<_, UserRow>(&sql)
            .bind(username)
            .fetch_optional(&self.read)
            .await?
        else {
            return Ok(None);
        };
        let user = row.into_user()?;
        let hash: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
            .bind(user.id)
            .fetch_one(&self.read)
            .await?;
        Ok(Some((user, hash)))
    }

    async fn list_users(&self, org: Option<Uuid>) -> Result<Vec<User>> {
        let sql = format!(
            "SELECT {USER_COLS} FROM users WHERE ($1 IS NULL OR org_id = $1) ORDER BY username"
        );
        sqlx::query_as::<_, UserRow>(&sql)
            .bind(org)
            .fetch_all(&self.read)
            .await?
            .into_iter()
            .map(UserRow::into_user)
            .collect()
    }

    async fn update_user(&self, org: Option<Uuid>, id: Uuid, up: UserUpdate) -> Result<User> {
        let mut tx = self.writer().begin().await?;
        let sql = format!(
            "SELECT {USER_COLS} FROM users WHERE id = $1 AND ($2 IS NULL OR org_id = $2){FOR_UPDATE}"
        );
        let mut user = sqlx::query_as::<_, UserRow>(&sql)
            .bind(id)
            .bind(org)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Error::NotFound)?
            .into_user()?;
        // Tokens carry the role: a role change ends the user's sessions so it applies now.
        let role_changed = up.role.is_some_and(|r| r != user.role);
        if let Some(r) = up.role {
            user.role = r;
        }
        if let Some(d) = up.disabled {
            user.disabled = d;
        }
        if let Some(e) = up.email {
            user.email = e;
        }
        sqlx::query("UPDATE users SET role = $1, disabled = $2, email = $3 WHERE id = $4")
            .bind(user.role.as_str())
            .bind(user.disabled)
            .bind(user.email.as_deref())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if user.disabled || role_changed {
            sqlx::query(
                "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 \
                 WHERE user_id = $3 AND revoked_at IS NULL",
            )
            .bind(vigil_core::now())
            .bind(if user.disabled { "user disabled" } else { "role changed" })
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(user)
    }

    async fn set_password(&self, org: Option<Uuid>, id: Uuid, hash: &str) -> Result<()> {
        let mut tx = self.writer().begin().await?;
        let n = sqlx::query(
            "UPDATE users SET password_hash = $1 WHERE id = $2 AND ($3 IS NULL OR org_id = $3)",
        )
        .bind(hash)
        .bind(id)
        .bind(org)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(Error::NotFound);
        }
        sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoke_reason = 'password changed' \
             WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind(vigil_core::now())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn record_login(&self, id: Uuid, at: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE users SET last_login_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn create_session(
        &self,
        user_id: Uuid,
        refresh_hash: &[u8],
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Uuid> {
        let sid = Uuid::now_v7();
        let mut tx = self.writer().begin().await?;
        sqlx::query("INSERT INTO sessions (id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(sid)
            .bind(user_id)
            .bind(now)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(refresh_hash)
        .bind(sid)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(sid)
    }

    async fn rotate_refresh_token(
        &self,
        presented: &[u8],
        new_hash: &[u8],
        new_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<RefreshOutcome> {
        let mut tx = self.writer().begin().await?;
        let sql = format!(
            "SELECT r.session_id, r.expires_at, r.used_at, s.revoked_at, s.user_id, u.disabled \
             FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id JOIN users u ON u.id = s.user_id \
             WHERE r.token_hash = $1{}",
            if FOR_UPDATE.is_empty() { "" } else { " FOR UPDATE OF r, s" }
        );
        type TokenRow = (Uuid, DateTime<Utc>, Option<DateTime<Utc>>, Option<DateTime<Utc>>, Uuid, bool);
        let row: Option<TokenRow> = sqlx::query_as(&sql)
            .bind(presented)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((sid, expires, used, revoked, user_id, disabled)) = row else {
            return Ok(RefreshOutcome::Invalid);
        };
        if revoked.is_some() || disabled {
            return Ok(RefreshOutcome::Invalid);
        }
        if used.is_some() {
            // A spent token came back: it was stolen or replayed. Kill the whole family.
            sqlx::query("UPDATE sessions SET revoked_at = $1, revoke_reason = 'refresh token reuse' WHERE id = $2")
                .bind(now)
                .bind(sid)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(RefreshOutcome::Reused { session_id: sid });
        }
        if expires <= now {
            return Ok(RefreshOutcome::Invalid);
        }
        sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2")
            .bind(now)
            .bind(presented)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(new_hash)
        .bind(sid)
        .bind(now)
        .bind(new_expires_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE sessions SET expires_at = $1 WHERE id = $2")
            .bind(new_expires_at)
            .bind(sid)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(RefreshOutcome::Rotated {
            user_id,
            session_id: sid,
        })
    }

    async fn revoke_session_by_token(&self, token_hash: &[u8], now: DateTime<Utc>) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoke_reason = 'logout' WHERE revoked_at IS NULL \
             AND id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $2)",
        )
        .bind(now)
        .bind(token_hash)
        .execute(self.writer())
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    async fn revoke_session(&self, sid: Uuid, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoke_reason = 'logout' WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(sid)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn revoke_user_sessions(&self, user_id: Uuid, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoke_reason = 'revoked' WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn session_active(&self, sid: Uuid, now: DateTime<Utc>) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2 AND NOT u.disabled",
        )
        .bind(sid)
        .bind(now)
        .fetch_one(&self.read)
        .await?;
        Ok(n > 0)
    }

    async fn create_alert(&self, org: Uuid, a: NewAlert, actor: &str) -> Result<Alert> {
        self.creates.create(PendingAlert::new(org, a, actor)).await
    }

    async fn insert_alerts_bulk(&self, org: Uuid, alerts: Vec<NewAlert>) -> Result<u64> {
        let mut n = 0u64;
        let mut it = alerts.into_iter().peekable();
        while it.peek().is_some() {
            let batch: Vec<PendingAlert> = it
                .by_ref()
                .take(10_000)
                .map(|alert| PendingAlert::new(org, alert, "system"))
                .collect();
            let alerts = insert_in_tx(self.writer(), &batch, vigil_core::now(), &self.outbox_notify).await?;
            for (p, a) in batch.iter().zip(alerts) {
                if a.is_none() {
                    return Err(Error::Conflict(format!("an alert with alert_id '{}' exists", p.alert.alert_id)));
                }
                n += 1;
            }
        }
        Ok(n)
    }

    async fn get_alert(&self, org: Uuid, id: Uuid) -> Result<Option<Alert>> {
        Self::fetch_alert(&self.read, org, id, false).await
    }

    async fn list_alerts(&self, org: Uuid, f: &AlertFilter) -> Result<AlertPage> {
        let limit = f.limit.clamp(1, MAX_LIMIT);
        let (total, total_is_exact) = if f.exact_total {
            let mut count = QueryBuilder::<Db>::new("SELECT COUNT(*)");
            push_count_source(&mut count, org, f);
            let n: i64 = count.build_query_scalar().fetch_one(&self.read).await?;
            (n as u64, true)
        } else {
            // Counting stops after the cap: broad filters over millions of rows stay fast.
            let mut count = QueryBuilder::<Db>::new("SELECT COUNT(*) FROM (SELECT 1");
            push_count_source(&mut count, org, f);
            let cap = f.count_cap();
            count.push(" LIMIT ").push_bind(cap as i64 + 1).push(") AS capped");
            let n = count.build_query_scalar::<i64>().fetch_one(&self.read).await? as u64;
            if n > cap { (cap, false) } else { (n, true) }
        };

        let mut q = QueryBuilder::<Db>::new(format!("SELECT {ALERT_COLS}"));
        let joined = push_from(&mut q, org, f);
        push_filter(&mut q, org, f, joined);
        // With the tag join, time and id come from the tag index (same values, ordered).
        let (ts, id) = if joined { ("t.timestamp", "t.alert_id") } else { ("alerts.timestamp", "alerts.id") };
        let col = match f.sort {
            AlertSortField::Timestamp => ts.to_string(),
            other => format!("alerts.{}", sort_column(other)),
        };
        let dir = if f.descending { "DESC" } else { "ASC" };
        let by_severity = f.sort == AlertSortField::Severity;
        if let Some(c) = &f.cursor {
            let cmp = if f.descending { "<" } else { ">" };
            let bad = || Error::InvalidInput("cursor is not valid".into());
            q.push(format!(" AND ({col} {cmp} "));
            push_cursor_key(&mut q, f.sort, c.key)?;
            q.push(format!(" OR ({col} = "));
            push_cursor_key(&mut q, f.sort, c.key)?;
            if by_severity {
                // Severity ties are ordered by timestamp, then id.
                let t = c.ts.ok_or_else(bad)?;
                q.push(format!(" AND ({ts} {cmp} "));
                push_cursor_key(&mut q, AlertSortField::Timestamp, t)?;
                q.push(format!(" OR ({ts} = "));
                push_cursor_key(&mut q, AlertSortField::Timestamp, t)?;
                q.push(format!(" AND {id} {cmp} ")).push_bind(c.id).push("))))");
            } else {
                q.push(format!(" AND {id} {cmp} ")).push_bind(c.id).push("))");
            }
        }
        if by_severity {
            q.push(format!(" ORDER BY {col} {dir}, {ts} {dir}, {id} {dir} LIMIT "));
        } else {
            q.push(format!(" ORDER BY {col} {dir}, {id} {dir} LIMIT "));
        }
        q.push_bind(limit as i64);
        if f.cursor.is_none() && f.skip > 0 {
            q.push(" OFFSET ").push_bind(f.skip.min(i64::MAX as u64) as i64);
        }
        let items = q
            .build_query_as::<AlertRow>()
            .fetch_all(&self.read)
            .await?
            .into_iter()
            .map(alert_from_row)
            .collect::<Result<Vec<_>>>()?;
        let next_cursor = if items.len() as u64 == limit {
            items.last().map(|a| {
                encode_cursor(&Cursor {
                    key: cursor_key(a, f.sort),
                    ts: by_severity.then(|| a.timestamp.timestamp_micros()),
                    id: a.id,
                })
            })
        } else {
            None
        };
        Ok(AlertPage {
            items,
            total,
            total_is_exact,
            skip: if f.cursor.is_some() { 0 } else { f.skip },
            limit,
            next_cursor,
        })
    }

    async fn update_alert(
        &self,
        org: Uuid,
        id: Uuid,
        change: &AlertChange,
        actor: &str,
    ) -> Result<Alert> {
        let mut tx = self.writer().begin().await?;
        let mut alert = Self::fetch_alert(&mut *tx, org, id, true)
            .await?
            .ok_or(Error::NotFound)?;
        let now = vigil_core::now();
        let changes = apply_change(&mut alert, change, actor, now)?;
        if changes.is_empty() {
            return Ok(alert);
        }
        sqlx::query(
            "UPDATE alerts SET status = $1, updated_at = $2, resolution_notes = $3, acknowledged_by = $4, \
             acknowledged_at = $5, closed_by = $6, closed_at = $7, severity = $8, assignee = $9 \
             WHERE id = $10 AND org_id = $11",
        )
        .bind(alert.status.as_str())
        .bind(alert.updated_at)
        .bind(alert.resolution_notes.as_deref())
        .bind(alert.acknowledged_by.as_deref())
        .bind(alert.acknowledged_at)
        .bind(alert.closed_by.as_deref())
        .bind(alert.closed_at)
        .bind(alert.severity.rank())
        .bind(alert.assignee.as_deref())
        .bind(id)
        .bind(org)
        .execute(&mut *tx)
        .await?;
        for c in &changes {
            insert_history(&mut tx, org, id, actor, now, c)
                .await?;
        }
        let event = alert_event(change.event_kind(&alert), actor, &alert, event_changes(&changes), now);
        insert_outbox_tx(&mut tx, std::slice::from_ref(&event)).await?;
        tx.commit().await?;
        self.outbox_notify.notify_one();
        Ok(alert)
    }

    async fn alert_history(&self, org: Uuid, id: Uuid) -> Result<Option<Vec<AlertHistoryEntry>>> {
        let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM alerts WHERE id = $1 AND org_id = $2")
            .bind(id)
            .bind(org)
            .fetch_one(&self.read)
            .await?;
        if exists == 0 {
            return Ok(None);
        }
        let rows = sqlx::query_as::<_, HistoryRow>(
            "SELECT id, alert_id, changed_by, changed_at, field, old_value, new_value \
             FROM alert_history WHERE alert_id = $1 AND org_id = $2 ORDER BY id",
        )
        .bind(id)
        .bind(org)
        .fetch_all(&self.read)
        .await?;
        Ok(Some(rows.into_iter().map(HistoryRow::into_entry).collect()))
    }

    async fn upsert_agent(&self, a: &Agent) -> Result<()> {
        sqlx::query(
            "INSERT INTO agents (id, org_id, hostname, ip, os, version, status, last_seen, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (id) DO UPDATE SET hostname = excluded.hostname, ip = excluded.ip, os = excluded.os, \
             version = excluded.version, status = excluded.status, last_seen = excluded.last_seen \
             WHERE agents.org_id = excluded.org_id",
        )
        .bind(a.id)
        .bind(a.org_id)
        .bind(&a.hostname)
        .bind(a.ip.as_deref())
        .bind(a.os.as_deref())
        .bind(a.version.as_deref())
        .bind(a.status.as_str())
        .bind(a.last_seen)
        .bind(a.created_at)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn list_agents(&self, org: Uuid) -> Result<Vec<Agent>> {
        sqlx::query_as::<_, AgentRow>(&format!(
            "SELECT {AGENT_COLS} FROM agents WHERE org_id = $1 ORDER BY hostname, id"
        ))
        .bind(org)
        .fetch_all(&self.read)
        .await?
        .into_iter()
        .map(AgentRow::into_agent)
        .collect()
    }

    async fn get_agent(&self, org: Uuid, id: Uuid) -> Result<Option<Agent>> {
        sqlx::query_as::<_, AgentRow>(&format!(
            "SELECT {AGENT_COLS} FROM agents WHERE org_id = $1 AND id = $2"
        ))
        .bind(org)
        .bind(id)
        .fetch_optional(&self.read)
        .await?
        .map(AgentRow::into_agent)
        .transpose()
    }

    async fn create_enrollment_token(&self, t: NewEnrollmentToken) -> Result<EnrollmentToken> {
        let token = EnrollmentToken {
            id: Uuid::now_v7(),
            org_id: t.org_id,
            description: t.description,
            created_by: t.created_by,
            created_at: vigil_core::now(),
            expires_at: vigil_core::truncate_micros(t.expires_at),
            used_at: None,
            agent_id: None,
        };
        sqlx::query(
            "INSERT INTO enrollment_tokens (id, org_id, token_hash, description, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(token.id)
        .bind(token.org_id)
        .bind(&t.token_hash)
        .bind(token.description.as_deref())
        .bind(&token.created_by)
        .bind(token.created_at)
        .bind(token.expires_at)
        .execute(self.writer())
        .await?;
        Ok(token)
    }

    async fn list_enrollment_tokens(&self, org: Uuid) -> Result<Vec<EnrollmentToken>> {
        Ok(sqlx::query_as::<_, EnrollmentRow>(&format!(
            "SELECT {ENROLLMENT_COLS} FROM enrollment_tokens WHERE org_id = $1 ORDER BY created_at DESC, id"
        ))
        .bind(org)
        .fetch_all(&self.read)
        .await?
        .into_iter()
        .map(EnrollmentToken::from)
        .collect())
    }

    async fn register_agent(
        &self,
        token_hash: &[u8],
        reg: NewAgentRegistration,
        now: DateTime<Utc>,
    ) -> Result<Option<Agent>> {
        let now = vigil_core::truncate_micros(now);
        let id = Uuid::now_v7();
        let mut tx = self.writer().begin().await?;
        let org: Option<Uuid> = sqlx::query_scalar(
            "UPDATE enrollment_tokens SET used_at = $1, agent_id = $2 \
             WHERE token_hash = $3 AND used_at IS NULL AND expires_at > $1 RETURNING org_id",
        )
        .bind(now)
        .bind(id)
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(org) = org else {
            return Ok(None);
        };
        sqlx::query(
            "INSERT INTO agents (id, org_id, hostname, ip, os, version, status, last_seen, created_at, credential_hash) \
             VALUES ($1, $2, $3, $4, $5, $6, 'online', $7, $7, $8)",
        )
        .bind(id)
        .bind(org)
        .bind(&reg.hostname)
        .bind(reg.ip.as_deref())
        .bind(reg.os.as_deref())
        .bind(reg.version.as_deref())
        .bind(now)
        .bind(&reg.credential_hash)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.get_agent_writer(org, id).await
    }

    async fn agent_by_credential(&self, credential_hash: &[u8]) -> Result<Option<Agent>> {
        sqlx::query_as::<_, AgentRow>(&format!(
            "SELECT {AGENT_COLS} FROM agents WHERE credential_hash = $1 AND revoked_at IS NULL"
        ))
        .bind(credential_hash)
        .fetch_optional(&self.read)
        .await?
        .map(AgentRow::into_agent)
        .transpose()
    }

    async fn record_heartbeat(
        &self,
        org: Uuid,
        agent: Uuid,
        u: HeartbeatUpdate,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let done = sqlx::query(
            "UPDATE agents SET last_seen = $1, status = 'online', \
             hostname = COALESCE($2, hostname), os = COALESCE($3, os), version = COALESCE($4, version), \
             ip = COALESCE($5, ip), last_metrics = COALESCE($6, last_metrics) \
             WHERE org_id = $7 AND id = $8 AND revoked_at IS NULL",
        )
        .bind(vigil_core::truncate_micros(now))
        .bind(u.hostname.as_deref())
        .bind(u.os.as_deref())
        .bind(u.version.as_deref())
        .bind(u.ip.as_deref())
        .bind(u.metrics.as_ref().map(Json))
        .bind(org)
        .bind(agent)
        .execute(self.writer())
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound);
        }
        Ok(())
    }

    async fn revoke_agent(&self, org: Uuid, agent: Uuid, now: DateTime<Utc>) -> Result<Agent> {
        sqlx::query(
            "UPDATE agents SET revoked_at = COALESCE(revoked_at, $1), status = 'offline' WHERE org_id = $2 AND id = $3",
        )
        .bind(vigil_core::truncate_micros(now))
        .bind(org)
        .bind(agent)
        .execute(self.writer())
        .await?;
        self.get_agent_writer(org, agent).await?.ok_or(Error::NotFound)
    }

    async fn create_api_key(&self, k: NewApiKey) -> Result<ApiKey> {
        let key = ApiKey {
            id: Uuid::now_v7(),
            org_id: k.org_id,
            name: k.name,
            scopes: k.scopes,
            created_by: k.created_by,
            created_at: vigil_core::now(),
            revoked_at: None,
            last_used_at: None,
        };
        let scopes: Vec<&str> = key.scopes.iter().map(|s| s.as_str()).collect();
        sqlx::query(
            "INSERT INTO api_keys (id, org_id, name, key_hash, scopes, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(key.id)
        .bind(key.org_id)
        .bind(&key.name)
        .bind(&k.key_hash)
        .bind(scopes.join(","))
        .bind(&key.created_by)
        .bind(key.created_at)
        .execute(self.writer())
        .await?;
        Ok(key)
    }

    async fn list_api_keys(&self, org: Uuid) -> Result<Vec<ApiKey>> {
        sqlx::query_as::<_, ApiKeyRow>(&format!(
            "SELECT {API_KEY_COLS} FROM api_keys WHERE org_id = $1 ORDER BY created_at DESC, id"
        ))
        .bind(org)
        .fetch_all(&self.read)
        .await?
        .into_iter()
        .map(ApiKeyRow::into_key)
        .collect()
    }

    async fn revoke_api_key(&self, org: Uuid, id: Uuid, now: DateTime<Utc>) -> Result<ApiKey> {
        sqlx::query_as::<_, ApiKeyRow>(&format!(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE org_id = $2 AND id = $3 \
             RETURNING {API_KEY_COLS}"
        ))
        .bind(vigil_core::truncate_micros(now))
        .bind(org)
        .bind(id)
        .fetch_optional(self.writer())
        .await?
        .ok_or(Error::NotFound)?
        .into_key()
    }

    async fn api_key_by_hash(&self, key_hash: &[u8]) -> Result<Option<ApiKey>> {
        sqlx::query_as::<_, ApiKeyRow>(&format!(
            "SELECT {API_KEY_COLS} FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL"
        ))
        .bind(key_hash)
        .fetch_optional(&self.read)
        .await?
        .map(ApiKeyRow::into_key)
        .transpose()
    }

    async fn record_detections(
        &self,
        org: Uuid,
        detections: Vec<Detection>,
        window: chrono::Duration,
    ) -> Result<Vec<DetectionOutcome>> {
        let mut tx = self.writer().begin().await?;
        let out = record_detections_tx(&mut tx, org, detections, window, vigil_core::now()).await?;
        tx.commit().await?;
        if !out.is_empty() {
            self.outbox_notify.notify_one();
        }
        Ok(out)
    }

    fn event_store(&self) -> std::sync::Arc<dyn EventStore> {
        std::sync::Arc::new(self.clone())
    }

    fn ml_store(&self) -> std::sync::Arc<dyn crate::MlStore> {
        std::sync::Arc::new(self.clone())
    }

    fn stream_store(&self) -> std::sync::Arc<dyn crate::StreamStore> {
        std::sync::Arc::new(self.clone())
    }

    fn outbox_store(&self) -> std::sync::Arc<dyn crate::OutboxStore> {
        std::sync::Arc::new(self.clone())
    }

    fn webhook_store(&self) -> std::sync::Arc<dyn crate::WebhookStore> {
        std::sync::Arc::new(self.clone())
    }

    async fn create_triage(&self, org: Uuid, t: vigil_core::NewTriage) -> Result<vigil_core::AlertTriage> {
        self.ai_create_triage(org, t).await
    }

    async fn events_after(&self, org: Uuid, after: Option<Uuid>, limit: u64) -> Result<Vec<crate::StoredEvent>> {
        self.ai_events_after(org, after, limit).await
    }

    async fn list_triage(&self, org: Uuid, alert: Uuid) -> Result<Option<Vec<vigil_core::AlertTriage>>> {
        self.ai_list_triage(org, alert).await
    }

    async fn decide_suggestion(
        &self,
        org: Uuid,
        alert: Uuid,
        triage: Uuid,
        index: u32,
        decision: vigil_core::SuggestionStatus,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<vigil_core::AlertTriage> {
        self.ai_decide_suggestion(org, alert, triage, index, decision, actor, now).await
    }

    async fn create_action(&self, org: Uuid, a: NewAction) -> Result<Action> {
        let action = Action {
            id: Uuid::now_v7(),
            org_id: org,
            alert_id: a.alert_id,
            action_type: a.action_type,
            parameters: a.parameters,
            status: ActionStatus::Pending,
            result: None,
            created_by: a.created_by,
            created_at: vigil_core::now(),
            completed_at: None,
        };
        if let Some(alert) = action.alert_id
            && Self::fetch_alert(&self.read, org, alert, false).await?.is_none()
        {
            return Err(Error::NotFound);
        }
        sqlx::query(
            "INSERT INTO actions (id, org_id, alert_id, action_type, parameters, status, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(action.id)
        .bind(org)
        .bind(action.alert_id)
        .bind(&action.action_type)
        .bind(Json(&action.parameters))
        .bind(action.status.as_str())
        .bind(action.created_by.as_deref())
        .bind(action.created_at)
        .execute(self.writer())
        .await?;
        Ok(action)
    }

    async fn list_actions(&self, org: Uuid, alert: Option<Uuid>) -> Result<Vec<Action>> {
        sqlx::query_as::<_, ActionRow>(
            "SELECT id, org_id, alert_id, action_type, parameters, status, result, created_by, created_at, completed_at \
             FROM actions WHERE org_id = $1 AND ($2 IS NULL OR alert_id = $2) ORDER BY created_at, id",
        )
        .bind(org)
        .bind(alert)
        .fetch_all(&self.read)
        .await?
        .into_iter()
        .map(ActionRow::into_action)
        .collect()
    }

    async fn finish_action(
        &self,
        org: Uuid,
        id: Uuid,
        status: ActionStatus,
        result: serde_json::Value,
    ) -> Result<Action> {
        let now = vigil_core::now();
        let row = sqlx::query_as::<_, ActionRow>(
            "UPDATE actions SET status = $1, result = $2, completed_at = $3 WHERE id = $4 AND org_id = $5 \
             RETURNING id, org_id, alert_id, action_type, parameters, status, result, created_by, created_at, completed_at",
        )
        .bind(status.as_str())
        .bind(Json(&result))
        .bind(now)
        .bind(id)
        .bind(org)
        .fetch_optional(self.writer())
        .await?
        .ok_or(Error::NotFound)?;
        row.into_action()
    }
}

fn push_cursor_key(q: &mut QueryBuilder<'_, Db>, sort: AlertSortField, key: i64) -> Result<()> {
    let bad = || Error::InvalidInput("cursor is not valid".into());
    if sort == AlertSortField::Severity {
        q.push_bind(i16::try_from(key).map_err(|_| bad())?);
    } else {
        q.push_bind(DateTime::<Utc>::from_timestamp_micros(key).ok_or_else(bad)?);
    }
    Ok(())
}

#[cfg(test)]
mod chunk_tests {
    #[test]
    fn fixed_chunks_cover_every_row_with_few_sizes() {
        for len in 0..1200 {
            let chunks = super::fixed_chunks(len);
            let mut next = 0;
            for c in &chunks {
                assert_eq!(c.start, next);
                assert!([500, 64, 16, 4, 1].contains(&c.len()));
                next = c.end;
            }
            assert_eq!(next, len);
        }
        assert_eq!(super::fixed_chunks(37).iter().map(|c| c.len()).collect::<Vec<_>>(), [16, 16, 4, 1]);
    }
}
