//! Events the catalog reacts to: inventory's stock changes feed the availability read model.

use std::sync::Arc;

use async_trait::async_trait;
use events::Envelope;
use events::consumer::{EventHandler, HandlerError};
use events::contract::EventKind;
use events::contract::inventory::StockAdjustedV1;
use sqlx::{Any, Transaction};

use crate::store::ProductStore;

pub const GROUP: &str = "catalog";
pub const TOPICS: &[&str] = &[events::contract::inventory::TOPIC];

pub struct AvailabilityProjection {
    pub(crate) products: ProductStore,
}

impl AvailabilityProjection {
    pub fn new(products: ProductStore) -> Arc<Self> {
        Arc::new(Self { products })
    }
}

#[async_trait]
impl EventHandler for AvailabilityProjection {
    async fn handle(
        &self,
        tx: &mut Transaction<'static, Any>,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        if event.event_type != StockAdjustedV1::TYPE {
            return Ok(());
        }
        let stock: StockAdjustedV1 = event.decode()?;
        self.products
            .set_available(tx, stock.product_id, stock.available)
            .await
            .map_err(HandlerError::transient)
    }
}
