//! What every event-producing service is built on: its own database (SQLite file or
//! PostgreSQL schema) with the event tables next to its own, and its outbox.

use platform::db::{Backend, Db, DbError, Migrations, PoolSettings, Storage};

use crate::outbox::{Handoff, Outbox};

/// How a service opens its store.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreSettings {
    pub pool: PoolSettings,
    /// Whether a relay publishes the outbox to a bus outside the database (Kafka); otherwise
    /// the outbox is the in-database bus's log.
    pub relayed: bool,
}

#[derive(Debug, Clone)]
pub struct ServiceDb {
    pub db: Db,
    pub outbox: Outbox,
}

impl ServiceDb {
    /// Opens `schema`, applying the event tables' migrations and then the service's own.
    pub async fn open(
        storage: &Storage,
        settings: StoreSettings,
        schema: &str,
        migrations: &Migrations,
    ) -> Result<Self, DbError> {
        let db = storage.open(schema, settings.pool).await?;
        db.migrate(&crate::service_migrations()).await?;
        db.migrate(migrations).await?;
        let handoff = match (settings.relayed, db.backend()) {
            (true, _) => Handoff::Relayed,
            (false, Backend::Sqlite) => Handoff::InPlace,
            (false, Backend::Postgres) => Handoff::Sequenced,
        };
        Ok(Self {
            db,
            outbox: Outbox::new(handoff),
        })
    }
}
