//! The services a process runs, each with its database opened and migrated.

use anyhow::Context;
use std::sync::Arc;

use catalog::CatalogService;
use catalog::cache::{MemoryProductCache, NoCache, ProductCache, RedisProductCache};
use catalog::search_index::MemorySearch;
use events::bus::EventBus;
use events::consumer::Consumer;
use events::dlq::DeadLetters;
use events::dlq::api::{self as dead_letters, Queues};
use events::service_db::ServiceDb;
use inventory::InventoryService;
use orders::OrdersService;
use payments::PaymentsService;
use payments::provider::SandboxProvider;
use platform::db::Storage;
use platform::shared_redis::SharedRedis;
use users::{UsersConfig, UsersService};
use utoipa_axum::router::OpenApiRouter;
use webhooks::WebhooksService;

use crate::cli::{Profile, ServiceName};
use crate::settings::Settings;

/// The domain services (everything but the gateway), in start-up order.
pub const DOMAIN_SERVICES: [ServiceName; 6] = [
    ServiceName::Users,
    ServiceName::Catalog,
    ServiceName::Inventory,
    ServiceName::Orders,
    ServiceName::Payments,
    ServiceName::Webhooks,
];

/// How many products the embedded runtime keeps in memory for reads.
const PRODUCTS_IN_MEMORY: usize = 10_000;
/// How many products a catalog searches in memory: the process grew by 50 MB for 10,000
/// (resident memory, the allocator's retention included), so up to ~250 MB here; a larger
/// catalog is searched in the database.
const PRODUCTS_SEARCHED_IN_MEMORY: usize = 50_000;

/// The services this process runs; the others are `None` (they run elsewhere).
#[derive(Default)]
pub struct Services {
    pub users: Option<UsersService>,
    pub catalog: Option<CatalogService>,
    pub inventory: Option<InventoryService>,
    pub orders: Option<OrdersService>,
    pub payments: Option<PaymentsService>,
    pub webhooks: Option<WebhooksService>,
}

impl Services {
    pub async fn open(
        settings: &Settings,
        which: &[ServiceName],
        redis: Option<Arc<SharedRedis>>,
    ) -> anyhow::Result<Self> {
        let (storage, store) = (&settings.storage, settings.store);
        let mut services = Self::default();
        let payment_token_keys = || {
            settings
                .payment_token_keys
                .clone()
                .context("orders and payments need the payment token keys")
        };
        // The embedded runtime on SQLite: the files are this process's alone, so it makes every
        // change to their data, and hears of none from elsewhere.
        let sole_instance =
            which.len() == DOMAIN_SERVICES.len() && matches!(storage, Storage::Sqlite { .. });
        for service in which {
            match service {
                ServiceName::Users => {
                    let signing = settings
                        .signing
                        .clone()
                        .context("the identity service needs the signing keys")?;
                    let config = UsersConfig {
                        signing_key: signing.current,
                        retired_keys: signing.retired,
                        audience: settings.audience.clone(),
                        lifetimes: settings.lifetimes,
                        throttle: settings.throttle,
                        redis: redis.clone(),
                    };
                    services.users = Some(UsersService::open(storage, store, config).await?);
                }
                ServiceName::Catalog => {
                    let ttl = settings.product_cache_ttl;
                    let cache: Arc<dyn ProductCache> = match &redis {
                        Some(redis) => Arc::new(RedisProductCache::new(redis.clone(), ttl)),
                        None if sole_instance => {
                            Arc::new(MemoryProductCache::new(PRODUCTS_IN_MEMORY, ttl))
                        }
                        // Other processes' changes would pass this one by.
                        None => Arc::new(NoCache),
                    };
                    // On PostgreSQL, every instance hears every change committed to the
                    // products from the database (`catalog::changes`).
                    let search = match storage {
                        _ if !settings.search_in_memory => None,
                        Storage::Postgres { .. } => {
                            Some(MemorySearch::followed(PRODUCTS_SEARCHED_IN_MEMORY))
                        }
                        Storage::Sqlite { .. } if sole_instance => {
                            Some(MemorySearch::new(PRODUCTS_SEARCHED_IN_MEMORY))
                        }
                        Storage::Sqlite { .. } => None,
                    }
                    .map(Arc::new);
                    services.catalog =
                        Some(CatalogService::open(storage, store, cache, search).await?);
                }
                ServiceName::Inventory => {
                    services.inventory = Some(InventoryService::open(storage, store).await?);
                }
                ServiceName::Orders => {
                    services.orders = Some(
                        OrdersService::open(storage, store, payment_token_keys()?, sole_instance)
                            .await?,
                    );
                }
                ServiceName::Payments => {
                    // Real providers plug in here, chosen by configuration, behind one trait.
                    // The sandbox charges nothing: production takes it only when told to.
                    if settings.profile == Profile::Production && !settings.allow_sandbox_payments {
                        anyhow::bail!(
                            "the production profile would take payments with the sandbox \
                             provider, which charges nothing: set \
                             COMMERCEX_ALLOW_SANDBOX_PAYMENTS=true (--allow-sandbox-payments) \
                             for a demonstration or staging copy"
                        );
                    }
                    let provider = Arc::new(SandboxProvider::new());
                    services.payments = Some(
                        PaymentsService::open(storage, store, provider, payment_token_keys()?)
                            .await?,
                    );
                }
                ServiceName::Webhooks => {
                    services.webhooks = Some(
                        WebhooksService::open(
                            storage,
                            store,
                            settings.webhooks.clone(),
                            settings
                                .webhook_secret_keys
                                .clone()
                                .context("the webhooks service needs the webhook secret keys")?,
                            sole_instance,
                        )
                        .await?,
                    );
                }
                ServiceName::Gateway | ServiceName::Web => {}
            }
        }
        Ok(services)
    }

