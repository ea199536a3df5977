//! The orders use cases: placing (idempotent per key), reading, cancelling, and the saga
//! steps that move an order to its final state.

use events::Envelope;
use events::consumer::HandlerError;
use events::contract::orders::{
    OrderCancelledV1, OrderConfirmedV1, OrderLine as EventLine, OrderPlacedV1,
};
use events::contract::{EventKind, Price};
use events::outbox::Outbox;
use platform::auth::AuthUser;
use platform::db::{Db, Tx};
use platform::sealing::SealingKeys;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

use crate::domain::{CancelReason, Order, OrderLine, OrderStatus, PlaceOrder, Transition};
use crate::observe::{self, Finished, Settled};
use crate::store::{OrderStore, SagaState, StoreError, TimelineEntry};
use crate::watchers::{RECHECK_EVERY, Watchers};

pub const SOURCE: &str = "commercex/orders";

#[derive(Debug, thiserror::Error)]
pub enum OrdersError {
    #[error("no such order")]
    NotFound,
    #[error("this Idempotency-Key was used for a different request")]
    KeyReused,
    #[error("the order is already cancelled")]
    AlreadyCancelled,
    #[error("the order changed meanwhile; try again")]
    Changed,
    /// Field problems: (JSON pointer, message).
    #[error("the order cannot be placed")]
    Unplaceable(Vec<(String, String)>),
    /// A fault of ours (a database that failed or could not be reached, a broken invariant),
    /// with its cause.
    #[error("internal error")]
    Internal(#[source] platform::BoxError),
}

impl From<StoreError> for OrdersError {
    fn from(error: StoreError) -> Self {
        Self::Internal(error.into())
    }
}

impl From<sqlx::Error> for OrdersError {
    fn from(error: sqlx::Error) -> Self {
        Self::Internal(error.into())
    }
}

impl From<StoreError> for HandlerError {
    fn from(error: StoreError) -> Self {
        HandlerError::transient(error)
    }
}

/// A placed order, and whether this request created it or repeated an earlier one.
pub struct Placed {
    pub order: Order,
    pub repeated: bool,
}

/// Overdue orders cancelled per sweep at most; the next sweep takes the rest.
const OVERDUE_BATCH: i64 = 100;

pub struct Orders {
    db: Db,
    outbox: Outbox,
    /// Seal the customer's payment token before it goes into `order.placed`.
    payment_tokens: Arc<SealingKeys>,
    store: OrderStore,
    settled: Settled,
    watchers: Watchers,
}

impl Orders {
    pub fn new(db: Db, outbox: Outbox, payment_tokens: Arc<SealingKeys>) -> Self {
        Self {
            store: OrderStore::new(db.clone()),
            db,
            outbox,
            payment_tokens,
            settled: Settled::default(),
            watchers: Watchers::default(),
        }
    }

    pub fn store(&self) -> &OrderStore {
        &self.store
    }

