//! What the dispatcher needs: endpoints with work, the lease on one, its next delivery, and
//! each try's outcome.

use super::*;

impl WebhookStore {
    /// Endpoints that no sender holds whose next delivery is due; one whose oldest delivery
    /// is backing off is left alone, as everything behind that delivery waits for it.
    pub async fn waiting_endpoints(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(Uuid, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT e.id, e.url FROM webhook_endpoints e WHERE e.enabled = 1 \
             AND e.lease_until < $1 AND (SELECT d.next_attempt_at FROM webhook_deliveries d \
             WHERE d.endpoint_id = e.id AND d.status = 'pending' \
             ORDER BY d.event_time, d.id LIMIT 1) <= $1 ORDER BY e.id",
        )
        .bind(to_millis(now))
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|row| Ok((uuid(row, "id")?, row.try_get("url")?)))
            .collect()
    }

    /// Takes (or extends) the right to send to an endpoint until `until`; false if another
    /// sender holds it, or it was disabled meanwhile.
    pub async fn lease(
        &self,
        endpoint_id: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        renewing: bool,
    ) -> Result<bool, StoreError> {
        let sql = match renewing {
            false => {
                "UPDATE webhook_endpoints SET lease_until = $3 \
                 WHERE id = $1 AND enabled = 1 AND lease_until < $2"
            }
            true => "UPDATE webhook_endpoints SET lease_until = $3 WHERE id = $1 AND enabled = 1",
        };
        let lease = sqlx::query(sql)
            .bind(endpoint_id.to_string())
            .bind(to_millis(now))
            .bind(to_millis(until));
        let done = self.db.write_one("webhooks.lease", lease).await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn release(&self, endpoint_id: Uuid) -> Result<(), StoreError> {
        let release = sqlx::query("UPDATE webhook_endpoints SET lease_until = 0 WHERE id = $1")
            .bind(endpoint_id.to_string());
        self.db.write_one("webhooks.release", release).await?;
        Ok(())
    }

    /// The endpoint's oldest pending delivery by event time: the only one it may be sent.
    pub async fn head(&self, endpoint_id: Uuid) -> Result<Option<Due>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT d.id, d.event_id, d.attempts, d.next_attempt_at, m.body \
             FROM webhook_deliveries d JOIN webhook_messages m ON m.event_id = d.event_id \
             WHERE d.endpoint_id = $1 AND d.status = 'pending' \
             ORDER BY d.event_time, d.id {}",
            platform::db::literal_limit(1)
        )))
        .bind(endpoint_id.to_string())
        .fetch_optional(self.db.pool())
        .await?;
        row.map(|row| {
            Ok(Due {
                delivery_id: uuid(&row, "id")?,
                event_id: uuid(&row, "event_id")?,
                attempts: row.try_get("attempts")?,
                next_attempt_at: from_millis(row.try_get("next_attempt_at")?),
                body: row.try_get("body")?,
            })
        })
        .transpose()
    }

    /// Records a 2xx answer: the delivery is done and the endpoint healthy again.
    pub async fn delivered(
        &self,
        endpoint_id: Uuid,
        delivery_id: Uuid,
        answer: &TryRecord,
    ) -> Result<(), StoreError> {
        self.db
            .transact("webhooks.delivered", async |tx| {
                let at = to_millis(answer.at);
                sqlx::query(
                    "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, \
                     last_status_code = $2, last_error = NULL, last_latency_ms = $3, \
                     delivered_at = $4, updated_at = $4 WHERE id = $1",
                )
                .bind(delivery_id.to_string())
                .bind(answer.status_code.map(i64::from))
                .bind(answer.latency_ms)
                .bind(at)
                .execute(&mut ***tx)
                .await?;
                insert_attempt(tx, delivery_id, answer).await?;
                sqlx::query("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1")
                    .bind(endpoint_id.to_string())
                    .execute(&mut ***tx)
                    .await?;
                Ok(())
            })
            .await
    }

    /// Records a failed try: when the delivery goes again, and since when the endpoint has
    /// been failing (returned).
    pub async fn failed(
        &self,
        endpoint_id: Uuid,
        delivery_id: Uuid,
        answer: &TryRecord,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, StoreError> {
        self.db
            .transact("webhooks.failed", async |tx| {
                let at = to_millis(answer.at);
                sqlx::query(
                    "UPDATE webhook_deliveries SET attempts = attempts + 1, \
                     next_attempt_at = $2, last_status_code = $3, last_error = $4, \
                     last_latency_ms = $5, updated_at = $6 WHERE id = $1",
                )
                .bind(delivery_id.to_string())
                .bind(to_millis(next_attempt_at))
                .bind(answer.status_code.map(i64::from))
                .bind(answer.error.as_deref())
                .bind(answer.latency_ms)
                .bind(at)
                .execute(&mut ***tx)
                .await?;
                insert_attempt(tx, delivery_id, answer).await?;
                let row = sqlx::query(
                    "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $2) \
                     WHERE id = $1 RETURNING failing_since",
                )
                .bind(endpoint_id.to_string())
                .bind(at)
                .fetch_one(&mut ***tx)
                .await?;
                Ok(from_millis(row.try_get("failing_since")?))
            })
            .await
    }

    /// The breaker gives up on an endpoint: disabled, with the reason an operator reads.
    pub async fn disable(&self, endpoint_id: Uuid, reason: &str) -> Result<(), StoreError> {
        let disable = sqlx::query(
            "UPDATE webhook_endpoints SET enabled = 0, disabled_reason = $2, \
             version = version + 1, updated_at = $3 WHERE id = $1",
        )
        .bind(endpoint_id.to_string())
        .bind(reason)
        .bind(to_millis(platform::time::now()));
        self.db.write_one("webhooks.disable", disable).await?;
        Ok(())
    }
}

async fn insert_attempt(
    tx: &mut Tx,
    delivery_id: Uuid,
    answer: &TryRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO webhook_attempts (id, delivery_id, status_code, error, latency_ms, attempted_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(Uuid::now_v7().to_string())
    .bind(delivery_id.to_string())
    .bind(answer.status_code.map(i64::from))
    .bind(answer.error.as_deref())
    .bind(answer.latency_ms)
    .bind(to_millis(answer.at))
    .execute(&mut ***tx)
    .await?;
    Ok(())
}
