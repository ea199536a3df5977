//! The one place inventory errors become HTTP problems.

use platform::ApiError;

use crate::inventory::InventoryError;

impl From<InventoryError> for ApiError {
    fn from(error: InventoryError) -> Self {
        match error {
            InventoryError::NotFound => {
                ApiError::NotFound("no stock record for this product".into())
            }
            error @ InventoryError::BelowReserved { .. } => ApiError::Conflict(error.to_string()),
            InventoryError::Internal(cause) => ApiError::Internal(anyhow::anyhow!(cause)),
        }
    }
}
