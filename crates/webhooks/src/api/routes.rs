use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use platform::ApiError;
use platform::auth::Admin;
use platform::http::{Json, Query};
use platform::problem::Problem;
use platform::problem::responses::{InvalidFields, NotAnAdmin};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::dto::{
    CreatedEndpoint, DeliveryDetail, DeliveryPage, DeliveryParams, DeliveryResponse, EndpointList,
    EndpointPatch, EndpointRequest, EndpointResponse, ReplayQueued, ReplaySinceRequest,
    RotateRequest, RotatedSecret, TestQueued,
};
use crate::app::Webhooks;
use crate::domain::DestinationPolicy;

const TAG: &str = "webhooks";
const DEFAULT_OVERLAP: Duration = Duration::from_secs(86_400);

struct ApiState {
    webhooks: Arc<Webhooks>,
    destinations: DestinationPolicy,
}

type Shared = State<Arc<ApiState>>;

pub fn router(webhooks: Arc<Webhooks>, destinations: &DestinationPolicy) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_endpoints, create_endpoint))
        .routes(routes!(show_endpoint, update_endpoint, delete_endpoint))
        .routes(routes!(rotate_secret))
        .routes(routes!(list_deliveries))
        .routes(routes!(show_delivery))
        .routes(routes!(replay_delivery))
        .routes(routes!(replay_since))
        .routes(routes!(send_test))
        .with_state(Arc::new(ApiState {
            webhooks,
            destinations: destinations.clone(),
        }))
}

/// Ids in paths that are not UUIDs name nothing: a 404 like any unknown id.
fn id(raw: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound(format!("no such {what}")))
}

/// Every webhook endpoint (admin).
#[utoipa::path(get, path = "/api/v1/admin/webhooks/endpoints", tag = TAG, security(("bearer" = [])),
    responses((status = 200, description = "The endpoints, oldest first", body = EndpointList), NotAnAdmin))]
async fn list_endpoints(State(state): Shared, _: Admin) -> Result<Json<EndpointList>, ApiError> {
    let endpoints = state.webhooks.endpoints().await?;
    Ok(Json(EndpointList {
        items: endpoints.into_iter().map(Into::into).collect(),
    }))
}

/// Register an endpoint (admin). The answer holds its signing secret, shown this once.
#[utoipa::path(post, path = "/api/v1/admin/webhooks/endpoints", tag = TAG, security(("bearer" = [])),
    request_body = EndpointRequest,
    responses(
        (status = 201, description = "Registered", body = CreatedEndpoint),
        NotAnAdmin, InvalidFields,
    ))]
async fn create_endpoint(
    State(state): Shared,
    _: Admin,
    Json(body): Json<EndpointRequest>,
) -> Result<(StatusCode, Json<CreatedEndpoint>), ApiError> {
    let new = body.parse(&state.destinations)?;
    let (endpoint, secret) = state.webhooks.register(new).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedEndpoint {
            endpoint: endpoint.into(),
            secret: secret.expose(),
        }),
    ))
}

/// One endpoint (admin).
#[utoipa::path(get, path = "/api/v1/admin/webhooks/endpoints/{id}", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id")),
    responses(
        (status = 200, description = "The endpoint", body = EndpointResponse),
        NotAnAdmin,
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
    ))]
async fn show_endpoint(
    State(state): Shared,
    _: Admin,
    Path(raw): Path<String>,
) -> Result<Json<EndpointResponse>, ApiError> {
    let endpoint = state.webhooks.endpoint(id(&raw, "endpoint")?).await?;
    Ok(Json(endpoint.into()))
}

/// Change an endpoint: its URL, types, description, or whether it is enabled (admin).
#[utoipa::path(patch, path = "/api/v1/admin/webhooks/endpoints/{id}", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id")), request_body = EndpointPatch,
    responses(
        (status = 200, description = "The endpoint as changed", body = EndpointResponse),
        NotAnAdmin, InvalidFields,
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
    ))]
async fn update_endpoint(
    State(state): Shared,
    _: Admin,
    Path(raw): Path<String>,
    Json(body): Json<EndpointPatch>,
) -> Result<Json<EndpointResponse>, ApiError> {
    let id = id(&raw, "endpoint")?;
    let changes = body.parse(&state.destinations)?;
    Ok(Json(state.webhooks.update(id, changes).await?.into()))
}

/// Remove an endpoint, with its deliveries, sent or not (admin).
#[utoipa::path(delete, path = "/api/v1/admin/webhooks/endpoints/{id}", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id")),
    responses(
        (status = 204, description = "Removed"),
        NotAnAdmin,
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
    ))]
async fn delete_endpoint(
    State(state): Shared,
    _: Admin,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.webhooks.delete(id(&raw, "endpoint")?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new signing secret; the ones in use keep signing beside it for the overlap (admin).
#[utoipa::path(post, path = "/api/v1/admin/webhooks/endpoints/{id}/secret/rotate", tag = TAG,
    security(("bearer" = [])), params(("id" = Uuid, Path, description = "Endpoint id")),
    request_body = RotateRequest,
    responses(
        (status = 200, description = "The new secret, shown this once", body = RotatedSecret),
        NotAnAdmin, InvalidFields,
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
    ))]
