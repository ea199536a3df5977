//! Access tokens: Ed25519-signed JWTs with a `kid`, verified by every service against the
//! issuer's JWKS. There is no shared secret: only the identity service holds a private key.

mod claims;
mod extract;
mod keys;
mod verify;

pub use claims::{AccessClaims, Role};
pub use extract::{Admin, AuthUser};
pub use keys::{KeyError, SigningKey};
pub use verify::{TokenError, TokenVerifier};

/// The `iss` and `aud` every CommerceX token carries and every service checks.
#[derive(Debug, Clone)]
pub struct TokenAudience {
    pub issuer: String,
    pub audience: String,
}

impl Default for TokenAudience {
    fn default() -> Self {
        Self {
            issuer: "commercex".into(),
            audience: "commercex-api".into(),
        }
    }
}
