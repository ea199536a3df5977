//! The inventory use cases. Every change of levels commits with a `stock_adjusted` event, so
//! the catalog's availability follows.

use events::Envelope;
use events::contract::EventKind;
use events::contract::inventory::{ReservationExpiredV1, ReservedLine, StockAdjustedV1};
use events::outbox::Outbox;
use platform::db::{Db, Tx};
use uuid::Uuid;

use crate::domain::{Adjustment, ReservationRequest, ReservationStatus, StockLevels};
use crate::store::{Change, LedgerEntry, StockStore, StoreError};

pub const SOURCE: &str = "commercex/inventory";

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("no stock record for this product")]
    NotFound,
    #[error("on hand would fall below what is reserved ({reserved})")]
    BelowReserved { reserved: i64 },
    /// A fault of ours (a database that failed or could not be reached, a broken invariant),
    /// with its cause.
    #[error("internal error")]
    Internal(#[source] platform::BoxError),
}

impl From<StoreError> for InventoryError {
    fn from(error: StoreError) -> Self {
        Self::Internal(error.into())
    }
}

impl From<sqlx::Error> for InventoryError {
    fn from(error: sqlx::Error) -> Self {
        Self::Internal(error.into())
    }
}

/// The result of asking to hold an order's lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// Every line is held (also when the order already had its reservation).
    Reserved,
    /// Nothing is held: these products had too few units (or no stock record).
    Rejected { short: Vec<Uuid> },
}

pub struct Inventory {
    db: Db,
    outbox: Outbox,
    stock: StockStore,
}

impl Inventory {
    pub fn new(db: Db, outbox: Outbox) -> Self {
        Self {
            stock: StockStore::new(db.clone()),
            db,
            outbox,
        }
    }

    /// Starts keeping stock for a product, at zero; nothing happens if it is kept already.
    pub async fn track(&self, product_id: Uuid) -> Result<(), InventoryError> {
        self.db
            .transact("track product", async |tx| {
                self.track_in(tx, product_id).await
            })
            .await
    }

    pub async fn track_in(&self, tx: &mut Tx, product_id: Uuid) -> Result<(), InventoryError> {
        Ok(self.stock.ensure(tx, product_id).await?)
    }

    pub async fn levels(&self, product_id: Uuid) -> Result<StockLevels, InventoryError> {
        self.stock
            .levels(product_id)
            .await?
            .ok_or(InventoryError::NotFound)
    }

    pub async fn adjust(
        &self,
        product_id: Uuid,
        adjustment: &Adjustment,
        actor: &str,
    ) -> Result<StockLevels, InventoryError> {
        let mut tx = self.db.begin_as("adjust stock").await?;
        let change = Change {
            kind: "adjustment",
            on_hand_delta: adjustment.delta(),
            reserved_delta: 0,
            reason: adjustment.reason(),
            actor,
        };
        let Some(levels) = self.stock.apply(&mut tx, product_id, &change).await? else {
            drop(tx);
            let current = self.levels(product_id).await?;
            return Err(InventoryError::BelowReserved {
                reserved: current.reserved,
            });
        };
        self.announce(&mut tx, &levels, &change).await?;
        tx.commit().await?;
        Ok(levels)
    }

    pub async fn ledger(
        &self,
        product_id: Uuid,
        limit: u32,
        before: Option<Uuid>,
    ) -> Result<Vec<LedgerEntry>, InventoryError> {
        self.levels(product_id).await?;
        Ok(self.stock.ledger(product_id, limit, before).await?)
    }

    /// Holds every line of the order, or none. Asking again for the same order changes
    /// nothing and answers as the first time did.
    pub async fn reserve(
        &self,
        request: &ReservationRequest,
    ) -> Result<ReserveOutcome, InventoryError> {
        self.db
            .transact("reserve stock", async |tx| {
                self.reserve_in(tx, request).await
            })
            .await
    }

    /// [`Self::reserve`] inside the caller's transaction (an event handler's).
    pub async fn reserve_in(
        &self,
        tx: &mut Tx,
        request: &ReservationRequest,
    ) -> Result<ReserveOutcome, InventoryError> {
        if let Some(status) = self.stock.reservation_status(tx, request.order_id).await? {
            return Ok(match status {
                ReservationStatus::Active
                | ReservationStatus::Committed
                | ReservationStatus::Returned => ReserveOutcome::Reserved,
                ReservationStatus::Released | ReservationStatus::Expired => {
                    ReserveOutcome::Rejected { short: vec![] }
                }
            });
        }
        // Checked under lock (row locks on PostgreSQL, the write lock on SQLite) before any
        // change, so a rejection leaves nothing to undo in the caller's transaction.
        let short = self.stock.shortages(tx, &request.lines).await?;
        if !short.is_empty() {
            return Ok(ReserveOutcome::Rejected { short });
        }
        let reason = format!("reserved for order {}", request.order_id);
        for line in &request.lines {
            let change = Change {
                kind: "reservation",
                on_hand_delta: 0,
                reserved_delta: line.quantity.get(),
                reason: &reason,
                actor: SOURCE,
            };
            let levels = self
                .stock
                .apply(tx, line.product_id, &change)
                .await?
                .ok_or_else(|| InventoryError::Internal("stock changed under its lock".into()))?;
            self.announce(tx, &levels, &change).await?;
        }
        self.stock.insert_reservation(tx, request).await?;
        Ok(ReserveOutcome::Reserved)
    }

