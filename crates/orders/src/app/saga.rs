//! The saga's steps: what the events of inventory and payments, and the deadline, do to an
//! order. Each runs in the consumer's transaction, with the step's timeline entry and the
//! events it causes.

use events::Envelope;
use events::consumer::HandlerError;
use events::contract::EventKind;
use events::contract::orders::{OrderCancelledV1, OrderConfirmedV1};
use platform::db::Tx;
use uuid::Uuid;

use super::{Orders, OrdersError, SOURCE};
use crate::domain::{CancelReason, OrderStatus, Transition};
use crate::metrics::{self, Finished};
use crate::store::SagaState;

/// Overdue orders cancelled per sweep at most; the next sweep takes the rest.
const OVERDUE_BATCH: i64 = 100;

impl Orders {
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
                .set_status(&mut tx, id, from, to, Some(reason))
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
            self.announce_cancel(&mut tx, id, reason, false, None)
                .await?;
            tx.commit().await?;
            Finished {
                order_id: id,
                cancelled: Some(reason),
                placed_at,
            }
            .record();
            metrics::count_timed_out();
            self.watchers.settled(id);
            tracing::warn!(order_id = %id, %placed_at, "order timed out: cancelled");
            cancelled += 1;
        }
        Ok(cancelled)
    }

    /// `order.cancelled`, for inventory to release or restock and payments to void or refund
    /// (`compensate`: money may have moved).
    pub(super) async fn announce_cancel(
        &self,
        tx: &mut Tx,
        id: Uuid,
        reason: CancelReason,
        compensate: bool,
        cause: Option<&Envelope>,
    ) -> Result<(), sqlx::Error> {
        let event = OrderCancelledV1 {
            order_id: id,
            reason: reason.as_str().to_owned(),
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
                // Refused means cancelled, and a cancelled order has its reason.
                let reason = order.cancel_reason.ok_or_else(|| {
                    HandlerError::permanent(format!("order {order_id} is cancelled for no reason"))
                })?;
                self.announce_cancel(tx, order_id, reason, true, Some(cause))
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
            .set_status(tx, order_id, from, to, Some(reason))
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
            reason,
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
