//! SQL for endpoints, their secrets, the messages they wanted and each delivery's tries.

use chrono::{DateTime, Utc};
use events::Envelope;
use platform::db::{Db, NewestFirst, Tx};
use platform::time::{from_millis, to_millis};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::domain::{EventTypeFilter, SigningSecret};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// Kept as the cause, so that what decides the answer can tell an unreachable database
    /// from a bug.
    #[error("database error")]
    Db(#[from] sqlx::Error),
}

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    pub event_types: EventTypeFilter,
    pub enabled: bool,
    /// Why the breaker disabled it (None when an operator did, or when it is enabled).
    pub disabled_reason: Option<String>,
    /// Since when every try has failed; None when its last answer was a success.
    pub failing_since: Option<DateTime<Utc>>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What an operator may change on an endpoint; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct EndpointChanges {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<EventTypeFilter>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    /// The event's id: the `webhook-id` every try of this delivery carries.
    pub event_id: Uuid,
    pub event_type: String,
    pub event_time: DateTime<Utc>,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub last_latency_ms: Option<i64>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Delivered,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Attempt {
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub latency_ms: i64,
    pub at: DateTime<Utc>,
}

/// The next delivery due to an endpoint, with the message it sends.
#[derive(Debug, Clone)]
pub struct Due {
    pub delivery_id: Uuid,
    pub event_id: Uuid,
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub body: String,
}

/// How one try ended, as recorded.
#[derive(Debug, Clone)]
pub struct TryRecord {
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: i64,
    pub at: DateTime<Utc>,
}

/// How an endpoint stands, for the metrics.
#[derive(Debug, Clone)]
pub struct EndpointHealth {
    pub id: Uuid,
    pub enabled: bool,
    pub auto_disabled: bool,
    pub failing_since: Option<DateTime<Utc>>,
    pub pending: i64,
}

const ENDPOINT_COLUMNS: &str = "id, url, description, event_types, enabled, disabled_reason, \
                                failing_since, version, created_at, updated_at";
const DELIVERY_COLUMNS: &str = "id, endpoint_id, event_id, event_type, event_time, status, \
                                attempts, next_attempt_at, last_status_code, last_error, \
                                last_latency_ms, delivered_at, created_at";

fn uuid(row: &AnyRow, column: &str) -> Result<Uuid, StoreError> {
    let text: String = row.try_get(column)?;
    Uuid::parse_str(&text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

fn time(row: &AnyRow, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(row.try_get::<Option<i64>, _>(column)?.map(from_millis))
}

fn filter(row: &AnyRow) -> Result<EventTypeFilter, StoreError> {
    let json: String = row.try_get("event_types")?;
    serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(format!("event_types: {e}")))
}

fn read_endpoint(row: &AnyRow) -> Result<Endpoint, StoreError> {
    Ok(Endpoint {
        id: uuid(row, "id")?,
        url: row.try_get("url")?,
        description: row.try_get("description")?,
        event_types: filter(row)?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        disabled_reason: row.try_get("disabled_reason")?,
        failing_since: time(row, "failing_since")?,
        version: row.try_get("version")?,
        created_at: from_millis(row.try_get("created_at")?),
        updated_at: from_millis(row.try_get("updated_at")?),
    })
}

fn read_delivery(row: &AnyRow) -> Result<Delivery, StoreError> {
    let status: String = row.try_get("status")?;
    Ok(Delivery {
        id: uuid(row, "id")?,
        endpoint_id: uuid(row, "endpoint_id")?,
        event_id: uuid(row, "event_id")?,
        event_type: row.try_get("event_type")?,
        event_time: from_millis(row.try_get("event_time")?),
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("status: {status}")))?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: from_millis(row.try_get("next_attempt_at")?),
        last_status_code: row.try_get("last_status_code")?,
        last_error: row.try_get("last_error")?,
        last_latency_ms: row.try_get("last_latency_ms")?,
        delivered_at: time(row, "delivered_at")?,
        created_at: from_millis(row.try_get("created_at")?),
    })
}

fn filter_json(filter: &EventTypeFilter) -> String {
    serde_json::to_string(&filter.patterns()).unwrap_or_else(|_| "[]".to_owned())
}

#[derive(Debug, Clone)]
pub struct WebhookStore {
    db: Db,
}

impl WebhookStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

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
                insert_secret(tx, id, secret, now).await
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

    /// Makes `secret` the endpoint's current one; those in use before keep signing until
    /// `old_until`.
    pub async fn rotate_secret(
        &self,
        endpoint_id: Uuid,
        secret: &SigningSecret,
        old_until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = to_millis(platform::time::now());
        self.db
            .transact("webhooks.rotate_secret", async |tx| {
                sqlx::query(
                    "UPDATE webhook_secrets SET expires_at = $2 WHERE endpoint_id = $1 \
                     AND (expires_at IS NULL OR expires_at > $2)",
                )
                .bind(endpoint_id.to_string())
                .bind(to_millis(old_until))
                .execute(&mut ***tx)
                .await?;
                insert_secret(tx, endpoint_id, secret, now).await
            })
            .await
    }

    /// The secrets that sign a delivery now, newest first.
    pub async fn signing_secrets(
        &self,
        endpoint_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<SigningSecret>, StoreError> {
        let rows = sqlx::query(
            "SELECT secret FROM webhook_secrets WHERE endpoint_id = $1 \
             AND (expires_at IS NULL OR expires_at > $2) ORDER BY id DESC",
        )
        .bind(endpoint_id.to_string())
        .bind(to_millis(now))
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let text: String = row.try_get("secret")?;
                SigningSecret::parse(&text).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect()
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

    /// Endpoints with deliveries waiting that no sender holds.
    pub async fn waiting_endpoints(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(Uuid, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT e.id, e.url FROM webhook_endpoints e WHERE e.enabled = 1 \
             AND e.lease_until < $1 AND EXISTS (SELECT 1 FROM webhook_deliveries d \
             WHERE d.endpoint_id = e.id AND d.status = 'pending') ORDER BY e.id",
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
        let done = sqlx::query(sql)
            .bind(endpoint_id.to_string())
            .bind(to_millis(now))
            .bind(to_millis(until))
            .execute(self.db.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn release(&self, endpoint_id: Uuid) -> Result<(), StoreError> {
        sqlx::query("UPDATE webhook_endpoints SET lease_until = 0 WHERE id = $1")
            .bind(endpoint_id.to_string())
            .execute(self.db.pool())
            .await?;
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
        sqlx::query(
            "UPDATE webhook_endpoints SET enabled = 0, disabled_reason = $2, \
             version = version + 1, updated_at = $3 WHERE id = $1",
        )
        .bind(endpoint_id.to_string())
        .bind(reason)
        .bind(to_millis(platform::time::now()))
        .execute(self.db.pool())
        .await?;
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
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $3, \
             delivered_at = NULL, updated_at = $3 WHERE id = $1 AND endpoint_id = $2",
        )
        .bind(id.to_string())
        .bind(endpoint_id.to_string())
        .bind(now)
        .execute(self.db.pool())
        .await?;
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

async fn insert_secret(
    tx: &mut Tx,
    endpoint_id: Uuid,
    secret: &SigningSecret,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO webhook_secrets (id, endpoint_id, secret, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(Uuid::now_v7().to_string())
    .bind(endpoint_id.to_string())
    .bind(secret.expose())
    .bind(now)
    .execute(&mut ***tx)
    .await?;
    Ok(())
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
