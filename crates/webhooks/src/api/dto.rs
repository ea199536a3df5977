use chrono::{DateTime, Utc};
use platform::{ApiError, FieldError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::app::NewEndpoint;
use crate::domain::{DestinationPolicy, EventTypeFilter};
use crate::store::{Attempt, Delivery, DeliveryStatus, Endpoint, EndpointChanges};

const MAX_DESCRIPTION: usize = 500;

/// The event types an endpoint may subscribe to: the published ones.
fn known_types() -> Vec<&'static str> {
    events::contract::published()
        .iter()
        .map(|p| p.event_type)
        .collect()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointRequest {
    /// Where deliveries are posted: https (http only to this machine, in development).
    #[schema(example = "https://hooks.example.com/commercex")]
    pub url: String,
    /// Event types, exact or a prefix ending in `*`.
    #[schema(example = json!(["commercex.order.*", "commercex.payment.refunded.v1"]))]
    pub event_types: Vec<String>,
    #[serde(default)]
    #[schema(example = "Order emails")]
    pub description: String,
    /// Whether it receives events now (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub description: Option<String>,
    /// Enabling an endpoint the breaker disabled sends what waited for it, in order.
    pub enabled: Option<bool>,
}

/// Collects every field's problem, so that one answer names them all.
#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn check<T, E: std::fmt::Display>(&mut self, field: &str, result: Result<T, E>) -> Option<T> {
        result
            .map_err(|e| {
                self.0
                    .push(FieldError::new(field, "invalid", e.to_string()))
            })
            .ok()
    }

    fn finish<T>(self, value: T) -> Result<T, ApiError> {
        match self.0.is_empty() {
            true => Ok(value),
            false => Err(ApiError::Validation(self.0)),
        }
    }
}

fn description(text: &str) -> Result<String, String> {
    match text.chars().count() {
        n if n > MAX_DESCRIPTION => Err(format!("at most {MAX_DESCRIPTION} characters")),
        _ if text.chars().any(char::is_control) => Err("no control characters".into()),
        _ => Ok(text.trim().to_owned()),
    }
}

impl EndpointRequest {
    pub fn parse(self, policy: &DestinationPolicy) -> Result<NewEndpoint, ApiError> {
        let mut problems = Problems::default();
        let url = problems.check("url", policy.check_url(&self.url));
        let types = problems.check(
            "event_types",
            EventTypeFilter::parse(&self.event_types, &known_types()),
        );
        let description = problems.check("description", description(&self.description));
        let new = match (url, types, description) {
            (Some(url), Some(event_types), Some(description)) => Some(NewEndpoint {
                url: url.to_string(),
                description,
                event_types,
                enabled: self.enabled.unwrap_or(true),
            }),
            _ => None,
        };
        problems
            .finish(new)?
            .ok_or_else(|| ApiError::BadRequest("invalid endpoint".into()))
    }
}

impl EndpointPatch {
    pub fn parse(self, policy: &DestinationPolicy) -> Result<EndpointChanges, ApiError> {
        let mut problems = Problems::default();
        let changes = EndpointChanges {
            url: self
                .url
                .and_then(|url| problems.check("url", policy.check_url(&url)))
                .map(|url| url.to_string()),
            event_types: self.event_types.and_then(|types| {
                problems.check(
                    "event_types",
                    EventTypeFilter::parse(&types, &known_types()),
                )
            }),
            description: self
                .description
                .and_then(|text| problems.check("description", description(&text))),
            enabled: self.enabled,
        };
        problems.finish(changes)
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointResponse {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// `healthy`, `failing` (its last try failed: deliveries wait for the backoff),
    /// `disabled` (by the breaker: see `disabled_reason`) or `paused` (by an operator).
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// Since when every try has failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<DateTime<Utc>>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Endpoint> for EndpointResponse {
    fn from(e: Endpoint) -> Self {
        let state = match (e.enabled, &e.disabled_reason, e.failing_since) {
            (true, _, None) => "healthy",
            (true, _, Some(_)) => "failing",
            (false, Some(_), _) => "disabled",
            (false, None, _) => "paused",
        };
        Self {
            id: e.id,
            url: e.url,
            description: e.description,
            event_types: e.event_types.patterns(),
            enabled: e.enabled,
            state: state.to_owned(),
            disabled_reason: e.disabled_reason,
            failing_since: e.failing_since,
            version: e.version,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointList {
    pub items: Vec<EndpointResponse>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedEndpoint {
    pub endpoint: EndpointResponse,
    /// The signing secret (`whsec_...`), shown this once: give it to the receiver.
    pub secret: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// How long the secrets in use now keep signing beside the new one, in seconds
    /// (default 86400, at most 604800).
    pub overlap_seconds: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedSecret {
    /// The new signing secret, shown this once.
    pub secret: String,
    /// Until when the previous secrets sign too.
    pub previous_valid_until: DateTime<Utc>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    /// `pending` or `delivered`.
    pub status: Option<String>,
    /// At most this many, newest first (1 to 200, default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the page before.
    pub cursor: Option<Uuid>,
}

impl DeliveryParams {
    pub fn parse(&self) -> Result<(Option<DeliveryStatus>, u32), ApiError> {
        let mut problems = Problems::default();
        let status = self.status.as_deref().and_then(|s| {
            problems.check(
                "status",
                DeliveryStatus::parse(s).ok_or("pending or delivered"),
            )
        });
        let limit = problems.check(
            "limit",
            match self.limit.unwrap_or(50) {
                limit @ 1..=200 => Ok(limit),
                _ => Err("between 1 and 200"),
            },
        );
        problems.finish((status, limit.unwrap_or(50)))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryResponse {
    pub id: Uuid,
    /// The event's id, sent as `webhook-id` by every try: receivers deduplicate on it.
    pub webhook_id: Uuid,
    pub event_type: String,
    pub event_time: DateTime<Utc>,
    /// `pending` or `delivered`.
    pub status: String,
    pub attempts: i64,
    /// When it goes next (pending ones).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status_code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_latency_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<Delivery> for DeliveryResponse {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id,
            webhook_id: d.event_id,
            event_type: d.event_type,
            event_time: d.event_time,
            status: d.status.as_str().to_owned(),
            attempts: d.attempts,
            next_attempt_at: (d.status == DeliveryStatus::Pending).then_some(d.next_attempt_at),
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            last_latency_ms: d.last_latency_ms,
            delivered_at: d.delivered_at,
            created_at: d.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    pub items: Vec<DeliveryResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryAttempt {
    /// The endpoint's HTTP status; absent when it gave none (no connection, a timeout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub latency_ms: i64,
    pub at: DateTime<Utc>,
}

impl From<Attempt> for DeliveryAttempt {
    fn from(a: Attempt) -> Self {
        Self {
            status_code: a.status_code,
            error: a.error,
            latency_ms: a.latency_ms,
            at: a.at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDetail {
    pub delivery: DeliveryResponse,
    /// Every try, oldest first.
    pub attempts: Vec<DeliveryAttempt>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaySinceRequest {
    /// Every event recorded at or after this time, matching the endpoint's types, goes again.
    pub since: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayQueued {
    pub queued: u64,
    /// More events than one replay takes (10,000) matched: replay again from the last one's
    /// time.
    pub more: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TestQueued {
    /// The test event's id: its delivery's `webhook-id`.
    pub webhook_id: Uuid,
}