async fn rotate_secret(
    State(state): Shared,
    _: Admin,
    Path(raw): Path<String>,
    Json(body): Json<RotateRequest>,
) -> Result<Json<RotatedSecret>, ApiError> {
    let id = id(&raw, "endpoint")?;
    let overlap = body
        .overlap_seconds
        .map_or(DEFAULT_OVERLAP, Duration::from_secs);
    if overlap > crate::app::MAX_OVERLAP {
        return Err(ApiError::validation(
            "overlap_seconds",
            "invalid",
            "at most 604800 (a week)",
        ));
    }
    let (secret, previous_valid_until) = state.webhooks.rotate_secret(id, overlap).await?;
    Ok(Json(RotatedSecret {
        secret: secret.expose(),
        previous_valid_until,
    }))
}

/// An endpoint's deliveries, newest first (admin).
#[utoipa::path(get, path = "/api/v1/admin/webhooks/endpoints/{id}/deliveries", tag = TAG,
    security(("bearer" = [])), params(("id" = Uuid, Path, description = "Endpoint id"), DeliveryParams),
    responses(
        (status = 200, description = "A page of deliveries", body = DeliveryPage),
        NotAnAdmin, InvalidFields,
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_deliveries(
    State(state): Shared,
    _: Admin,
    Path(raw): Path<String>,
    Query(params): Query<DeliveryParams>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let id = id(&raw, "endpoint")?;
    let (status, limit) = params.parse()?;
    let deliveries = state
        .webhooks
        .deliveries(id, status, limit, params.cursor)
        .await?;
    let next_cursor = (deliveries.len() == limit as usize)
        .then(|| deliveries.last().map(|d| d.id))
        .flatten();
    Ok(Json(DeliveryPage {
        items: deliveries.into_iter().map(DeliveryResponse::from).collect(),
        next_cursor,
    }))
}

/// One delivery with every try (admin).
#[utoipa::path(get, path = "/api/v1/admin/webhooks/endpoints/{id}/deliveries/{delivery_id}", tag = TAG,
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id"), ("delivery_id" = Uuid, Path, description = "Delivery id")),
    responses(
        (status = 200, description = "The delivery and its tries", body = DeliveryDetail),
        NotAnAdmin,
        (status = 404, description = "No such delivery", body = Problem, content_type = "application/problem+json"),
    ))]
async fn show_delivery(
    State(state): Shared,
    _: Admin,
    Path((raw, delivery)): Path<(String, String)>,
) -> Result<Json<DeliveryDetail>, ApiError> {
    let (endpoint, delivery) = (id(&raw, "endpoint")?, id(&delivery, "delivery")?);
    let (delivery, attempts) = state.webhooks.delivery(endpoint, delivery).await?;
    Ok(Json(DeliveryDetail {
        delivery: delivery.into(),
        attempts: attempts.into_iter().map(Into::into).collect(),
    }))
}

/// Send a delivery again now, with the same `webhook-id` (admin).
#[utoipa::path(post, path = "/api/v1/admin/webhooks/endpoints/{id}/deliveries/{delivery_id}/replay",
    tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id"), ("delivery_id" = Uuid, Path, description = "Delivery id")),
    responses(
        (status = 202, description = "Queued"),
        NotAnAdmin,
        (status = 404, description = "No such delivery", body = Problem, content_type = "application/problem+json"),
    ))]
async fn replay_delivery(
    State(state): Shared,
    _: Admin,
    Path((raw, delivery)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (endpoint, delivery) = (id(&raw, "endpoint")?, id(&delivery, "delivery")?);
    state.webhooks.replay(endpoint, delivery).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Send again every event since a time that the endpoint's types match (admin).
#[utoipa::path(post, path = "/api/v1/admin/webhooks/endpoints/{id}/replay", tag = TAG,
    security(("bearer" = [])), params(("id" = Uuid, Path, description = "Endpoint id")),
    request_body = ReplaySinceRequest,
    responses(
        (status = 202, description = "Queued", body = ReplayQueued),
        NotAnAdmin, InvalidFields,
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
    ))]
async fn replay_since(
    State(state): Shared,
    _: Admin,
    Path(raw): Path<String>,
    Json(body): Json<ReplaySinceRequest>,
) -> Result<(StatusCode, Json<ReplayQueued>), ApiError> {
    let id = id(&raw, "endpoint")?;
    let (queued, more) = state.webhooks.replay_since(id, body.since).await?;
    Ok((StatusCode::ACCEPTED, Json(ReplayQueued { queued, more })))
}

/// Send the endpoint a test event (`commercex.webhook.test.v1`) (admin).
#[utoipa::path(post, path = "/api/v1/admin/webhooks/endpoints/{id}/test", tag = TAG,
    security(("bearer" = [])), params(("id" = Uuid, Path, description = "Endpoint id")),
    responses(
        (status = 202, description = "Queued", body = TestQueued),
        NotAnAdmin,
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
    ))]
async fn send_test(
    State(state): Shared,
    _: Admin,
    Path(raw): Path<String>,
) -> Result<(StatusCode, Json<TestQueued>), ApiError> {
    let webhook_id = state.webhooks.send_test(id(&raw, "endpoint")?).await?;
    Ok((StatusCode::ACCEPTED, Json(TestQueued { webhook_id })))
}