    /// Places an order priced from the catalog read model. The same key with the same request
    /// returns the first order; with a different request it is refused.
    pub async fn place(
        &self,
        customer: Uuid,
        key: &str,
        request_hash: &str,
        request: PlaceOrder,
    ) -> Result<Placed, OrdersError> {
        if let Some(placed) = self.repeat(customer, key, request_hash).await? {
            return Ok(placed);
        }
        let mut problems = Vec::new();
        let mut lines = Vec::with_capacity(request.lines.len());
        let mut currency: Option<String> = None;
        for (n, requested) in request.lines.iter().enumerate() {
            let field = format!("/items/{n}/product_id");
            match self.store.product(requested.product_id).await? {
                Some(product) if !product.archived => {
                    if currency.get_or_insert_with(|| product.currency.clone()) != &product.currency
                    {
                        problems
                            .push((field, "all items must be priced in one currency".to_owned()));
                    }
                    lines.push(OrderLine {
                        product_id: product.product_id,
                        sku: product.sku,
                        name: product.name,
                        unit_price: product.price,
                        quantity: requested.quantity,
                    });
                }
                _ => problems.push((
                    field,
                    "no such product, or it can no longer be ordered".to_owned(),
                )),
            }
        }
        let total = lines.iter().try_fold(0i64, |sum, l| {
            l.unit_price
                .checked_mul(l.quantity)
                .and_then(|t| sum.checked_add(t))
        });
        if total.is_none() {
            problems.push(("/items".to_owned(), "the total is too large".to_owned()));
        }
        let (Some(total), Some(currency), true) = (total, currency, problems.is_empty()) else {
            return Err(OrdersError::Unplaceable(problems));
        };
        let now = platform::time::now();
        let order = Order {
            id: Uuid::now_v7(),
            customer_id: customer,
            status: OrderStatus::Pending,
            cancel_reason: None,
            lines,
            total,
            currency,
            address: request.address,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.db.begin_as("place order").await?;
        match self.store.insert(&mut tx, &order, key, request_hash).await {
            // A concurrent request with the same key won the race.
            Err(StoreError::DuplicateKey) => {
                drop(tx);
                return self
                    .repeat(customer, key, request_hash)
                    .await?
                    .ok_or(OrdersError::Changed);
            }
            other => other?,
        }
        self.store
            .note(
                &mut tx,
                order.id,
                "placed",
                &format!(
                    "{} line(s), total {} {}",
                    order.lines.len(),
                    order.total,
                    order.currency
                ),
                None,
            )
            .await?;
        let event = OrderPlacedV1 {
            order_id: order.id,
            customer_id: customer,
            lines: order
                .lines
                .iter()
                .map(|l| EventLine {
                    product_id: l.product_id,
                    quantity: l.quantity,
                    unit_price: l.unit_price,
                })
                .collect(),
            total: Price {
                amount: order.total,
                currency: order.currency.clone(),
            },
            sealed_payment_token: self
                .payment_tokens
                .seal(&request.payment_token, order.id.as_bytes())
                .map_err(|error| OrdersError::Internal(error.into()))?,
        };
        let envelope =
            Envelope::of(SOURCE, order.id.to_string(), &event).correlated(order.id.to_string());
        self.outbox
            .enqueue(&mut tx, OrderPlacedV1::TOPIC, &envelope)
            .await?;
        tx.commit().await?;
        tracing::info!(order_id = %order.id, "order placed");
        observe::count_placed();
        Ok(Placed {
            order,
            repeated: false,
        })
    }

    async fn repeat(
        &self,
        customer: Uuid,
        key: &str,
        request_hash: &str,
    ) -> Result<Option<Placed>, OrdersError> {
        let Some((id, hash)) = self.store.by_key(customer, key).await? else {
            return Ok(None);
        };
        if hash != request_hash {
            return Err(OrdersError::KeyReused);
        }
        let order = self.store.find(id).await?.ok_or(OrdersError::NotFound)?;
        Ok(Some(Placed {
            order,
            repeated: true,
        }))
    }

    /// The order, if the caller owns it or is an admin; anyone else learns nothing.
    pub async fn get(&self, id: Uuid, caller: &AuthUser) -> Result<Order, OrdersError> {
        match self.store.find(id).await? {
            Some(order) if caller.is_admin() || order.customer_id == caller.id => Ok(order),
            _ => Err(OrdersError::NotFound),
        }
    }

    /// As [`Self::get`], but a pending order is answered once it settles, or when `wait`
    /// has passed, whichever comes first.
    pub async fn get_settled(
        &self,
        id: Uuid,
        caller: &AuthUser,
        wait: Duration,
    ) -> Result<Order, OrdersError> {
        let deadline = Instant::now() + wait;
        let watch = self.watchers.watch(id);
        loop {
            let notified = watch.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let order = self.get(id, caller).await?;
            let now = Instant::now();
            if order.status != OrderStatus::Pending || now >= deadline {
                return Ok(order);
            }
            let nap = (deadline - now).min(RECHECK_EVERY);
            let _ = tokio::time::timeout(nap, notified).await;
        }
    }

    /// The outcome `cause` settled, once its transaction has committed: counted, and the
    /// order's waiters woken.
    pub fn settled_by(&self, cause: Uuid) {
        if let Some(order) = self.settled.record(cause) {
            self.watchers.settled(order);
        }
    }

    pub async fn list(
        &self,
        caller: &AuthUser,
        limit: u32,
        before: Option<Uuid>,
    ) -> Result<Vec<Order>, OrdersError> {
        Ok(self.store.list(caller.id, limit, before).await?)
    }

    pub async fn timeline(
        &self,
        id: Uuid,
        caller: &AuthUser,
    ) -> Result<Vec<TimelineEntry>, OrdersError> {
        self.get(id, caller).await?;
        Ok(self.store.timeline(id).await?)
    }

    /// The customer cancels: a pending order is released, a confirmed one refunded and
    /// restocked (by payments and inventory, on order.cancelled).
    pub async fn cancel(&self, id: Uuid, caller: &AuthUser) -> Result<Order, OrdersError> {
        let order = self.get(id, caller).await?;
        let Transition::Move(from, to) = order.status.cancel() else {
            return Err(OrdersError::AlreadyCancelled);
        };
        let reason = CancelReason::CancelledByCustomer;
        let mut tx = self.db.begin_as("cancel order").await?;
        if !self
            .store
            .set_status(&mut tx, id, from, to, Some(reason.as_str()))
            .await?
        {
            return Err(OrdersError::Changed);
        }
        self.store
            .note(&mut tx, id, "cancelled", "cancelled by the customer", None)
            .await?;
        self.announce_cancel(
            &mut tx,
            id,
            reason.as_str(),
            from == OrderStatus::Confirmed,
            None,
        )
        .await?;
        tx.commit().await?;
        if from == OrderStatus::Pending {
            Finished {
                order_id: id,
                cancelled: Some(reason),
                placed_at: order.created_at,
            }
            .record();
            self.watchers.settled(id);
        }
        self.store.find(id).await?.ok_or(OrdersError::NotFound)
    }

    /// Cancels the pending orders placed before `placed_before` (a batch of them): whatever
    /// held a saga up (a dead letter, a service down longer than the deadline), its customer
    /// gets an answer, its stock is released and its payment voided. How many were cancelled.
    pub async fn time_out_overdue(
        &self,
        placed_before: chrono::DateTime<chrono::Utc>,
    ) -> Result<usize, OrdersError> {
        let mut cancelled = 0;
        for (id, placed_at) in self.store.overdue(placed_before, OVERDUE_BATCH).await? {
            let reason = CancelReason::TimedOut;
            let (from, to) = (OrderStatus::Pending, OrderStatus::Cancelled);
            let mut tx = self.db.begin_as("time out order").await?;
            // Settled meanwhile: nothing to do.
            if !self
                .store
                .set_status(&mut tx, id, from, to, Some(reason.as_str()))
                .await?
            {
                continue;
            }
            self.store
                .note(
                    &mut tx,
                    id,
                    "cancelled",
                    "not settled within the saga deadline",
                    None,
                )
                .await?;
            self.announce_cancel(&mut tx, id, reason.as_str(), false, None)
                .await?;
            tx.commit().await?;
            Finished {
                order_id: id,
                cancelled: Some(reason),
                placed_at,
            }
            .record();
            metrics::counter!("commercex_saga_timeouts_total").increment(1);
            self.watchers.settled(id);
            tracing::warn!(order_id = %id, %placed_at, "order timed out: cancelled");
            cancelled += 1;
        }
        Ok(cancelled)
    }

    async fn announce_cancel(
        &self,
        tx: &mut Tx,
        id: Uuid,
        reason: &str,
        compensate: bool,
        cause: Option<&Envelope>,
    ) -> Result<(), sqlx::Error> {
        let event = OrderCancelledV1 {
            order_id: id,
            reason: reason.to_owned(),
            compensate,
        };
        let mut envelope = Envelope::of(SOURCE, id.to_string(), &event).correlated(id.to_string());
        if let Some(cause) = cause {
            envelope = envelope.caused_by(cause);
        }
        self.outbox
            .enqueue(tx, OrderCancelledV1::TOPIC, &envelope)
            .await
    }

    async fn order_for(&self, tx: &mut Tx, order_id: Uuid) -> Result<SagaState, HandlerError> {
        self.store
            .saga_state(tx, order_id)
            .await?
            .ok_or_else(|| HandlerError::permanent(format!("event for unknown order {order_id}")))
    }

    /// Payment captured. A cancelled order gets its money back instead.
    pub async fn confirm_in(
        &self,
        tx: &mut Tx,
        order_id: Uuid,
        cause: &Envelope,
    ) -> Result<(), HandlerError> {
        let order = self.order_for(tx, order_id).await?;
        match order.status.confirm() {
            Transition::Move(from, to) => {
                if !self.store.set_status(tx, order_id, from, to, None).await? {
                    return Err(HandlerError::transient("order changed while confirming"));
                }
                self.store
                    .note(
                        tx,
                        order_id,
                        "confirmed",
                        "payment captured",
                        Some(cause.id),
                    )
                    .await?;
                let envelope =
                    Envelope::of(SOURCE, order_id.to_string(), &OrderConfirmedV1 { order_id })
                        .caused_by(cause);
                self.outbox
                    .enqueue(tx, OrderConfirmedV1::TOPIC, &envelope)
                    .await?;
                self.settled.park(
                    cause.id,
                    Finished {
                        order_id,
                        cancelled: None,
                        placed_at: order.created_at,
                    },
                );
            }
            Transition::Already => {}
            Transition::Refused => {
                self.store
                    .note(
                        tx,
                        order_id,
                        "refund_requested",
                        "payment captured after cancellation",
                        Some(cause.id),
                    )
                    .await?;
                let reason = order.cancel_reason.unwrap_or_else(|| "cancelled".into());
                self.announce_cancel(tx, order_id, &reason, true, Some(cause))
                    .await?;
            }
        }
        Ok(())
    }

    /// The saga failed for `reason`; a confirmed order is also compensated.
    pub async fn cancel_in(
        &self,
        tx: &mut Tx,
        order_id: Uuid,
        reason: CancelReason,
        cause: &Envelope,
    ) -> Result<(), HandlerError> {
        let order = self.order_for(tx, order_id).await?;
        let Transition::Move(from, to) = order.status.cancel() else {
            return self
                .note_in(
                    tx,
                    order_id,
                    reason.as_str(),
                    "after the order was cancelled",
                    cause,
                )
                .await;
        };
        if !self
            .store
            .set_status(tx, order_id, from, to, Some(reason.as_str()))
            .await?
        {
            return Err(HandlerError::transient("order changed while cancelling"));
        }
        self.store
            .note(tx, order_id, "cancelled", reason.as_str(), Some(cause.id))
            .await?;
        self.announce_cancel(
            tx,
            order_id,
            reason.as_str(),
            from == OrderStatus::Confirmed,
            Some(cause),
        )
        .await?;
        if from == OrderStatus::Pending {
            self.settled.park(
                cause.id,
                Finished {
                    order_id,
                    cancelled: Some(reason),
                    placed_at: order.created_at,
                },
            );
        }
        Ok(())
    }

    /// Forgets what an earlier, rolled-back attempt at handling `cause` settled.
    pub fn retrying(&self, cause: Uuid) {
        self.settled.forget(cause);
    }

    pub async fn note_in(
        &self,
        tx: &mut Tx,
        order_id: Uuid,
        step: &str,
        detail: &str,
        cause: &Envelope,
    ) -> Result<(), HandlerError> {
        self.store
            .note(tx, order_id, step, detail, Some(cause.id))
            .await?;
        Ok(())
    }
}
