//! Events orders reacts to: the catalog (prices and orderability) and the saga's answers.

use std::sync::Arc;

use async_trait::async_trait;
use events::Envelope;
use events::consumer::{EventHandler, HandlerError};
use events::contract::catalog::{ProductArchivedV1, ProductCreatedV1, ProductUpdatedV1};
use events::contract::inventory::{InventoryRejectedV1, InventoryReservedV1, ReservationExpiredV1};
use events::contract::payments::{PaymentCapturedV1, PaymentFailedV1, PaymentRefundedV1};
use events::contract::{EventKind, Price};
use platform::db::Tx;
use platform::money::{Currency, Money};
use uuid::Uuid;

use crate::app::Orders;
use crate::domain::{CancelReason, CatalogProduct};

pub const GROUP: &str = "orders";
pub const TOPICS: &[&str] = &[
    events::contract::catalog::TOPIC,
    events::contract::inventory::TOPIC,
    events::contract::payments::TOPIC,
];

pub struct OrdersReactions {
    orders: Arc<Orders>,
}

impl OrdersReactions {
    pub fn new(orders: Arc<Orders>) -> Arc<Self> {
        Arc::new(Self { orders })
    }
}

/// The events orders acts on; it skips the rest of its topics.
const HANDLED: &[&str] = &[
    ProductCreatedV1::TYPE,
    ProductUpdatedV1::TYPE,
    ProductArchivedV1::TYPE,
    InventoryReservedV1::TYPE,
    InventoryRejectedV1::TYPE,
    ReservationExpiredV1::TYPE,
    PaymentCapturedV1::TYPE,
    PaymentFailedV1::TYPE,
    PaymentRefundedV1::TYPE,
];

#[async_trait]
impl EventHandler for OrdersReactions {
    fn handles(&self, event_type: &str) -> bool {
        HANDLED.contains(&event_type)
    }
    async fn handle(&self, tx: &mut Tx, event: &Envelope) -> Result<(), HandlerError> {
        let orders = &self.orders;
        orders.retrying(event.id);
        let store = orders.store();
        match event.event_type.as_str() {
            ProductCreatedV1::TYPE => {
                let p: ProductCreatedV1 = event.decode()?;
                let product = orderable(p.product_id, p.sku, p.name, &p.price)?;
                Ok(store.upsert_product(tx, &product, 1).await?)
            }
            ProductUpdatedV1::TYPE => {
                let p: ProductUpdatedV1 = event.decode()?;
                let product = orderable(p.product_id, p.sku, p.name, &p.price)?;
                Ok(store.upsert_product(tx, &product, p.version).await?)
            }
            ProductArchivedV1::TYPE => {
                let p: ProductArchivedV1 = event.decode()?;
                Ok(store.archive_product(tx, p.product_id).await?)
            }
            InventoryReservedV1::TYPE => {
                let held: InventoryReservedV1 = event.decode()?;
                let detail = format!("stock held until {}", held.expires_at.to_rfc3339());
                orders
                    .note_in(tx, held.order_id, "stock_reserved", &detail, event)
                    .await
            }
            InventoryRejectedV1::TYPE => {
                let rejected: InventoryRejectedV1 = event.decode()?;
                orders
                    .cancel_in(tx, rejected.order_id, CancelReason::OutOfStock, event)
                    .await
            }
            ReservationExpiredV1::TYPE => {
                let expired: ReservationExpiredV1 = event.decode()?;
                orders
                    .cancel_in(
                        tx,
                        expired.order_id,
                        CancelReason::ReservationExpired,
                        event,
                    )
                    .await
            }
            PaymentCapturedV1::TYPE => {
                let captured: PaymentCapturedV1 = event.decode()?;
                orders.confirm_in(tx, captured.order_id, event).await
            }
            PaymentFailedV1::TYPE => {
                let failed: PaymentFailedV1 = event.decode()?;
                orders
                    .cancel_in(tx, failed.order_id, CancelReason::PaymentDeclined, event)
                    .await
            }
            PaymentRefundedV1::TYPE => {
                let refunded: PaymentRefundedV1 = event.decode()?;
                let detail = format!(
                    "{} {} refunded",
                    refunded.amount.amount, refunded.amount.currency
                );
                orders
                    .note_in(tx, refunded.order_id, "refunded", &detail, event)
                    .await
            }
            _ => Ok(()),
        }
    }

    async fn after_commit(&self, event: &Envelope) {
        self.orders.settled_by(event.id);
    }
}

/// A product the catalog created or changed, as orders keeps it. A price the catalog could
/// not have accepted is a poison event.
fn orderable(
    product_id: Uuid,
    sku: String,
    name: String,
    price: &Price,
) -> Result<CatalogProduct, HandlerError> {
    let currency = Currency::parse(&price.currency).map_err(HandlerError::permanent)?;
    Ok(CatalogProduct {
        product_id,
        sku,
        name,
        price: Money::price(price.amount, currency).map_err(HandlerError::permanent)?,
        archived: false,
    })
}
