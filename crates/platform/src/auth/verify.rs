use std::collections::HashMap;
use std::sync::RwLock;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::{AccessClaims, TokenAudience};

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token is signed with an unknown key")]
    UnknownKey,
    #[error("the token is invalid: {0}")]
    Invalid(String),
    #[error("a published key is unusable: {0}")]
    BadJwk(String),
}

/// Verifies access tokens against a JWKS. Only EdDSA is accepted: a token that names another
/// algorithm (`none`, `HS256` with the public key as secret) never reaches a signature check.
/// The key set can be replaced while in use ([`TokenVerifier::replace_keys`]), so a service
/// that reads the identity service's JWKS over the network picks up rotated keys.
pub struct TokenVerifier {
    keys: RwLock<HashMap<String, DecodingKey>>,
    validation: Validation,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("kids", &self.kids())
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    pub fn from_jwks(jwks: &JwkSet, audience: &TokenAudience) -> Result<Self, TokenError> {
        let keys = RwLock::new(decoding_keys(jwks)?);
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&audience.issuer]);
        validation.set_audience(&[&audience.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = 30;
        Ok(Self { keys, validation })
    }

    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let keys = self
            .keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = keys.get(&kid).ok_or(TokenError::UnknownKey)?;
        jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }

    /// Swaps in a freshly fetched key set; a set with an unusable key changes nothing.
    pub fn replace_keys(&self, jwks: &JwkSet) -> Result<(), TokenError> {
        let fresh = decoding_keys(jwks)?;
        *self
            .keys
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
        Ok(())
    }

    /// The key ids currently trusted.
    pub fn kids(&self) -> Vec<String> {
        let keys = self
            .keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        keys.keys().cloned().collect()
    }
}

fn decoding_keys(jwks: &JwkSet) -> Result<HashMap<String, DecodingKey>, TokenError> {
    let mut keys = HashMap::new();
    for jwk in &jwks.keys {
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| TokenError::BadJwk(e.to_string()))?;
        keys.insert(kid, key);
    }
    Ok(keys)
}
