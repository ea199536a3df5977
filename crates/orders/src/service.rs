//! Building the orders service: its database, routes and event consumer.

use std::sync::Arc;

use events::bus::EventBus;
use events::consumer::{Consumer, ConsumerSettings};
use events::service_db::{ServiceDb, StoreSettings};
use platform::db::{DbError, Migrations, Storage};
use platform::sealing::SealingKeys;
use utoipa_axum::router::OpenApiRouter;

use crate::app::Orders;
use crate::reactions::{GROUP, OrdersReactions, TOPICS};

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
    pub async fn open_db(storage: &Storage, store: StoreSettings) -> Result<ServiceDb, DbError> {
        ServiceDb::open(storage, store, SCHEMA, &migrations()).await
    }

    /// Opens (and migrates) the service's database; `payment_tokens` seal what customers pay
    /// with before it goes into `order.placed`.
    pub async fn open(
        storage: &Storage,
        store: StoreSettings,
        payment_tokens: Arc<SealingKeys>,
    ) -> Result<Self, DbError> {
        let store = Self::open_db(storage, store).await?;
        let orders = Arc::new(Orders::new(
            store.db.clone(),
            store.outbox.clone(),
            payment_tokens,
        ));
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
            OrdersReactions::new(self.orders.clone()),
            ConsumerSettings::new(GROUP, TOPICS),
        )
    }

    /// What cancels orders still pending `deadline` after they were placed.
    pub fn deadline(&self, deadline: std::time::Duration) -> crate::deadline::Deadline {
        crate::deadline::Deadline::new(self.orders.clone(), deadline)
    }

    pub fn store(&self) -> &ServiceDb {
        &self.store
    }
}
