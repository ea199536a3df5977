//! Building the catalog service: its database, state, routes and event consumer.

use std::sync::Arc;

use events::bus::EventBus;
use events::consumer::{Consumer, ConsumerSettings};
use events::service_db::{ServiceDb, StoreSettings};
use platform::db::{DbError, Migrations, Storage};
use utoipa_axum::router::OpenApiRouter;

use crate::app::Catalog;
use crate::cache::ProductCache;
use crate::changes::ProductChanges;
use crate::reactions::{AvailabilityProjection, GROUP, TOPICS};
use crate::search_index::MemorySearch;
use platform::notifications::Listener;

pub const SCHEMA: &str = "catalog";

/// The products table is shared SQL; its search index is each backend's own (FTS5 on
/// SQLite, pg_trgm on PostgreSQL).
pub fn migrations() -> Migrations {
    Migrations {
        sqlite: sqlx::migrate!("migrations/sqlite"),
        postgres: sqlx::migrate!("migrations/postgres"),
    }
}

pub struct CatalogService {
    store: ServiceDb,
    catalog: Arc<Catalog>,
    /// PostgreSQL: the database the search index hears changes from.
    changes_from: Option<secrecy::SecretString>,
}

impl CatalogService {
    /// The service's database, migrated.
    pub async fn open_db(storage: &Storage, store: StoreSettings) -> Result<ServiceDb, DbError> {
        ServiceDb::open(storage, store, SCHEMA, &migrations()).await
    }

    /// Opens (and migrates) the service's database; products are read through `cache`, and
    /// searched in memory when `search` is given. On SQLite the index loads now, in the
    /// background; on PostgreSQL its follower (`change_follower`) loads it once it listens.
    pub async fn open(
        storage: &Storage,
        store: StoreSettings,
        cache: Arc<dyn ProductCache>,
        search: Option<Arc<MemorySearch>>,
    ) -> Result<Self, DbError> {
        let store = Self::open_db(storage, store).await?;
        let catalog = Arc::new(Catalog::new(
            store.db.clone(),
            store.outbox.clone(),
            cache,
            search,
        ));
        let changes_from = match storage {
            Storage::Postgres { url } => Some(url.clone()),
            Storage::Sqlite { .. } => None,
        };
        if let (Some(search), None) = (catalog.search().cloned(), &changes_from) {
            // Built in the background; a search that comes first waits for it.
            let catalog = catalog.clone();
            tokio::spawn(async move {
                if let Err(error) = search.load(catalog.store()).await {
                    tracing::warn!(%error, "could not load the search index; the first search will");
                }
            });
        }
        Ok(Self {
            store,
            catalog,
            changes_from,
        })
    }

    /// What keeps the search index in step with the changes other processes commit, on
    /// PostgreSQL (`changes`); `None` without an index or on SQLite.
    pub fn change_follower(&self) -> Option<Listener<ProductChanges>> {
        let search = self.catalog.search()?.clone();
        let url = self.changes_from.clone()?;
        Some(crate::changes::follower(
            url,
            search,
            self.catalog.store().clone(),
        ))
    }

    pub fn router(&self) -> OpenApiRouter {
        crate::api::router(self.catalog.clone())
    }

    /// The consumer that keeps availability in step with inventory and the cache with changes.
    pub fn consumer(&self, bus: Arc<dyn EventBus>) -> Consumer {
        let handler = AvailabilityProjection::new(
            self.catalog.store().clone(),
            self.catalog.cache().clone(),
            self.catalog.search().cloned(),
        );
        Consumer::new(
            self.store.db.clone(),
            bus,
            handler,
            ConsumerSettings::new(GROUP, TOPICS),
        )
    }

    pub fn store(&self) -> &ServiceDb {
        &self.store
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }
}
