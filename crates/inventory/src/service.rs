//! Building the inventory service: its database, state, routes and event consumer.

use std::sync::Arc;

use events::bus::EventBus;
use events::consumer::{Consumer, ConsumerSettings};
use events::outbox::Outbox;
use platform::db::{Db, DbError, Migrations, PoolSettings, Storage};
use utoipa_axum::router::OpenApiRouter;

use crate::handlers::{GROUP, StockRecords, TOPICS};
use crate::inventory::Inventory;

pub const SCHEMA: &str = "inventory";

/// The inventory tables use only SQL both backends share, so one folder serves both.
pub fn migrations() -> Migrations {
    Migrations {
        sqlite: sqlx::migrate!(),
        postgres: sqlx::migrate!(),
    }
}

pub struct InventoryService {
    db: Db,
    outbox: Outbox,
    inventory: Arc<Inventory>,
}

impl InventoryService {
    pub async fn open_db(storage: &Storage, pool: PoolSettings) -> Result<Db, DbError> {
        let db = storage.open(SCHEMA, pool).await?;
        db.migrate(&events::service_migrations()).await?;
        db.migrate(&migrations()).await?;
        Ok(db)
    }

    pub async fn open(storage: &Storage, pool: PoolSettings) -> Result<Self, DbError> {
        let db = Self::open_db(storage, pool).await?;
        let outbox = Outbox::new();
        let inventory = Arc::new(Inventory::new(db.clone(), outbox.clone()));
        Ok(Self {
            db,
            outbox,
            inventory,
        })
    }

    pub fn router(&self) -> OpenApiRouter {
        crate::api::router(self.inventory.clone())
    }

    /// The consumer that gives new products a stock record.
    pub fn consumer(&self, bus: Arc<dyn EventBus>) -> Consumer {
        let handler = StockRecords::new(self.inventory.store().clone());
        Consumer::new(
            self.db.clone(),
            bus,
            handler,
            ConsumerSettings::new(GROUP, TOPICS),
        )
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    pub fn inventory(&self) -> &Arc<Inventory> {
        &self.inventory
    }
}
