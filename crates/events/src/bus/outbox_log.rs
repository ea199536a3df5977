//! The in-database event bus: each topic is read straight from the outbox of the service that
//! produces it. Nothing is copied, so an event costs its producer one row in the transaction
//! that caused it and nothing more: no relay, no second database.
//!
//! A topic's log is its producer's outbox in commit order: `seq` on SQLite (one writer, so
//! rows commit in `seq` order), `position` on PostgreSQL (given by the [`crate::sequencer`]).
//! One partition per topic; the offset is that number. A consumer group keeps its positions
//! in its own database, in the transaction that handled the events before them, so the bus
//! itself stores nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use platform::db::{Backend, Db, drain, literal_limit};
use sqlx::Row;
use tokio::sync::watch;

use super::{BusError, Delivery, EventBus, Outgoing, Positions, Subscription};
use crate::Envelope;
use crate::outbox::Outbox;

/// Where a topic's events are: the producing service's database and outbox.
#[derive(Debug, Clone)]
pub struct Source {
    pub db: Db,
    pub outbox: Outbox,
}

impl Source {
    /// The column that orders the log.
    pub(crate) fn position_column(&self) -> &'static str {
        match self.db.backend() {
            Backend::Sqlite => "seq",
            Backend::Postgres => "position",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct OutboxLog {
    sources: HashMap<String, Source>,
    /// Per (group, topic), the position its subscription in this process has committed:
    /// what the lag is measured from.
    committed: Arc<Mutex<HashMap<(String, String), i64>>>,
}

fn unavailable(error: sqlx::Error) -> BusError {
    BusError::Unavailable(error.to_string())
}

impl OutboxLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// `topic`'s events are in `source`'s outbox.
    pub fn with_source(mut self, topic: &str, source: Source) -> Self {
        self.sources.insert(topic.to_owned(), source);
        self
    }

    fn source(&self, topic: &str) -> Result<&Source, BusError> {
        self.sources
            .get(topic)
            .ok_or_else(|| BusError::Unavailable(format!("no service produces {topic} here")))
    }

    /// The topics read here, each with where its log is.
    pub fn sources(&self) -> impl Iterator<Item = (&str, &Source)> {
        self.sources
            .iter()
            .map(|(topic, source)| (topic.as_str(), source))
    }

    /// Records in each topic's producer database how far the groups of this process have
    /// read it (what they committed: never further than their own databases hold), so
    /// that the log's retention, in whichever process it runs, keeps what they have not
    /// read. Never moves a group's mark back: two instances of a group may both write it.
    pub async fn mark_readers(&self, now: i64) -> Result<(), BusError> {
        let marks: Vec<((String, String), i64)> = self
            .committed()
            .iter()
            .map(|(key, position)| (key.clone(), *position))
            .collect();
        for ((group, topic), position) in marks {
            let upsert = sqlx::query(
                "INSERT INTO log_readers (consumer_group, topic, position, updated_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (consumer_group, topic) DO UPDATE \
                 SET position = CASE WHEN excluded.position > log_readers.position \
                 THEN excluded.position ELSE log_readers.position END, \
                 updated_at = excluded.updated_at",
            )
            .bind(group)
            .bind(&topic)
            .bind(position)
            .bind(now);
            self.source(&topic)?
                .db
                .write_one("mark log readers", upsert)
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    /// Deletes the events written before `written_before` (milliseconds) that every group
    /// marked since then has read, `batch` rows a transaction; how many. A group that marked
    /// nothing since `written_before` is taken to be gone. Rows not yet in the log (on
    /// PostgreSQL, not numbered yet) and the newest row are never touched.
    pub async fn prune_read(&self, written_before: i64, batch: i64) -> Result<u64, BusError> {
        let mut pruned = 0;
        for (topic, source) in self.sources() {
            let read_by_all: Option<i64> = sqlx::query_scalar(
                "SELECT MIN(position) FROM log_readers WHERE topic = $1 AND updated_at >= $2",
            )
            .bind(topic)
            .bind(written_before)
            .fetch_one(source.db.pool())
            .await
            .map_err(unavailable)?;
            let column = source.position_column();
            // The newest row of the outbox stays, whatever its age: the sequencer numbers
            // on from the highest position there is, and without it would number from 1
            // again, behind every reader.
            let sql = format!(
                "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE topic = $1 \
                 AND {column} <= $2 AND created_at < $3 \
                 AND {column} < (SELECT MAX({column}) FROM outbox) ORDER BY {column} {} {})",
                literal_limit(batch),
                source.db.skip_locked()
            );
            let (sql, upto) = (sql.as_str(), read_by_all.unwrap_or(i64::MAX));
            let delete_batch = move || async move {
                let delete = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                    .bind(topic)
                    .bind(upto)
                    .bind(written_before);
                let deleted = source.db.write_one("prune the log", delete).await?;
                Ok::<_, sqlx::Error>(deleted.rows_affected())
            };
            let deleted = drain(batch, delete_batch).await.map_err(unavailable)?;
            crate::telemetry::count_pruned(topic, deleted);
            pruned += deleted;
        }
        Ok(pruned)
    }

    fn committed(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), i64>> {
        // A panic while holding this lock leaves a map that is still consistent.
        self.committed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl EventBus for OutboxLog {
    /// Writes `events` into their producers' outboxes, as the producers themselves would:
    /// a producer outside this process, or a test playing one.
    async fn publish(&self, events: &[Outgoing]) -> Result<(), BusError> {
        for event in events {
            let source = self.source(&event.topic)?;
            let mut tx = source
                .db
                .begin_as("append events")
                .await
                .map_err(unavailable)?;
            source
                .outbox
                .enqueue(&mut tx, &event.topic, &event.envelope)
                .await
                .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)?;
        }
        Ok(())
    }

    async fn subscribe(
        &self,
        group: &str,
        topics: &[String],
        resume: &Positions,
    ) -> Result<Box<dyn Subscription>, BusError> {
        let readers = topics
            .iter()
            .map(|topic| {
                let source = self.source(topic)?.clone();
                let after = resume.get(&(topic.clone(), 0)).copied().unwrap_or(0);
                // Lag is measured from here until the group commits further.
                self.committed()
                    .insert((group.to_owned(), topic.clone()), after);
                Ok(TopicReader {
                    topic: topic.clone(),
                    readable: source.outbox.readable(),
                    source,
                    after,
                    at_end: false,
                })
            })
            .collect::<Result<Vec<_>, BusError>>()?;
        Ok(Box::new(OutboxSubscription {
            bus: self.clone(),
            group: group.to_owned(),
            readers,
        }))
    }

    fn positions_in_consumer_db(&self) -> bool {
        true
    }

    async fn ping(&self) -> Result<(), BusError> {
        for source in self.sources.values() {
            source.db.ping().await.map_err(unavailable)?;
        }
        Ok(())
    }

    async fn sample_lag(&self, group: &str, topics: &[String]) -> Result<(), BusError> {
        for topic in topics {
            let Some(done) = self
                .committed()
                .get(&(group.to_owned(), topic.clone()))
                .copied()
            else {
                continue;
            };
            let source = self.source(topic)?;
            let column = source.position_column();
            let sql = format!("SELECT COUNT(*) FROM outbox WHERE topic = $1 AND {column} > $2");
            let lag: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(topic)
                .bind(done)
                .fetch_one(source.db.pool())
                .await
                .map_err(unavailable)?;
            crate::telemetry::record_lag(group, topic, None, lag);
        }
        Ok(())
    }
}

struct TopicReader {
    topic: String,
    source: Source,
    readable: watch::Receiver<u64>,
    /// The last position handed out.
    after: i64,
    /// The last read found the end of the log: until new rows are readable, reading again
    /// would find nothing.
    at_end: bool,
}

impl TopicReader {
    /// Up to `max` events after the last one handed out.
    async fn fetch(&mut self, max: usize) -> Result<Vec<Delivery>, BusError> {
        let column = self.source.position_column();
        // The LIMIT is a literal: see `platform::db::literal_limit`.
        let sql = format!(
            "SELECT {column} AS position, event_id, event_key, envelope FROM outbox \
             WHERE topic = $1 AND {column} > $2 ORDER BY {column} {}",
            literal_limit(i64::try_from(max).unwrap_or(i64::MAX))
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&self.topic)
            .bind(self.after)
            .fetch_all(self.source.db.pool())
            .await
            .map_err(unavailable)?;
        let mut deliveries = Vec::with_capacity(rows.len());
        for row in rows {
            let position: i64 = row.try_get("position").map_err(unavailable)?;
            let json: String = row.try_get("envelope").map_err(unavailable)?;
            let (envelope, unreadable) = match Envelope::from_json(&json) {
                Ok(envelope) => (envelope, None),
                Err(error) => {
                    let id: String = row.try_get("event_id").map_err(unavailable)?;
                    let key: String = row.try_get("event_key").map_err(unavailable)?;
                    (unreadable_record(&id, &key, json), Some(error.to_string()))
                }
            };
            self.after = position;
            deliveries.push(Delivery {
                topic: self.topic.clone(),
                partition: 0,
                offset: position,
                envelope,
                unreadable,
            });
        }
        self.at_end = deliveries.len() < max;
        Ok(deliveries)
    }

    /// Whether reading now could find anything: not at the end, or rows became readable
    /// since. (A producer in another process is found by the poll's timeout.)
    fn worth_reading(&self) -> bool {
        !self.at_end || self.readable.has_changed().unwrap_or(true)
    }
}

/// What stands for a row that is not an event, so the consumer can dead-letter it with its
/// raw text rather than stop at it.
fn unreadable_record(id: &str, key: &str, raw: String) -> Envelope {
    let mut envelope = Envelope::new(
        "commercex/outbox",
        "commercex.unreadable",
        key,
        &serde_json::Value::String(raw),
    );
    if let Ok(id) = uuid::Uuid::parse_str(id) {
        envelope.id = id;
    }
    envelope
}

struct OutboxSubscription {
    bus: OutboxLog,
    group: String,
    readers: Vec<TopicReader>,
}

impl OutboxSubscription {
    /// Reads the topics that may have something (all of them when `everything`).
    async fn fetch(&mut self, max: usize, everything: bool) -> Result<Vec<Delivery>, BusError> {
        let mut deliveries = Vec::new();
        for reader in &mut self.readers {
            let room = max.saturating_sub(deliveries.len());
            if room == 0 {
                break;
            }
            if !everything && !reader.worth_reading() {
                continue;
            }
            // Seen now: a commit after this read changes it again and wakes the wait.
            reader.readable.borrow_and_update();
            deliveries.extend(reader.fetch(room).await?);
        }
        Ok(deliveries)
    }
}

#[async_trait]
impl Subscription for OutboxSubscription {
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BusError> {
        let deliveries = self.fetch(max, false).await?;
        if !deliveries.is_empty() {
            return Ok(deliveries);
        }
        // A producer in another process wakes nobody here: the timeout doubles as a poll.
        let woken = {
            let changes = self
                .readers
                .iter_mut()
                .map(|reader| Box::pin(reader.readable.changed()));
            match tokio::time::timeout(wait, futures::future::select_all(changes)).await {
                Ok((_, index, _)) => Some(index),
                Err(_) => None,
            }
        };
        // `changed` marked the change seen: that reader must read all the same.
        if let Some(reader) = woken.and_then(|index| self.readers.get_mut(index)) {
            reader.at_end = false;
        }
        // Woken: read what changed; timed out: read everything, for other processes' rows.
        let timed_out = woken.is_none();
        self.fetch(max, timed_out).await
    }

    async fn commit(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        self.bus.committed().insert(
            (self.group.clone(), delivery.topic.clone()),
            delivery.offset,
        );
        Ok(())
    }
}
