// The one implementation of `Store`, compiled once per backend: `sqlite.rs` and `postgres.rs`
// each define `Db`, `StoreImpl`, `BACKEND`, `FOR_UPDATE` and `migrator()`, then `include!`
// this file. SQL text is shared; `$N` placeholders work on both databases.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{Pool, QueryBuilder};
use uuid::Uuid;
use vigil_core::{
    Action, ActionStatus, Agent, Alert, AlertFilter, AlertHistoryEntry, AlertPage, AlertSortField,
    Cursor, NewAlert, Organization, User,
};

use crate::rows::{
    ALERT_COLS, ActionRow, AgentRow, AlertRow, HistoryRow, OrgRow, USER_COLS, UserRow,
};
use crate::{
    AlertChange, Backend, Error, FieldChange, NewAction, NewUser, RefreshOutcome, Result, Store, UserUpdate,
    apply_change, encode_cursor,
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

/// Appends the WHERE conditions of a filter (without pagination).
fn push_filter<'a>(qb: &mut QueryBuilder<'a, Db>, org: Uuid, f: &'a AlertFilter) {
    qb.push(" WHERE org_id = ").push_bind(org);
    if !f.statuses.is_empty() {
        qb.push(" AND status IN (");
        let mut s = qb.separated(", ");
        for st in &f.statuses {
            s.push_bind(st.as_str());
        }
        qb.push(")");
    }
    if !f.severities.is_empty() {
        qb.push(" AND severity IN (");
        let mut s = qb.separated(", ");
        for sv in &f.severities {
            s.push_bind(sv.rank());
        }
        qb.push(")");
    }
    if !f.sources.is_empty() {
        qb.push(" AND source IN (");
        let mut s = qb.separated(", ");
        for so in &f.sources {
            s.push_bind(so.as_str());
        }
        qb.push(")");
    }
    if let Some(a) = &f.agent_id {
        qb.push(" AND agent_id = ").push_bind(a.as_str());
    }
    if let Some(t) = &f.technique {
        qb.push(" AND (attack_technique_id = ")
            .push_bind(t.as_str())
            .push(" OR attack_technique_id LIKE ")
            .push_bind(format!("{}.%", t.as_str()))
            .push(")");
    }
    if let Some(tag) = &f.tag {
        qb.push(" AND EXISTS (SELECT 1 FROM alert_tags t WHERE t.alert_id = alerts.id AND t.tag = ")
            .push_bind(tag.as_str())
            .push(")");
    }
    if let Some(text) = &f.text {
        let p = like_pattern(text);
        qb.push(" AND (LOWER(title) LIKE ")
            .push_bind(p.clone())
            .push(" ESCAPE '\\' OR LOWER(description) LIKE ")
            .push_bind(p)
            .push(" ESCAPE '\\')");
    }
    if let Some(s) = f.since {
        qb.push(" AND timestamp >= ").push_bind(s);
    }
    if let Some(u) = f.until {
        qb.push(" AND timestamp < ").push_bind(u);
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

async fn insert_alert_row(
    tx: &mut sqlx::Transaction<'_, Db>,
    org: Uuid,
    id: Uuid,
    a: &NewAlert,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO alerts (id, org_id, alert_id, title, description, severity, status, source, \
         event_type, timestamp, created_at, updated_at, metadata, attack_technique_id, \
         confidence_score, agent_id, tags, observables) \
         VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8, $9, $10, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(id)
    .bind(org)
    .bind(&a.alert_id)
    .bind(&a.title)
    .bind(&a.description)
    .bind(a.severity.rank())
    .bind(a.source.as_str())
    .bind(&a.event_type)
    .bind(a.timestamp)
    .bind(now)
    .bind(Json(&a.metadata))
    .bind(a.attack_technique_id.as_ref().map(|t| t.as_str()))
    .bind(a.confidence_score)
    .bind(a.agent_id.as_deref())
    .bind(Json(&a.tags))
    .bind(Json(&a.observables))
    .execute(&mut **tx)
    .await?;
    for tag in &a.tags {
        sqlx::query("INSERT INTO alert_tags (alert_id, org_id, tag) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(org)
            .bind(tag)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

fn created_entry() -> FieldChange {
    FieldChange {
        field: "created",
        old: None,
        new: Some("open".into()),
    }
}

fn conflict_alert_id(e: Error, alert_id: &str) -> Error {
    match e {
        Error::Conflict(_) => Error::Conflict(format!("an alert with alert_id '{alert_id}' exists")),
        e => e,
    }
}

impl StoreImpl {
    async fn fetch_alert<'e, E>(exec: E, org: Uuid, id: Uuid, lock: bool) -> Result<Option<Alert>>
    where
        E: sqlx::Executor<'e, Database = Db>,
    {
        let sql = format!(
            "SELECT {ALERT_COLS} FROM alerts WHERE id = $1 AND org_id = $2{}",
            if lock { FOR_UPDATE } else { "" }
        );
        sqlx::query_as::<_, AlertRow>(&sql)
            .bind(id)
            .bind(org)
            .fetch_optional(exec)
            .await?
            .map(AlertRow::into_alert)
            .transpose()
    }

    fn writer(&self) -> &Pool<Db> {
        &self.write
    }
}

#[async_trait::async_trait]
impl Store for StoreImpl {
    fn backend(&self) -> Backend {
        BACKEND
    }

    async fn migrate(&self) -> Result<()> {
        migrator().run(self.writer()).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }

    async fn create_org(&self, name: &str) -> Result<Organization> {
        let org = Organization {
            id: Uuid::new_v4(),
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
            id: Uuid::new_v4(),
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
        let sid = Uuid::new_v4();
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
        let id = Uuid::new_v4();
        let now = vigil_core::now();
        let mut tx = self.writer().begin().await?;
        insert_alert_row(&mut tx, org, id, &a, now)
            .await
            .map_err(|e| conflict_alert_id(e, &a.alert_id))?;
        insert_history(&mut tx, org, id, actor, now, &created_entry()).await?;
        tx.commit().await?;
        Ok(Alert {
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
        })
    }

    async fn insert_alerts_bulk(&self, org: Uuid, alerts: Vec<NewAlert>) -> Result<u64> {
        let mut n = 0u64;
        for chunk in alerts.chunks(5_000) {
            let mut tx = self.writer().begin().await?;
            let now = vigil_core::now();
            for a in chunk {
                let id = Uuid::new_v4();
                insert_alert_row(&mut tx, org, id, a, now)
                    .await
                    .map_err(|e| conflict_alert_id(e, &a.alert_id))?;
                insert_history(&mut tx, org, id, "system", now, &created_entry())
                    .await?;
                n += 1;
            }
            tx.commit().await?;
        }
        Ok(n)
    }

    async fn get_alert(&self, org: Uuid, id: Uuid) -> Result<Option<Alert>> {
        Self::fetch_alert(&self.read, org, id, false).await
    }

    async fn list_alerts(&self, org: Uuid, f: &AlertFilter) -> Result<AlertPage> {
        let limit = f.limit.clamp(1, MAX_LIMIT);
        let mut count = QueryBuilder::<Db>::new("SELECT COUNT(*) FROM alerts");
        push_filter(&mut count, org, f);
        let total: i64 = count.build_query_scalar().fetch_one(&self.read).await?;

        let col = sort_column(f.sort);
        let dir = if f.descending { "DESC" } else { "ASC" };
        let mut q = QueryBuilder::<Db>::new(format!("SELECT {ALERT_COLS} FROM alerts"));
        push_filter(&mut q, org, f);
        if let Some(c) = &f.cursor {
            let cmp = if f.descending { "<" } else { ">" };
            q.push(format!(" AND ({col} {cmp} "));
            push_cursor_key(&mut q, f.sort, c)?;
            q.push(format!(" OR ({col} = "));
            push_cursor_key(&mut q, f.sort, c)?;
            q.push(format!(" AND id {cmp} ")).push_bind(c.id).push("))");
        }
        q.push(format!(" ORDER BY {col} {dir}, id {dir} LIMIT "))
            .push_bind(limit as i64);
        if f.cursor.is_none() && f.skip > 0 {
            q.push(" OFFSET ").push_bind(f.skip.min(i64::MAX as u64) as i64);
        }
        let items = q
            .build_query_as::<AlertRow>()
            .fetch_all(&self.read)
            .await?
            .into_iter()
            .map(AlertRow::into_alert)
            .collect::<Result<Vec<_>>>()?;
        let next_cursor = if items.len() as u64 == limit {
            items.last().map(|a| {
                encode_cursor(&Cursor {
                    key: cursor_key(a, f.sort),
                    id: a.id,
                })
            })
        } else {
            None
        };
        Ok(AlertPage {
            items,
            total: total as u64,
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
             acknowledged_at = $5, closed_by = $6, closed_at = $7 WHERE id = $8 AND org_id = $9",
        )
        .bind(alert.status.as_str())
        .bind(alert.updated_at)
        .bind(alert.resolution_notes.as_deref())
        .bind(alert.acknowledged_by.as_deref())
        .bind(alert.acknowledged_at)
        .bind(alert.closed_by.as_deref())
        .bind(alert.closed_at)
        .bind(id)
        .bind(org)
        .execute(&mut *tx)
        .await?;
        for c in &changes {
            insert_history(&mut tx, org, id, actor, now, c)
                .await?;
        }
        tx.commit().await?;
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
        sqlx::query_as::<_, AgentRow>(
            "SELECT id, org_id, hostname, ip, os, version, status, last_seen, created_at \
             FROM agents WHERE org_id = $1 ORDER BY hostname, id",
        )
        .bind(org)
        .fetch_all(&self.read)
        .await?
        .into_iter()
        .map(AgentRow::into_agent)
        .collect()
    }

    async fn create_action(&self, org: Uuid, a: NewAction) -> Result<Action> {
        let action = Action {
            id: Uuid::new_v4(),
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

fn push_cursor_key(q: &mut QueryBuilder<'_, Db>, sort: AlertSortField, c: &Cursor) -> Result<()> {
    if sort == AlertSortField::Severity {
        let rank = i16::try_from(c.key).map_err(|_| Error::InvalidInput("cursor is not valid".into()))?;
        q.push_bind(rank);
    } else {
        let t = DateTime::<Utc>::from_timestamp_micros(c.key)
            .ok_or_else(|| Error::InvalidInput("cursor is not valid".into()))?;
        q.push_bind(t);
    }
    Ok(())
}
