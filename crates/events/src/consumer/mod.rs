//! Consumers: at-least-once delivery from the bus, made effectively-once by the inbox.
//!
//! The runner handles what one poll of the bus brought in one transaction on the consuming
//! service's database: for each event the group handles, a savepoint, an inbox check, the
//! handler and the inbox row; then the group's positions (on the in-database bus) and one
//! commit. Events the group does not handle cost no transaction at all. Only after the commit
//! is the bus told (Kafka offsets).
//!
//! An event that fails rolls back to its savepoint alone. A permanent failure is
//! dead-lettered in the same transaction; a transient one ends the transaction before it
//! (what came before commits) and is retried on its own with exponential backoff and jitter,
//! a bounded number of times, then dead-lettered. A database that fails the transaction
//! itself pauses the consumer, without using up any handler's attempts. An event that needs
//! one not handled yet (`HandlerError::NotYet`: Kafka orders events only within a partition,
//! and the in-database bus only within a topic) is parked, out of the way of the events
//! behind it, and handled as soon as an event about the same subject has been. Dead letters
//! can be replayed: the runner picks up replay requests.

mod batch;
mod parked;
mod positions;
mod retry;
mod runner;

pub use retry::RetryPolicy;
pub use runner::{Consumer, ConsumerSettings, Outcome};

use async_trait::async_trait;
use platform::db::Tx;

use crate::Envelope;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Worth trying again: a timeout, a dependency that is down, a lock conflict.
    #[error("transient: {0}")]
    Transient(BoxError),
    /// Will fail the same way every time: undecodable data, a broken invariant.
    #[error("permanent: {0}")]
    Permanent(BoxError),
    /// Needs an event from another topic that has not been handled yet (a reservation for an
    /// order whose `order.placed` is still on its way). Buses order events only within a
    /// partition, so this is normal, not a fault: the event is parked until an event about the
    /// same subject has been handled, for up to `RetryPolicy::prerequisite_wait`.
    #[error("waiting for an earlier event: {0}")]
    NotYet(BoxError),
}

impl HandlerError {
    pub fn transient(error: impl Into<BoxError>) -> Self {
        Self::Transient(error.into())
    }

    pub fn permanent(error: impl Into<BoxError>) -> Self {
        Self::Permanent(error.into())
    }

    pub fn not_yet(error: impl Into<BoxError>) -> Self {
        Self::NotYet(error.into())
    }

    /// True when the handler failed because its database is unavailable (I/O, busy, locked,
    /// disk full, a lock or statement timeout, no connection): the outage's fault, not the
    /// event's, so the try does not count against the handler's attempts.
    pub fn is_outage(&self) -> bool {
        let Self::Transient(error) = self else {
            return false;
        };
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error.as_ref());
        while let Some(error) = cause {
            if let Some(database) = error.downcast_ref::<sqlx::Error>() {
                return platform::db::is_unavailable(database);
            }
            cause = error.source();
        }
        false
    }
}

/// Database errors are transient by default: connections drop, locks time out.
impl From<sqlx::Error> for HandlerError {
    fn from(error: sqlx::Error) -> Self {
        Self::Transient(Box::new(error))
    }
}

impl From<crate::envelope::DecodeError> for HandlerError {
    fn from(error: crate::envelope::DecodeError) -> Self {
        Self::Permanent(Box::new(error))
    }
}

/// Reacts to events inside the consuming service's transaction.
#[async_trait]
pub trait EventHandler: Send + Sync + 'static {
    /// Whether `handle` does anything with events of `event_type`. The consumer opens no
    /// transaction and writes no inbox row for the others; it only moves past them.
    fn handles(&self, event_type: &str) -> bool;

    /// Handles `event` inside `tx`, which may already hold the effects of earlier events of
    /// the same batch: read through `tx`, never through the pool, to see them.
    async fn handle(&self, tx: &mut Tx, event: &Envelope) -> Result<(), HandlerError>;

    /// Runs once the consumer is past `event`: after the transaction that handled it
    /// committed, or at once for an event it does not handle (never for a duplicate). The
    /// place for effects outside the database, such as dropping a cache entry, that must not
    /// happen before the change is visible. Best effort: it is not retried.
    async fn after_commit(&self, _event: &Envelope) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store error that keeps its cause, as the services' stores do.
    #[derive(Debug, thiserror::Error)]
    #[error("database error")]
    struct StoreError(#[source] sqlx::Error);

    #[test]
    fn an_unavailable_database_is_an_outage_wherever_it_sits_in_the_causes() {
        assert!(HandlerError::from(sqlx::Error::PoolTimedOut).is_outage());
        assert!(HandlerError::transient(StoreError(sqlx::Error::PoolTimedOut)).is_outage());
        assert!(!HandlerError::from(sqlx::Error::RowNotFound).is_outage());
        assert!(!HandlerError::transient("a dependency timed out").is_outage());
        assert!(!HandlerError::permanent(StoreError(sqlx::Error::PoolTimedOut)).is_outage());
    }
}
