//! Building the orders service: its database, routes and event consumer.

use std::sync::Arc;

use events::bus::EventBus;
use events::consumer::{Consumer, ConsumerSettings};
use events::service_db::ServiceDb;
use platform::db::{DbError, Migrations, PoolSettings, Storage};
use utoipa_axum::router::OpenApiRouter;

use crate::handlers::{GROUP, OrdersHandler, TOPICS};
use crate::orders::Orders;

pub const SCHEMA: &str = "orders";

/// The orders tables use only SQL both backends share, so one folder serves both.
pub fn migrations() -> Migrations {
    Migrations {
        sqlite: sqlx::migrate!(),
        postgres: sqlx::migrate!(),
    }
}

pub struct OrdersService {
    store: ServiceDb,
    orders: Arc<Orders>,
}

impl OrdersService {
    pub async fn open_db(storage: &Storage, pool: PoolSettings) -> Result<ServiceDb, DbError> {
        ServiceDb::open(storage, pool, SCHEMA, &migrations()).await
    }

    pub async fn open(storage: &Storage, pool: PoolSettings) -> Result<Self, DbError> {
        let store = Self::open_db(storage, pool).await?;
        let orders = Arc::new(Orders::new(store.db.clone(), store.outbox.clone()));
        Ok(Self { store, orders })
    }

    pub fn router(&self) -> OpenApiRouter {
        crate::api::router(self.orders.clone())
    }

    /// The consumer that keeps the catalog read model and moves orders through the saga.
    pub fn consumer(&self, bus: Arc<dyn EventBus>) -> Consumer {
        Consumer::new(
            self.store.db.clone(),
            bus,
            OrdersHandler::new(self.orders.clone()),
            ConsumerSettings::new(GROUP, TOPICS),
        )
        .waking(self.store.outbox.clone())
    }

    pub fn store(&self) -> &ServiceDb {
        &self.store
    }
}
