//! SQL for payments and their provider attempts.

use platform::db::Db;
use platform::money::{Currency, Money};
use platform::time::{from_millis, to_millis};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use uuid::Uuid;

use crate::domain::{PaymentStatus, Transition};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// A use case asked for a change its payment's status does not allow: a bug.
    #[error("a {status} payment cannot take {transition:?}")]
    NotAllowed {
        status: &'static str,
        transition: Transition,
    },
    /// The payment moved since it was read (another instance handled one of its events
    /// meanwhile): reading it again decides.
    #[error("the payment moved on since it was read")]
    Moved,
    /// Kept as the cause (not transparent), so that what decides the answer finds the
    /// `sqlx::Error` in the chain and can tell an unreachable database from a bug.
    #[error("database error")]
    Db(#[from] sqlx::Error),
}

#[derive(Debug, Clone)]
pub struct Payment {
    pub id: Uuid,
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub amount: Money,
    /// The customer's payment token as `order.placed` carried it: sealed (`platform::sealing`).
    pub sealed_token: String,
    pub status: PaymentStatus,
    pub provider_ref: Option<String>,
    pub failure_reason: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone)]
pub struct Attempt {
    pub operation: String,
    pub outcome: String,
    pub detail: String,
    pub at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone)]
pub struct PaymentStore {
    db: Db,
}

const COLUMNS: &str = "id, order_id, customer_id, amount, currency, payment_token, status, provider_ref, \
                       failure_reason, created_at, updated_at";

fn uuid(row: &AnyRow, column: &str) -> Result<Uuid, StoreError> {
    let text: String = row.try_get(column)?;
    Uuid::parse_str(&text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

fn read(row: &AnyRow) -> Result<Payment, StoreError> {
    let currency: String = row.try_get("currency")?;
    let currency = Currency::parse(&currency).map_err(|e| StoreError::Corrupt(e.to_owned()))?;
    Ok(Payment {
        id: uuid(row, "id")?,
        order_id: uuid(row, "order_id")?,
        customer_id: uuid(row, "customer_id")?,
        amount: Money::new(row.try_get("amount")?, currency),
        sealed_token: row.try_get("payment_token")?,
        status: {
            let name: String = row.try_get("status")?;
            PaymentStatus::parse(&name)
                .ok_or_else(|| StoreError::Corrupt(format!("status: {name}")))?
        },
        provider_ref: row.try_get("provider_ref")?,
        failure_reason: row.try_get("failure_reason")?,
        created_at: from_millis(row.try_get("created_at")?),
        updated_at: from_millis(row.try_get("updated_at")?),
    })
}

impl PaymentStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Records the order's payment as awaiting stock; nothing if it exists.
    pub async fn open(
        &self,
        tx: &mut Transaction<'static, Any>,
        order_id: Uuid,
        customer_id: Uuid,
        amount: Money,
        token: &str,
    ) -> Result<(), StoreError> {
        let now = to_millis(platform::time::now());
        sqlx::query(
            "INSERT INTO payments (id, order_id, customer_id, amount, currency, payment_token, status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (order_id) DO NOTHING",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(order_id.to_string())
        .bind(customer_id.to_string())
        .bind(amount.amount())
        .bind(amount.currency().code())
        .bind(token)
        .bind(PaymentStatus::AwaitingStock.as_str())
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn for_order(
        &self,
        tx: &mut Transaction<'static, Any>,
        order_id: Uuid,
    ) -> Result<Option<Payment>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM payments WHERE order_id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(order_id.to_string())
            .fetch_optional(&mut **tx)
            .await?;
        row.as_ref().map(read).transpose()
    }

    /// Payments opened since `since`, by status (a range of the primary key: ids are
    /// UUIDv7).
    pub async fn count_by_status(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<std::collections::BTreeMap<String, i64>, StoreError> {
        let counts: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM payments WHERE id >= $1 GROUP BY status")
                .bind(platform::time::first_id_at(since))
                .fetch_all(self.db.pool())
                .await?;
        Ok(counts.into_iter().collect())
    }

    pub async fn find_by_order(&self, order_id: Uuid) -> Result<Option<Payment>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM payments WHERE order_id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(order_id.to_string())
            .fetch_optional(self.db.pool())
            .await?;
        row.as_ref().map(read).transpose()
    }

    /// Moves `payment` by `transition`, the only way its status changes. The row changes
    /// only if it is still where `payment` was read: otherwise `Moved`, and the handler's
    /// retry reads it again (a capture is never overwritten by a void decided on an older
    /// read).
    pub async fn set_status(
        &self,
        tx: &mut Transaction<'static, Any>,
        payment: &Payment,
        transition: Transition,
        provider_ref: Option<&str>,
        failure_reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let not_allowed = || StoreError::NotAllowed {
            status: payment.status.as_str(),
            transition,
        };
        let next = payment.status.after(transition).ok_or_else(not_allowed)?;
        let moved = sqlx::query(
            "UPDATE payments SET status = $1, provider_ref = COALESCE($2, provider_ref), \
             failure_reason = COALESCE($3, failure_reason), updated_at = $4 \
             WHERE id = $5 AND status = $6",
        )
        .bind(next.as_str())
        .bind(provider_ref)
        .bind(failure_reason)
        .bind(to_millis(platform::time::now()))
        .bind(payment.id.to_string())
        .bind(payment.status.as_str())
        .execute(&mut **tx)
        .await?;
        if moved.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::Moved)
        }
    }

    pub async fn record_attempt(
        &self,
        tx: &mut Transaction<'static, Any>,
        payment_id: Uuid,
        operation: &str,
        outcome: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO payment_attempts (id, payment_id, operation, outcome, detail, at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(Uuid::now_v7().to_string())
            .bind(payment_id.to_string())
            .bind(operation)
            .bind(outcome)
            .bind(detail)
            .bind(to_millis(platform::time::now()))
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    pub async fn attempts(&self, payment_id: Uuid) -> Result<Vec<Attempt>, StoreError> {
        let rows = sqlx::query("SELECT operation, outcome, detail, at FROM payment_attempts WHERE payment_id = $1 ORDER BY at, id")
            .bind(payment_id.to_string())
            .fetch_all(self.db.pool())
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Attempt {
                    operation: row.try_get("operation")?,
                    outcome: row.try_get("outcome")?,
                    detail: row.try_get("detail")?,
                    at: from_millis(row.try_get("at")?),
                })
            })
            .collect()
    }
}
