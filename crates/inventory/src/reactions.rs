//! Events inventory reacts to: a stock record for each new product, and its part in the
//! checkout saga (hold on order.placed, commit on confirm, release or restock on cancel).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use events::Envelope;
use events::consumer::{EventHandler, HandlerError};
use events::contract::EventKind;
use events::contract::catalog::ProductCreatedV1;
use events::contract::inventory::{InventoryRejectedV1, InventoryReservedV1};
use events::contract::orders::{OrderCancelledV1, OrderConfirmedV1, OrderPlacedV1};
use events::outbox::Outbox;
use platform::db::Tx;

use crate::app::{Inventory, InventoryError, ReserveOutcome, SOURCE};
use crate::domain::{Quantity, RequestError, ReservationLine, ReservationRequest};

pub const GROUP: &str = "inventory";
pub const TOPICS: &[&str] = &[
    events::contract::catalog::TOPIC,
    events::contract::orders::TOPIC,
];

pub struct InventoryReactions {
    inventory: Arc<Inventory>,
    outbox: Outbox,
    /// How long a reservation holds stock before the sweeper releases it.
    reservation_ttl: Duration,
}

impl InventoryReactions {
    pub fn new(inventory: Arc<Inventory>, outbox: Outbox, reservation_ttl: Duration) -> Arc<Self> {
        Arc::new(Self {
            inventory,
            outbox,
            reservation_ttl,
        })
    }

    async fn reserve(&self, tx: &mut Tx, event: &Envelope) -> Result<(), HandlerError> {
        let order: OrderPlacedV1 = event.decode()?;
        let lines = order
            .lines
            .iter()
            .map(|line| {
                Ok(ReservationLine {
                    product_id: line.product_id,
                    quantity: Quantity::parse(line.quantity)?,
                })
            })
            .collect::<Result<Vec<_>, &'static str>>()
            .map_err(HandlerError::permanent)?;
        let ttl = chrono::Duration::from_std(self.reservation_ttl)
            .unwrap_or(chrono::Duration::minutes(15));
        let expires_at = platform::time::now() + ttl;
        let outcome = match ReservationRequest::new(order.order_id, &lines, expires_at) {
            Ok(request) => self
                .inventory
                .reserve_in(tx, &request)
                .await
                .map_err(transient)?,
            // A refusal the order is cancelled for, never a dead letter: a customer must not
            // be able to stall an order or fill the queue.
            Err(RequestError::TooManyUnits(products)) => {
                ReserveOutcome::Rejected { short: products }
            }
            Err(malformed @ RequestError::NoLines) => {
                return Err(HandlerError::permanent(malformed));
            }
        };
        let subject = order.order_id.to_string();
        let answer = match outcome {
            ReserveOutcome::Reserved => (
                InventoryReservedV1::TOPIC,
                Envelope::of(
                    SOURCE,
                    subject,
                    &InventoryReservedV1 {
                        order_id: order.order_id,
                        expires_at,
                    },
                ),
            ),
            ReserveOutcome::Rejected { short } => (
                InventoryRejectedV1::TOPIC,
                Envelope::of(
                    SOURCE,
                    subject,
                    &InventoryRejectedV1 {
                        order_id: order.order_id,
                        short,
                    },
                ),
            ),
        };
        self.outbox
            .enqueue(tx, answer.0, &answer.1.caused_by(event))
            .await?;
        Ok(())
    }
}

fn transient(error: InventoryError) -> HandlerError {
    HandlerError::transient(error)
}

/// The events inventory acts on; it skips the rest of its topics.
const HANDLED: &[&str] = &[
    ProductCreatedV1::TYPE,
    OrderPlacedV1::TYPE,
    OrderConfirmedV1::TYPE,
    OrderCancelledV1::TYPE,
];

#[async_trait]
impl EventHandler for InventoryReactions {
    fn handles(&self, event_type: &str) -> bool {
        HANDLED.contains(&event_type)
    }
    async fn handle(&self, tx: &mut Tx, event: &Envelope) -> Result<(), HandlerError> {
        match event.event_type.as_str() {
            ProductCreatedV1::TYPE => {
                let product: ProductCreatedV1 = event.decode()?;
                self.inventory
                    .track_in(tx, product.product_id)
                    .await
                    .map_err(transient)
            }
            OrderPlacedV1::TYPE => self.reserve(tx, event).await,
            OrderConfirmedV1::TYPE => {
                let order: OrderConfirmedV1 = event.decode()?;
                self.inventory
                    .commit_in(tx, order.order_id)
                    .await
                    .map(drop)
                    .map_err(transient)
            }
            OrderCancelledV1::TYPE => {
                let order: OrderCancelledV1 = event.decode()?;
                let done = if order.compensate {
                    self.inventory.restock_in(tx, order.order_id).await
                } else {
                    self.inventory.release_in(tx, order.order_id).await
                };
                done.map(drop).map_err(transient)
            }
            _ => Ok(()),
        }
    }
}
