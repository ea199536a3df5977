//! Events: the contract services meet in, and the machinery that moves events reliably.
//!
//! - [`envelope`]: CloudEvents-shaped envelope; [`contract`]: every event type and topic.
//! - [`outbox`]: write events in the same transaction as the state change;
//!   [`relay`]: publish committed outbox rows to the bus, in order.
//! - [`bus`]: the `EventBus` boundary and its in-database log backend.
//! - [`consumer`]: at-least-once delivery made effectively-once by an inbox, with bounded
//!   retries and a dead-letter queue ([`dlq`]).

pub mod bus;
pub mod consumer;
pub mod contract;
pub mod dlq;
pub mod envelope;
pub mod observe;
pub mod outbox;
pub mod relay;
pub mod service_db;

pub use envelope::Envelope;

use platform::db::Migrations;

/// Tables every service database holds: outbox, inbox and dead letters.
pub fn service_migrations() -> Migrations {
    Migrations {
        sqlite: sqlx::migrate!("migrations/service/sqlite"),
        postgres: sqlx::migrate!("migrations/service/postgres"),
    }
}

/// Tables of the in-database bus: the event log and consumer offsets.
pub fn bus_migrations() -> Migrations {
    Migrations {
        sqlite: sqlx::migrate!("migrations/bus/sqlite"),
        postgres: sqlx::migrate!("migrations/bus/postgres"),
    }
}