    /// The order is confirmed: its reserved units leave the shelf. `false` if it had no
    /// active reservation.
    pub async fn commit(&self, order_id: Uuid) -> Result<bool, InventoryError> {
        self.db
            .transact("commit reservation", async |tx| {
                self.commit_in(tx, order_id).await
            })
            .await
    }

    pub async fn commit_in(&self, tx: &mut Tx, order_id: Uuid) -> Result<bool, InventoryError> {
        self.close(
            tx,
            order_id,
            ReservationStatus::Active,
            ReservationStatus::Committed,
        )
        .await
    }

    /// The order is cancelled: its reserved units are free again.
    pub async fn release(&self, order_id: Uuid) -> Result<bool, InventoryError> {
        self.db
            .transact("release reservation", async |tx| {
                self.release_in(tx, order_id).await
            })
            .await
    }

    pub async fn release_in(&self, tx: &mut Tx, order_id: Uuid) -> Result<bool, InventoryError> {
        self.close(
            tx,
            order_id,
            ReservationStatus::Active,
            ReservationStatus::Released,
        )
        .await
    }

    /// A confirmed order was cancelled and refunded: its units go back on the shelf.
    pub async fn restock_in(&self, tx: &mut Tx, order_id: Uuid) -> Result<bool, InventoryError> {
        self.close(
            tx,
            order_id,
            ReservationStatus::Committed,
            ReservationStatus::Returned,
        )
        .await
    }

    /// Releases reservations past their time; returns the orders whose reservation expired.
    pub async fn expire_due(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<Uuid>, InventoryError> {
        let mut expired = Vec::new();
        for order_id in self.stock.expired(now, 100).await? {
            let mut tx = self.db.begin_as("expire reservation").await?;
            let done = self
                .close(
                    &mut tx,
                    order_id,
                    ReservationStatus::Active,
                    ReservationStatus::Expired,
                )
                .await?;
            tx.commit().await?;
            if done {
                expired.push(order_id);
            }
        }
        Ok(expired)
    }

    /// Moves the order's reservation from `from` to `to` and changes the stock to match.
    async fn close(
        &self,
        tx: &mut Tx,
        order_id: Uuid,
        from: ReservationStatus,
        to: ReservationStatus,
    ) -> Result<bool, InventoryError> {
        let Some(lines) = self.stock.close_reservation(tx, order_id, from, to).await? else {
            return Ok(false);
        };
        let what = to.as_str();
        let reason = format!("reservation {what} for order {order_id}");
        if to == ReservationStatus::Expired {
            let event = ReservationExpiredV1 {
                order_id,
                lines: lines
                    .iter()
                    .map(|line| ReservedLine {
                        product_id: line.product_id,
                        quantity: line.quantity.get(),
                    })
                    .collect(),
            };
            // Keyed by the order: the saga's events about one order stay in order.
            let envelope =
                Envelope::of(SOURCE, order_id.to_string(), &event).correlated(order_id.to_string());
            self.outbox
                .enqueue(tx, ReservationExpiredV1::TOPIC, &envelope)
                .await?;
        }
        for line in lines {
            let quantity = line.quantity.get();
            // (on hand, reserved) deltas: committed units leave the shelf, returned ones come
            // back, released and expired ones are simply no longer held.
            let (on_hand_delta, reserved_delta) = match to {
                ReservationStatus::Committed => (-quantity, -quantity),
                ReservationStatus::Returned => (quantity, 0),
                _ => (0, -quantity),
            };
            let change = Change {
                kind: what,
                on_hand_delta,
                reserved_delta,
                reason: &reason,
                actor: SOURCE,
            };
            let levels = self
                .stock
                .apply(tx, line.product_id, &change)
                .await?
                .ok_or_else(|| {
                    InventoryError::Internal(
                        format!("reservation of {order_id} exceeds the stock it holds").into(),
                    )
                })?;
            self.announce(tx, &levels, &change).await?;
        }
        Ok(true)
    }

    async fn announce(
        &self,
        tx: &mut Tx,
        levels: &StockLevels,
        change: &Change<'_>,
    ) -> Result<(), InventoryError> {
        let event = StockAdjustedV1 {
            product_id: levels.product_id,
            delta: change.on_hand_delta,
            reason: change.reason.to_owned(),
            on_hand: levels.on_hand,
            reserved: levels.reserved,
            available: levels.available(),
        };
        let envelope = Envelope::of(SOURCE, levels.product_id.to_string(), &event);
        self.outbox
            .enqueue(tx, StockAdjustedV1::TOPIC, &envelope)
            .await?;
        Ok(())
    }
}
