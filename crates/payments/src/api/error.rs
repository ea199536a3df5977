//! The one place payments errors become HTTP problems.

use platform::ApiError;

use crate::app::PaymentsError;

impl From<PaymentsError> for ApiError {
    fn from(error: PaymentsError) -> Self {
        match error {
            PaymentsError::NotFound => ApiError::NotFound("no payments for this order".into()),
            internal @ PaymentsError::Internal(_) => {
                ApiError::Internal(anyhow::Error::new(internal))
            }
        }
    }
}
