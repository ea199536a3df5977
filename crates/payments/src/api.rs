//! HTTP API of the payments service: what happened to an order's payment.

use std::sync::Arc;

use axum::extract::State;
use chrono::{DateTime, Utc};
use platform::ApiError;
use platform::auth::AuthUser;
use platform::http::{Json, Query};
use platform::money::MoneyDto;
use platform::problem::Problem;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::payments::Payments;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PaymentsQuery {
    pub order_id: Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptResponse {
    /// `charge`, `void` or `refund`.
    pub operation: String,
    pub outcome: String,
    pub detail: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentResponse {
    pub id: Uuid,
    pub order_id: Uuid,
    pub amount: MoneyDto,
    /// `awaiting_stock`, `pending`, `captured`, `failed`, `voided` or `refunded`.
    pub status: String,
    pub failure_reason: Option<String>,
    pub attempts: Vec<AttemptResponse>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentList {
    pub items: Vec<PaymentResponse>,
}

pub fn router(payments: Arc<Payments>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_payments))
        .with_state(payments)
}

/// The payments of an order (its owner or an admin).
#[utoipa::path(get, path = "/api/v1/payments", tag = "payments", params(PaymentsQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "The order's payments with every provider answer", body = PaymentList),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order (or not yours)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_payments(
    State(payments): State<Arc<Payments>>,
    caller: AuthUser,
    Query(query): Query<PaymentsQuery>,
) -> Result<Json<PaymentList>, ApiError> {
    let internal = |e: crate::store::StoreError| ApiError::Internal(anyhow::anyhow!(e));
    let payment = payments
        .store()
        .find_by_order(query.order_id)
        .await
        .map_err(internal)?;
    let Some(payment) = payment.filter(|p| caller.is_admin() || p.customer_id == caller.id) else {
        return Err(ApiError::NotFound("no payments for this order".into()));
    };
    let attempts = payments
        .store()
        .attempts(payment.id)
        .await
        .map_err(internal)?;
    Ok(Json(PaymentList {
        items: vec![PaymentResponse {
            id: payment.id,
            order_id: payment.order_id,
            amount: payment.amount.into(),
            status: payment.status.as_str().to_owned(),
            failure_reason: payment.failure_reason,
            attempts: attempts
                .into_iter()
                .map(|a| AttemptResponse {
                    operation: a.operation,
                    outcome: a.outcome,
                    detail: a.detail,
                    at: a.at,
                })
                .collect(),
            created_at: payment.created_at,
            updated_at: payment.updated_at,
        }],
    }))
}
