//! Building the identity service from configuration: its database, state and routes.

use std::sync::Arc;

use events::service_db::{ServiceDb, StoreSettings};
use jsonwebtoken::jwk::Jwk;
use platform::auth::{SigningKey, TokenAudience};
use platform::db::{DbError, Migrations, Storage};
use platform::shared_redis::SharedRedis;
use utoipa_axum::router::OpenApiRouter;

use crate::app::Identity;
use crate::retention::SessionRetention;
use crate::throttle::{AttemptThrottle, MemoryThrottle, RedisThrottle, ThrottlePolicy};
use crate::tokens::{TokenIssuer, TokenLifetimes};

/// The SQLite file / PostgreSQL schema this service owns.
pub const SCHEMA: &str = "users";

/// The identity tables use only SQL both backends share, so one folder serves both.
pub fn migrations() -> Migrations {
    Migrations {
        sqlite: sqlx::migrate!(),
        postgres: sqlx::migrate!(),
    }
}

#[derive(Debug, Clone)]
pub struct UsersConfig {
    pub signing_key: Arc<SigningKey>,
    /// Public keys of retired signing keys still published in the JWKS.
    pub retired_keys: Vec<Jwk>,
    pub audience: TokenAudience,
    pub lifetimes: TokenLifetimes,
    pub throttle: ThrottlePolicy,
    /// Shares login and sign-up throttling with every identity instance; `None` keeps it in memory.
    pub redis: Option<Arc<SharedRedis>>,
}

pub struct UsersService {
    store: ServiceDb,
    identity: Arc<Identity>,
    /// The longest a session lasts from its login.
    session: std::time::Duration,
}

impl UsersService {
    /// The service's database, migrated.
    pub async fn open_db(storage: &Storage, store: StoreSettings) -> Result<ServiceDb, DbError> {
        ServiceDb::open(storage, store, SCHEMA, &migrations()).await
    }

    /// Opens (and migrates) the service's database and builds its state.
    pub async fn open(
        storage: &Storage,
        store: StoreSettings,
        config: UsersConfig,
    ) -> Result<Self, DbError> {
        let store = Self::open_db(storage, store).await?;
        let session = config.lifetimes.session;
        let issuer = TokenIssuer::new(
            config.signing_key,
            config.retired_keys,
            config.audience,
            config.lifetimes,
        );
        let identity = Identity::new(
            store.db.clone(),
            store.outbox.clone(),
            Arc::new(issuer),
            throttle(config.throttle, config.redis),
            config.throttle,
        );
        Ok(Self {
            store,
            identity: Arc::new(identity),
            session,
        })
    }

    pub fn router(&self) -> OpenApiRouter {
        crate::api::router(self.identity.clone())
    }

    /// What prunes the sessions that ended.
    pub fn session_retention(&self) -> SessionRetention {
        SessionRetention::new(self.store.db.clone(), self.session)
    }

    pub fn store(&self) -> &ServiceDb {
        &self.store
    }

    pub fn identity(&self) -> &Arc<Identity> {
        &self.identity
    }
}

/// Redis-backed when configured, so a burst of guesses spread over identity instances is
/// still one burst; in this process's memory otherwise.
fn throttle(policy: ThrottlePolicy, redis: Option<Arc<SharedRedis>>) -> Arc<dyn AttemptThrottle> {
    match redis {
        Some(redis) => Arc::new(RedisThrottle::new(policy, redis)),
        None => Arc::new(MemoryThrottle::new(policy)),
    }
}
