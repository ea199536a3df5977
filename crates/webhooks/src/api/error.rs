//! The one place webhook errors become HTTP problems.

use platform::ApiError;

use crate::app::WebhooksError;

impl From<WebhooksError> for ApiError {
    fn from(error: WebhooksError) -> Self {
        match error {
            WebhooksError::NoEndpoint | WebhooksError::NoDelivery => {
                ApiError::NotFound(error.to_string())
            }
            // A database that cannot be reached is found in the causes: a 503.
            internal @ WebhooksError::Internal(_) => {
                ApiError::Internal(anyhow::Error::new(internal))
            }
        }
    }
}
