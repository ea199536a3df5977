//! The transactional outbox: an event is a row written in the same transaction as the state
//! change that caused it, so either both happen or neither does.
//!
//! How rows leave depends on the bus ([`Handoff`]). With the in-database bus the outbox *is*
//! the log consumers read ([`crate::bus::outbox_log`]): on SQLite a row is readable once its
//! transaction commits, because SQLite's single writer commits rows in `seq` order; on
//! PostgreSQL concurrent transactions commit out of `seq` order, so the [`crate::sequencer`]
//! numbers committed rows (`position`) one batch at a time and readers follow that number.
//! With Kafka a [`crate::relay`] publishes rows and marks them.

use tokio::sync::watch;
use tracing::Instrument;

use crate::Envelope;

/// How events leave a service's outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handoff {
    /// The outbox is the log and a committed row is in it (SQLite, in-database bus).
    InPlace,
    /// The outbox is the log once the sequencer has numbered a row (PostgreSQL,
    /// in-database bus).
    Sequenced,
    /// A relay copies rows to another bus (Kafka).
    Relayed,
}

/// A service's outbox. Clones share its signals.
#[derive(Debug, Clone)]
pub struct Outbox {
    handoff: Handoff,
    /// Bumped after each commit that wrote events: wakes the relay or the sequencer.
    committed: watch::Sender<u64>,
    /// Bumped when new rows became readable in the log: wakes its readers.
    readable: watch::Sender<u64>,
}

impl Outbox {
    pub fn new(handoff: Handoff) -> Self {
        Self {
            handoff,
            committed: watch::Sender::new(0),
            readable: watch::Sender::new(0),
        }
    }

    pub fn handoff(&self) -> Handoff {
        self.handoff
    }

    /// Adds `envelope` to the outbox inside `tx`. Nothing is published unless `tx` commits;
    /// once it has, whoever moves events on is woken.
    pub async fn enqueue(
        &self,
        tx: &mut platform::db::Tx,
        topic: &str,
        envelope: &Envelope,
    ) -> Result<(), sqlx::Error> {
        let span = crate::telemetry::producer_span(topic, envelope);
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
        let created_at = platform::time::to_millis(envelope.time);
        // In place, a committed row is published: nothing will mark it later.
        let published_at = (self.handoff == Handoff::InPlace).then_some(created_at);
        sqlx::query(
            "INSERT INTO outbox (event_id, topic, event_key, envelope, created_at, published_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(envelope.id.to_string())
        .bind(topic)
        .bind(&envelope.subject)
        .bind(envelope.to_json())
        .bind(created_at)
        .bind(published_at)
        .execute(&mut ***tx)
        .instrument(span)
        .await?;
        let outbox = self.clone();
        tx.on_commit(move || outbox.committed_rows());
        Ok(())
    }

    fn committed_rows(&self) {
        self.committed.send_modify(|n| *n = n.wrapping_add(1));
        if self.handoff == Handoff::InPlace {
            self.now_readable();
        }
    }

    /// New rows are in the log: wakes its readers.
    pub(crate) fn now_readable(&self) {
        self.readable.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Changes whenever a transaction that wrote events commits.
    pub(crate) fn committed(&self) -> watch::Receiver<u64> {
        self.committed.subscribe()
    }

    /// Changes whenever rows become readable in the log.
    pub(crate) fn readable(&self) -> watch::Receiver<u64> {
        self.readable.subscribe()
    }
}
