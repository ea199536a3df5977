//! Events: the contract services meet in, and the machinery that moves events reliably.
//!
//! - [`envelope`]: CloudEvents-shaped envelope; [`contract`]: every event type and topic.
//! - [`outbox`]: write events in the same transaction as the state change; with the
//!   in-database bus the outbox is the log ([`sequencer`] numbers it on PostgreSQL), with
//!   Kafka the [`relay`] publishes committed rows, in order.
//! - [`bus`]: the `EventBus` boundary and its backends.
//! - [`consumer`]: at-least-once delivery made effectively-once by an inbox, with bounded
//!   retries and a dead-letter queue ([`dlq`]); the inbox is pruned by age ([`retention`]).

pub mod asyncapi;
pub mod bus;
pub mod consumer;
pub mod contract;
pub mod dlq;
pub mod envelope;
pub mod outbox;
pub mod relay;
pub mod retention;
pub mod sequencer;
pub mod service_db;
pub mod telemetry;

pub use envelope::Envelope;

use platform::db::Migrations;

/// Tables every service database holds: outbox, inbox, consumer positions, parked events and
/// dead letters.
pub fn service_migrations() -> Migrations {
    Migrations {
        sqlite: sqlx::migrate!("migrations/service/sqlite"),
        postgres: sqlx::migrate!("migrations/service/postgres"),
    }
}
