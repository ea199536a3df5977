//! SQL for stock, the ledger and reservations. Every stock change is a single conditional
//! UPDATE, so the invariant 0 <= reserved <= on_hand holds under any concurrency on both
//! backends (row locks on PostgreSQL, the write lock on SQLite); the table's CHECKs back it up.

use platform::db::{Backend, Db, literal_limit};
use platform::time::{from_millis, to_millis};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use uuid::Uuid;

use crate::domain::{ReservationLine, ReservationRequest, ReservationStatus, StockLevels};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// Kept as the cause (not transparent), so that what decides the answer finds the
    /// `sqlx::Error` in the chain and can tell an unreachable database from a bug.
    #[error("database error")]
    Db(#[from] sqlx::Error),
}

/// One ledger line.
#[derive(Debug, Clone)]
pub struct LedgerEntry {
    pub id: Uuid,
    pub product_id: Uuid,
    pub kind: String,
    pub on_hand_delta: i64,
    pub reserved_delta: i64,
    pub on_hand_after: i64,
    pub reserved_after: i64,
    pub reason: String,
    pub actor: String,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// A change to record: what kind, by how much, why, by whom.
pub struct Change<'a> {
    pub kind: &'a str,
    pub on_hand_delta: i64,
    pub reserved_delta: i64,
    pub reason: &'a str,
    pub actor: &'a str,
}

#[derive(Debug, Clone)]
pub struct StockStore {
    db: Db,
}

