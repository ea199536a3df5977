//! The relay: moves committed outbox rows to a bus outside the database (Kafka), oldest
//! first. A row leaves the outbox only after the bus has accepted it, so a crash between the
//! two republishes (consumers dedup by event id) and never loses an event. Once the bus has
//! an event, its log is the record (kept as long as the topic's retention says), so the
//! relay deletes the row rather than marking it: the outbox holds only what is still on its
//! way, and a published row costs one deleted row version instead of a new one with four
//! index entries. (With the in-database bus the outbox is the log and nothing is moved: see
//! [`crate::outbox::Handoff`].)

use std::time::Duration;

use platform::db::{Backend, Db, literal_limit};
use sqlx::Row;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::Envelope;
use crate::bus::{EventBus, Outgoing};
use crate::outbox::Outbox;

#[derive(Debug, Clone, Copy)]
pub struct RelaySettings {
    pub batch_size: i64,
    /// How often to look even without a wake-up (other processes, missed signals).
    pub poll_interval: Duration,
    /// Pause after the bus refused a batch, before trying again.
    pub retry_delay: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch_size: 200,
            poll_interval: Duration::from_millis(500),
            retry_delay: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("outbox database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Bus(#[from] crate::bus::BusError),
    #[error("outbox row {seq} is unreadable: {source}")]
    Corrupt { seq: i64, source: serde_json::Error },
}

pub struct Relay<B: ?Sized> {
    db: Db,
    outbox: Outbox,
    bus: std::sync::Arc<B>,
    settings: RelaySettings,
}

impl<B: EventBus + ?Sized> Relay<B> {
    pub fn new(db: Db, outbox: Outbox, bus: std::sync::Arc<B>, settings: RelaySettings) -> Self {
        Self {
            db,
            outbox,
            bus,
            settings,
        }
    }

