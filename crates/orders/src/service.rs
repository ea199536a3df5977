//! Building the orders service: its database, routes and event consumer.

use std::sync::Arc;

use events::bus::EventBus;
use events::consumer::{Consumer, ConsumerSettings};
use events::service_db::{ServiceDb, StoreSettings};
use platform::db::{DbError, Migrations, Storage};
use platform::notifications::Listener;
use platform::sealing::SealingKeys;
use secrecy::SecretString;
use utoipa_axum::router::OpenApiRouter;

use crate::app::Orders;
use crate::reactions::{GROUP, OrdersReactions, TOPICS};
use crate::watchers::{CHANNEL, SettlementFollower, Watchers};

pub const SCHEMA: &str = "orders";

/// The tables are the same on both backends (PostgreSQL's folder links to SQLite's file);
/// PostgreSQL adds the trigger that tells every instance of a settlement.
pub fn migrations() -> Migrations {
    Migrations {
        sqlite: sqlx::migrate!("migrations/sqlite"),
        postgres: sqlx::migrate!("migrations/postgres"),
    }
}

pub struct OrdersService {
    store: ServiceDb,
    orders: Arc<Orders>,
    watchers: Arc<Watchers>,
    /// PostgreSQL: settlements other processes commit are heard from the database.
    settlements_from: Option<SecretString>,
}

impl OrdersService {
    pub async fn open_db(storage: &Storage, store: StoreSettings) -> Result<ServiceDb, DbError> {
        ServiceDb::open(storage, store, SCHEMA, &migrations()).await
    }

    /// Opens (and migrates) the service's database; `payment_tokens` seal what customers pay
    /// with before it goes into `order.placed`. `sole_instance`: this process settles every
    /// order (the embedded runtime on SQLite, whose files are its alone). On PostgreSQL other
    /// processes may (replicas, whatever runtime they run), and this one hears of their
    /// settlements once its `settlement_follower` listens.
    pub async fn open(
        storage: &Storage,
        store: StoreSettings,
        payment_tokens: Arc<SealingKeys>,
        sole_instance: bool,
    ) -> Result<Self, DbError> {
        let store = Self::open_db(storage, store).await?;
        let settlements_from = match storage {
            Storage::Postgres { url } => Some(url.clone()),
            Storage::Sqlite { .. } => None,
        };
        let watchers = Arc::new(Watchers::new(sole_instance));
        let orders = Arc::new(Orders::new(
            store.db.clone(),
            store.outbox.clone(),
            payment_tokens,
            watchers.clone(),
        ));
        Ok(Self {
            store,
            orders,
            watchers,
            settlements_from,
        })
    }

    /// What wakes this instance's waiting clients when another instance settles their
    /// order; `None` when there is nothing to hear (SQLite).
    pub fn settlement_follower(&self) -> Option<Listener<SettlementFollower>> {
        let url = self.settlements_from.clone()?;
        Some(Listener::new(
            url,
            CHANNEL,
            SettlementFollower::new(self.watchers.clone()),
        ))
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
