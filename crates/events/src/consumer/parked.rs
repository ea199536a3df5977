//! Events parked until an event they need has been handled: the table and, shared by the
//! group's readers in this process, which subjects have parked events (so the common case,
//! none, costs no query).

use std::collections::HashMap;
use std::sync::Mutex;

use platform::db::{Db, Tx};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Envelope;
use crate::bus::Delivery;

/// A parked event, as it came.
pub(crate) struct ParkedEvent {
    pub delivery: Delivery,
    /// Milliseconds since the epoch.
    pub parked_at: i64,
}

pub(crate) struct Parked {
    group: String,
    /// Parked events per subject, as far as this process knows (another instance of the
    /// group may park more; the periodic sweep finds those).
    subjects: Mutex<HashMap<String, usize>>,
}

const COLUMNS: &str = "event_id, topic, partition_no, log_offset, envelope, parked_at";

impl Parked {
    /// Nothing known to be parked (until `load`).
    pub fn empty(group: &str) -> Self {
        Self {
            group: group.to_owned(),
            subjects: Mutex::new(HashMap::new()),
        }
    }

    pub async fn load(db: &Db, group: &str) -> Result<Self, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT subject, COUNT(*) AS n FROM parked_events WHERE consumer_group = $1 GROUP BY subject",
        )
        .bind(group)
        .fetch_all(db.pool())
        .await?;
        let mut subjects = HashMap::new();
        for row in rows {
            let n: i64 = row.try_get("n")?;
            subjects.insert(row.try_get("subject")?, usize::try_from(n).unwrap_or(0));
        }
        Ok(Self {
            group: group.to_owned(),
            subjects: Mutex::new(subjects),
        })
    }

    fn subjects(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        // A panic while holding this lock leaves a map that is still consistent.
        self.subjects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether events about `subject` wait here.
    pub fn waiting_on(&self, subject: &str) -> bool {
        self.subjects().contains_key(subject)
    }

    /// Parks `delivery` inside `tx`; `Self::noted` once it commits.
    pub async fn park(
        &self,
        tx: &mut Tx,
        delivery: &Delivery,
        reason: &str,
    ) -> Result<(), sqlx::Error> {
        let envelope = &delivery.envelope;
        sqlx::query(
            "INSERT INTO parked_events (consumer_group, event_id, subject, topic, partition_no, \
             log_offset, envelope, reason, parked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (consumer_group, event_id) DO NOTHING",
        )
        .bind(&self.group)
        .bind(envelope.id.to_string())
        .bind(&envelope.subject)
        .bind(&delivery.topic)
        .bind(i64::from(delivery.partition))
        .bind(delivery.offset)
        .bind(envelope.to_json())
        .bind(reason)
        .bind(platform::time::to_millis(platform::time::now()))
        .execute(&mut ***tx)
        .await?;
        Ok(())
    }

    /// The events parked on `subject`, read inside `tx`.
    pub async fn on_subject(
        &self,
        tx: &mut Tx,
        subject: &str,
    ) -> Result<Vec<ParkedEvent>, sqlx::Error> {
        let sql = format!(
            "SELECT {COLUMNS} FROM parked_events WHERE consumer_group = $1 AND subject = $2 ORDER BY parked_at, event_id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&self.group)
            .bind(subject)
            .fetch_all(&mut ***tx)
            .await?;
        rows.iter().map(read).collect()
    }

    /// Every event parked by the group, oldest first.
    pub async fn all(&self, db: &Db) -> Result<Vec<ParkedEvent>, sqlx::Error> {
        let sql = format!(
            "SELECT {COLUMNS} FROM parked_events WHERE consumer_group = $1 ORDER BY parked_at, event_id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&self.group)
            .fetch_all(db.pool())
            .await?;
        rows.iter().map(read).collect()
    }

    /// Takes `event` out of the parking inside `tx` (handled, or dead-lettered); `false` if
    /// it was not there (any more).
    pub async fn release(&self, tx: &mut Tx, event: &Envelope) -> Result<bool, sqlx::Error> {
        let done =
            sqlx::query("DELETE FROM parked_events WHERE consumer_group = $1 AND event_id = $2")
                .bind(&self.group)
                .bind(event.id.to_string())
                .execute(&mut ***tx)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// What a committed transaction parked (`+1`) and released (`-1`), per subject.
    pub fn noted(&self, changes: &[(String, i64)]) {
        let mut subjects = self.subjects();
        for (subject, change) in changes {
            let count = subjects.entry(subject.clone()).or_default();
            *count = usize::try_from(i64::try_from(*count).unwrap_or(0) + change).unwrap_or(0);
            if *count == 0 {
                subjects.remove(subject);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.subjects().is_empty()
    }
}

fn read(row: &AnyRow) -> Result<ParkedEvent, sqlx::Error> {
    let envelope: String = row.try_get("envelope")?;
    let partition: i64 = row.try_get("partition_no")?;
    Ok(ParkedEvent {
        delivery: Delivery {
            topic: row.try_get("topic")?,
            partition: i32::try_from(partition).unwrap_or(i32::MAX),
            offset: row.try_get("log_offset")?,
            envelope: Envelope::from_json(&envelope)
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            unreadable: None,
        },
        parked_at: row.try_get("parked_at")?,
    })
}
