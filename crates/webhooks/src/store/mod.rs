//! SQL for endpoints, their secrets, the messages they wanted and each delivery's tries.

mod deliveries;
mod endpoints;
mod retention;
mod secrets;
mod sending;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use events::Envelope;
use platform::db::{Db, NewestFirst, Tx};
use platform::sealing::SealingKeys;
use platform::time::{from_millis, to_millis};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::domain::{EventTypeFilter, SigningSecret};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("sealing a signing secret failed: {0}")]
    Sealing(String),
    /// Kept as the cause, so that what decides the answer can tell an unreachable database
    /// from a bug.
    #[error("database error")]
    Db(#[from] sqlx::Error),
}

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    pub event_types: EventTypeFilter,
    pub enabled: bool,
    /// Why the breaker disabled it (None when an operator did, or when it is enabled).
    pub disabled_reason: Option<String>,
    /// Since when every try has failed; None when its last answer was a success.
    pub failing_since: Option<DateTime<Utc>>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What an operator may change on an endpoint; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct EndpointChanges {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<EventTypeFilter>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    /// The event's id: the `webhook-id` every try of this delivery carries.
    pub event_id: Uuid,
    pub event_type: String,
    pub event_time: DateTime<Utc>,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub last_latency_ms: Option<i64>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Delivered,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Attempt {
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub latency_ms: i64,
    pub at: DateTime<Utc>,
}

/// The next delivery due to an endpoint, with the message it sends.
#[derive(Debug, Clone)]
pub struct Due {
    pub delivery_id: Uuid,
    pub event_id: Uuid,
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub body: String,
}

/// How one try ended, as recorded.
#[derive(Debug, Clone)]
pub struct TryRecord {
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: i64,
    pub at: DateTime<Utc>,
}

/// How an endpoint stands, for the metrics.
#[derive(Debug, Clone)]
pub struct EndpointHealth {
    pub id: Uuid,
    pub enabled: bool,
    pub auto_disabled: bool,
    pub failing_since: Option<DateTime<Utc>>,
    pub pending: i64,
}

const ENDPOINT_COLUMNS: &str = "id, url, description, event_types, enabled, disabled_reason, \
                                failing_since, version, created_at, updated_at";
const DELIVERY_COLUMNS: &str = "id, endpoint_id, event_id, event_type, event_time, status, \
                                attempts, next_attempt_at, last_status_code, last_error, \
                                last_latency_ms, delivered_at, created_at";

fn uuid(row: &AnyRow, column: &str) -> Result<Uuid, StoreError> {
    let text: String = row.try_get(column)?;
    Uuid::parse_str(&text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

fn time(row: &AnyRow, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(row.try_get::<Option<i64>, _>(column)?.map(from_millis))
}

fn filter(row: &AnyRow) -> Result<EventTypeFilter, StoreError> {
    let json: String = row.try_get("event_types")?;
    serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(format!("event_types: {e}")))
}

fn read_endpoint(row: &AnyRow) -> Result<Endpoint, StoreError> {
    Ok(Endpoint {
        id: uuid(row, "id")?,
        url: row.try_get("url")?,
        description: row.try_get("description")?,
        event_types: filter(row)?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        disabled_reason: row.try_get("disabled_reason")?,
        failing_since: time(row, "failing_since")?,
        version: row.try_get("version")?,
        created_at: from_millis(row.try_get("created_at")?),
        updated_at: from_millis(row.try_get("updated_at")?),
    })
}

fn read_delivery(row: &AnyRow) -> Result<Delivery, StoreError> {
    let status: String = row.try_get("status")?;
    Ok(Delivery {
        id: uuid(row, "id")?,
        endpoint_id: uuid(row, "endpoint_id")?,
        event_id: uuid(row, "event_id")?,
        event_type: row.try_get("event_type")?,
        event_time: from_millis(row.try_get("event_time")?),
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("status: {status}")))?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: from_millis(row.try_get("next_attempt_at")?),
        last_status_code: row.try_get("last_status_code")?,
        last_error: row.try_get("last_error")?,
        last_latency_ms: row.try_get("last_latency_ms")?,
        delivered_at: time(row, "delivered_at")?,
        created_at: from_millis(row.try_get("created_at")?),
    })
}

fn filter_json(filter: &EventTypeFilter) -> String {
    serde_json::to_string(&filter.patterns()).unwrap_or_else(|_| "[]".to_owned())
}

#[derive(Debug, Clone)]
pub struct WebhookStore {
    db: Db,
    /// What the signing secrets are sealed with at rest.
    secret_keys: Arc<SealingKeys>,
}

impl WebhookStore {
    pub fn new(db: Db, secret_keys: Arc<SealingKeys>) -> Self {
        Self { db, secret_keys }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }
}
