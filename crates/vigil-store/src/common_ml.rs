// `MlStore` for both SQL backends; included by `common.rs`.

#[derive(sqlx::FromRow)]
struct MlFeatureRow {
    feature_set: String,
    entity: String,
    window_start: DateTime<Utc>,
    vals: String,
}

#[derive(sqlx::FromRow)]
struct MlModelRow {
    feature_set: String,
    entity: String,
    version: i64,
    trained_at: DateTime<Utc>,
    sample_count: i64,
    features: String,
    threshold: f64,
    training_secs: f64,
    model: Vec<u8>,
}

const ML_MODEL_COLS: &str = "feature_set, entity, version, trained_at, sample_count, features, \
    threshold, training_secs, model";

impl TryFrom<MlModelRow> for crate::ml::StoredModel {
    type Error = Error;
    fn try_from(r: MlModelRow) -> Result<Self> {
        Ok(crate::ml::StoredModel {
            features: serde_json::from_str(&r.features)
                .map_err(|e| Error::Corrupt(format!("ml_models.features: {e}")))?,
            feature_set: r.feature_set,
            entity: r.entity,
            version: r.version,
            trained_at: r.trained_at,
            sample_count: r.sample_count,
            threshold: r.threshold,
            training_secs: r.training_secs,
            model: r.model,
        })
    }
}

#[async_trait::async_trait]
impl crate::ml::MlStore for StoreImpl {
    async fn append_features(&self, org: Uuid, rows: Vec<crate::ml::NewFeatureRow>) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer().begin().await?;
        for chunk in rows.chunks(500) {
            let mut q = QueryBuilder::<Db>::new(
                "INSERT INTO ml_features (org_id, feature_set, entity, window_start, vals) ",
            );
            q.push_values(chunk, |mut b, r| {
                b.push_bind(org)
                    .push_bind(r.feature_set.as_str())
                    .push_bind(r.entity.as_str())
                    .push_bind(vigil_core::truncate_micros(r.window_start))
                    .push_bind(serde_json::to_string(&r.values).unwrap_or_else(|_| "[]".into()));
            });
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn feature_entities(
        &self,
        org: Uuid,
        feature_set: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT entity, COUNT(*) FROM ml_features WHERE org_id = $1 AND feature_set = $2 \
             AND window_start >= $3 GROUP BY entity ORDER BY entity",
        )
        .bind(org)
        .bind(feature_set)
        .bind(since)
        .fetch_all(&self.read)
        .await?)
    }

    async fn feature_rows(
        &self,
        org: Uuid,
        feature_set: &str,
        entity: Option<&str>,
        since: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<crate::ml::NewFeatureRow>> {
        let mut q = QueryBuilder::<Db>::new(
            "SELECT feature_set, entity, window_start, vals FROM ml_features WHERE org_id = ",
        );
        q.push_bind(org)
            .push(" AND feature_set = ")
            .push_bind(feature_set)
            .push(" AND window_start >= ")
            .push_bind(since);
        if let Some(e) = entity {
            q.push(" AND entity = ").push_bind(e);
        }
        q.push(" ORDER BY window_start DESC, id DESC LIMIT ").push_bind(limit.max(0));
        let rows: Vec<MlFeatureRow> = q.build_query_as().fetch_all(&self.read).await?;
        rows.into_iter()
            .map(|r| {
                Ok(crate::ml::NewFeatureRow {
                    values: serde_json::from_str(&r.vals)
                        .map_err(|e| Error::Corrupt(format!("ml_features.vals: {e}")))?,
                    feature_set: r.feature_set,
                    entity: r.entity,
                    window_start: r.window_start,
                })
            })
            .collect()
    }

    async fn save_model(&self, org: Uuid, m: crate::ml::NewModel) -> Result<crate::ml::StoredModel> {
        let mut tx = self.writer().begin().await?;
        let last: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(version) FROM ml_models WHERE org_id = $1 AND feature_set = $2 AND entity = $3",
        )
        .bind(org)
        .bind(m.feature_set.as_str())
        .bind(m.entity.as_str())
        .fetch_one(&mut *tx)
        .await?;
        let version = last.unwrap_or(0) + 1;
        let trained_at = vigil_core::truncate_micros(m.trained_at);
        let features = serde_json::to_string(&m.features).unwrap_or_else(|_| "[]".into());
        sqlx::query(
            "INSERT INTO ml_models (org_id, feature_set, entity, version, trained_at, sample_count, \
             features, threshold, training_secs, model) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(org)
        .bind(m.feature_set.as_str())
        .bind(m.entity.as_str())
        .bind(version)
        .bind(trained_at)
        .bind(m.sample_count)
        .bind(features)
        .bind(m.threshold)
        .bind(m.training_secs)
        .bind(m.model.as_slice())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM ml_models WHERE org_id = $1 AND feature_set = $2 AND entity = $3 AND version <= $4",
        )
        .bind(org)
        .bind(m.feature_set.as_str())
        .bind(m.entity.as_str())
        .bind(version - crate::ml::MODEL_VERSIONS_KEPT)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(crate::ml::StoredModel {
            feature_set: m.feature_set,
            entity: m.entity,
            version,
            trained_at,
            sample_count: m.sample_count,
            features: m.features,
            threshold: m.threshold,
            training_secs: m.training_secs,
            model: m.model,
        })
    }

    async fn latest_models(&self, org: Uuid) -> Result<Vec<crate::ml::StoredModel>> {
        let rows: Vec<MlModelRow> = sqlx::query_as(&format!(
            "SELECT {ML_MODEL_COLS} FROM ml_models m WHERE org_id = $1 AND version = \
             (SELECT MAX(version) FROM ml_models x WHERE x.org_id = m.org_id \
              AND x.feature_set = m.feature_set AND x.entity = m.entity) \
             ORDER BY feature_set, entity"
        ))
        .bind(org)
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn purge_features(&self, before: DateTime<Utc>) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM ml_features WHERE window_start < $1")
            .bind(before)
            .execute(self.writer())
            .await?
            .rows_affected())
    }
}
