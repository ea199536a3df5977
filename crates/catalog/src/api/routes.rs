use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use platform::ApiError;
use platform::auth::{Admin, AuthUser};
use platform::http::{Json, Query};
use platform::problem::Problem;
use platform::problem::responses::{InvalidFields, NotAnAdmin, NotSignedIn};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::dto::{
    CreateProductRequest, ListParams, PatchProductRequest, ProductPage, ProductResponse,
};
use crate::app::Catalog;
use crate::domain::{Product, etag_matches};

const TAG: &str = "catalog";

pub fn router(catalog: Arc<Catalog>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(create_product, list_products))
        .routes(routes!(get_product, patch_product, archive_product))
        .with_state(catalog)
}

/// A path id that is not a UUID names no product.
fn product_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound("no such product".into()))
}

/// The product with its `ETag`.
fn with_etag(status: StatusCode, product: Product) -> Response {
    let etag = HeaderValue::from_str(&product.etag()).ok();
    let mut response = (status, Json(ProductResponse::from(product))).into_response();
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

/// Create a product (admin).
#[utoipa::path(post, path = "/api/v1/products", tag = TAG, request_body = CreateProductRequest, security(("bearer" = [])),
    responses(
        (status = 201, description = "The new product", body = ProductResponse),
        NotSignedIn,
        NotAnAdmin,
        (status = 409, description = "Duplicate sku", body = Problem, content_type = "application/problem+json"),
        InvalidFields,
    ))]
async fn create_product(
    State(catalog): State<Arc<Catalog>>,
    _: Admin,
    Json(body): Json<CreateProductRequest>,
) -> Result<Response, ApiError> {
    let product = catalog.create(body.parse()?).await?;
    let location = HeaderValue::from_str(&format!("/api/v1/products/{}", product.id)).ok();
    let mut response = with_etag(StatusCode::CREATED, product);
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Read a product. `If-None-Match` with its current `ETag` answers 304.
#[utoipa::path(get, path = "/api/v1/products/{id}", tag = TAG,
    params(("id" = Uuid, Path, description = "Product id")),
    responses(
        (status = 200, description = "The product", body = ProductResponse),
        (status = 304, description = "Not modified"),
        (status = 404, description = "No such product (or archived)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_product(
    State(catalog): State<Arc<Catalog>>,
    caller: Option<AuthUser>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let is_admin = caller.is_some_and(|c| c.is_admin());
    let product = catalog.get(product_id(&id)?, is_admin).await?;
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    if if_none_match.is_some_and(|h| etag_matches(h, &product.etag())) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(etag) = HeaderValue::from_str(&product.etag()) {
            response.headers_mut().insert(header::ETAG, etag);
        }
        return Ok(response);
    }
    Ok(with_etag(StatusCode::OK, product))
}

/// Change some fields of a product (admin). With `If-Match`, an `ETag` read before someone
/// else's edit answers 412 (a change of availability alone does not: no edit sets it).
#[utoipa::path(patch, path = "/api/v1/products/{id}", tag = TAG, request_body = PatchProductRequest, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Product id")),
    responses(
        (status = 200, description = "The updated product", body = ProductResponse),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "The product was edited since it was read", body = Problem, content_type = "application/problem+json"),
        InvalidFields,
    ))]
async fn patch_product(
    State(catalog): State<Arc<Catalog>>,
    _: Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<PatchProductRequest>,
) -> Result<Response, ApiError> {
    let id = product_id(&id)?;
    let patch = body.parse()?;
    let if_match = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok());
    let product = catalog.update(id, patch, if_match).await?;
    Ok(with_etag(StatusCode::OK, product))
}

/// Archive a product (admin): gone from listings, no longer orderable.
#[utoipa::path(delete, path = "/api/v1/products/{id}", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Product id")),
    responses(
        (status = 204, description = "Archived"),
        (status = 404, description = "No such product, or already archived", body = Problem, content_type = "application/problem+json"),
    ))]
async fn archive_product(
    State(catalog): State<Arc<Catalog>>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    catalog.archive(product_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List and search products, a page at a time.
#[utoipa::path(get, path = "/api/v1/products", tag = TAG, params(ListParams),
    responses(
        (status = 200, description = "A page of products", body = ProductPage),
        (status = 422, description = "Invalid parameters", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_products(
    State(catalog): State<Arc<Catalog>>,
    Query(params): Query<ListParams>,
) -> Result<Json<ProductPage>, ApiError> {
    let page = catalog.list(&params.parse()?).await?;
    Ok(Json(ProductPage {
        items: page.items.into_iter().map(ProductResponse::from).collect(),
        next_cursor: page.next.map(|cursor| cursor.encode()),
    }))
}
