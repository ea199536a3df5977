//! The dead-letter queue of each consumer group, kept in the consuming service's database.
//! An entry keeps the event, the error, the number of attempts and where the event came from.
//! Operators list, inspect, replay and discard entries; a replay is picked up by the running
//! consumer of that group, over HTTP ([`api`]) or with `commercex dlq`.

pub mod api;

use platform::db::{Db, Tx, literal_limit};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::Envelope;
use crate::bus::Delivery;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for an operator.
    Dead,
    /// An operator asked for a replay; the consumer will take it.
    ReplayRequested,
    Replayed,
    Discarded,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dead => "dead",
            Self::ReplayRequested => "replay_requested",
            Self::Replayed => "replayed",
            Self::Discarded => "discarded",
        }
    }

    fn parse(value: &str) -> Self {
        match value {
            "replay_requested" => Self::ReplayRequested,
            "replayed" => Self::Replayed,
            "discarded" => Self::Discarded,
            _ => Self::Dead,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub id: String,
    pub group: String,
    pub event_id: String,
    pub event_type: String,
    pub topic: String,
    pub partition: i64,
    pub offset: i64,
    pub error: String,
    pub attempts: i64,
    pub status: Status,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    pub envelope: Envelope,
}

/// Fields of event data that are credentials, not records: shown to no one.
// A sealed token is safe to show, but an operator has no use for it either; the plain one
// only appears in events from before tokens were sealed.
const SECRET_FIELDS: &[&str] = &["payment_token", "sealed_payment_token"];

impl DeadLetter {
    /// The letter as an operator may see it: its event's credentials (a payment token)
    /// replaced by `[redacted]`. Replaying uses the stored event, not this copy.
    pub fn redacted(mut self) -> Self {
        redact(&mut self.envelope.data);
        self
    }
}

fn redact(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(fields) => {
            for (name, field) in fields.iter_mut() {
                if SECRET_FIELDS.contains(&name.as_str()) {
                    *field = serde_json::Value::from("[redacted]");
                } else {
                    redact(field);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

pub(crate) struct NewDeadLetter<'a> {
    pub group: &'a str,
    pub delivery: &'a Delivery,
    pub error: &'a str,
    pub attempts: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    /// Kept as the cause (not transparent), so that what decides the answer finds the
    /// `sqlx::Error` in the chain and can tell an unreachable database from a bug.
    #[error("database error")]
    Db(#[from] sqlx::Error),
    #[error("dead letter {0} not found")]
    NotFound(String),
    #[error("dead letter {id} is {status:?}; only dead entries can be {action}")]
    WrongStatus {
        id: String,
        status: Status,
        action: &'static str,
    },
    #[error("stored dead letter is unreadable: {0}")]
    Corrupt(String),
}

#[derive(Debug, Clone)]
pub struct DeadLetters {
    db: Db,
}

const COLUMNS: &str = "id, consumer_group, event_id, event_type, topic, partition_no, log_offset, \
                       envelope, error, attempts, status, created_at, updated_at";

impl DeadLetters {
    /// The service database the queue lives in.
    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Stores `letter` inside `tx`, which also moves the group past the event.
    pub(crate) async fn insert(
        &self,
        tx: &mut Tx,
        letter: &NewDeadLetter<'_>,
    ) -> Result<(), sqlx::Error> {
        let now = platform::time::to_millis(platform::time::now());
        let envelope = &letter.delivery.envelope;
        sqlx::query(
            "INSERT INTO dead_letters (id, consumer_group, event_id, event_type, topic, partition_no, \
             log_offset, envelope, error, attempts, status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(letter.group)
        .bind(envelope.id.to_string())
        .bind(&envelope.event_type)
        .bind(&letter.delivery.topic)
        .bind(i64::from(letter.delivery.partition))
        .bind(letter.delivery.offset)
        .bind(envelope.to_json())
        .bind(letter.error)
        .bind(i64::from(letter.attempts))
        .bind(Status::Dead.as_str())
        .bind(now)
        .execute(&mut ***tx)
        .await?;
        Ok(())
    }

    /// Entries waiting for an operator or a replay, oldest first.
    pub async fn list_open(&self) -> Result<Vec<DeadLetter>, DlqError> {
        self.oldest_open(i64::MAX).await
    }

    /// The `limit` oldest entries waiting for an operator or a replay.
    pub async fn oldest_open(&self, limit: i64) -> Result<Vec<DeadLetter>, DlqError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM dead_letters WHERE status IN ('dead', 'replay_requested') ORDER BY created_at, id {}",
            literal_limit(limit)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.db.pool())
            .await?;
        rows.iter().map(read).collect()
    }

    pub async fn get(&self, id: &str) -> Result<DeadLetter, DlqError> {
        let sql = format!("SELECT {COLUMNS} FROM dead_letters WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?
            .ok_or_else(|| DlqError::NotFound(id.to_owned()))?;
        read(&row)
    }

    /// Asks the group's consumer to handle the event again.
    pub async fn request_replay(&self, id: &str) -> Result<(), DlqError> {
        self.transition(id, Status::ReplayRequested, "replayed")
            .await
    }

    /// Gives up on the event for good; the entry is kept as a record.
    pub async fn discard(&self, id: &str) -> Result<(), DlqError> {
        self.transition(id, Status::Discarded, "discarded").await
    }

    async fn transition(&self, id: &str, to: Status, action: &'static str) -> Result<(), DlqError> {
        let update = sqlx::query("UPDATE dead_letters SET status = $1, updated_at = $2 WHERE id = $3 AND status = 'dead'")
            .bind(to.as_str())
            .bind(platform::time::to_millis(platform::time::now()))
            .bind(id);
        let updated = self.db.write_one("update dead letter", update).await?;
        if updated.rows_affected() == 1 {
            return Ok(());
        }
        let current = self.get(id).await?;
        Err(DlqError::WrongStatus {
            id: id.to_owned(),
            status: current.status,
            action,
        })
    }

    pub(crate) async fn replay_requested(&self, group: &str) -> Result<Vec<DeadLetter>, DlqError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM dead_letters WHERE consumer_group = $1 AND status = 'replay_requested' ORDER BY created_at, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(group)
            .fetch_all(self.db.pool())
            .await?;
        rows.iter().map(read).collect()
    }

    pub(crate) async fn mark_replayed(&self, id: &str) -> Result<(), DlqError> {
        let update = sqlx::query(
            "UPDATE dead_letters SET status = 'replayed', updated_at = $1 WHERE id = $2",
        )
        .bind(platform::time::to_millis(platform::time::now()))
        .bind(id);
        self.db.write_one("update dead letter", update).await?;
        Ok(())
    }

    pub(crate) async fn mark_failed_again(
        &self,
        id: &str,
        attempts: u32,
        error: &str,
    ) -> Result<(), DlqError> {
        let update = sqlx::query(
            "UPDATE dead_letters SET status = 'dead', attempts = attempts + $1, error = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(i64::from(attempts))
        .bind(error)
        .bind(platform::time::to_millis(platform::time::now()))
        .bind(id);
        self.db.write_one("update dead letter", update).await?;
        Ok(())
    }
}

fn read(row: &AnyRow) -> Result<DeadLetter, DlqError> {
    let envelope: String = row.try_get("envelope")?;
    Ok(DeadLetter {
        id: row.try_get("id")?,
        group: row.try_get("consumer_group")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        topic: row.try_get("topic")?,
        partition: row.try_get("partition_no")?,
        offset: row.try_get("log_offset")?,
        error: row.try_get("error")?,
        attempts: row.try_get("attempts")?,
        status: Status::parse(&row.try_get::<String, _>("status")?),
        created_at: platform::time::from_millis(row.try_get("created_at")?),
        updated_at: platform::time::from_millis(row.try_get("updated_at")?),
        envelope: Envelope::from_json(&envelope).map_err(|e| DlqError::Corrupt(e.to_string()))?,
    })
}
