//! Retention of what the event machinery keeps: the inbox, and the in-database bus's log.
//!
//! The inbox is what makes a redelivered event a duplicate, and it is only
//! needed for as long as the bus could deliver that event again. Kept for ever, it would
//! grow by a row per event and consumer group (about fourteen rows per order) until the disk
//! is full. Rows older than the retention are pruned, a batch at a time, each batch a
//! write transaction of its own so that requests and consumers are never held up behind
//! one long delete.
//!
//! The retention must outlast every way an event can come again: on Kafka, a group whose
//! offsets expired (`offsets.retention.minutes`) reads its topics again from the oldest
//! record kept, and a record is kept for the topic's `retention.ms` and up to a segment's
//! age (`segment.ms`) beyond. The default, 14 days, is Kafka's defaults of both (7 + 7).

use std::time::Duration;

use chrono::{DateTime, Utc};
use platform::db::{Db, drain, literal_limit};
use tokio_util::sync::CancellationToken;

use crate::bus::BusError;
use crate::bus::outbox_log::OutboxLog;

/// Rows deleted per transaction.
const BATCH: i64 = 1_000;

/// How long rows are kept, and how often the old ones are looked for.
#[derive(Debug, Clone, Copy)]
pub struct RetentionSettings {
    pub keep: Duration,
    pub every: Duration,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            keep: Duration::from_secs(14 * 24 * 60 * 60),
            every: platform::periodic::PRUNE_EVERY,
        }
    }
}

/// Prunes one service database's inbox.
pub struct InboxRetention {
    db: Db,
    settings: RetentionSettings,
}

impl InboxRetention {
    pub fn new(db: Db, settings: RetentionSettings) -> Self {
        Self { db, settings }
    }

    /// Prunes every `every` until `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) {
        platform::periodic::prune_every(
            &format!("inbox of {}", self.db.schema()),
            self.settings.every,
            &cancel,
            |now| self.prune(now),
        )
        .await;
    }

    /// Deletes the inbox rows handled before `now` minus the retention; returns how many.
    pub async fn prune(&self, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
        let cutoff = platform::time::millis_before(now, self.settings.keep);
        // A bounded batch found through the `handled_at` index; row values, which both
        // databases take, name the rows by their primary key.
        let sql = format!(
            "DELETE FROM inbox WHERE (consumer_group, event_id) IN \
             (SELECT consumer_group, event_id FROM inbox WHERE handled_at < $1 {} {})",
            literal_limit(BATCH),
            self.db.skip_locked()
        );
        drain(BATCH, || self.prune_batch(&sql, cutoff)).await
    }

    async fn prune_batch(&self, sql: &str, cutoff: i64) -> Result<u64, sqlx::Error> {
        let delete = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).bind(cutoff);
        let deleted = self
            .db
            .write_one("prune inbox", delete)
            .await?
            .rows_affected();
        metrics::counter!("commercex_inbox_pruned_total", "db_namespace" => self.db.schema().to_owned())
            .increment(deleted);
        Ok(deleted)
    }
}

/// With the in-database bus, the log (each producer's outbox) keeps an event for the
/// retention after it was written, and for as long after as a consumer group that still
/// reads the topic has not read it: the readers mark how far they have come in the
/// producer's database (`log_readers`), and a group that marked nothing for a whole
/// retention is taken to be gone (as Kafka forgets a group's offsets), so that a group
/// retired for good does not keep the log for ever.
pub struct LogRetention {
    log: OutboxLog,
    settings: RetentionSettings,
}

impl LogRetention {
    pub fn new(log: OutboxLog, settings: RetentionSettings) -> Self {
        Self { log, settings }
    }

    /// Marks this process's readers and prunes every `every` until `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) {
        platform::periodic::prune_every("event log", self.settings.every, &cancel, |now| {
            self.prune(now)
        })
        .await;
    }

    /// Marks how far this process's groups have read, then deletes the events written
    /// more than the retention before `now` that every group has read; how many.
    pub async fn prune(&self, now: DateTime<Utc>) -> Result<u64, BusError> {
        self.log
            .mark_readers(platform::time::to_millis(now))
            .await?;
        let written_before = platform::time::millis_before(now, self.settings.keep);
        self.log.prune_read(written_before, BATCH).await
    }
}
