//! Building the catalog service: its database, state, routes and event consumer.

use std::sync::Arc;

use events::bus::EventBus;
use events::consumer::{Consumer, ConsumerSettings};
use events::outbox::Outbox;
use platform::db::{Db, DbError, Migrations, PoolSettings, Storage};
use utoipa_axum::router::OpenApiRouter;

use crate::catalog::Catalog;
use crate::handlers::{AvailabilityProjection, GROUP, TOPICS};

pub const SCHEMA: &str = "catalog";

/// The catalog tables use only SQL both backends share, so one folder serves both.
pub fn migrations() -> Migrations {
    Migrations {
        sqlite: sqlx::migrate!(),
        postgres: sqlx::migrate!(),
    }
}

pub struct CatalogService {
    db: Db,
    outbox: Outbox,
    catalog: Arc<Catalog>,
}

impl CatalogService {
    pub async fn open_db(storage: &Storage, pool: PoolSettings) -> Result<Db, DbError> {
        let db = storage.open(SCHEMA, pool).await?;
        db.migrate(&events::service_migrations()).await?;
        db.migrate(&migrations()).await?;
        Ok(db)
    }

    pub async fn open(storage: &Storage, pool: PoolSettings) -> Result<Self, DbError> {
        let db = Self::open_db(storage, pool).await?;
        let outbox = Outbox::new();
        let catalog = Arc::new(Catalog::new(db.clone(), outbox.clone()));
        Ok(Self {
            db,
            outbox,
            catalog,
        })
    }

    pub fn router(&self) -> OpenApiRouter {
        crate::api::router(self.catalog.clone())
    }

    /// The consumer that keeps availability in step with inventory.
    pub fn consumer(&self, bus: Arc<dyn EventBus>) -> Consumer {
        let handler = AvailabilityProjection::new(self.catalog.store().clone());
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

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }
}