    /// Each open service's database with the outbox its relay drains.
    pub fn stores(&self) -> Vec<&ServiceDb> {
        self.named_stores()
            .into_iter()
            .map(|(_, store)| store)
            .collect()
    }

    fn named_stores(&self) -> Vec<(&'static str, &ServiceDb)> {
        let mut stores = Vec::new();
        stores.extend(
            self.users
                .as_ref()
                .map(|s| (users::service::SCHEMA, s.store())),
        );
        stores.extend(
            self.catalog
                .as_ref()
                .map(|s| (catalog::service::SCHEMA, s.store())),
        );
        stores.extend(
            self.inventory
                .as_ref()
                .map(|s| (inventory::service::SCHEMA, s.store())),
        );
        stores.extend(
            self.orders
                .as_ref()
                .map(|s| (orders::service::SCHEMA, s.store())),
        );
        stores.extend(
            self.payments
                .as_ref()
                .map(|s| (payments::service::SCHEMA, s.store())),
        );
        stores.extend(
            self.webhooks
                .as_ref()
                .map(|s| (webhooks::service::SCHEMA, s.store())),
        );
        stores
    }

    /// Each open service's API, and the admin API over their dead-letter queues.
    pub fn routers(&self) -> Vec<OpenApiRouter> {
        let mut routers = Vec::new();
        routers.extend(self.users.as_ref().map(UsersService::router));
        routers.extend(self.catalog.as_ref().map(CatalogService::router));
        routers.extend(self.inventory.as_ref().map(InventoryService::router));
        routers.extend(self.orders.as_ref().map(OrdersService::router));
        routers.extend(self.payments.as_ref().map(PaymentsService::router));
        routers.extend(self.webhooks.as_ref().map(WebhooksService::router));
        let queues = self
            .named_stores()
            .into_iter()
            .map(|(name, store)| (name, DeadLetters::new(store.db.clone())));
        routers.push(dead_letters::router(Queues::new(queues)));
        routers
    }

    /// The event consumers of the open services.
    pub fn consumers(&self, bus: &Arc<dyn EventBus>, settings: &Settings) -> Vec<Consumer> {
        let mut consumers = Vec::new();
        consumers.extend(self.catalog.as_ref().map(|s| s.consumer(bus.clone())));
        consumers.extend(
            self.inventory
                .as_ref()
                .map(|s| s.consumer(bus.clone(), settings.reservation_ttl)),
        );
        consumers.extend(self.orders.as_ref().map(|s| s.consumer(bus.clone())));
        consumers.extend(self.payments.as_ref().map(|s| s.consumer(bus.clone())));
        consumers.extend(self.webhooks.as_ref().map(|s| s.consumer(bus.clone())));
        consumers
    }
}
