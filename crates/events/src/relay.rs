//! The relay: moves committed outbox rows to a bus outside the database (Kafka), oldest
//! first. A row is marked published only after the bus has accepted it, so a crash between
//! the two republishes (consumers dedup by event id) and never loses an event. (With the
//! in-database bus there is nothing to move: see [`crate::outbox::Handoff`].)

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

    /// Publishes the oldest unpublished rows; returns how many.
    pub async fn publish_batch(&self) -> Result<usize, RelayError> {
        // On PostgreSQL several replicas may run a relay on one outbox: row locks (FOR
        // UPDATE) make a second one wait instead of publishing the same rows out of order.
        // An SQLite file has exactly one relay, in the process that owns it, so it reads
        // without a transaction and does not hold the database's single write lock while it
        // publishes (requests would queue behind it); it marks in a write transaction of its
        // own, queued like every other.
        let (mut tx, lock) = match self.db.backend() {
            Backend::Postgres => (Some(self.db.begin_as("relay outbox").await?), " FOR UPDATE"),
            Backend::Sqlite => (None, ""),
        };
        let sql = format!(
            "SELECT seq, topic, envelope FROM outbox WHERE published_at IS NULL ORDER BY seq {}{lock}",
            literal_limit(self.settings.batch_size)
        );
        let select = sqlx::query(sqlx::AssertSqlSafe(sql));
        let rows = match tx.as_mut() {
            Some(tx) => select.fetch_all(&mut ***tx).await?,
            None => select.fetch_all(self.db.pool()).await?,
        };
        if rows.is_empty() {
            return Ok(0);
        }
        let mut seqs = Vec::with_capacity(rows.len());
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            let seq: i64 = row.try_get("seq")?;
            let envelope = Envelope::from_json(&row.try_get::<String, _>("envelope")?)
                .map_err(|source| RelayError::Corrupt { seq, source })?;
            seqs.push(seq);
            events.push(Outgoing {
                topic: row.try_get("topic")?,
                envelope,
            });
        }
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
        let placeholders: Vec<String> = (0..seqs.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "UPDATE outbox SET published_at = $1 WHERE seq IN ({})",
            placeholders.join(", ")
        );
        let mut update = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(platform::time::to_millis(platform::time::now()));
        for seq in &seqs {
            update = update.bind(*seq);
        }
        let mut tx = match tx {
            Some(tx) => tx,
            None => self.db.begin_as("mark outbox published").await?,
        };
        update.execute(&mut **tx).await?;
        tx.commit().await?;
        tracing::debug!(
            schema = self.db.schema(),
            count = seqs.len(),
            "relayed events"
        );
        Ok(seqs.len())
    }
}

/// Unpublished outbox rows: the relay's backlog.
pub async fn backlog(db: &Db) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(db.pool())
        .await
}
