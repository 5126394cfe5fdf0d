// AI triage storage for both SQL backends; included by `common.rs`. Every query is scoped by
// the org id, so an alert or triage id from another organization is simply not found.

#[derive(sqlx::FromRow)]
struct TriageRow {
    id: Uuid,
    org_id: Uuid,
    alert_id: Uuid,
    provider: String,
    model: String,
    prompt_version: String,
    created_at: DateTime<Utc>,
    created_by: String,
    analysis: Json<serde_json::Value>,
    suggestions: Json<Vec<vigil_core::TriageSuggestion>>,
}

impl TriageRow {
    fn into_triage(self) -> vigil_core::AlertTriage {
        vigil_core::AlertTriage {
            id: self.id,
            org_id: self.org_id,
            alert_id: self.alert_id,
            provider: self.provider,
            model: self.model,
            prompt_version: self.prompt_version,
            created_at: self.created_at,
            created_by: self.created_by,
            analysis: self.analysis.0,
            suggestions: self.suggestions.0,
        }
    }
}

const TRIAGE_COLS: &str = "id, org_id, alert_id, provider, model, prompt_version, created_at, \
    created_by, analysis, suggestions";

impl StoreImpl {
    async fn ai_events_after(
        &self,
        org: Uuid,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<crate::StoredEvent>> {
        let after = after.unwrap_or(Uuid::nil());
        let rows = sqlx::query_as::<_, crate::rows::EventRow>(&format!(
            "SELECT {} FROM events WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3",
            crate::rows::EVENT_COLS
        ))
        .bind(org)
        .bind(after)
        .bind(i64::try_from(limit.min(10_000)).unwrap_or(10_000))
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(event_from_row).collect())
    }

    async fn ai_create_triage(
        &self,
        org: Uuid,
        t: vigil_core::NewTriage,
    ) -> Result<vigil_core::AlertTriage> {
        let triage = vigil_core::AlertTriage {
            id: Uuid::now_v7(),
            org_id: org,
            alert_id: t.alert_id,
            provider: t.provider,
            model: t.model,
            prompt_version: t.prompt_version,
            created_at: vigil_core::now(),
            created_by: t.created_by,
            analysis: t.analysis,
            suggestions: t.suggestions,
        };
        // Only an alert of this organization is triaged; its row is the event's snapshot
        // (and, on PostgreSQL, locked so the event shows the alert as it was committed).
        let mut tx = self.writer().begin().await?;
        let alert = Self::fetch_alert(&mut *tx, org, triage.alert_id, true)
            .await?
            .ok_or(Error::NotFound)?;
        sqlx::query(
            "INSERT INTO alert_triage (id, org_id, alert_id, provider, model, prompt_version, \
             created_at, created_by, analysis, suggestions) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(triage.id)
        .bind(org)
        .bind(triage.alert_id)
        .bind(&triage.provider)
        .bind(&triage.model)
        .bind(&triage.prompt_version)
        .bind(triage.created_at)
        .bind(&triage.created_by)
        .bind(Json(&triage.analysis))
        .bind(Json(&triage.suggestions))
        .execute(&mut *tx)
        .await?;
        let changes = vec![vigil_core::AlertFieldChange::new(
            "triage",
            None,
            Some(triage.id.to_string()),
        )];
        let event = alert_event(
            vigil_core::AlertEventKind::Triaged,
            &triage.created_by,
            &alert,
            changes,
            triage.created_at,
        );
        insert_outbox_tx(&mut tx, std::slice::from_ref(&event)).await?;
        tx.commit().await?;
        self.outbox_notify.notify_one();
        Ok(triage)
    }

    async fn ai_list_triage(
        &self,
        org: Uuid,
        alert: Uuid,
    ) -> Result<Option<Vec<vigil_core::AlertTriage>>> {
        if Self::fetch_alert(&self.read, org, alert, false).await?.is_none() {
            return Ok(None);
        }
        let rows = sqlx::query_as::<_, TriageRow>(&format!(
            "SELECT {TRIAGE_COLS} FROM alert_triage WHERE org_id = $1 AND alert_id = $2 \
             ORDER BY created_at DESC, id DESC"
        ))
        .bind(org)
        .bind(alert)
        .fetch_all(&self.read)
        .await?;
        Ok(Some(rows.into_iter().map(TriageRow::into_triage).collect()))
    }

    #[allow(clippy::too_many_arguments)]
    async fn ai_decide_suggestion(
        &self,
        org: Uuid,
        alert: Uuid,
        triage: Uuid,
        index: u32,
        decision: vigil_core::SuggestionStatus,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<vigil_core::AlertTriage> {
        let mut tx = self.writer().begin().await?;
        let row = sqlx::query_as::<_, TriageRow>(&format!(
            "SELECT {TRIAGE_COLS} FROM alert_triage WHERE org_id = $1 AND alert_id = $2 AND id = $3{FOR_UPDATE}"
        ))
        .bind(org)
        .bind(alert)
        .bind(triage)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound)?;
        let mut t = row.into_triage();
        let s = t
            .suggestions
            .iter_mut()
            .find(|s| s.index == index)
            .ok_or_else(|| Error::InvalidInput(format!("the triage has no suggestion {index}")))?;
        s.status = decision;
        s.decided_by = Some(actor.to_string());
        s.decided_at = Some(vigil_core::truncate_micros(now));
        sqlx::query("UPDATE alert_triage SET suggestions = $1 WHERE org_id = $2 AND id = $3")
            .bind(Json(&t.suggestions))
            .bind(org)
            .bind(triage)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(t)
    }
}
