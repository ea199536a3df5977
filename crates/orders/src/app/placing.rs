//! Placing an order (idempotent per key, priced from orders' copy of the catalog) and a
//! customer's cancellation.

use events::Envelope;
use events::contract::orders::{OrderLine as EventLine, OrderPlacedV1};
use events::contract::{EventKind, Price};
use platform::auth::AuthUser;
use uuid::Uuid;

use super::{Orders, OrdersError, SOURCE};
use crate::domain::{CancelReason, Order, OrderStatus, PlaceOrder, Priced, Transition, price};
use crate::metrics::{self, Finished};
use crate::store::StoreError;

/// A placed order, and whether this request created it or repeated an earlier one.
pub struct Placed {
    pub order: Order,
    pub repeated: bool,
}

impl Orders {
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
        let ids: Vec<Uuid> = request.lines.iter().map(|l| l.product_id).collect();
        let products = self.store.products(&ids).await?;
        let Priced { lines, total } =
            price(&request.lines, &products).map_err(OrdersError::Unplaceable)?;
        let now = platform::time::now();
        let order = Order {
            id: Uuid::now_v7(),
            customer_id: customer,
            status: OrderStatus::Pending,
            cancel_reason: None,
            lines,
            total,
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
                    order.total.amount(),
                    order.total.currency()
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
                    unit_price: l.unit_price.amount(),
                })
                .collect(),
            total: Price {
                amount: order.total.amount(),
                currency: order.total.currency().code(),
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
        metrics::count_placed();
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

    /// The customer, or an administrator for them, cancels: a pending order is released, a
    /// confirmed one refunded and restocked (by payments and inventory, on order.cancelled).
    pub async fn cancel(&self, id: Uuid, caller: &AuthUser) -> Result<Order, OrdersError> {
        let order = self.get(id, caller).await?;
        let Transition::Move(from, to) = order.status.cancel() else {
            return Err(OrdersError::AlreadyCancelled);
        };
        let (reason, note) = if order.customer_id == caller.id {
            (
                CancelReason::CancelledByCustomer,
                "cancelled by the customer",
            )
        } else {
            (
                CancelReason::CancelledByAdmin,
                "cancelled by an administrator",
            )
        };
        let mut tx = self.db.begin_as("cancel order").await?;
        if !self
            .store
            .set_status(&mut tx, id, from, to, Some(reason))
            .await?
        {
            return Err(OrdersError::Changed);
        }
        self.store
            .note(&mut tx, id, "cancelled", note, None)
            .await?;
        self.announce_cancel(&mut tx, id, reason, from == OrderStatus::Confirmed, None)
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
}
