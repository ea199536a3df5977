//! The transactional outbox: an event is a row written in the same transaction as the state
//! change that caused it, so either both happen or neither does.

use std::sync::Arc;

use sqlx::{Any, Transaction};
use tokio::sync::Notify;
use tracing::Instrument;

use crate::Envelope;

/// A service's outbox. Cloning shares the wake-up signal with the relay.
#[derive(Debug, Clone, Default)]
pub struct Outbox {
    committed: Arc<Notify>,
}

impl Outbox {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `envelope` to the outbox inside `tx`. Nothing is published unless `tx` commits.
    pub async fn enqueue(
        &self,
        tx: &mut Transaction<'static, Any>,
        topic: &str,
        envelope: &Envelope,
    ) -> Result<(), sqlx::Error> {
        let span = crate::observe::producer_span(topic, envelope);
        let traced;
        let envelope = match platform::trace_context::traceparent(&span) {
            Some(traceparent) if envelope.traceparent.is_none() => {
                traced = Envelope {
                    traceparent: Some(traceparent),
                    ..envelope.clone()
                };
                &traced
            }
            _ => envelope,
        };
        sqlx::query(
            "INSERT INTO outbox (event_id, topic, event_key, envelope, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(envelope.id.to_string())
        .bind(topic)
        .bind(&envelope.subject)
        .bind(envelope.to_json())
        .bind(platform::time::to_millis(envelope.time))
        .execute(&mut **tx)
        .instrument(span)
        .await?;
        Ok(())
    }

    /// Commits `tx` and wakes the relay, so events leave without waiting for its next poll.
    pub async fn commit(&self, tx: platform::db::Tx) -> Result<(), sqlx::Error> {
        tx.commit().await?;
        self.committed.notify_one();
        Ok(())
    }

    pub(crate) fn signal(&self) -> Arc<Notify> {
        self.committed.clone()
    }
}
