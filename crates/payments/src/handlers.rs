//! Payments' part of the checkout saga.

use std::sync::Arc;

use async_trait::async_trait;
use events::Envelope;
use events::consumer::{EventHandler, HandlerError};
use events::contract::EventKind;
use events::contract::inventory::{InventoryRejectedV1, InventoryReservedV1, ReservationExpiredV1};
use events::contract::orders::{OrderCancelledV1, OrderPlacedV1};
use sqlx::{Any, Transaction};

use crate::payments::Payments;

pub const GROUP: &str = "payments";
pub const TOPICS: &[&str] = &[
    events::contract::orders::TOPIC,
    events::contract::inventory::TOPIC,
];

pub struct PaymentsHandler {
    payments: Arc<Payments>,
}

impl PaymentsHandler {
    pub fn new(payments: Arc<Payments>) -> Arc<Self> {
        Arc::new(Self { payments })
    }
}

#[async_trait]
impl EventHandler for PaymentsHandler {
    async fn handle(
        &self,
        tx: &mut Transaction<'static, Any>,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        let payments = &self.payments;
        match event.event_type.as_str() {
            OrderPlacedV1::TYPE => {
                let order: OrderPlacedV1 = event.decode()?;
                payments
                    .expect(
                        tx,
                        order.order_id,
                        order.customer_id,
                        &order.total,
                        &order.payment_token,
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
                payments.void(tx, expired.order_id).await
            }
            OrderCancelledV1::TYPE => {
                let cancelled: OrderCancelledV1 = event.decode()?;
                if cancelled.compensate {
                    payments.refund(tx, cancelled.order_id, event).await
                } else {
                    // Cancelled before payment: never charge it, even if stock is held later.
                    payments
                        .abandon(tx, cancelled.order_id, "order cancelled")
                        .await
                }
            }
            _ => Ok(()),
        }
    }
}
