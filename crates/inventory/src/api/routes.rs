use std::sync::Arc;

use axum::extract::{Path, State};
use platform::ApiError;
use platform::auth::Admin;
use platform::http::{Json, Query};
use platform::problem::Problem;
use platform::problem::responses::InvalidFields;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::dto::{AdjustmentRequest, LedgerEntryResponse, LedgerPage, LedgerParams, StockResponse};
use crate::app::Inventory;

const TAG: &str = "inventory";

pub fn router(inventory: Arc<Inventory>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(stock_levels))
        .routes(routes!(adjust_stock))
        .routes(routes!(stock_ledger))
        .with_state(inventory)
}

fn product_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound("no stock record for this product".into()))
}

/// Stock levels of a product.
#[utoipa::path(get, path = "/api/v1/inventory/{product_id}", tag = TAG,
    params(("product_id" = Uuid, Path, description = "Product id")),
    responses(
        (status = 200, description = "Current levels", body = StockResponse),
        (status = 404, description = "No stock record", body = Problem, content_type = "application/problem+json"),
    ))]
async fn stock_levels(
    State(inventory): State<Arc<Inventory>>,
    Path(id): Path<String>,
) -> Result<Json<StockResponse>, ApiError> {
    Ok(Json(inventory.levels(product_id(&id)?).await?.into()))
}

/// Add or remove units (admin). Taking on hand below what is reserved answers 409.
#[utoipa::path(post, path = "/api/v1/inventory/{product_id}/adjustments", tag = TAG, request_body = AdjustmentRequest,
    security(("bearer" = [])),
    params(("product_id" = Uuid, Path, description = "Product id")),
    responses(
        (status = 200, description = "The new levels", body = StockResponse),
        (status = 404, description = "No stock record", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Would go below what is reserved", body = Problem, content_type = "application/problem+json"),
        InvalidFields,
    ))]
async fn adjust_stock(
    State(inventory): State<Arc<Inventory>>,
    Admin(admin): Admin,
    Path(id): Path<String>,
    Json(body): Json<AdjustmentRequest>,
) -> Result<Json<StockResponse>, ApiError> {
    let id = product_id(&id)?;
    let adjustment = body.parse()?;
    let levels = inventory
        .adjust(id, &adjustment, &admin.id.to_string())
        .await?;
    Ok(Json(levels.into()))
}

/// Every change of a product's stock, newest first (admin).
#[utoipa::path(get, path = "/api/v1/inventory/{product_id}/ledger", tag = TAG, security(("bearer" = [])),
    params(("product_id" = Uuid, Path, description = "Product id"), LedgerParams),
    responses(
        (status = 200, description = "A page of ledger entries", body = LedgerPage),
        (status = 404, description = "No stock record", body = Problem, content_type = "application/problem+json"),
    ))]
async fn stock_ledger(
    State(inventory): State<Arc<Inventory>>,
    _: Admin,
    Path(id): Path<String>,
    Query(params): Query<LedgerParams>,
) -> Result<Json<LedgerPage>, ApiError> {
    let limit = params.limit()?;
    let entries = inventory
        .ledger(product_id(&id)?, limit, params.cursor)
        .await?;
    let next_cursor = (entries.len() == limit as usize)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    Ok(Json(LedgerPage {
        items: entries.into_iter().map(LedgerEntryResponse::from).collect(),
        next_cursor,
    }))
}
