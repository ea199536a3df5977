//! The one place identity errors become HTTP problems.

use platform::ApiError;

use crate::app::IdentityError;

impl From<IdentityError> for ApiError {
    fn from(error: IdentityError) -> Self {
        match error {
            IdentityError::DuplicateEmail => {
                ApiError::Conflict("a user with this email already exists".into())
            }
            IdentityError::BadCredentials => {
                ApiError::Unauthorized("the email or password is wrong".into())
            }
            IdentityError::Throttled(retry_after) => ApiError::TooManyRequests {
                detail: "too many attempts; wait as long as Retry-After says, then try again"
                    .into(),
                retry_after,
            },
            IdentityError::BadRefreshToken => {
                ApiError::Unauthorized("the refresh token is invalid, expired or revoked".into())
            }
            // A valid token for a user that no longer exists.
            IdentityError::UnknownUser => {
                ApiError::Unauthorized("the access token is invalid or expired".into())
            }
            IdentityError::NoSuchAccount => ApiError::NotFound(error.to_string()),
            IdentityError::OwnAdminRole => ApiError::Conflict(error.to_string()),
            // Only the command line asks for promotions.
            IdentityError::NotAnAdmin => ApiError::Conflict(error.to_string()),
            IdentityError::Busy => ApiError::Unavailable(
                "too many sign-ins are being checked at once; try again shortly".into(),
            ),
            internal @ IdentityError::Internal(_) => {
                ApiError::Internal(anyhow::Error::new(internal))
            }
        }
    }
}
