//! The admin API over the dead-letter queues: `/api/v1/admin/dlq/{service}`, the same list,
//! show, replay and discard as `commercex dlq`; and how a service's events stand
//! (`/api/v1/admin/events/{service}`: outbox backlog, dead letters, consumer lag). Each service keeps its queue in its own
//! database, so a process answers for the services it runs; the gateway sends each
//! service's path to that service.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{DeadLetter, DeadLetters, DlqError};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use platform::ApiError;
use platform::auth::{Admin, AuthUser};
use platform::http::{Json, Query};
use platform::problem::Problem;
use platform::problem::responses::NotAnAdmin;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

const TAG: &str = "admin";

/// The queues of the services this process runs, by service name.
pub struct Queues(BTreeMap<&'static str, DeadLetters>);

impl Queues {
    pub fn new(queues: impl IntoIterator<Item = (&'static str, DeadLetters)>) -> Self {
        Self(queues.into_iter().collect())
    }

    fn of(&self, service: &str) -> Result<&DeadLetters, ApiError> {
        self.0.get(service).ok_or_else(|| {
            ApiError::NotFound(format!(
                "no dead-letter queue for a service named {service:?}"
            ))
        })
    }
}

pub fn router(queues: Queues) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_dead_letters))
        .routes(routes!(show_dead_letter))
        .routes(routes!(replay_dead_letter))
        .routes(routes!(discard_dead_letter))
        .routes(routes!(event_flow))
        .with_state(Arc::new(queues))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// At most this many entries, oldest first (1 to 1000, default 100).
    pub limit: Option<u32>,
}

impl ListParams {
    fn limit(&self) -> Result<u32, ApiError> {
        match self.limit.unwrap_or(100) {
            limit @ 1..=1000 => Ok(limit),
            _ => Err(ApiError::validation(
                "limit",
                "invalid",
                "limit must be between 1 and 1000",
            )),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterResponse {
    pub id: Uuid,
    /// The service whose consumer gave up on the event.
    pub service: String,
    pub consumer_group: String,
    pub event_id: Uuid,
    pub event_type: String,
    pub topic: String,
    pub partition: i64,
    pub offset: i64,
    /// The last error the handler returned.
    pub error: String,
    pub attempts: i64,
    /// `dead`, `replay_requested`, `replayed` or `discarded`.
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The event as it was delivered (a CloudEvents envelope).
    #[schema(value_type = Object)]
    pub envelope: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterList {
    /// Entries waiting for an operator or a replay, oldest first.
    pub items: Vec<DeadLetterResponse>,
    /// More are waiting than the limit let through.
    pub more: bool,
}

type Params = (String, String);

/// How a service's events stand.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventFlow {
    /// Events in its outbox not yet published.
    pub outbox_backlog: i64,
    /// How long the oldest of them has waited, in seconds.
    pub oldest_unpublished_seconds: f64,
    /// Dead letters waiting for an operator or a replay, per consumer group.
    #[schema(value_type = Object)]
    pub dead_letters: BTreeMap<String, i64>,
    /// Its consumer group's lag, per topic (and partition, on Kafka), as last sampled (every
    /// 5 s) by the process that answers.
    pub consumer_lag: Vec<LagResponse>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LagResponse {
    pub consumer_group: String,
    pub topic: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    /// Events published and not yet handled by the group.
    pub events: i64,
}

/// How a service's events stand: outbox backlog, dead letters, consumer lag (admin).
#[utoipa::path(get, path = "/api/v1/admin/events/{service}", tag = TAG, security(("bearer" = [])),
    params(("service" = String, Path, description = "users, catalog, inventory, orders or payments")),
    responses(
        (status = 200, description = "The figures, read now", body = EventFlow),
        NotAnAdmin,
        (status = 404, description = "No such service", body = Problem, content_type = "application/problem+json"),
    ))]
async fn event_flow(
    State(queues): State<Arc<Queues>>,
    _: Admin,
    Path(service): Path<String>,
) -> Result<Json<EventFlow>, ApiError> {
    let queue = queues.of(&service)?;
    let flow = crate::telemetry::store_flow(queue.db())
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))?;
    Ok(Json(EventFlow {
        outbox_backlog: flow.outbox_backlog,
        oldest_unpublished_seconds: flow.oldest_unpublished_seconds,
        dead_letters: flow.dead_letters,
        consumer_lag: crate::telemetry::lags_of(&service)
            .into_iter()
            .map(|lag| LagResponse {
                consumer_group: lag.group,
                topic: lag.topic,
                partition: lag.partition,
                events: lag.events,
            })
            .collect(),
    }))
}

fn letter_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound("no such dead letter".into()))
}

fn dlq_error(error: DlqError) -> ApiError {
    match error {
        DlqError::NotFound(_) => ApiError::NotFound("no such dead letter".into()),
        wrong @ DlqError::WrongStatus { .. } => ApiError::Conflict(wrong.to_string()),
        other => ApiError::Internal(anyhow::anyhow!(other)),
    }
}

