//! SQL for orders, their lines and timeline, and the catalog read model.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use platform::db::NewestFirst;
use platform::db::{Db, is_unique_violation};
use platform::money::{Currency, Money};
use platform::time::{from_millis, to_millis};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use uuid::Uuid;

use crate::domain::{
    CancelReason, CatalogProduct, Order, OrderFilter, OrderLine, OrderStatus, OrdersSummary,
    ShippingAddress, per_minute,
};

type Tx = Transaction<'static, Any>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("this idempotency key was used already")]
    DuplicateKey,
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// Kept as the cause (not transparent), so that what decides the answer finds the
    /// `sqlx::Error` in the chain and can tell an unreachable database from a bug.
    #[error("database error")]
    Db(#[from] sqlx::Error),
}

#[derive(Debug, Clone)]
pub struct TimelineEntry {
    pub step: String,
    pub detail: String,
    pub event_id: Option<String>,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// What a saga step needs of an order: where it stands.
#[derive(Debug, Clone)]
pub struct SagaState {
    pub status: OrderStatus,
    pub cancel_reason: Option<CancelReason>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone)]
pub struct OrderStore {
    db: Db,
}

fn uuid(row: &AnyRow, column: &str) -> Result<Uuid, StoreError> {
    let text: String = row.try_get(column)?;
    Uuid::parse_str(&text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

fn currency(row: &AnyRow) -> Result<Currency, StoreError> {
    let code: String = row.try_get("currency")?;
    Currency::parse(&code).map_err(|e| StoreError::Corrupt(format!("currency {code}: {e}")))
}

fn cancel_reason(row: &AnyRow) -> Result<Option<CancelReason>, StoreError> {
    let reason: Option<String> = row.try_get("cancel_reason")?;
    reason
        .map(|r| {
            CancelReason::parse(&r).ok_or_else(|| StoreError::Corrupt(format!("cancel reason {r}")))
        })
        .transpose()
}

/// `$first, $first+1, ...`: one placeholder per value.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

const ORDER_COLUMNS: &str = "id, customer_id, status, cancel_reason, total, currency, shipping_address, created_at, updated_at";

impl OrderStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Keeps the read model's copy of a product, ignoring versions older than the one kept.
    pub async fn upsert_product(
        &self,
        tx: &mut Tx,
        product: &CatalogProduct,
        version: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO catalog_products (product_id, sku, name, price, currency, archived, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (product_id) DO UPDATE SET sku = excluded.sku, name = excluded.name, price = excluded.price, \
             currency = excluded.currency, archived = excluded.archived, version = excluded.version \
             WHERE catalog_products.version <= excluded.version",
        )
        .bind(product.product_id.to_string())
        .bind(&product.sku)
        .bind(&product.name)
        .bind(product.price.amount())
        .bind(product.price.currency().code())
        .bind(i64::from(product.archived))
        .bind(version)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn archive_product(&self, tx: &mut Tx, product_id: Uuid) -> Result<(), StoreError> {
        sqlx::query("UPDATE catalog_products SET archived = 1 WHERE product_id = $1")
            .bind(product_id.to_string())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Those of `ids` that orders knows, in one query.
    pub async fn products(
        &self,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, CatalogProduct>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        ids.sort_unstable();
        ids.dedup();
        let sql = format!(
            "SELECT product_id, sku, name, price, currency, archived FROM catalog_products \
             WHERE product_id IN ({})",
            placeholders(1, ids.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(id);
        }
        let rows = query.fetch_all(self.db.pool()).await?;
        rows.iter()
            .map(|row| {
                let product = CatalogProduct {
                    product_id: uuid(row, "product_id")?,
                    sku: row.try_get("sku")?,
                    name: row.try_get("name")?,
                    price: Money::new(row.try_get("price")?, currency(row)?),
                    archived: row.try_get::<i64, _>("archived")? != 0,
                };
                Ok((product.product_id, product))
            })
            .collect()
    }

    pub async fn insert(
        &self,
        tx: &mut Tx,
        order: &Order,
        key: &str,
        request_hash: &str,
    ) -> Result<(), StoreError> {
        let address = serde_json::to_string(&order.address)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let inserted = sqlx::query(
            "INSERT INTO orders (id, customer_id, status, total, currency, shipping_address, idempotency_key, \
             request_hash, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
        )
        .bind(order.id.to_string())
        .bind(order.customer_id.to_string())
        .bind(order.status.as_str())
        .bind(order.total.amount())
        .bind(order.total.currency().code())
        .bind(address)
        .bind(key)
        .bind(request_hash)
        .bind(to_millis(order.created_at))
        .execute(&mut **tx)
        .await;
        match inserted {
            Err(error) if is_unique_violation(&error) => return Err(StoreError::DuplicateKey),
            other => other?,
        };
        if order.lines.is_empty() {
            return Ok(());
        }
        // Every line in one statement: the order's id once, then six values per line.
        let rows = (0..order.lines.len())
            .map(|n| format!("($1, {})", placeholders(2 + 6 * n, 6)))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO order_lines (order_id, line_no, product_id, sku, name, unit_price, quantity) \
             VALUES {rows}"
        );
        let mut lines = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(order.id.to_string());
        for (n, line) in order.lines.iter().enumerate() {
            lines = lines
                .bind(i64::try_from(n).unwrap_or(i64::MAX))
                .bind(line.product_id.to_string())
                .bind(&line.sku)
                .bind(&line.name)
                .bind(line.unit_price.amount())
                .bind(line.quantity);
        }
        lines.execute(&mut **tx).await?;
        Ok(())
    }

    /// The order a customer placed with an idempotency key, and the hash of that request.
    pub async fn by_key(
        &self,
        customer_id: Uuid,
        key: &str,
    ) -> Result<Option<(Uuid, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT id, request_hash FROM orders WHERE customer_id = $1 AND idempotency_key = $2",
        )
        .bind(customer_id.to_string())
        .bind(key)
        .fetch_optional(self.db.pool())
        .await?;
        row.map(|row| Ok((uuid(&row, "id")?, row.try_get("request_hash")?)))
            .transpose()
    }

    /// The order with its lines, in one statement (it is read once or twice per checkout).
    pub async fn find(&self, id: Uuid) -> Result<Option<Order>, StoreError> {
        let rows = sqlx::query(
            "SELECT o.id, o.customer_id, o.status, o.cancel_reason, o.total, o.currency, \
             o.shipping_address, o.created_at, o.updated_at, \
             l.product_id, l.sku, l.name, l.unit_price, l.quantity \
             FROM orders o JOIN order_lines l ON l.order_id = o.id \
             WHERE o.id = $1 ORDER BY l.line_no",
        )
        .bind(id.to_string())
        .fetch_all(self.db.pool())
        .await?;
        rows.first().map(|order| read(order, &rows)).transpose()
    }

    /// A customer's orders, newest first, after `before` (an order id: UUIDv7 orders by time).
    pub async fn list(
        &self,
        customer_id: Uuid,
        limit: u32,
        before: Option<Uuid>,
    ) -> Result<Vec<Order>, StoreError> {
        let rows = self
            .db
            .newest_first(
                "orders",
                ORDER_COLUMNS,
                "customer_id",
                &customer_id.to_string(),
                limit,
                before,
            )
            .await?;
        self.with_lines(&rows).await
    }

    /// Every customer's orders that match `filter`, newest first, after `before` (an order
    /// id). Only the conditions given are in the statement.
    pub async fn search(
        &self,
        filter: &OrderFilter,
        limit: u32,
        before: Option<Uuid>,
    ) -> Result<Vec<Order>, StoreError> {
        let mut search = NewestFirst::default();
        if let Some(status) = filter.status {
            search.and("status = {}", status.as_str().to_owned());
        }
        if let Some(customer) = filter.customer {
            search.and("customer_id = {}", customer.to_string());
        }
        // Ids are UUIDv7: a time range is a range of the primary key.
        if let Some(from) = filter.placed_from {
            search.and("id >= {}", platform::time::first_id_at(from));
        }
        if let Some(to) = filter.placed_to {
            search.and("id < {}", platform::time::first_id_at(to));
        }
        let rows = search
            .fetch(&self.db, "orders", ORDER_COLUMNS, limit, before)
            .await?;
        self.with_lines(&rows).await
    }

    /// The dashboard's figures at `now`. The time windows are ranges of the primary key (ids
    /// are UUIDv7), so they read only the orders in them.
    pub async fn summary(&self, now: DateTime<Utc>) -> Result<OrdersSummary, StoreError> {
        let hour_ago = platform::time::first_id_at(now - chrono::Duration::hours(1));
        let minutes: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT created_at / 60000, COUNT(*) FROM orders WHERE id >= $1 GROUP BY created_at / 60000",
        )
        .bind(hour_ago)
        .fetch_all(self.db.pool())
        .await?;
        let (pending, oldest): (i64, Option<i64>) =
            sqlx::query_as("SELECT COUNT(*), MIN(created_at) FROM orders WHERE status = 'pending'")
                .fetch_one(self.db.pool())
                .await?;
        let day_ago = platform::time::first_id_at(now - chrono::Duration::days(1));
        let outcomes: Vec<(String, Option<String>, i64)> = sqlx::query_as(
            "SELECT status, cancel_reason, COUNT(*) FROM orders WHERE id >= $1 GROUP BY status, cancel_reason",
        )
        .bind(day_ago)
        .fetch_all(self.db.pool())
        .await?;
        let mut summary = OrdersSummary {
            at: now,
            placed_per_minute: per_minute(now, &minutes),
            pending,
            oldest_pending_seconds: oldest.map_or(0.0, |millis| {
                (to_millis(now) - millis).max(0) as f64 / 1000.0
            }),
            last_day_by_status: Default::default(),
            last_day_cancelled_by_reason: Default::default(),
        };
        for (status, reason, count) in outcomes {
            *summary.last_day_by_status.entry(status).or_default() += count;
            if let Some(reason) = reason {
                *summary
                    .last_day_cancelled_by_reason
                    .entry(reason)
                    .or_default() += count;
            }
        }
        Ok(summary)
    }

    /// Where the order stands, read inside `tx` (it sees what the transaction changed).
    pub async fn saga_state(&self, tx: &mut Tx, id: Uuid) -> Result<Option<SagaState>, StoreError> {
        let row = sqlx::query("SELECT status, cancel_reason, created_at FROM orders WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut **tx)
            .await?;
        row.map(|row| {
            let status: String = row.try_get("status")?;
            Ok(SagaState {
                status: OrderStatus::parse(&status)
                    .ok_or_else(|| StoreError::Corrupt(format!("status {status}")))?,
                cancel_reason: cancel_reason(&row)?,
                created_at: from_millis(row.try_get("created_at")?),
            })
        })
        .transpose()
    }

    /// Pending orders placed before `placed_before`, oldest first, at most `limit`: their id
    /// and when they were placed.
    pub async fn overdue(
        &self,
        placed_before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<(Uuid, DateTime<Utc>)>, StoreError> {
        let sql = format!(
            "SELECT id, created_at FROM orders WHERE status = 'pending' AND created_at < $1 \
             ORDER BY created_at {}",
            platform::db::literal_limit(limit)
        );
        let rows: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(to_millis(placed_before))
            .fetch_all(self.db.pool())
            .await?;
        rows.into_iter()
            .map(|(id, created_at)| {
                let id =
                    Uuid::parse_str(&id).map_err(|e| StoreError::Corrupt(format!("id: {e}")))?;
                Ok((id, from_millis(created_at)))
            })
            .collect()
    }

    /// Moves the order from `from` to `to`; `false` if it was not in `from` any more.
    pub async fn set_status(
        &self,
        tx: &mut Tx,
        id: Uuid,
        from: OrderStatus,
        to: OrderStatus,
        cancel_reason: Option<CancelReason>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE orders SET status = $1, cancel_reason = $2, updated_at = $3 WHERE id = $4 AND status = $5",
        )
        .bind(to.as_str())
        .bind(cancel_reason.map(CancelReason::as_str))
        .bind(to_millis(platform::time::now()))
        .bind(id.to_string())
        .bind(from.as_str())
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn note(
        &self,
        tx: &mut Tx,
        order_id: Uuid,
        step: &str,
        detail: &str,
        event_id: Option<Uuid>,
    ) -> Result<(), StoreError> {
        // A step caused by an event happened when the event did (its UUIDv7 says when). On
        // Kafka, events of different topics arrive in either order; the timeline keeps the
        // order things happened in.
        let at = event_id
            .and_then(|id| id.get_timestamp())
            .map(|at| {
                let (secs, nanos) = at.to_unix();
                i64::try_from(secs).unwrap_or(i64::MAX) * 1000 + i64::from(nanos / 1_000_000)
            })
            .unwrap_or_else(|| to_millis(platform::time::now()));
        sqlx::query("INSERT INTO order_timeline (id, order_id, step, detail, event_id, at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(Uuid::now_v7().to_string())
            .bind(order_id.to_string())
            .bind(step)
            .bind(detail)
            .bind(event_id.map(|id| id.to_string()))
            .bind(at)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    pub async fn timeline(&self, order_id: Uuid) -> Result<Vec<TimelineEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT step, detail, event_id, at FROM order_timeline WHERE order_id = $1 \
             ORDER BY at, COALESCE(event_id, id)",
        )
        .bind(order_id.to_string())
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(TimelineEntry {
                    step: row.try_get("step")?,
                    detail: row.try_get("detail")?,
                    event_id: row.try_get("event_id")?,
                    at: from_millis(row.try_get("at")?),
                })
            })
            .collect()
    }

    /// The orders in `rows` with their lines, read in one statement.
    async fn with_lines(&self, rows: &[AnyRow]) -> Result<Vec<Order>, StoreError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids = rows
            .iter()
            .map(|row| row.try_get::<String, _>("id"))
            .collect::<Result<Vec<_>, _>>()?;
        let placeholders: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT order_id, product_id, sku, name, unit_price, quantity FROM order_lines \
             WHERE order_id IN ({}) ORDER BY order_id, line_no",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in &ids {
            query = query.bind(id);
        }
        let lines = query.fetch_all(self.db.pool()).await?;
        // Each line's order read once, not once per order of the page.
        let mut by_order: std::collections::HashMap<String, Vec<&AnyRow>> =
            std::collections::HashMap::with_capacity(ids.len());
        for line in &lines {
            by_order
                .entry(line.try_get("order_id")?)
                .or_default()
                .push(line);
        }
        rows.iter()
            .zip(&ids)
            .map(|(row, id)| read(row, by_order.remove(id).unwrap_or_default()))
            .collect()
    }
}

/// An order from a row of `ORDER_COLUMNS` and its lines, in order (rows with the line
/// columns).
fn read<'r>(
    row: &AnyRow,
    lines: impl IntoIterator<Item = &'r AnyRow>,
) -> Result<Order, StoreError> {
    let status: String = row.try_get("status")?;
    let address: String = row.try_get("shipping_address")?;
    let currency = currency(row)?;
    Ok(Order {
        id: uuid(row, "id")?,
        customer_id: uuid(row, "customer_id")?,
        status: OrderStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("status {status}")))?,
        cancel_reason: cancel_reason(row)?,
        lines: lines
            .into_iter()
            .map(|line| {
                Ok(OrderLine {
                    product_id: uuid(line, "product_id")?,
                    sku: line.try_get("sku")?,
                    name: line.try_get("name")?,
                    unit_price: Money::new(line.try_get("unit_price")?, currency),
                    quantity: line.try_get("quantity")?,
                })
            })
            .collect::<Result<_, StoreError>>()?,
        total: Money::new(row.try_get("total")?, currency),
        address: serde_json::from_str::<ShippingAddress>(&address)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        created_at: from_millis(row.try_get("created_at")?),
        updated_at: from_millis(row.try_get("updated_at")?),
    })
}
