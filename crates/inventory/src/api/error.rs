//! The one place inventory errors become HTTP problems.

use platform::ApiError;

use crate::app::InventoryError;

impl From<InventoryError> for ApiError {
    fn from(error: InventoryError) -> Self {
        match error {
            InventoryError::NotFound => {
                ApiError::NotFound("no stock record for this product".into())
            }
            error @ InventoryError::BelowReserved { .. } => ApiError::Conflict(error.to_string()),
            internal @ InventoryError::Internal(_) => {
                ApiError::Internal(anyhow::Error::new(internal))
            }
        }
    }
}
