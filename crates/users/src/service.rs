//! Building the identity service from configuration: its database, state and routes.

use std::sync::Arc;

use events::outbox::Outbox;
use jsonwebtoken::jwk::Jwk;
use platform::auth::{SigningKey, TokenAudience};
use platform::db::{Db, DbError, Migrations, PoolSettings, Storage};
use utoipa_axum::router::OpenApiRouter;

use crate::identity::Identity;
use crate::throttle::{MemoryThrottle, ThrottlePolicy};
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
}

pub struct UsersService {
    db: Db,
    outbox: Outbox,
    identity: Arc<Identity>,
}

impl UsersService {
    /// Opens the service's database and applies its migrations.
    pub async fn open_db(storage: &Storage, pool: PoolSettings) -> Result<Db, DbError> {
        let db = storage.open(SCHEMA, pool).await?;
        db.migrate(&events::service_migrations()).await?;
        db.migrate(&migrations()).await?;
        Ok(db)
    }

    /// Opens (and migrates) the service's database and builds its state.
    pub async fn open(
        storage: &Storage,
        pool: PoolSettings,
        config: UsersConfig,
    ) -> Result<Self, DbError> {
        let db = Self::open_db(storage, pool).await?;
        let outbox = Outbox::new();
        let issuer = TokenIssuer::new(
            config.signing_key,
            config.retired_keys,
            config.audience,
            config.lifetimes,
        );
        let identity = Identity::new(
            db.clone(),
            outbox.clone(),
            Arc::new(issuer),
            Arc::new(MemoryThrottle::new(config.throttle)),
        );
        Ok(Self {
            db,
            outbox,
            identity: Arc::new(identity),
        })
    }

    pub fn router(&self) -> OpenApiRouter {
        crate::api::router(self.identity.clone())
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    pub fn identity(&self) -> &Arc<Identity> {
        &self.identity
    }
}
