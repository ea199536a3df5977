//! Building the payments service: its database, provider, routes and event consumer.

use std::sync::Arc;

use events::bus::EventBus;
use events::consumer::{Consumer, ConsumerSettings};
use events::service_db::{ServiceDb, StoreSettings};
use platform::db::{DbError, Migrations, Storage};
use platform::sealing::SealingKeys;
use utoipa_axum::router::OpenApiRouter;

use crate::app::Payments;
use crate::provider::PaymentProvider;
use crate::reactions::{GROUP, PaymentsReactions, TOPICS};
use crate::store::PaymentStore;

pub const SCHEMA: &str = "payments";

/// The tables are the same SQL on both backends; the status constraint is not (SQLite adds
/// no CHECK to an existing table).
pub fn migrations() -> Migrations {
    Migrations {
        sqlite: sqlx::migrate!("migrations/sqlite"),
        postgres: sqlx::migrate!("migrations/postgres"),
    }
}

pub struct PaymentsService {
    store: ServiceDb,
    payments: Arc<Payments>,
}

impl PaymentsService {
    pub async fn open_db(storage: &Storage, store: StoreSettings) -> Result<ServiceDb, DbError> {
        ServiceDb::open(storage, store, SCHEMA, &migrations()).await
    }

    pub async fn open(
        storage: &Storage,
        store: StoreSettings,
        provider: Arc<dyn PaymentProvider>,
        payment_tokens: Arc<SealingKeys>,
    ) -> Result<Self, DbError> {
        let store = Self::open_db(storage, store).await?;
        let payments = Arc::new(Payments::new(
            PaymentStore::new(store.db.clone()),
            provider,
            payment_tokens,
            store.outbox.clone(),
        ));
        Ok(Self { store, payments })
    }

    pub fn router(&self) -> OpenApiRouter {
        crate::api::router(self.payments.clone())
    }

    /// The consumer that charges, voids and refunds as the saga goes.
    pub fn consumer(&self, bus: Arc<dyn EventBus>) -> Consumer {
        Consumer::new(
            self.store.db.clone(),
            bus,
            PaymentsReactions::new(self.payments.clone()),
            ConsumerSettings::new(GROUP, TOPICS),
        )
    }

    pub fn store(&self) -> &ServiceDb {
        &self.store
    }
}
