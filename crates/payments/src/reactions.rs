//! Payments' part of the checkout saga.

use std::sync::Arc;

use async_trait::async_trait;
use events::Envelope;
use events::consumer::{EventHandler, HandlerError};
use events::contract::EventKind;
use events::contract::inventory::{InventoryRejectedV1, InventoryReservedV1, ReservationExpiredV1};
use events::contract::orders::{OrderCancelledV1, OrderPlacedV1};
use platform::db::Tx;

use crate::app::Payments;

pub const GROUP: &str = "payments";
pub const TOPICS: &[&str] = &[
    events::contract::orders::TOPIC,
    events::contract::inventory::TOPIC,
];

pub struct PaymentsReactions {
    payments: Arc<Payments>,
}

impl PaymentsReactions {
    pub fn new(payments: Arc<Payments>) -> Arc<Self> {
        Arc::new(Self { payments })
    }
}

/// The events payments acts on; it skips the rest of its topics.
const HANDLED: &[&str] = &[
    OrderPlacedV1::TYPE,
    InventoryReservedV1::TYPE,
    InventoryRejectedV1::TYPE,
    ReservationExpiredV1::TYPE,
    OrderCancelledV1::TYPE,
];

#[async_trait]
impl EventHandler for PaymentsReactions {
    fn handles(&self, event_type: &str) -> bool {
        HANDLED.contains(&event_type)
    }
    async fn handle(&self, tx: &mut Tx, event: &Envelope) -> Result<(), HandlerError> {
        let payments = &self.payments;
        match event.event_type.as_str() {
            OrderPlacedV1::TYPE => {
                let order: OrderPlacedV1 = event.decode()?;
                payments
                    .await_stock(
                        tx,
                        order.order_id,
                        order.customer_id,
                        &order.total,
                        &order.sealed_payment_token,
                    )
                    .await
            }
            InventoryReservedV1::TYPE => {
                let held: InventoryReservedV1 = event.decode()?;
                payments.charge(tx, held.order_id, event).await
            }
            InventoryRejectedV1::TYPE => {
                let rejected: InventoryRejectedV1 = event.decode()?;
                payments
                    .abandon(tx, rejected.order_id, "out of stock")
                    .await
            }
            ReservationExpiredV1::TYPE => {
                let expired: ReservationExpiredV1 = event.decode()?;
                payments
                    .void(tx, expired.order_id, "reservation expired")
                    .await
            }
            OrderCancelledV1::TYPE => {
                let cancelled: OrderCancelledV1 = event.decode()?;
                if cancelled.compensate {
                    payments.refund(tx, cancelled.order_id, event).await
                } else {
                    // Cancelled before payment: never charge it, even if stock is held
                    // later, and void a charge the provider still holds open.
                    payments
                        .void(tx, cancelled.order_id, "order cancelled")
                        .await
                }
            }
            _ => Ok(()),
        }
    }
}
