//! Endpoints and how each stands.

use super::*;

impl WebhookStore {
    pub async fn create_endpoint(
        &self,
        url: &str,
        description: &str,
        event_types: &EventTypeFilter,
        enabled: bool,
        secret: &SigningSecret,
    ) -> Result<Endpoint, StoreError> {
        let (id, now) = (Uuid::now_v7(), to_millis(platform::time::now()));
        self.db
            .transact("webhooks.create_endpoint", async |tx| {
                sqlx::query(
                    "INSERT INTO webhook_endpoints (id, url, description, event_types, enabled, \
                     lease_until, version, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, 0, 1, $6, $6)",
                )
                .bind(id.to_string())
                .bind(url)
                .bind(description)
                .bind(filter_json(event_types))
                .bind(i64::from(enabled))
                .bind(now)
                .execute(&mut ***tx)
                .await?;
                self.insert_secret(tx, id, secret, now).await
            })
            .await?;
        self.endpoint(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("the endpoint just made is gone".into()))
    }

    pub async fn endpoint(&self, id: Uuid) -> Result<Option<Endpoint>, StoreError> {
        let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(self.db.pool())
            .await?;
        row.as_ref().map(read_endpoint).transpose()
    }

    /// Every endpoint, oldest first (an installation has tens, not thousands).
    pub async fn endpoints(&self) -> Result<Vec<Endpoint>, StoreError> {
        let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.db.pool())
            .await?;
        rows.iter().map(read_endpoint).collect()
    }

    /// Applies `changes`; enabling an endpoint clears what the breaker recorded, so it starts
    /// afresh with its pending deliveries due now. None if there is no such endpoint.
    pub async fn update_endpoint(
        &self,
        id: Uuid,
        changes: &EndpointChanges,
    ) -> Result<Option<Endpoint>, StoreError> {
        let now = to_millis(platform::time::now());
        let updated = self
            .db
            .transact("webhooks.update_endpoint", async |tx| {
                let done = sqlx::query(
                    "UPDATE webhook_endpoints SET url = COALESCE($2, url), \
                     description = COALESCE($3, description), \
                     event_types = COALESCE($4, event_types), \
                     enabled = COALESCE($5, enabled), \
                     disabled_reason = CASE WHEN $5 IS NULL THEN disabled_reason ELSE NULL END, \
                     failing_since = CASE WHEN $5 = 1 THEN NULL ELSE failing_since END, \
                     version = version + 1, updated_at = $6 WHERE id = $1",
                )
                .bind(id.to_string())
                .bind(changes.url.as_deref())
                .bind(changes.description.as_deref())
                .bind(changes.event_types.as_ref().map(filter_json))
                .bind(changes.enabled.map(i64::from))
                .bind(now)
                .execute(&mut ***tx)
                .await?;
                if changes.enabled == Some(true) {
                    sqlx::query(
                        "UPDATE webhook_deliveries SET next_attempt_at = $2 \
                         WHERE endpoint_id = $1 AND status = 'pending' AND next_attempt_at > $2",
                    )
                    .bind(id.to_string())
                    .bind(now)
                    .execute(&mut ***tx)
                    .await?;
                }
                Ok::<_, StoreError>(done.rows_affected() == 1)
            })
            .await?;
        match updated {
            true => self.endpoint(id).await,
            false => Ok(None),
        }
    }

    /// Removes an endpoint with its secrets, deliveries and their tries. False if none.
    pub async fn delete_endpoint(&self, id: Uuid) -> Result<bool, StoreError> {
        self.db
            .transact("webhooks.delete_endpoint", async |tx| {
                let id = id.to_string();
                for statement in [
                    "DELETE FROM webhook_attempts WHERE delivery_id IN \
                     (SELECT id FROM webhook_deliveries WHERE endpoint_id = $1)",
                    "DELETE FROM webhook_deliveries WHERE endpoint_id = $1",
                    "DELETE FROM webhook_secrets WHERE endpoint_id = $1",
                ] {
                    sqlx::query(statement).bind(&id).execute(&mut ***tx).await?;
                }
                let gone = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1")
                    .bind(&id)
                    .execute(&mut ***tx)
                    .await?;
                Ok(gone.rows_affected() == 1)
            })
            .await
    }

    /// The endpoints events are recorded for: enabled ones, and those the breaker disabled
    /// (their events go out once they are enabled again).
    pub async fn subscribers(tx: &mut Tx) -> Result<Vec<(Uuid, EventTypeFilter)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, event_types FROM webhook_endpoints \
             WHERE enabled = 1 OR disabled_reason IS NOT NULL",
        )
        .fetch_all(&mut ***tx)
        .await?;
        rows.iter()
            .map(|row| Ok((uuid(row, "id")?, filter(row)?)))
            .collect()
    }

    /// How every endpoint stands: for the metrics.
    pub async fn health(&self) -> Result<Vec<EndpointHealth>, StoreError> {
        let rows = sqlx::query(
            "SELECT e.id, e.enabled, e.disabled_reason, e.failing_since, \
             (SELECT COUNT(*) FROM webhook_deliveries d \
              WHERE d.endpoint_id = e.id AND d.status = 'pending') AS pending \
             FROM webhook_endpoints e ORDER BY e.id",
        )
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(EndpointHealth {
                    id: uuid(row, "id")?,
                    enabled: row.try_get::<i64, _>("enabled")? != 0,
                    auto_disabled: row
                        .try_get::<Option<String>, _>("disabled_reason")?
                        .is_some(),
                    failing_since: time(row, "failing_since")?,
                    pending: row.try_get("pending")?,
                })
            })
            .collect()
    }
}
