use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use platform::ApiError;
use platform::auth::{Admin, AuthUser};
use platform::http::{Json, Query};
use platform::problem::Problem;
use platform::problem::responses::{InvalidFields, NotAnAdmin, NotSignedIn};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::dto::{
    GetParams, ListParams, OrderPage, OrderResponse, OrdersSummaryResponse, PlaceOrderRequest,
    SearchParams, Timeline, TimelineStep, page_limit,
};
use crate::app::Orders;

const TAG: &str = "orders";

pub fn router(orders: Arc<Orders>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(place_order, list_orders))
        .routes(routes!(get_order))
        .routes(routes!(order_timeline))
        .routes(routes!(cancel_order))
        .routes(routes!(search_orders))
        .routes(routes!(orders_summary))
        .with_state(orders)
}

fn order_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound("no such order".into()))
}

fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or_default();
    if key.is_empty() || key.len() > 255 {
        return Err(ApiError::BadRequest(
            "an Idempotency-Key header of 1 to 255 characters is required".into(),
        ));
    }
    Ok(key.to_owned())
}

/// Place an order. It is accepted (202) as `pending`; inventory and payments then decide it.
/// Retrying with the same `Idempotency-Key` and body returns the same order.
#[utoipa::path(post, path = "/api/v1/orders", tag = TAG, request_body = PlaceOrderRequest, security(("bearer" = [])),
    params(("Idempotency-Key" = String, Header, description = "Unique per order attempt; retries reuse it")),
    responses(
        (status = 202, description = "Accepted, pending", body = OrderResponse),
        (status = 400, description = "No Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        NotSignedIn,
        (status = 409, description = "Key reused for a different request", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid order", body = Problem, content_type = "application/problem+json"),
    ))]
async fn place_order(
    State(orders): State<Arc<Orders>>,
    caller: AuthUser,
    headers: HeaderMap,
    Json(body): Json<PlaceOrderRequest>,
) -> Result<(StatusCode, Json<OrderResponse>), ApiError> {
    let key = idempotency_key(&headers)?;
    let fingerprint = body.fingerprint();
    let placed = orders
        .place(caller.id, &key, &fingerprint, body.parse()?)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(placed.order.into())))
}

/// An order (its owner or an admin). With `wait`, a pending order is answered as soon as it
/// is confirmed or cancelled (a long poll), or still pending once `wait` has passed.
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Order id"), GetParams),
    responses(
        (status = 200, description = "The order", body = OrderResponse),
        (status = 404, description = "No such order (or not yours)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_order(
    State(orders): State<Arc<Orders>>,
    caller: AuthUser,
    Path(id): Path<String>,
    Query(params): Query<GetParams>,
) -> Result<Json<OrderResponse>, ApiError> {
    let id = order_id(&id)?;
    let order = match params.wait()? {
        Some(wait) => orders.get_settled(id, &caller, wait).await?,
        None => orders.get(id, &caller).await?,
    };
    Ok(Json(order.into()))
}

/// The caller's orders, newest first.
#[utoipa::path(get, path = "/api/v1/orders", tag = TAG, security(("bearer" = [])), params(ListParams),
    responses((status = 200, description = "A page of orders", body = OrderPage)))]
async fn list_orders(
    State(orders): State<Arc<Orders>>,
    caller: AuthUser,
    Query(params): Query<ListParams>,
) -> Result<Json<OrderPage>, ApiError> {
    let limit = params.limit()?;
    let page = orders.list(&caller, limit, params.cursor).await?;
    Ok(Json(OrderPage::of(page, limit)))
}

/// Every customer's orders, newest first, filtered by status, customer and when they were
/// placed (administrators).
#[utoipa::path(get, path = "/api/v1/admin/orders", tag = TAG, security(("bearer" = [])), params(SearchParams),
    responses(
        (status = 200, description = "A page of orders", body = OrderPage),
        NotSignedIn,
        NotAnAdmin,
        InvalidFields,
    ))]
async fn search_orders(
    State(orders): State<Arc<Orders>>,
    _: Admin,
    Query(params): Query<SearchParams>,
) -> Result<Json<OrderPage>, ApiError> {
    let limit = page_limit(params.limit)?;
    let filter = params.parse()?;
    let page = orders.search(&filter, limit, params.cursor).await?;
    Ok(Json(OrderPage::of(page, limit)))
}

/// Orders at a glance: placed per minute over the last hour, pending ones and the oldest's
/// age, and the last day's orders by status and cancellation reason (administrators).
#[utoipa::path(get, path = "/api/v1/admin/orders/summary", tag = TAG, security(("bearer" = [])),
    responses(
        (status = 200, description = "The figures, counted now", body = OrdersSummaryResponse),
        NotSignedIn,
        NotAnAdmin,
    ))]
async fn orders_summary(
    State(orders): State<Arc<Orders>>,
    _: Admin,
) -> Result<Json<OrdersSummaryResponse>, ApiError> {
    Ok(Json(orders.summary().await?.into()))
}

/// Every step the checkout saga took for an order, with times and event ids.
#[utoipa::path(get, path = "/api/v1/orders/{id}/timeline", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order's steps, oldest first", body = Timeline),
        (status = 404, description = "No such order (or not yours)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn order_timeline(
    State(orders): State<Arc<Orders>>,
    caller: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<Timeline>, ApiError> {
    let id = order_id(&id)?;
    let steps = orders.timeline(id, &caller).await?;
    Ok(Json(Timeline {
        order_id: id,
        steps: steps.into_iter().map(TimelineStep::from).collect(),
    }))
}

/// Cancel an order: a pending one is released; a confirmed one is refunded and restocked.
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The cancelled order", body = OrderResponse),
        (status = 404, description = "No such order (or not yours)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already cancelled", body = Problem, content_type = "application/problem+json"),
    ))]
async fn cancel_order(
    State(orders): State<Arc<Orders>>,
    caller: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<OrderResponse>, ApiError> {
    Ok(Json(orders.cancel(order_id(&id)?, &caller).await?.into()))
}