    /// Runs until `cancel` fires, then publishes what is already committed and returns.
    pub async fn run(self, cancel: CancellationToken) {
        let mut wake = self.outbox.committed();
        if let Err(error) = self.remove_marked().await {
            tracing::warn!(schema = self.db.schema(), %error, "could not remove outbox rows published earlier");
        }
        while !cancel.is_cancelled() {
            let pause = match self.publish_batch().await {
                // A full batch means there may be more: go again at once.
                Ok(n) if n as i64 == self.settings.batch_size => continue,
                Ok(_) => self.settings.poll_interval,
                Err(error) => {
                    tracing::warn!(schema = self.db.schema(), %error, "relay could not publish; will retry");
                    self.settings.retry_delay
                }
            };
            tokio::select! {
                () = cancel.cancelled() => {}
                _ = wake.changed() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
        self.drain().await;
    }

    /// Publishes everything committed so far, trying a few times if the bus refuses.
    async fn drain(&self) {
        let mut failures = 0;
        while failures < 3 {
            match self.publish_batch().await {
                Ok(0) => return,
                Ok(_) => {}
                Err(error) => {
                    failures += 1;
                    tracing::warn!(schema = self.db.schema(), %error, "relay could not publish while draining");
                    tokio::time::sleep(self.settings.retry_delay).await;
                }
            }
        }
        tracing::error!(
            schema = self.db.schema(),
            "stopping with events still in the outbox; they leave at next start"
        );
    }

    /// Removes rows that were published but kept: marked by a relay of an earlier version, or
    /// the log of an in-database bus this outbox served before. In batches, so neither
    /// database holds a long write lock for them; oldest first, where they all are.
    async fn remove_marked(&self) -> Result<(), sqlx::Error> {
        let sql = format!(
            "DELETE FROM outbox WHERE seq IN \
             (SELECT seq FROM outbox WHERE published_at IS NOT NULL ORDER BY seq {})",
            literal_limit(self.settings.batch_size)
        );
        loop {
            let removed = self
                .db
                .write_one(
                    "remove outbox rows published earlier",
                    sqlx::query(sqlx::AssertSqlSafe(sql.clone())),
                )
                .await?;
            if removed.rows_affected() == 0 {
                return Ok(());
            }
        }
    }

    /// Publishes the oldest unpublished rows; returns how many.
    pub async fn publish_batch(&self) -> Result<usize, RelayError> {
        match self.db.backend() {
            Backend::Postgres => self.publish_locked().await,
            Backend::Sqlite => self.publish_unlocked().await,
        }
    }

    /// PostgreSQL, where several replicas may run a relay on one outbox: the rows are deleted
    /// and read in one statement that locks them, inside a transaction held while the bus
    /// takes them. A second relay waits for the lock instead of publishing the same rows out
    /// of order, and a bus that refuses rolls the deletion back.
    async fn publish_locked(&self) -> Result<usize, RelayError> {
        let mut tx = self.db.begin_as("relay outbox").await?;
        let sql = format!(
            "DELETE FROM outbox WHERE seq IN \
             (SELECT seq FROM outbox WHERE published_at IS NULL ORDER BY seq {} FOR UPDATE) \
             RETURNING seq, topic, envelope",
            literal_limit(self.settings.batch_size)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut **tx)
            .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        // RETURNING keeps no order.
        let mut taken = read_rows(rows)?;
        taken.sort_unstable_by_key(|(seq, _)| *seq);
        let count = taken.len();
        self.publish(taken.into_iter().map(|(_, event)| event).collect())
            .await?;
        tx.commit().await?;
        Ok(count)
    }

    /// SQLite, where a file has exactly one relay, in the process that owns it: it reads
    /// without a transaction, so it does not hold the database's single write lock while it
    /// publishes (requests would queue behind it), and deletes what the bus took in a write
    /// transaction of its own, queued like every other.
    async fn publish_unlocked(&self) -> Result<usize, RelayError> {
        let sql = format!(
            "SELECT seq, topic, envelope FROM outbox WHERE published_at IS NULL ORDER BY seq {}",
            literal_limit(self.settings.batch_size)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.db.pool())
            .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let (seqs, events): (Vec<i64>, Vec<Outgoing>) = read_rows(rows)?.into_iter().unzip();
        self.publish(events).await?;
        let placeholders: Vec<String> = (0..seqs.len()).map(|i| format!("${}", i + 1)).collect();
        let sql = format!(
            "DELETE FROM outbox WHERE seq IN ({})",
            placeholders.join(", ")
        );
        let mut delete = sqlx::query(sqlx::AssertSqlSafe(sql));
        for seq in &seqs {
            delete = delete.bind(*seq);
        }
        self.db
            .write_one("remove published outbox rows", delete)
            .await?;
        Ok(seqs.len())
    }

    /// Hands `events` to the bus and waits for it to take every one.
    async fn publish(&self, events: Vec<Outgoing>) -> Result<(), RelayError> {
        let span = crate::telemetry::relay_span(
            self.db.schema(),
            events.iter().map(|event| &event.envelope),
        );
        let published = self.bus.publish(&events).instrument(span.clone()).await;
        for event in &events {
            crate::telemetry::count_published(
                &event.topic,
                &event.envelope.event_type,
                published.is_ok(),
            );
        }
        if published.is_err() {
            span.record("otel.status_code", "ERROR");
        }
        published?;
        tracing::debug!(
            schema = self.db.schema(),
            count = events.len(),
            "relayed events"
        );
        Ok(())
    }
}

/// Outbox rows (`seq`, `topic`, `envelope`) as events to publish, with their `seq`.
fn read_rows(rows: Vec<sqlx::any::AnyRow>) -> Result<Vec<(i64, Outgoing)>, RelayError> {
    rows.into_iter()
        .map(|row| {
            let seq: i64 = row.try_get("seq")?;
            let envelope = Envelope::from_json(&row.try_get::<String, _>("envelope")?)
                .map_err(|source| RelayError::Corrupt { seq, source })?;
            let topic = row.try_get("topic")?;
            Ok((seq, Outgoing { topic, envelope }))
        })
        .collect()
}

/// Unpublished outbox rows: the relay's backlog.
pub async fn backlog(db: &Db) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(db.pool())
        .await
}
