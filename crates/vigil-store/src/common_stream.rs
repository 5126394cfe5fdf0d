// `StreamStore` for both SQL backends; included by `common.rs`.

#[async_trait::async_trait]
impl crate::stream::StreamStore for StoreImpl {
    async fn create_ticket(&self, t: crate::stream::NewStreamTicket) -> Result<()> {
        let mut tx = self.writer().begin().await?;
        sqlx::query("DELETE FROM stream_tickets WHERE expires_at < $1")
            .bind(t.created_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO stream_tickets (token_hash, user_id, session_id, org_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&t.token_hash)
        .bind(t.user_id)
        .bind(t.session_id)
        .bind(t.org_id)
        .bind(t.created_at)
        .bind(t.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn redeem_ticket(
        &self,
        token_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<crate::stream::StreamTicket>> {
        let row: Option<(Uuid, Uuid, Uuid)> = sqlx::query_as(
            "UPDATE stream_tickets SET used_at = $2 \
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 \
             RETURNING user_id, session_id, org_id",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(self.writer())
        .await?;
        Ok(row.map(|(user_id, session_id, org_id)| crate::stream::StreamTicket {
            user_id,
            session_id,
            org_id,
        }))
    }
}
