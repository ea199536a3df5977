//! What the payments API reads and answers.

use chrono::{DateTime, Utc};
use platform::money::MoneyDto;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::store::{Attempt, Payment};

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

impl PaymentResponse {
    pub fn new(payment: Payment, attempts: Vec<Attempt>) -> Self {
        Self {
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
        }
    }
}

/// Payments at a glance, for an operator's dashboard.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentsSummary {
    /// Payments opened in the last 24 hours, by status (`captured`, `failed`, `refunded`, ...).
    #[schema(value_type = Object)]
    pub last_day_by_status: std::collections::BTreeMap<String, i64>,
}
