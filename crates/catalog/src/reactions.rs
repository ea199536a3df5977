//! Events the catalog reacts to: inventory's stock changes feed the availability read model,
//! and every change of a product (its own events included) drops its cached copy and has the
//! search index read it again once the change is committed.

use std::sync::Arc;

use async_trait::async_trait;
use events::Envelope;
use events::consumer::{EventHandler, HandlerError};
use events::contract::EventKind;
use events::contract::catalog::{ProductArchivedV1, ProductCreatedV1, ProductUpdatedV1};
use events::contract::inventory::StockAdjustedV1;
use platform::db::Tx;
use uuid::Uuid;

use crate::cache::ProductCache;
use crate::search_index::MemorySearch;
use crate::store::ProductStore;

pub const GROUP: &str = "catalog";
pub const TOPICS: &[&str] = &[
    events::contract::inventory::TOPIC,
    events::contract::catalog::TOPIC,
];

pub struct AvailabilityProjection {
    pub(crate) products: ProductStore,
    cache: Arc<dyn ProductCache>,
    search: Option<Arc<MemorySearch>>,
}

impl AvailabilityProjection {
    pub fn new(
        products: ProductStore,
        cache: Arc<dyn ProductCache>,
        search: Option<Arc<MemorySearch>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            products,
            cache,
            search,
        })
    }
}

/// The product an event changes or creates.
fn changed_product(event: &Envelope) -> Result<Option<Uuid>, HandlerError> {
    Ok(match event.event_type.as_str() {
        StockAdjustedV1::TYPE => Some(event.decode::<StockAdjustedV1>()?.product_id),
        ProductCreatedV1::TYPE => Some(event.decode::<ProductCreatedV1>()?.product_id),
        ProductUpdatedV1::TYPE => Some(event.decode::<ProductUpdatedV1>()?.product_id),
        ProductArchivedV1::TYPE => Some(event.decode::<ProductArchivedV1>()?.product_id),
        _ => None,
    })
}

#[async_trait]
impl EventHandler for AvailabilityProjection {
    /// Only stock changes touch the read model; product changes only drop a cached copy,
    /// which needs no transaction (`after_commit`).
    fn handles(&self, event_type: &str) -> bool {
        event_type == StockAdjustedV1::TYPE
    }
    async fn handle(&self, tx: &mut Tx, event: &Envelope) -> Result<(), HandlerError> {
        let stock: StockAdjustedV1 = event.decode()?;
        self.products
            .set_available(tx, stock.product_id, stock.available)
            .await
            .map_err(HandlerError::transient)
    }

    async fn after_commit(&self, event: &Envelope) {
        if let Ok(Some(product_id)) = changed_product(event) {
            self.cache.forget(product_id).await;
            if let Some(search) = &self.search {
                search.changed(product_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use events::contract::Price;

    use super::*;

    fn event<E: EventKind>(data: &E) -> Envelope {
        Envelope::of("test", "subject", data)
    }

    #[test]
    fn changes_and_creations_name_their_product() {
        let id = Uuid::now_v7();
        let stock = StockAdjustedV1 {
            product_id: id,
            delta: 3,
            reason: "delivery".into(),
            on_hand: 3,
            reserved: 0,
            available: 3,
        };
        assert_eq!(changed_product(&event(&stock)).ok().flatten(), Some(id));
        let archived = ProductArchivedV1 { product_id: id };
        assert_eq!(changed_product(&event(&archived)).ok().flatten(), Some(id));
        let created = ProductCreatedV1 {
            product_id: id,
            sku: "S".into(),
            name: "N".into(),
            price: Price {
                amount: 1,
                currency: "EUR".into(),
            },
            category: "c".into(),
        };
        assert_eq!(changed_product(&event(&created)).ok().flatten(), Some(id));
    }
}
