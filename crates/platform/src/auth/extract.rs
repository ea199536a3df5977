use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use uuid::Uuid;

use super::{Role, TokenVerifier};
use crate::problem::ApiError;

/// The authenticated caller, from a verified `Authorization: Bearer` access token. Routes that
/// take it need a `TokenVerifier` in the request extensions (`Extension(Arc<TokenVerifier>)`).
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: Uuid,
    pub roles: Vec<Role>,
}

impl AuthUser {
    pub fn is_admin(&self) -> bool {
        self.roles.contains(&Role::Admin)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let verifier = parts
            .extensions
            .get::<Arc<TokenVerifier>>()
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no TokenVerifier installed")))?;
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or_else(|| ApiError::Unauthorized("a Bearer access token is required".into()))?;
        let claims = verifier.verify(token).map_err(|error| {
            tracing::debug!(%error, "rejected access token");
            ApiError::Unauthorized("the access token is invalid or expired".into())
        })?;
        let id = Uuid::parse_str(&claims.sub)
            .map_err(|_| ApiError::Unauthorized("the access token is invalid or expired".into()))?;
        Ok(Self {
            id,
            roles: claims.roles,
        })
    }
}

/// `Option<AuthUser>`: anonymous callers are `None`; a caller who sends a token must send a
/// valid one (a bad token is still a 401, never silently anonymous).
impl<S: Send + Sync> OptionalFromRequestParts<S> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        if !parts.headers.contains_key(AUTHORIZATION) {
            return Ok(None);
        }
        <Self as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}

/// An authenticated caller holding the `admin` role.
#[derive(Debug, Clone)]
pub struct Admin(pub AuthUser);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let user = <AuthUser as FromRequestParts<S>>::from_request_parts(parts, state).await?;
        if !user.is_admin() {
            return Err(ApiError::Forbidden(
                "this action needs the admin role".into(),
            ));
        }
        Ok(Self(user))
    }
}
