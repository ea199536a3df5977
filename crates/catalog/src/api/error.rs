//! The one place catalog errors become HTTP problems.

use platform::ApiError;

use crate::app::CatalogError;

impl From<CatalogError> for ApiError {
    fn from(error: CatalogError) -> Self {
        match error {
            CatalogError::DuplicateSku => {
                ApiError::Conflict("a product with this sku already exists".into())
            }
            CatalogError::NotFound => ApiError::NotFound("no such product".into()),
            CatalogError::Stale => ApiError::PreconditionFailed(
                "the product changed since it was read; fetch it again".into(),
            ),
            internal @ CatalogError::Internal(_) => {
                ApiError::Internal(anyhow::Error::new(internal))
            }
        }
    }
}
