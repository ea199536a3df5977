//! The event bus boundary. The relay publishes through [`EventBus`]; consumers read through
//! [`Subscription`]. Backends: the in-database log ([`dblog`]) and Kafka (`kafka`, behind the
//! `kafka` cargo feature), with no change to service code.

pub mod dblog;
#[cfg(feature = "kafka")]
pub mod kafka;

use std::time::Duration;

use async_trait::async_trait;

use crate::Envelope;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("the event bus is unavailable: {0}")]
    Unavailable(String),
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
}

#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Publishes `events` durably, in the order given (which keeps per-key order).
    async fn publish(&self, events: &[Outgoing]) -> Result<(), BusError>;

    /// Joins consumer group `group` on `topics`, resuming at the group's committed offsets.
    async fn subscribe(
        &self,
        group: &str,
        topics: &[String],
    ) -> Result<Box<dyn Subscription>, BusError>;

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

    /// Whether one subscription sees events of different topics in the order they were
    /// published. Kafka orders only within a partition, so a consumer of several topics reads
    /// each through its own subscription there: an event that must wait for one on another
    /// topic (a reservation for an order not yet seen) never blocks that other event.
    fn orders_across_topics(&self) -> bool {
        false
    }
}

#[async_trait]
pub trait Subscription: Send {
    /// Up to `max` deliveries, waiting at most `wait` for the first one.
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BusError>;

    /// Records that `delivery` (and everything before it in its partition) is done.
    async fn commit(&mut self, delivery: &Delivery) -> Result<(), BusError>;
}