fn response(service: &str, letter: DeadLetter) -> Result<DeadLetterResponse, ApiError> {
    let letter = letter.redacted();
    let corrupt =
        |what: &str| ApiError::Internal(anyhow::anyhow!("dead letter {what} is not a uuid"));
    Ok(DeadLetterResponse {
        id: Uuid::parse_str(&letter.id).map_err(|_| corrupt("id"))?,
        service: service.to_owned(),
        consumer_group: letter.group,
        event_id: Uuid::parse_str(&letter.event_id).map_err(|_| corrupt("event id"))?,
        event_type: letter.event_type,
        topic: letter.topic,
        partition: letter.partition,
        offset: letter.offset,
        error: letter.error,
        attempts: letter.attempts,
        status: letter.status.as_str().to_owned(),
        created_at: letter.created_at,
        updated_at: letter.updated_at,
        envelope: serde_json::to_value(&letter.envelope)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))?,
    })
}

async fn current(
    queue: &DeadLetters,
    service: &str,
    id: Uuid,
) -> Result<DeadLetterResponse, ApiError> {
    let letter = queue.get(&id.to_string()).await.map_err(dlq_error)?;
    response(service, letter)
}

/// Dead letters of a service waiting for an operator (admin).
#[utoipa::path(get, path = "/api/v1/admin/dlq/{service}", tag = TAG, security(("bearer" = [])),
    params(("service" = String, Path, description = "users, catalog, inventory, orders or payments"), ListParams),
    responses(
        (status = 200, description = "Open entries, oldest first", body = DeadLetterList),
        NotAnAdmin,
        (status = 404, description = "No such service", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_dead_letters(
    State(queues): State<Arc<Queues>>,
    _: Admin,
    Path(service): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Json<DeadLetterList>, ApiError> {
    let limit = params.limit()?;
    let queue = queues.of(&service)?;
    // One more than asked tells whether more are waiting.
    let mut letters = queue
        .oldest_open(i64::from(limit) + 1)
        .await
        .map_err(dlq_error)?;
    let more = letters.len() > limit as usize;
    letters.truncate(limit as usize);
    let items = letters
        .into_iter()
        .map(|letter| response(&service, letter))
        .collect::<Result<_, _>>()?;
    Ok(Json(DeadLetterList { items, more }))
}

/// One dead letter with its event (admin).
#[utoipa::path(get, path = "/api/v1/admin/dlq/{service}/{id}", tag = TAG, security(("bearer" = [])),
    params(("service" = String, Path, description = "The consuming service"), ("id" = Uuid, Path, description = "Dead letter id")),
    responses(
        (status = 200, description = "The entry", body = DeadLetterResponse),
        NotAnAdmin,
        (status = 404, description = "No such entry", body = Problem, content_type = "application/problem+json"),
    ))]
async fn show_dead_letter(
    State(queues): State<Arc<Queues>>,
    _: Admin,
    Path((service, id)): Path<Params>,
) -> Result<Json<DeadLetterResponse>, ApiError> {
    let queue = queues.of(&service)?;
    Ok(Json(current(queue, &service, letter_id(&id)?).await?))
}

/// Hand a dead event back to its consumer (admin); the running consumer handles it again.
#[utoipa::path(post, path = "/api/v1/admin/dlq/{service}/{id}/replay", tag = TAG, security(("bearer" = [])),
    params(("service" = String, Path, description = "The consuming service"), ("id" = Uuid, Path, description = "Dead letter id")),
    responses(
        (status = 202, description = "Replay requested", body = DeadLetterResponse),
        NotAnAdmin,
        (status = 404, description = "No such entry", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not dead (already replayed or discarded)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn replay_dead_letter(
    State(queues): State<Arc<Queues>>,
    Admin(admin): Admin,
    Path((service, id)): Path<Params>,
) -> Result<(StatusCode, Json<DeadLetterResponse>), ApiError> {
    let letter = decide(&queues, &admin, &service, &id, Decision::Replay).await?;
    Ok((StatusCode::ACCEPTED, Json(letter)))
}

/// Give up on a dead event for good (admin); the entry stays as a record.
#[utoipa::path(post, path = "/api/v1/admin/dlq/{service}/{id}/discard", tag = TAG, security(("bearer" = [])),
    params(("service" = String, Path, description = "The consuming service"), ("id" = Uuid, Path, description = "Dead letter id")),
    responses(
        (status = 200, description = "Discarded", body = DeadLetterResponse),
        NotAnAdmin,
        (status = 404, description = "No such entry", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not dead (already replayed or discarded)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn discard_dead_letter(
    State(queues): State<Arc<Queues>>,
    Admin(admin): Admin,
    Path((service, id)): Path<Params>,
) -> Result<Json<DeadLetterResponse>, ApiError> {
    let letter = decide(&queues, &admin, &service, &id, Decision::Discard).await?;
    Ok(Json(letter))
}

#[derive(Clone, Copy)]
enum Decision {
    Replay,
    Discard,
}

/// An admin's decision on a dead letter, logged; the entry as it now stands.
async fn decide(
    queues: &Queues,
    admin: &AuthUser,
    service: &str,
    raw_id: &str,
    decision: Decision,
) -> Result<DeadLetterResponse, ApiError> {
    let queue = queues.of(service)?;
    let id = letter_id(raw_id)?;
    let (done, what) = match decision {
        Decision::Replay => (
            queue.request_replay(&id.to_string()).await,
            "dead letter replay requested",
        ),
        Decision::Discard => (
            queue.discard(&id.to_string()).await,
            "dead letter discarded",
        ),
    };
    done.map_err(dlq_error)?;
    tracing::info!(dead_letter_id = %id, %service, admin_id = %admin.id, "{what}");
    current(queue, service, id).await
}
