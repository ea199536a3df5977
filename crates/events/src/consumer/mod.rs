//! Consumers: at-least-once delivery from the bus, made effectively-once by the inbox.
//!
//! For each delivery the runner opens a transaction on the consuming service's database,
//! skips the event if the group's inbox already has it, runs the handler, writes the inbox row
//! and commits, all in that one transaction. Only then is the bus offset committed. A transient
//! failure is retried with exponential backoff and jitter, a bounded number of times; a
//! permanent failure or exhausted retries puts the event in the dead-letter queue and the
//! consumer moves on. Dead letters can be replayed: the runner picks up replay requests.

mod retry;
mod runner;

pub use retry::RetryPolicy;
pub use runner::{Consumer, ConsumerSettings, Outcome};

use async_trait::async_trait;
use sqlx::{Any, Transaction};

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
    /// order whose `order.placed` is still on its way). Kafka orders events only within a
    /// partition, so this is normal, not a fault: retried for longer before dead-lettering
    /// (`RetryPolicy::prerequisite_wait`).
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

/// Reacts to events inside the consuming service's transaction. Event types it does not care
/// about it simply accepts.
#[async_trait]
pub trait EventHandler: Send + Sync + 'static {
    async fn handle(
        &self,
        tx: &mut Transaction<'static, Any>,
        event: &Envelope,
    ) -> Result<(), HandlerError>;

    /// Runs after the transaction that handled `event` committed (not for duplicates): the
    /// place for effects outside the database, such as dropping a cache entry, that must not
    /// happen before the change is visible. Best effort: it is not retried.
    async fn after_commit(&self, _event: &Envelope) {}
}
