//! Issuing access tokens and publishing the keys that verify them.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use platform::auth::{AccessClaims, KeyError, SigningKey, TokenAudience};
use uuid::Uuid;

use crate::domain::User;

#[derive(Debug, Clone, Copy)]
pub struct TokenLifetimes {
    pub access: Duration,
    /// How long one refresh token stays usable; each rotation starts a new one.
    pub refresh: Duration,
    /// How long a session (a refresh family) lasts at most from its login, however often it
    /// is refreshed: then the user signs in again.
    pub session: Duration,
}

impl Default for TokenLifetimes {
    fn default() -> Self {
        Self {
            access: Duration::from_secs(15 * 60),
            refresh: Duration::from_secs(30 * 24 * 3600),
            session: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

#[derive(Debug)]
pub struct TokenIssuer {
    key: Arc<SigningKey>,
    /// Public keys of retired signing keys, still published while their tokens live.
    retired: Vec<Jwk>,
    audience: TokenAudience,
    pub lifetimes: TokenLifetimes,
}

impl TokenIssuer {
    pub fn new(
        key: Arc<SigningKey>,
        retired: Vec<Jwk>,
        audience: TokenAudience,
        lifetimes: TokenLifetimes,
    ) -> Self {
        Self {
            key,
            retired,
            audience,
            lifetimes,
        }
    }

    pub fn access_token(&self, user: &User) -> Result<String, KeyError> {
        let now = platform::time::now().timestamp();
        let claims = AccessClaims {
            sub: user.id.to_string(),
            roles: user.roles.clone(),
            iss: self.audience.issuer.clone(),
            aud: self.audience.audience.clone(),
            iat: now,
            exp: now + i64::try_from(self.lifetimes.access.as_secs()).unwrap_or(i64::MAX / 2),
            jti: Uuid::now_v7().to_string(),
        };
        self.key.sign(&claims)
    }

    /// The JWKS: the active key first, then retired ones.
    pub fn jwks(&self) -> JwkSet {
        let mut keys = vec![self.key.public_jwk().clone()];
        keys.extend(self.retired.iter().cloned());
        JwkSet { keys }
    }
}
