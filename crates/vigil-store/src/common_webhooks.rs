// `WebhookStore` for both SQL backends; included by `common.rs`.

/// PostgreSQL: rows another claimer holds are skipped, not waited for. SQLite has one writer.
const WH_SKIP_LOCKED: &str = if matches!(BACKEND, Backend::Postgres) {
    " FOR UPDATE SKIP LOCKED"
} else {
    ""
};

#[derive(sqlx::FromRow)]
struct WhEndpointRow {
    id: Uuid,
    org_id: Uuid,
    name: String,
    url: String,
    enabled: bool,
    disabled_reason: Option<String>,
    min_severity: Option<i16>,
    sources: String,
    tags: String,
    event_kinds: String,
    headers: String,
    timeout_ms: i64,
    from_config: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const WH_ENDPOINT_COLS: &str = "id, org_id, name, url, enabled, disabled_reason, min_severity, \
    sources, tags, event_kinds, headers, timeout_ms, from_config, created_at, updated_at";

fn wh_json<T: serde::de::DeserializeOwned>(col: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| Error::Corrupt(format!("webhook_endpoints.{col}: {e}")))
}

fn wh_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

impl TryFrom<WhEndpointRow> for crate::webhooks::WebhookEndpoint {
    type Error = Error;
    fn try_from(r: WhEndpointRow) -> Result<Self> {
        Ok(crate::webhooks::WebhookEndpoint {
            min_severity: r.min_severity.map(vigil_core::Severity::from_rank).transpose()?,
            sources: wh_json("sources", &r.sources)?,
            tags: wh_json("tags", &r.tags)?,
            event_kinds: wh_json("event_kinds", &r.event_kinds)?,
            headers: wh_json("headers", &r.headers)?,
            id: r.id,
            org_id: r.org_id,
            name: r.name,
            url: r.url,
            enabled: r.enabled,
            disabled_reason: r.disabled_reason,
            timeout_ms: u64::try_from(r.timeout_ms).unwrap_or(0),
            from_config: r.from_config,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct WhDeliveryRow {
    id: Uuid,
    endpoint_id: Uuid,
    event_id: Uuid,
    alert_id: Uuid,
    seq: i64,
    kind: String,
    status: String,
    attempts: i32,
    created_at: DateTime<Utc>,
    next_attempt_at: Option<DateTime<Utc>>,
    last_attempt_at: Option<DateTime<Utc>>,
    last_status_code: Option<i32>,
    last_latency_ms: Option<i64>,
    last_error: Option<String>,
    finished_at: Option<DateTime<Utc>>,
}

const WH_DELIVERY_COLS: &str = "id, endpoint_id, event_id, alert_id, seq, kind, status, attempts, \
    created_at, next_attempt_at, last_attempt_at, last_status_code, last_latency_ms, last_error, \
    finished_at";

impl TryFrom<WhDeliveryRow> for crate::webhooks::WebhookDelivery {
    type Error = Error;
    fn try_from(r: WhDeliveryRow) -> Result<Self> {
        Ok(crate::webhooks::WebhookDelivery {
            status: crate::webhooks::WebhookDeliveryStatus::parse(&r.status).ok_or_else(|| {
                Error::Corrupt(format!("webhook_deliveries.status '{}'", r.status))
            })?,
            id: r.id,
            endpoint_id: r.endpoint_id,
            event_id: r.event_id,
            alert_id: r.alert_id,
            seq: r.seq,
            kind: r.kind,
            attempts: u32::try_from(r.attempts).unwrap_or(0),
            created_at: r.created_at,
            next_attempt_at: r.next_attempt_at,
            last_attempt_at: r.last_attempt_at,
            last_status_code: r.last_status_code.and_then(|c| u16::try_from(c).ok()),
            last_latency_ms: r.last_latency_ms.and_then(|c| u64::try_from(c).ok()),
            last_error: r.last_error,
            finished_at: r.finished_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct WhLeasedRow {
    #[sqlx(flatten)]
    delivery: WhDeliveryRow,
    org_id: Uuid,
    payload: String,
    age_from: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct WhEndpointSecretRow {
    #[sqlx(flatten)]
    endpoint: WhEndpointRow,
    secret: String,
}

fn wh_lease_until(now: DateTime<Utc>, lease: std::time::Duration) -> DateTime<Utc> {
    vigil_core::truncate_micros(now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60)))
}

impl StoreImpl {
    /// Endpoints matching `cond` (SQL after WHERE; `$1` is `org` when given), from the readers.
    async fn wh_endpoints_where(
        &self,
        cond: &str,
        org: Option<Uuid>,
    ) -> Result<Vec<crate::webhooks::WebhookEndpoint>> {
        let sql = format!("SELECT {WH_ENDPOINT_COLS} FROM webhook_endpoints WHERE {cond}");
        let mut q = sqlx::query_as::<_, WhEndpointRow>(&sql);
        if let Some(org) = org {
            q = q.bind(org);
        }
        let rows = q.fetch_all(&self.read).await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn wh_endpoint(&self, org: Uuid, id: Uuid) -> Result<crate::webhooks::WebhookEndpoint> {
        let row: Option<WhEndpointRow> = sqlx::query_as(&format!(
            "SELECT {WH_ENDPOINT_COLS} FROM webhook_endpoints WHERE org_id = $1 AND id = $2"
        ))
        .bind(org)
        .bind(id)
        .fetch_optional(self.writer())
        .await?;
        row.ok_or(Error::NotFound)?.try_into()
    }
}

#[async_trait::async_trait]
impl crate::webhooks::WebhookStore for StoreImpl {
    async fn create_endpoint(
        &self,
        org: Uuid,
        e: crate::webhooks::NewWebhookEndpoint,
    ) -> Result<crate::webhooks::WebhookEndpoint> {
        let id = Uuid::now_v7();
        let now = vigil_core::now();
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, org_id, name, url, secret, enabled, disabled_reason, \
             min_severity, sources, tags, event_kinds, headers, timeout_ms, from_config, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $8, $9, $10, $11, $12, $13, $14, $14)",
        )
        .bind(id)
        .bind(org)
        .bind(&e.name)
        .bind(&e.url)
        .bind(&e.secret)
        .bind(e.enabled)
        .bind(e.min_severity.map(|s| s.rank()))
        .bind(wh_text(&e.sources))
        .bind(wh_text(&e.tags))
        .bind(wh_text(&e.event_kinds))
        .bind(wh_text(&e.headers))
        .bind(i64::try_from(e.timeout_ms).unwrap_or(i64::MAX))
        .bind(e.from_config)
        .bind(now)
        .execute(self.writer())
        .await
        .map_err(|err| match Error::from(err) {
            Error::Conflict(_) => {
                Error::Conflict(format!("a webhook endpoint named '{}' exists", e.name))
            }
            other => other,
        })?;
        self.wh_endpoint(org, id).await
    }

    async fn list_endpoints(&self, org: Uuid) -> Result<Vec<crate::webhooks::WebhookEndpoint>> {
        self.wh_endpoints_where("org_id = $1 ORDER BY name", Some(org)).await
    }

    async fn get_endpoint(
        &self,
        org: Uuid,
        id: Uuid,
    ) -> Result<Option<crate::webhooks::WebhookEndpoint>> {
        match self.wh_endpoint(org, id).await {
            Ok(e) => Ok(Some(e)),
            Err(Error::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn get_endpoint_by_name(
        &self,
        org: Uuid,
        name: &str,
    ) -> Result<Option<crate::webhooks::WebhookEndpoint>> {
        let row: Option<WhEndpointRow> = sqlx::query_as(&format!(
            "SELECT {WH_ENDPOINT_COLS} FROM webhook_endpoints WHERE org_id = $1 AND name = $2"
        ))
        .bind(org)
        .bind(name)
        .fetch_optional(self.writer())
        .await?;
        row.map(TryInto::try_into).transpose()
    }

    async fn enabled_endpoints(&self) -> Result<Vec<crate::webhooks::WebhookEndpoint>> {
        self.wh_endpoints_where("enabled ORDER BY org_id, name", None).await
    }

    async fn update_endpoint(
        &self,
        org: Uuid,
        id: Uuid,
        u: crate::webhooks::WebhookEndpointUpdate,
    ) -> Result<crate::webhooks::WebhookEndpoint> {
        let mut q = QueryBuilder::<Db>::new("UPDATE webhook_endpoints SET updated_at = ");
        q.push_bind(vigil_core::now());
        if let Some(v) = &u.name {
            q.push(", name = ").push_bind(v.clone());
        }
        if let Some(v) = &u.url {
            q.push(", url = ").push_bind(v.clone());
        }
        if let Some((enabled, reason)) = &u.enabled {
            q.push(", enabled = ").push_bind(*enabled);
            q.push(", disabled_reason = ")
                .push_bind(if *enabled { None } else { reason.clone() });
        }
        if let Some(v) = u.min_severity {
            q.push(", min_severity = ").push_bind(v.map(|s| s.rank()));
        }
        if let Some(v) = &u.sources {
            q.push(", sources = ").push_bind(wh_text(v));
        }
        if let Some(v) = &u.tags {
            q.push(", tags = ").push_bind(wh_text(v));
        }
        if let Some(v) = &u.event_kinds {
            q.push(", event_kinds = ").push_bind(wh_text(v));
        }
        if let Some(v) = &u.headers {
            q.push(", headers = ").push_bind(wh_text(v));
        }
        if let Some(v) = u.timeout_ms {
            q.push(", timeout_ms = ").push_bind(i64::try_from(v).unwrap_or(i64::MAX));
        }
        q.push(" WHERE org_id = ").push_bind(org).push(" AND id = ").push_bind(id);
        let done = q.build().execute(self.writer()).await.map_err(|err| match Error::from(err) {
            Error::Conflict(_) => Error::Conflict(format!(
                "a webhook endpoint named '{}' exists",
                u.name.clone().unwrap_or_default()
            )),
            other => other,
        })?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound);
        }
        self.wh_endpoint(org, id).await
    }

    async fn endpoint_secret(&self, org: Uuid, id: Uuid) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT secret FROM webhook_endpoints WHERE org_id = $1 AND id = $2")
            .bind(org)
            .bind(id)
            .fetch_optional(self.writer())
            .await?)
    }

    async fn set_endpoint_secret(&self, org: Uuid, id: Uuid, secret: &str) -> Result<()> {
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET secret = $1, updated_at = $2 WHERE org_id = $3 AND id = $4",
        )
        .bind(secret)
        .bind(vigil_core::now())
        .bind(org)
        .bind(id)
        .execute(self.writer())
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound);
        }
        Ok(())
    }

    async fn delete_endpoint(&self, org: Uuid, id: Uuid) -> Result<()> {
        let done = sqlx::query("DELETE FROM webhook_endpoints WHERE org_id = $1 AND id = $2")
            .bind(org)
            .bind(id)
            .execute(self.writer())
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound);
        }
        Ok(())
    }

