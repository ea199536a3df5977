//! Recording what endpoints want, and the deliveries an operator reads and replays.

use super::*;

impl WebhookStore {
    /// Records `event` once, for every endpoint in `endpoints`, due now.
    pub async fn enqueue(
        tx: &mut Tx,
        event: &Envelope,
        endpoints: &[Uuid],
    ) -> Result<(), StoreError> {
        let now = to_millis(platform::time::now());
        sqlx::query(
            "INSERT INTO webhook_messages (event_id, event_type, event_time, body, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event.id.to_string())
        .bind(&event.event_type)
        .bind(to_millis(event.time))
        .bind(event.to_json())
        .bind(now)
        .execute(&mut ***tx)
        .await?;
        for endpoint in endpoints {
            queue_delivery(
                tx,
                *endpoint,
                event.id,
                &event.event_type,
                event.time,
                now,
                false,
            )
            .await?;
        }
        Ok(())
    }

    /// A page of an endpoint's deliveries, newest first, of one status if given.
    pub async fn deliveries(
        &self,
        endpoint_id: Uuid,
        status: Option<DeliveryStatus>,
        limit: u32,
        before: Option<Uuid>,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut page = NewestFirst::default();
        page.and("endpoint_id = {}", endpoint_id.to_string());
        if let Some(status) = status {
            page.and("status = {}", status.as_str().to_owned());
        }
        let rows = page
            .fetch(
                &self.db,
                "webhook_deliveries",
                DELIVERY_COLUMNS,
                limit,
                before,
            )
            .await?;
        rows.iter().map(read_delivery).collect()
    }

    pub async fn delivery(
        &self,
        endpoint_id: Uuid,
        id: Uuid,
    ) -> Result<Option<(Delivery, Vec<Attempt>)>, StoreError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1 AND endpoint_id = $2"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .bind(endpoint_id.to_string())
            .fetch_optional(self.db.pool())
            .await?;
        let Some(delivery) = row.as_ref().map(read_delivery).transpose()? else {
            return Ok(None);
        };
        let rows = sqlx::query(
            "SELECT status_code, error, latency_ms, attempted_at FROM webhook_attempts \
             WHERE delivery_id = $1 ORDER BY id",
        )
        .bind(id.to_string())
        .fetch_all(self.db.pool())
        .await?;
        let attempts = rows
            .iter()
            .map(|row| {
                Ok(Attempt {
                    status_code: row.try_get("status_code")?,
                    error: row.try_get("error")?,
                    latency_ms: row.try_get("latency_ms")?,
                    at: from_millis(row.try_get("attempted_at")?),
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Some((delivery, attempts)))
    }

    /// Sends a delivery again, now (pending again if it was delivered). False if none.
    pub async fn replay(&self, endpoint_id: Uuid, id: Uuid) -> Result<bool, StoreError> {
        let now = to_millis(platform::time::now());
        let replay = sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $3, \
             delivered_at = NULL, updated_at = $3 WHERE id = $1 AND endpoint_id = $2",
        )
        .bind(id.to_string())
        .bind(endpoint_id.to_string())
        .bind(now);
        let done = self.db.write_one("webhooks.replay", replay).await?;
        Ok(done.rows_affected() == 1)
    }

    /// Queues again, now, every recorded message since `since` the endpoint's types match
    /// (at most `limit`, oldest first): those it was sent, and those recorded for other
    /// endpoints while it was not subscribed. Returns how many, and whether more were left.
    pub async fn replay_since(
        &self,
        endpoint: &Endpoint,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<(u64, bool), StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT event_id, event_type, event_time FROM webhook_messages \
             WHERE event_time >= $1 ORDER BY event_time, event_id {}",
            platform::db::literal_limit(i64::from(limit) + 1)
        )))
        .bind(to_millis(since))
        .fetch_all(self.db.pool())
        .await?;
        let more = rows.len() > limit as usize;
        let now = to_millis(platform::time::now());
        let mut queued = 0;
        let mut tx = self.db.begin_as("webhooks.replay_since").await?;
        for row in rows.iter().take(limit as usize) {
            let event_type: String = row.try_get("event_type")?;
            if !endpoint.event_types.matches(&event_type) {
                continue;
            }
            let time = from_millis(row.try_get("event_time")?);
            let event_id = uuid(row, "event_id")?;
            queue_delivery(&mut tx, endpoint.id, event_id, &event_type, time, now, true).await?;
            queued += 1;
        }
        tx.commit().await?;
        Ok((queued, more))
    }
}

/// A delivery of a recorded message to an endpoint, due now; `again` queues one that
/// exists (delivered or not) once more.
async fn queue_delivery(
    tx: &mut Tx,
    endpoint_id: Uuid,
    event_id: Uuid,
    event_type: &str,
    event_time: DateTime<Utc>,
    now: i64,
    again: bool,
) -> Result<(), StoreError> {
    let on_conflict = match again {
        false => "DO NOTHING",
        true => {
            "DO UPDATE SET status = 'pending', next_attempt_at = excluded.next_attempt_at, \
             delivered_at = NULL, updated_at = excluded.updated_at"
        }
    };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, event_time, \
         status, attempts, next_attempt_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6, $6) \
         ON CONFLICT (endpoint_id, event_id) {on_conflict}"
    )))
    .bind(Uuid::now_v7().to_string())
    .bind(endpoint_id.to_string())
    .bind(event_id.to_string())
    .bind(event_type)
    .bind(to_millis(event_time))
    .bind(now)
    .execute(&mut ***tx)
    .await?;
    Ok(())
}
