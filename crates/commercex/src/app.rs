//! The embedded runtime: every service and the gateway in one process, one listener.
//! `Application::build` does everything `serve` does except wait for a signal, so tests start
//! the app exactly as production does.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use catalog::CatalogService;
use events::bus::EventBus;
use events::bus::dblog::DbLogBus;
use events::consumer::Consumer;
use events::relay::Relay;
use events::service_db::ServiceDb;
use gateway::GatewayParts;
use inventory::InventoryService;
use inventory::sweeper::Sweeper;
use orders::OrdersService;
use payments::PaymentsService;
use payments::provider::SandboxProvider;
use platform::auth::TokenVerifier;
use platform::db::Db;
use platform::http::ReadinessCheck;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use users::domain::{DisplayName, Email, Password, User};
use users::{UsersConfig, UsersService};

use crate::settings::Settings;

/// How often expired reservations are looked for; an expired hold lingers at most this long.
const RESERVATION_SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// The SQLite file / PostgreSQL schema of the in-database event bus.
const BUS_SCHEMA: &str = "bus";

/// Opens the event bus database and applies its migrations.
pub async fn open_bus_db(
    settings_storage: &platform::db::Storage,
    pool: platform::db::PoolSettings,
) -> anyhow::Result<Db> {
    let bus = settings_storage.open(BUS_SCHEMA, pool).await?;
    bus.migrate(&events::bus_migrations()).await?;
    Ok(bus)
}

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    databases: Vec<Db>,
    relays: Vec<Relay<DbLogBus>>,
    consumers: Vec<Consumer>,
    sweeper: Sweeper,
    shutdown_timeout: std::time::Duration,
}

/// Every service, with its database opened and migrated, and the bus database.
pub struct Services {
    pub users: UsersService,
    pub catalog: CatalogService,
    pub inventory: InventoryService,
    pub orders: OrdersService,
    pub payments: PaymentsService,
    pub bus: Db,
}

impl Services {
    pub async fn open(settings: &Settings) -> anyhow::Result<Self> {
        let (storage, pool) = (&settings.storage, settings.pool);
        let users = UsersService::open(
            storage,
            pool,
            UsersConfig {
                signing_key: settings.signing_key.clone(),
                retired_keys: settings.retired_keys.clone(),
                audience: settings.audience.clone(),
                lifetimes: settings.lifetimes,
                throttle: settings.throttle,
            },
        )
        .await?;
        Ok(Self {
            users,
            catalog: CatalogService::open(storage, pool).await?,
            inventory: InventoryService::open(storage, pool).await?,
            orders: OrdersService::open(storage, pool).await?,
            // Real providers plug in here, chosen by configuration, behind the same trait.
            payments: PaymentsService::open(storage, pool, Arc::new(SandboxProvider::new()))
                .await?,
            bus: open_bus_db(storage, pool).await?,
        })
    }

    /// Each service's database with the outbox its relay drains.
    fn stores(&self) -> [&ServiceDb; 5] {
        [
            self.users.store(),
            self.catalog.store(),
            self.inventory.store(),
            self.orders.store(),
            self.payments.store(),
        ]
    }
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let services = Services::open(&settings).await?;
        if let Some(admin) = &settings.admin {
            bootstrap_admin(
                &services.users,
                &admin.email,
                admin.password.expose_secret(),
                "Administrator",
            )
            .await?;
        }
        let bus = Arc::new(DbLogBus::new(services.bus.clone()));
        let verifier = TokenVerifier::from_jwks(
            &services.users.identity().issuer().jwks(),
            &settings.audience,
        )
        .context("building the token verifier from our own JWKS")?;
        let mut readiness: Vec<Arc<dyn ReadinessCheck>> = services
            .stores()
            .iter()
            .map(|store| Arc::new(DbReady(store.db.clone())) as Arc<dyn ReadinessCheck>)
            .collect();
        readiness.push(Arc::new(BusReady(bus.clone())));
        let router = gateway::router(GatewayParts {
            services: vec![
                services.users.router(),
                services.catalog.router(),
                services.inventory.router(),
                services.orders.router(),
                services.payments.router(),
            ],
            readiness,
            verifier: Arc::new(verifier),
            limits: settings.limits,
        });
        let relays = services
            .stores()
            .iter()
            .map(|store| {
                Relay::new(
                    store.db.clone(),
                    store.outbox.clone(),
                    bus.clone(),
                    settings.relay,
                )
            })
            .collect();
        let sweeper = services.inventory.sweeper(RESERVATION_SWEEP_INTERVAL);
        let dyn_bus: Arc<dyn EventBus> = bus;
        let consumers = vec![
            services.catalog.consumer(dyn_bus.clone()),
            services
                .inventory
                .consumer(dyn_bus.clone(), settings.reservation_ttl),
            services.orders.consumer(dyn_bus.clone()),
            services.payments.consumer(dyn_bus),
        ];
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("listening on {}", settings.listen))?;
        let mut databases: Vec<Db> = services
            .stores()
            .iter()
            .map(|store| store.db.clone())
            .collect();
        databases.push(services.bus);
        Ok(Self {
            listener,
            router,
            databases,
            relays,
            consumers,
            sweeper,
            shutdown_timeout: settings.shutdown_timeout,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` fires; then stops accepting, finishes in-flight requests,
    /// lets consumers finish the event in hand and the relays publish what is committed,
    /// and closes the databases.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let background = CancellationToken::new();
        let tasks = TaskTracker::new();
        for relay in self.relays {
            tasks.spawn(relay.run(background.clone()));
        }
        for consumer in self.consumers {
            tasks.spawn(consumer.run(background.clone()));
        }
        tasks.spawn(self.sweeper.run(background.clone()));
        tasks.close();
        let app = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let server = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        server.await.context("serving HTTP")?;
        tracing::info!("HTTP drained; stopping background work");
        background.cancel();
        if tokio::time::timeout(self.shutdown_timeout, tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("background work did not stop within the shutdown timeout");
        }
        for db in &self.databases {
            db.close().await;
        }
        Ok(())
    }
}

pub async fn bootstrap_admin(
    users: &UsersService,
    email: &str,
    password: &str,
    name: &str,
) -> anyhow::Result<User> {
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!("admin email: {e}"))?;
    let password = Password::parse(password).map_err(|e| anyhow::anyhow!("admin password: {e}"))?;
    let name = DisplayName::parse(name).map_err(|e| anyhow::anyhow!("admin name: {e}"))?;
    let admin = users
        .identity()
        .ensure_admin(email, password, name)
        .await
        .map_err(|e| anyhow::anyhow!("creating the admin account: {e}"))?;
    tracing::info!(user_id = %admin.id, "admin account ready");
    Ok(admin)
}

struct DbReady(Db);

#[async_trait]
impl ReadinessCheck for DbReady {
    fn name(&self) -> &str {
        self.0.schema()
    }

    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}

struct BusReady(Arc<DbLogBus>);

#[async_trait]
impl ReadinessCheck for BusReady {
    fn name(&self) -> &str {
        "event_bus"
    }

    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}