    async fn delete_config_endpoints_except(&self, keep: &[Uuid]) -> Result<u64> {
        let mut q = QueryBuilder::<Db>::new("DELETE FROM webhook_endpoints WHERE from_config");
        if !keep.is_empty() {
            q.push(" AND id NOT IN (");
            let mut s = q.separated(", ");
            for id in keep {
                s.push_bind(*id);
            }
            q.push(")");
        }
        Ok(q.build().execute(self.writer()).await?.rows_affected())
    }

    async fn insert_deliveries(&self, ds: &[crate::webhooks::NewWebhookDelivery]) -> Result<u64> {
        if ds.is_empty() {
            return Ok(0);
        }
        let now = vigil_core::now();
        let mut inserted = 0;
        let mut tx = self.writer().begin().await?;
        for chunk in ds.chunks(500) {
            let mut q = QueryBuilder::<Db>::new(
                "INSERT INTO webhook_deliveries (id, org_id, endpoint_id, event_id, alert_id, seq, \
                 kind, payload, status, attempts, created_at, age_from, next_attempt_at) ",
            );
            q.push_values(chunk, |mut b, d| {
                b.push_bind(Uuid::now_v7())
                    .push_bind(d.org_id)
                    .push_bind(d.endpoint_id)
                    .push_bind(d.event_id)
                    .push_bind(d.alert_id)
                    .push_bind(d.seq)
                    .push_bind(d.kind.clone())
                    .push_bind(d.payload.clone())
                    .push_bind("pending")
                    .push_bind(0i32)
                    .push_bind(now)
                    .push_bind(now)
                    .push_bind(now);
            });
            q.push(" ON CONFLICT (endpoint_id, event_id) DO NOTHING");
            inserted += q.build().execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(inserted)
    }

    async fn due_endpoints(&self, now: DateTime<Utc>) -> Result<Vec<Uuid>> {
        Ok(sqlx::query_scalar(
            "SELECT e.id FROM webhook_endpoints e WHERE e.enabled AND EXISTS (\
             SELECT 1 FROM webhook_deliveries d WHERE d.endpoint_id = e.id \
             AND d.status IN ('pending', 'delivering') AND d.next_attempt_at <= $1 \
             AND (d.lease_until IS NULL OR d.lease_until < $1))",
        )
        .bind(now)
        .fetch_all(&self.read)
        .await?)
    }

    async fn leased_deliveries(&self, endpoint: Uuid, now: DateTime<Utc>) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM webhook_deliveries WHERE endpoint_id = $1 \
             AND status = 'delivering' AND lease_until >= $2",
        )
        .bind(endpoint)
        .bind(now)
        .fetch_one(&self.read)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn claim_deliveries(
        &self,
        endpoint: Uuid,
        owner: &str,
        limit: u32,
        lease: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>> {
        // Two passes, each in the order of the (endpoint, status, next_attempt_at) index so
        // the LIMIT stops early instead of sorting every waiting row: leases whose owner died,
        // then due pending rows.
        let mut claimed: Vec<Uuid> = Vec::new();
        for which in [
            "d.status = 'delivering' AND d.lease_until < $4",
            "d.status = 'pending' AND d.next_attempt_at <= $4 \
             AND (d.lease_until IS NULL OR d.lease_until < $4)",
        ] {
            let room = i64::from(limit) - claimed.len() as i64;
            if room <= 0 {
                break;
            }
            let ids: Vec<Uuid> = sqlx::query_scalar(&format!(
                "UPDATE webhook_deliveries SET status = 'delivering', lease_until = $1, leased_by = $2 \
                 WHERE id IN (SELECT d.id FROM webhook_deliveries d WHERE d.endpoint_id = $3 AND {which} \
                   AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p WHERE p.endpoint_id = d.endpoint_id \
                     AND p.alert_id = d.alert_id AND p.seq < d.seq AND p.status IN ('pending', 'delivering')) \
                   ORDER BY d.next_attempt_at LIMIT $5{WH_SKIP_LOCKED}) \
                 RETURNING id"
            ))
            .bind(wh_lease_until(now, lease))
            .bind(owner)
            .bind(endpoint)
            .bind(now)
            .bind(room)
            .fetch_all(self.writer())
            .await?;
            claimed.extend(ids);
        }
        Ok(claimed)
    }

    async fn transfer_lease(
        &self,
        id: Uuid,
        from: &str,
        to: &str,
        lease: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let moved = sqlx::query(
            "UPDATE webhook_deliveries SET leased_by = $1, lease_until = $2 \
             WHERE id = $3 AND status = 'delivering' AND leased_by = $4 AND lease_until >= $5",
        )
        .bind(to)
        .bind(wh_lease_until(now, lease))
        .bind(id)
        .bind(from)
        .bind(now)
        .execute(self.writer())
        .await?
        .rows_affected();
        Ok(moved == 1)
    }

    async fn lease_delivery(
        &self,
        id: Uuid,
        owner: &str,
        lease: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<crate::webhooks::WebhookAttemptContext>> {
        let leased = sqlx::query(
            "UPDATE webhook_deliveries SET status = 'delivering', leased_by = $2, lease_until = \
             CASE WHEN leased_by = $2 AND lease_until > $4 THEN lease_until ELSE $1 END \
             WHERE id = $3 AND status IN ('pending', 'delivering') \
             AND (leased_by = $2 OR lease_until IS NULL OR lease_until < $4)",
        )
        .bind(wh_lease_until(now, lease))
        .bind(owner)
        .bind(id)
        .bind(now)
        .execute(self.writer())
        .await?
        .rows_affected();
        if leased == 0 {
            return Ok(None);
        }
        // Committed: the readers see it (two reads instead of writer time on SQLite).
        let row: Option<WhLeasedRow> = sqlx::query_as(&format!(
            "SELECT {WH_DELIVERY_COLS}, org_id, payload, age_from FROM webhook_deliveries WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let (org, payload, age_from) = (row.org_id, row.payload, row.age_from);
        let delivery: crate::webhooks::WebhookDelivery = row.delivery.try_into()?;
        let ep: Option<WhEndpointSecretRow> = sqlx::query_as(&format!(
            "SELECT {WH_ENDPOINT_COLS}, secret FROM webhook_endpoints WHERE org_id = $1 AND id = $2"
        ))
        .bind(org)
        .bind(delivery.endpoint_id)
        .fetch_optional(&self.read)
        .await?;
        let ep = ep.ok_or(Error::NotFound)?;
        let secret = ep.secret;
        let endpoint = ep.endpoint.try_into()?;
        Ok(Some(crate::webhooks::WebhookAttemptContext {
            delivery,
            payload,
            age_from,
            endpoint,
            secret,
        }))
    }

    async fn record_attempt(
        &self,
        id: Uuid,
        owner: &str,
        a: crate::webhooks::WebhookAttemptRecord,
    ) -> Result<bool> {
        use crate::webhooks::WebhookNext;
        let at = vigil_core::truncate_micros(a.at);
        let (status, next, finished) = match &a.next {
            WebhookNext::Delivered => ("delivered", None, Some(at)),
            WebhookNext::Retry(t) => ("pending", Some(vigil_core::truncate_micros(*t)), None),
            WebhookNext::Dead | WebhookNext::DisableEndpoint(_) => ("dead", None, Some(at)),
        };
        let latency = i64::try_from(a.latency_ms).unwrap_or(i64::MAX);
        let code = a.status_code.map(i32::from);
        let mut tx = self.writer().begin().await?;
        let updated = sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, next_attempt_at = $2, \
             lease_until = NULL, leased_by = NULL, last_attempt_at = $3, last_status_code = $4, \
             last_latency_ms = $5, last_error = $6, finished_at = $7 \
             WHERE id = $8 AND leased_by = $9 AND status = 'delivering'",
        )
        .bind(status)
        .bind(next)
        .bind(at)
        .bind(code)
        .bind(latency)
        .bind(a.error.as_deref())
        .bind(finished)
        .bind(id)
        .bind(owner)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, attempted_at, outcome, status_code, latency_ms, error) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(at)
        .bind(&a.outcome)
        .bind(code)
        .bind(latency)
        .bind(a.error.as_deref())
        .execute(&mut *tx)
        .await?;
        if let WebhookNext::DisableEndpoint(reason) = &a.next {
            sqlx::query(
                "UPDATE webhook_endpoints SET enabled = FALSE, disabled_reason = $1, updated_at = $2 \
                 WHERE id = (SELECT endpoint_id FROM webhook_deliveries WHERE id = $3)",
            )
            .bind(reason)
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn list_deliveries(
        &self,
        org: Uuid,
        endpoint: Uuid,
        status: Option<crate::webhooks::WebhookDeliveryStatus>,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<crate::webhooks::WebhookDelivery>> {
        let mut q = QueryBuilder::<Db>::new(format!(
            "SELECT {WH_DELIVERY_COLS} FROM webhook_deliveries WHERE org_id = "
        ));
        q.push_bind(org).push(" AND endpoint_id = ").push_bind(endpoint);
        if let Some(s) = status {
            q.push(" AND status = ").push_bind(s.as_str());
        }
        // Ids are UUIDv7: newest first is descending id.
        if let Some(b) = before {
            q.push(" AND id < ").push_bind(b);
        }
        q.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(limit.max(1)));
        let rows: Vec<WhDeliveryRow> = q.build_query_as().fetch_all(&self.read).await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn get_delivery(
        &self,
        org: Uuid,
        id: Uuid,
    ) -> Result<Option<crate::webhooks::WebhookDelivery>> {
        let row: Option<WhDeliveryRow> = sqlx::query_as(&format!(
            "SELECT {WH_DELIVERY_COLS} FROM webhook_deliveries WHERE org_id = $1 AND id = $2"
        ))
        .bind(org)
        .bind(id)
        .fetch_optional(self.writer())
        .await?;
        row.map(TryInto::try_into).transpose()
    }

    async fn list_attempts(
        &self,
        org: Uuid,
        delivery: Uuid,
    ) -> Result<Vec<crate::webhooks::WebhookAttemptLog>> {
        let rows: Vec<(DateTime<Utc>, String, Option<i32>, i64, Option<String>)> = sqlx::query_as(
            "SELECT a.attempted_at, a.outcome, a.status_code, a.latency_ms, a.error \
             FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id \
             WHERE d.org_id = $1 AND a.delivery_id = $2 ORDER BY a.id",
        )
        .bind(org)
        .bind(delivery)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(at, outcome, code, latency, error)| crate::webhooks::WebhookAttemptLog {
                attempted_at: at,
                outcome,
                status_code: code.and_then(|c| u16::try_from(c).ok()),
                latency_ms: u64::try_from(latency).unwrap_or(0),
                error,
            })
            .collect())
    }

    async fn redeliver(
        &self,
        org: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<crate::webhooks::WebhookDelivery> {
        let now = vigil_core::truncate_micros(now);
        // A delivery being attempted right now keeps its lease; it is sent again after.
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = CASE WHEN status = 'delivering' THEN status \
             ELSE 'pending' END, next_attempt_at = $1, age_from = $1, finished_at = NULL \
             WHERE org_id = $2 AND id = $3",
        )
        .bind(now)
        .bind(org)
        .bind(id)
        .execute(self.writer())
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound);
        }
        self.get_delivery(org, id).await?.ok_or(Error::NotFound)
    }

    async fn redeliver_dead_since(
        &self,
        org: Uuid,
        endpoint: Uuid,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let now = vigil_core::truncate_micros(now);
        Ok(sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $1, age_from = $1, \
             finished_at = NULL WHERE org_id = $2 AND endpoint_id = $3 AND status = 'dead' \
             AND finished_at >= $4",
        )
        .bind(now)
        .bind(org)
        .bind(endpoint)
        .bind(since)
        .execute(self.writer())
        .await?
        .rows_affected())
    }

    async fn prune_deliveries(&self, before: DateTime<Utc>) -> Result<u64> {
        Ok(sqlx::query(
            "DELETE FROM webhook_deliveries WHERE status IN ('delivered', 'dead') AND finished_at < $1",
        )
        .bind(before)
        .execute(self.writer())
        .await?
        .rows_affected())
    }

    async fn delivery_counts(&self) -> Result<Vec<(crate::webhooks::WebhookDeliveryStatus, u64)>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM webhook_deliveries GROUP BY status ORDER BY status")
                .fetch_all(self.writer())
                .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(s, n)| {
                Some((
                    crate::webhooks::WebhookDeliveryStatus::parse(&s)?,
                    u64::try_from(n).unwrap_or(0),
                ))
            })
            .collect())
    }
}
