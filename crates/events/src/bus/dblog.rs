//! The embedded event bus: an append-only `event_log` table in its own database (SQLite file
//! or PostgreSQL schema), read by consumer groups at offsets kept in `consumer_offsets`.
//! One partition per topic: the log position is the offset.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use platform::db::{Backend, Db, literal_limit};
use sqlx::Row;
use tokio::sync::Notify;

use super::{BusError, Delivery, EventBus, Outgoing, Subscription};
use crate::Envelope;

#[derive(Debug, Clone)]
pub struct DbLogBus {
    db: Db,
    appended: Arc<Notify>,
}

fn unavailable(error: sqlx::Error) -> BusError {
    BusError::Unavailable(error.to_string())
}

impl DbLogBus {
    /// `db` must have had [`crate::bus_migrations`] applied.
    pub fn new(db: Db) -> Self {
        Self {
            db,
            appended: Arc::new(Notify::new()),
        }
    }
}

#[async_trait]
impl EventBus for DbLogBus {
    /// One log, one order: a subscription reads every topic in publication order.
    fn orders_across_topics(&self) -> bool {
        true
    }

    async fn publish(&self, events: &[Outgoing]) -> Result<(), BusError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self
            .db
            .begin_as("append events")
            .await
            .map_err(unavailable)?;
        if self.db.backend() == Backend::Postgres {
            // Positions come from a sequence, so two concurrent publishers could commit out of
            // position order and a reader could skip the lower one. Serialise appends.
            sqlx::query("LOCK TABLE event_log IN EXCLUSIVE MODE")
                .execute(&mut **tx)
                .await
                .map_err(unavailable)?;
        }
        let now = platform::time::to_millis(platform::time::now());
        for event in events {
            sqlx::query(
                "INSERT INTO event_log (topic, event_key, event_id, envelope, appended_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&event.topic)
            .bind(&event.envelope.subject)
            .bind(event.envelope.id.to_string())
            .bind(event.envelope.to_json())
            .bind(now)
            .execute(&mut **tx)
            .await
            .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        self.appended.notify_waiters();
        Ok(())
    }

    async fn subscribe(
        &self,
        group: &str,
        topics: &[String],
    ) -> Result<Box<dyn Subscription>, BusError> {
        let mut cursors = HashMap::new();
        for topic in topics {
            let committed: Option<i64> = sqlx::query_scalar(
                "SELECT position FROM consumer_offsets WHERE consumer_group = $1 AND topic = $2",
            )
            .bind(group)
            .bind(topic)
            .fetch_optional(self.db.pool())
            .await
            .map_err(unavailable)?;
            cursors.insert(topic.clone(), committed.unwrap_or(0));
        }
        let scanned = cursors.values().copied().min().unwrap_or(0);
        Ok(Box::new(DbLogSubscription {
            bus: self.clone(),
            group: group.to_owned(),
            cursors,
            scanned,
        }))
    }

    async fn ping(&self) -> Result<(), BusError> {
        self.db.ping().await.map_err(unavailable)
    }

    async fn sample_lag(&self, group: &str, topics: &[String]) -> Result<(), BusError> {
        for topic in topics {
            let lag: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM event_log WHERE topic = $1 AND position > COALESCE(\
                 (SELECT position FROM consumer_offsets WHERE consumer_group = $2 AND topic = $1), 0)",
            )
            .bind(topic)
            .bind(group)
            .fetch_one(self.db.pool())
            .await
            .map_err(unavailable)?;
            metrics::gauge!(
                "commercex_consumer_lag",
                "consumer_group" => group.to_owned(),
                "topic" => topic.clone(),
            )
            .set(lag as f64);
        }
        Ok(())
    }
}

struct DbLogSubscription {
    bus: DbLogBus,
    group: String,
    /// Per topic, the last position handed out (starts at the committed offset).
    cursors: HashMap<String, i64>,
    /// The log has been read up to here: every later row is new to every subscribed topic's
    /// cursor or not ours. Starts at the lowest cursor.
    scanned: i64,
}

impl DbLogSubscription {
    /// The next events of the subscribed topics in log order. One query over all topics, so
    /// that a batch cut short by `max` never lets a later event of one topic overtake an
    /// earlier event of another (a consumer may rely on order.placed arriving before the
    /// inventory.reserved it caused).
    async fn fetch(&mut self, max: usize) -> Result<Vec<Delivery>, BusError> {
        let from = self.scanned;
        let topics: Vec<String> = self.cursors.keys().cloned().collect();
        let placeholders: Vec<String> = (0..topics.len()).map(|i| format!("${}", i + 2)).collect();
        // The LIMIT is a literal: see `platform::db::literal_limit`.
        let sql = format!(
            "SELECT position, topic, envelope FROM event_log WHERE position > $1 AND topic IN ({}) \
             ORDER BY position {}",
            placeholders.join(", "),
            literal_limit(i64::try_from(max).unwrap_or(i64::MAX)),
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(from);
        for topic in &topics {
            query = query.bind(topic);
        }
        let rows = query
            .fetch_all(self.bus.db.pool())
            .await
            .map_err(unavailable)?;
        let mut deliveries = Vec::with_capacity(rows.len());
        for row in rows {
            let position: i64 = row.try_get("position").map_err(unavailable)?;
            let topic: String = row.try_get("topic").map_err(unavailable)?;
            self.scanned = position;
            let Some(cursor) = self.cursors.get_mut(&topic) else {
                continue;
            };
            // Topics resume from their own committed offsets; skip what this one has seen.
            if position <= *cursor {
                continue;
            }
            *cursor = position;
            let json: String = row.try_get("envelope").map_err(unavailable)?;
            let envelope = Envelope::from_json(&json)
                .map_err(|e| BusError::Corrupt(format!("{topic}@{position}: {e}")))?;
            deliveries.push(Delivery {
                topic,
                partition: 0,
                offset: position,
                envelope,
            });
        }
        Ok(deliveries)
    }
}

#[async_trait]
impl Subscription for DbLogSubscription {
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BusError> {
        let appended = self.bus.appended.clone();
        // Register interest before reading, so an append between the read and the wait
        // still wakes us.
        let notified = appended.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let deliveries = self.fetch(max).await?;
        if !deliveries.is_empty() {
            return Ok(deliveries);
        }
        // Another process may append to the same log: the timeout doubles as a poll.
        let _ = tokio::time::timeout(wait, notified).await;
        self.fetch(max).await
    }

    async fn commit(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        sqlx::query(
            "INSERT INTO consumer_offsets (consumer_group, topic, position) VALUES ($1, $2, $3) \
             ON CONFLICT (consumer_group, topic) DO UPDATE SET position = excluded.position",
        )
        .bind(&self.group)
        .bind(&delivery.topic)
        .bind(delivery.offset)
        .execute(self.bus.db.pool())
        .await
        .map_err(unavailable)?;
        Ok(())
    }
}
