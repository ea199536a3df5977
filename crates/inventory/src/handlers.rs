//! Events inventory reacts to: a new product gets a stock record at zero.

use std::sync::Arc;

use async_trait::async_trait;
use events::Envelope;
use events::consumer::{EventHandler, HandlerError};
use events::contract::EventKind;
use events::contract::catalog::ProductCreatedV1;
use sqlx::{Any, Transaction};

use crate::store::StockStore;

pub const GROUP: &str = "inventory";
pub const TOPICS: &[&str] = &[events::contract::catalog::TOPIC];

pub struct StockRecords {
    stock: StockStore,
}

impl StockRecords {
    pub fn new(stock: StockStore) -> Arc<Self> {
        Arc::new(Self { stock })
    }
}

#[async_trait]
impl EventHandler for StockRecords {
    async fn handle(
        &self,
        tx: &mut Transaction<'static, Any>,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        if event.event_type != ProductCreatedV1::TYPE {
            return Ok(());
        }
        let product: ProductCreatedV1 = event.decode()?;
        self.stock
            .ensure(tx, product.product_id)
            .await
            .map_err(HandlerError::transient)
    }
}
