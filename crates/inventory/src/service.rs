//! Building the inventory service: its database, state, routes and event consumer.

use std::sync::Arc;

use events::bus::EventBus;
use events::consumer::{Consumer, ConsumerSettings};
use events::service_db::{ServiceDb, StoreSettings};
use platform::db::{DbError, Migrations, Storage};
use utoipa_axum::router::OpenApiRouter;

use crate::app::Inventory;
use crate::reactions::{GROUP, InventoryReactions, TOPICS};

pub const SCHEMA: &str = "inventory";

/// The inventory tables use only SQL both backends share, so one folder serves both.
pub fn migrations() -> Migrations {
    Migrations {
        sqlite: sqlx::migrate!(),
        postgres: sqlx::migrate!(),
    }
}

pub struct InventoryService {
    store: ServiceDb,
    inventory: Arc<Inventory>,
}

impl InventoryService {
    /// The service's database, migrated.
    pub async fn open_db(storage: &Storage, store: StoreSettings) -> Result<ServiceDb, DbError> {
        ServiceDb::open(storage, store, SCHEMA, &migrations()).await
    }

    pub async fn open(storage: &Storage, store: StoreSettings) -> Result<Self, DbError> {
        let store = Self::open_db(storage, store).await?;
        let inventory = Arc::new(Inventory::new(store.db.clone(), store.outbox.clone()));
        Ok(Self { store, inventory })
    }

    pub fn router(&self) -> OpenApiRouter {
        crate::api::router(self.inventory.clone())
    }

    /// The consumer that gives new products a stock record and holds stock for orders,
    /// each hold lasting `reservation_ttl`.
    pub fn consumer(
        &self,
        bus: Arc<dyn EventBus>,
        reservation_ttl: std::time::Duration,
    ) -> Consumer {
        let handler = InventoryReactions::new(
            self.inventory.clone(),
            self.store.outbox.clone(),
            reservation_ttl,
        );
        Consumer::new(
            self.store.db.clone(),
            bus,
            handler,
            ConsumerSettings::new(GROUP, TOPICS),
        )
    }

    /// The task that releases expired reservations, checking every `interval`.
    pub fn sweeper(&self, interval: std::time::Duration) -> crate::sweeper::Sweeper {
        crate::sweeper::Sweeper::new(self.inventory.clone(), interval)
    }

    pub fn store(&self) -> &ServiceDb {
        &self.store
    }

    pub fn inventory(&self) -> &Arc<Inventory> {
        &self.inventory
    }
}
