//! The sequencer: on PostgreSQL, makes committed outbox rows readable as a log.
//!
//! Readers of a log must never see a later entry before an earlier one, or they would move
//! past the earlier one for good. `seq` cannot serve: PostgreSQL hands it out at insert, and
//! concurrent transactions commit in any order, so `seq` 8 can become visible after `seq` 9.
//! The sequencer gives committed rows a `position` instead, one batch per transaction, under
//! an advisory lock held to its commit: batches are numbered one after another, every number
//! above the last, and each batch commits before the next starts, so positions become visible
//! in order. Replicas of a service may each run one; the lock makes them take turns.

use std::time::Duration;

use platform::db::Db;
use tokio_util::sync::CancellationToken;

use crate::outbox::{Handoff, Outbox};

#[derive(Debug, Clone, Copy)]
pub struct SequencerSettings {
    pub batch_size: i64,
    /// How often to look without a wake-up (rows committed by another replica).
    pub poll_interval: Duration,
    /// Pause after a failure (the database is away), before trying again.
    pub retry_delay: Duration,
}

impl Default for SequencerSettings {
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval: Duration::from_millis(500),
            retry_delay: Duration::from_secs(1),
        }
    }
}

pub struct Sequencer {
    db: Db,
    outbox: Outbox,
    settings: SequencerSettings,
}

impl Sequencer {
    pub fn new(db: Db, outbox: Outbox, settings: SequencerSettings) -> Self {
        Self {
            db,
            outbox,
            settings,
        }
    }

    /// Numbers rows as they are committed until `cancel` fires, then numbers what is
    /// committed by then.
    pub async fn run(self, cancel: CancellationToken) {
        // Only PostgreSQL's outboxes need numbering (see `Handoff`).
        if self.outbox.handoff() != Handoff::Sequenced {
            return;
        }
        let mut wake = self.outbox.committed();
        while !cancel.is_cancelled() {
            let pause = match self.number_batch().await {
                Ok(n) if n == self.settings.batch_size => continue,
                Ok(_) => self.settings.poll_interval,
                Err(error) => {
                    tracing::warn!(schema = self.db.schema(), %error, "cannot sequence the outbox; will retry");
                    self.settings.retry_delay
                }
            };
            tokio::select! {
                () = cancel.cancelled() => {}
                _ = wake.changed() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
        while let Ok(n) = self.number_batch().await {
            if n < self.settings.batch_size {
                break;
            }
        }
    }

    /// Numbers the oldest unnumbered rows; returns how many.
    pub async fn number_batch(&self) -> Result<i64, sqlx::Error> {
        // A look first: most wake-ups of an idle poll find nothing, and need no transaction.
        let waiting: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM outbox WHERE position IS NULL)")
                .fetch_one(self.db.pool())
                .await?;
        if !waiting {
            return Ok(0);
        }
        let mut tx = self.db.begin_as("sequence outbox").await?;
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtext('commercex.outbox.' || current_schema()))",
        )
        .execute(&mut **tx)
        .await?;
        let sql = format!(
            "WITH top AS (SELECT COALESCE(MAX(position), 0) AS position FROM outbox), \
             next AS (SELECT seq, row_number() OVER (ORDER BY seq) AS n FROM outbox \
                      WHERE position IS NULL ORDER BY seq {}) \
             UPDATE outbox SET position = top.position + next.n, published_at = $1 \
             FROM top, next WHERE outbox.seq = next.seq",
            platform::db::literal_limit(self.settings.batch_size)
        );
        let numbered = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(platform::time::to_millis(platform::time::now()))
            .execute(&mut **tx)
            .await?
            .rows_affected();
        if numbered == 0 {
            tx.rollback().await?;
            return Ok(0);
        }
        let outbox = self.outbox.clone();
        tx.on_commit(move || outbox.now_readable());
        tx.commit().await?;
        Ok(i64::try_from(numbered).unwrap_or(i64::MAX))
    }
}
