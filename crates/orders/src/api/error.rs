//! The one place order errors become HTTP problems.

use platform::{ApiError, FieldError};

use crate::app::OrdersError;

impl From<OrdersError> for ApiError {
    fn from(error: OrdersError) -> Self {
        match error {
            OrdersError::NotFound => ApiError::NotFound("no such order".into()),
            error @ (OrdersError::KeyReused
            | OrdersError::AlreadyCancelled
            | OrdersError::Changed) => ApiError::Conflict(error.to_string()),
            OrdersError::Unplaceable(problems) => ApiError::Validation(
                problems
                    .into_iter()
                    .map(|(field, detail)| FieldError::new(field, "invalid", detail))
                    .collect(),
            ),
            internal @ OrdersError::Internal(_) => ApiError::Internal(anyhow::Error::new(internal)),
        }
    }
}
