//! What every event-producing service is built on: its own database (SQLite file or
//! PostgreSQL schema) with the event tables next to its own, and the outbox its relay drains.

use platform::db::{Db, DbError, Migrations, PoolSettings, Storage};

use crate::outbox::Outbox;

#[derive(Debug, Clone)]
pub struct ServiceDb {
    pub db: Db,
    pub outbox: Outbox,
}

impl ServiceDb {
    /// Opens `schema`, applying the event tables' migrations and then the service's own.
    pub async fn open(
        storage: &Storage,
        pool: PoolSettings,
        schema: &str,
        migrations: &Migrations,
    ) -> Result<Self, DbError> {
        let db = storage.open(schema, pool).await?;
        db.migrate(&crate::service_migrations()).await?;
        db.migrate(migrations).await?;
        Ok(Self {
            db,
            outbox: Outbox::new(),
        })
    }
}
