//! The payments routes.

use std::sync::Arc;

use axum::extract::State;
use platform::ApiError;
use platform::auth::{Admin, AuthUser};
use platform::http::{Json, Query};
use platform::problem::Problem;
use platform::problem::responses::{NotAnAdmin, NotSignedIn};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dto::{PaymentList, PaymentResponse, PaymentsQuery, PaymentsSummary};
use crate::app::Payments;

pub fn router(payments: Arc<Payments>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_payments))
        .routes(routes!(payments_summary))
        .with_state(payments)
}

/// The payments of an order (its owner or an admin).
#[utoipa::path(get, path = "/api/v1/payments", tag = "payments", params(PaymentsQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "The order's payments with every provider answer", body = PaymentList),
        NotSignedIn,
        (status = 404, description = "No such order (or not yours)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_payments(
    State(payments): State<Arc<Payments>>,
    caller: AuthUser,
    Query(query): Query<PaymentsQuery>,
) -> Result<Json<PaymentList>, ApiError> {
    let (payment, attempts) = payments.of_order(query.order_id, &caller).await?;
    Ok(Json(PaymentList {
        items: vec![PaymentResponse::new(payment, attempts)],
    }))
}

/// Payments at a glance: the last day's by status (administrators).
#[utoipa::path(get, path = "/api/v1/admin/payments/summary", tag = "payments", security(("bearer" = [])),
    responses(
        (status = 200, description = "The figures, counted now", body = PaymentsSummary),
        NotSignedIn,
        NotAnAdmin,
    ))]
async fn payments_summary(
    State(payments): State<Arc<Payments>>,
    _: Admin,
) -> Result<Json<PaymentsSummary>, ApiError> {
    Ok(Json(PaymentsSummary {
        last_day_by_status: payments.last_day().await?,
    }))
}