fn uuid(row: &AnyRow, column: &str) -> Result<Uuid, StoreError> {
    let text: String = row.try_get(column)?;
    Uuid::parse_str(&text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

impl StockStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Creates the product's stock at zero, unless it exists.
    pub async fn ensure(
        &self,
        tx: &mut Transaction<'static, Any>,
        product_id: Uuid,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO stock (product_id, on_hand, reserved, updated_at) VALUES ($1, 0, 0, $2) \
             ON CONFLICT (product_id) DO NOTHING",
        )
        .bind(product_id.to_string())
        .bind(to_millis(platform::time::now()))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn levels(&self, product_id: Uuid) -> Result<Option<StockLevels>, StoreError> {
        let row = sqlx::query("SELECT on_hand, reserved FROM stock WHERE product_id = $1")
            .bind(product_id.to_string())
            .fetch_optional(self.db.pool())
            .await?;
        row.map(|row| {
            Ok(StockLevels {
                product_id,
                on_hand: row.try_get("on_hand")?,
                reserved: row.try_get("reserved")?,
            })
        })
        .transpose()
    }

    /// Applies `change` if the result keeps 0 <= reserved <= on_hand; `None` if it would not
    /// (or the product has no stock row). Records it in the ledger.
    pub async fn apply(
        &self,
        tx: &mut Transaction<'static, Any>,
        product_id: Uuid,
        change: &Change<'_>,
    ) -> Result<Option<StockLevels>, StoreError> {
        let row = sqlx::query(
            "UPDATE stock SET on_hand = on_hand + $1, reserved = reserved + $2, updated_at = $3 \
             WHERE product_id = $4 AND reserved + $2 >= 0 AND on_hand + $1 >= reserved + $2 \
             RETURNING on_hand, reserved",
        )
        .bind(change.on_hand_delta)
        .bind(change.reserved_delta)
        .bind(to_millis(platform::time::now()))
        .bind(product_id.to_string())
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let levels = StockLevels {
            product_id,
            on_hand: row.try_get("on_hand")?,
            reserved: row.try_get("reserved")?,
        };
        sqlx::query(
            "INSERT INTO stock_ledger (id, product_id, kind, on_hand_delta, reserved_delta, on_hand_after, \
             reserved_after, reason, actor, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(product_id.to_string())
        .bind(change.kind)
        .bind(change.on_hand_delta)
        .bind(change.reserved_delta)
        .bind(levels.on_hand)
        .bind(levels.reserved)
        .bind(change.reason)
        .bind(change.actor)
        .bind(to_millis(platform::time::now()))
        .execute(&mut **tx)
        .await?;
        Ok(Some(levels))
    }

    /// Newest first; `before` is the id of the last entry of the previous page.
    pub async fn ledger(
        &self,
        product_id: Uuid,
        limit: u32,
        before: Option<Uuid>,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        let columns = "id, product_id, kind, on_hand_delta, reserved_delta, on_hand_after, reserved_after, reason, actor, created_at";
        let rows = self
            .db
            .newest_first(
                "stock_ledger",
                columns,
                "product_id",
                &product_id.to_string(),
                limit,
                before,
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(LedgerEntry {
                    id: uuid(row, "id")?,
                    product_id: uuid(row, "product_id")?,
                    kind: row.try_get("kind")?,
                    on_hand_delta: row.try_get("on_hand_delta")?,
                    reserved_delta: row.try_get("reserved_delta")?,
                    on_hand_after: row.try_get("on_hand_after")?,
                    reserved_after: row.try_get("reserved_after")?,
                    reason: row.try_get("reason")?,
                    actor: row.try_get("actor")?,
                    at: from_millis(row.try_get("created_at")?),
                })
            })
            .collect()
    }

    /// The products of `lines` that have fewer units available than asked (or no stock
    /// record), reading under lock so the answer holds until the transaction ends.
    pub async fn shortages(
        &self,
        tx: &mut Transaction<'static, Any>,
        lines: &[ReservationLine],
    ) -> Result<Vec<Uuid>, StoreError> {
        let lock = match self.db.backend() {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        };
        let sql = format!("SELECT on_hand - reserved FROM stock WHERE product_id = $1{lock}");
        let mut short = Vec::new();
        for line in lines {
            let available: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
                .bind(line.product_id.to_string())
                .fetch_optional(&mut **tx)
                .await?;
            if available.is_none_or(|units| units < line.quantity.get()) {
                short.push(line.product_id);
            }
        }
        Ok(short)
    }

    pub async fn insert_reservation(
        &self,
        tx: &mut Transaction<'static, Any>,
        request: &ReservationRequest,
    ) -> Result<(), StoreError> {
        let id = Uuid::now_v7().to_string();
        let now = to_millis(platform::time::now());
        sqlx::query(
            "INSERT INTO reservations (id, order_id, status, expires_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(&id)
        .bind(request.order_id.to_string())
        .bind(ReservationStatus::Active.as_str())
        .bind(to_millis(request.expires_at))
        .bind(now)
        .execute(&mut **tx)
        .await?;
        for line in &request.lines {
            sqlx::query("INSERT INTO reservation_lines (reservation_id, product_id, quantity) VALUES ($1, $2, $3)")
                .bind(&id)
                .bind(line.product_id.to_string())
                .bind(line.quantity.get())
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// The order's reservation status, if it has one.
    pub async fn reservation_status(
        &self,
        tx: &mut Transaction<'static, Any>,
        order_id: Uuid,
    ) -> Result<Option<ReservationStatus>, StoreError> {
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM reservations WHERE order_id = $1")
                .bind(order_id.to_string())
                .fetch_optional(&mut **tx)
                .await?;
        status
            .map(|s| {
                ReservationStatus::parse(&s)
                    .ok_or_else(|| StoreError::Corrupt(format!("status {s}")))
            })
            .transpose()
    }

    /// Moves the order's reservation from `from` to `to`, returning its lines; `None` if it
    /// has none in `from`.
    pub async fn close_reservation(
        &self,
        tx: &mut Transaction<'static, Any>,
        order_id: Uuid,
        from: ReservationStatus,
        to: ReservationStatus,
    ) -> Result<Option<Vec<ReservationLine>>, StoreError> {
        let id: Option<String> = sqlx::query_scalar(
            "UPDATE reservations SET status = $1, updated_at = $2 WHERE order_id = $3 AND status = $4 RETURNING id",
        )
        .bind(to.as_str())
        .bind(to_millis(platform::time::now()))
        .bind(order_id.to_string())
        .bind(from.as_str())
        .fetch_optional(&mut **tx)
        .await?;
        let Some(id) = id else { return Ok(None) };
        let rows = sqlx::query("SELECT product_id, quantity FROM reservation_lines WHERE reservation_id = $1 ORDER BY product_id")
            .bind(&id)
            .fetch_all(&mut **tx)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(ReservationLine {
                    product_id: uuid(row, "product_id")?,
                    quantity: crate::domain::Quantity::parse(row.try_get("quantity")?)
                        .map_err(|e| StoreError::Corrupt(e.to_owned()))?,
                })
            })
            .collect::<Result<_, _>>()
            .map(Some)
    }

    /// Orders whose active reservation expired before `now`.
    pub async fn expired(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        limit: i64,
    ) -> Result<Vec<Uuid>, StoreError> {
        let sql = format!(
            "SELECT order_id FROM reservations WHERE status = 'active' AND expires_at <= $1 ORDER BY expires_at {}",
            literal_limit(limit)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(to_millis(now))
            .fetch_all(self.db.pool())
            .await?;
        rows.iter().map(|row| uuid(row, "order_id")).collect()
    }
}
