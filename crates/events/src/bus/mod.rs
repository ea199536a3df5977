//! The event bus boundary. Consumers read through [`Subscription`]s; the relay publishes
//! through [`EventBus::publish`]. Backends: the services' outboxes read as a log
//! ([`outbox_log`], the in-database bus) and Kafka (`kafka`, behind the `kafka` cargo
//! feature), with no change to service code.
//!
//! Neither orders events across topics (Kafka orders them only within a partition), so
//! consumers never rely on it: see [`crate::consumer`].

#[cfg(feature = "kafka")]
pub mod kafka;
pub mod outbox_log;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;

use crate::Envelope;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("the event bus is unavailable: {0}")]
    Unavailable(String),
    /// A subscription's poll found the bus away, and the subscription recovers by itself
    /// once it is back (librdkafka reconnects and rejoins its group on its own): poll it
    /// again, do not replace it.
    #[error("the event bus did not answer: {0}")]
    Interrupted(String),
    #[error("an event on the bus is unreadable: {0}")]
    Corrupt(String),
}

/// An event to publish: its envelope and the topic it goes to. The key is the subject.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub topic: String,
    pub envelope: Envelope,
}

/// One event delivered to a consumer group, with where it sits in its topic.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub envelope: Envelope,
    /// Why the record could not be read as an event, if it could not: `envelope` then only
    /// carries its id, key and raw text, and the consumer dead-letters it.
    pub unreadable: Option<String>,
}

/// Where a consumer group is: per (topic, partition), the offset of the last event done.
pub type Positions = HashMap<(String, i32), i64>;

#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Publishes `events` durably, in the order given (which keeps per-key order).
    async fn publish(&self, events: &[Outgoing]) -> Result<(), BusError>;

    /// Joins consumer group `group` on `topics`, resuming after `resume` (the positions the
    /// group stored in its own database) where the bus keeps none of its own.
    async fn subscribe(
        &self,
        group: &str,
        topics: &[String],
        resume: &Positions,
    ) -> Result<Box<dyn Subscription>, BusError>;

    /// Whether a group's positions are kept in its own database, committed in the
    /// transaction that handled the events before them (the in-database bus), rather than
    /// by the bus (Kafka's committed offsets).
    fn positions_in_consumer_db(&self) -> bool {
        false
    }

    /// Copies a dead-lettered event where the bus's own tooling finds it (Kafka: the group's
    /// dead-letter topic). The database's dead-letter table stays the record operators act
    /// on, so a bus without such a place does nothing.
    async fn dead_letter(
        &self,
        _group: &str,
        _delivery: &Delivery,
        _error: &str,
    ) -> Result<(), BusError> {
        Ok(())
    }

    async fn ping(&self) -> Result<(), BusError>;

    /// Sets `commercex_consumer_lag` for `group` on `topics`, when the bus cannot report it as
    /// it goes (Kafka's consumers report their own partitions' lag).
    async fn sample_lag(&self, _group: &str, _topics: &[String]) -> Result<(), BusError> {
        Ok(())
    }
}

#[async_trait]
pub trait Subscription: Send {
    /// Up to `max` deliveries, waiting at most `wait` for the first one. After
    /// `BusError::Interrupted` the subscription is polled again; after any other error it is
    /// replaced by a new one.
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BusError>;

    /// Records that `delivery` (and everything before it in its partition) is done; called
    /// once the transaction that handled it has committed.
    async fn commit(&mut self, delivery: &Delivery) -> Result<(), BusError>;

    /// The member is stopping: what it has done and not yet passed on to the bus goes now.
    async fn leave(&mut self) -> Result<(), BusError> {
        Ok(())
    }
}
