use std::collections::HashMap;
use std::sync::RwLock;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use quick_cache::sync::Cache;
use sha2::{Digest, Sha256};

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
///
/// A client sends the same access token with every request until it expires, so tokens
/// already verified are remembered (by SHA-256 of the whole token, signature included) with
/// their claims: checking the Ed25519 signature again was a fifth of the embedded runtime's
/// instructions per order (docs/BENCHMARKS.md). Only tokens that passed are remembered,
/// expiry is checked again on every use, and a new key set forgets them all.
pub struct TokenVerifier {
    keys: RwLock<HashMap<String, DecodingKey>>,
    validation: Validation,
    verified: Cache<[u8; 32], AccessClaims>,
}

/// Clock skew tolerated between the issuer and this process, for `exp`, `nbf` and `iat`.
const LEEWAY_SECS: u64 = 30;

/// Tokens remembered as verified; the least used are forgotten first beyond this.
const VERIFIED_TOKENS: usize = 10_000;

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
        // A token that says it is not valid yet is not (we issue none, but others may).
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        Ok(Self {
            keys,
            validation,
            verified: Cache::new(VERIFIED_TOKENS),
        })
    }

    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(claims) = self.verified.get(&digest) {
            let now = i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap_or(i64::MAX);
            if claims.exp.saturating_add_unsigned(self.validation.leeway) < now {
                self.verified.remove(&digest);
                return Err(TokenError::Invalid("ExpiredSignature".into()));
            }
            return Ok(claims);
        }
        let keys = self
            .keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let claims = self.verify_signed(&keys, token)?;
        // Remembered under the read lock: a key set swapped in meanwhile clears after this.
        self.verified.insert(digest, claims.clone());
        Ok(claims)
    }

    /// The full check: algorithm, key, signature and claims.
    fn verify_signed(
        &self,
        keys: &HashMap<String, DecodingKey>,
        token: &str,
    ) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = keys.get(&kid).ok_or(TokenError::UnknownKey)?;
        let claims = jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        // Issued in the future: a clock far off, or a token minted to outlive its lifetime.
        let now = i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap_or(i64::MAX);
        if claims.iat > now.saturating_add_unsigned(LEEWAY_SECS) {
            return Err(TokenError::Invalid("issued in the future".into()));
        }
        Ok(claims)
    }

    /// Swaps in a freshly fetched key set; a set with an unusable key changes nothing.
    pub fn replace_keys(&self, jwks: &JwkSet) -> Result<(), TokenError> {
        let fresh = decoding_keys(jwks)?;
        let mut keys = self
            .keys
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *keys = fresh;
        // A token signed with a key that is no longer published must fail from now on.
        self.verified.clear();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Role, SigningKey, TokenAudience};

    fn jwks(key: &SigningKey) -> JwkSet {
        JwkSet {
            keys: vec![key.public_jwk().clone()],
        }
    }

    fn token(key: &SigningKey, exp_from_now: i64) -> String {
        let now = i64::try_from(jsonwebtoken::get_current_timestamp()).expect("now");
        let audience = TokenAudience::default();
        key.sign(&AccessClaims {
            sub: uuid::Uuid::now_v7().to_string(),
            roles: vec![Role::Customer],
            iss: audience.issuer,
            aud: audience.audience,
            exp: now + exp_from_now,
            iat: now,
            jti: uuid::Uuid::now_v7().to_string(),
        })
        .expect("sign")
    }

    /// A token with the usual claims, `iat` moved by `iat_from_now` and `nbf` when given.
    fn token_at(key: &SigningKey, iat_from_now: i64, nbf_from_now: Option<i64>) -> String {
        let now = i64::try_from(jsonwebtoken::get_current_timestamp()).expect("now");
        let audience = TokenAudience::default();
        let mut claims = serde_json::json!({
            "sub": uuid::Uuid::now_v7().to_string(),
            "roles": ["customer"],
            "iss": audience.issuer,
            "aud": audience.audience,
            "exp": now + 900,
            "iat": now + iat_from_now,
            "jti": uuid::Uuid::now_v7().to_string(),
        });
        if let Some(nbf) = nbf_from_now {
            claims["nbf"] = serde_json::json!(now + nbf);
        }
        key.sign(&claims).expect("sign")
    }

    #[test]
    fn a_token_not_valid_yet_or_issued_in_the_future_is_refused() {
        let key = SigningKey::generate();
        let verifier =
            TokenVerifier::from_jwks(&jwks(&key), &TokenAudience::default()).expect("verifier");
        verifier.verify(&token_at(&key, 0, None)).expect("now");
        verifier
            .verify(&token_at(&key, 20, Some(20)))
            .expect("within the leeway");
        assert!(matches!(
            verifier.verify(&token_at(&key, 0, Some(300))),
            Err(TokenError::Invalid(reason)) if reason == "ImmatureSignature"
        ));
        assert!(matches!(
            verifier.verify(&token_at(&key, 300, None)),
            Err(TokenError::Invalid(reason)) if reason == "issued in the future"
        ));
    }

    #[test]
    fn a_remembered_token_still_expires() {
        let key = SigningKey::generate();
        let verifier =
            TokenVerifier::from_jwks(&jwks(&key), &TokenAudience::default()).expect("verifier");
        // Within the 30 s leeway for about one more second.
        let token = token(&key, -29);
        verifier.verify(&token).expect("valid now");
        verifier.verify(&token).expect("valid now, remembered");
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert!(matches!(
            verifier.verify(&token),
            Err(TokenError::Invalid(reason)) if reason == "ExpiredSignature"
        ));
    }

    #[test]
    fn a_remembered_token_fails_once_its_key_is_no_longer_published() {
        let old = SigningKey::generate();
        let verifier =
            TokenVerifier::from_jwks(&jwks(&old), &TokenAudience::default()).expect("verifier");
        let token = token(&old, 600);
        verifier.verify(&token).expect("valid");
        let new = SigningKey::generate();
        verifier.replace_keys(&jwks(&new)).expect("rotate");
        assert!(matches!(
            verifier.verify(&token),
            Err(TokenError::UnknownKey)
        ));
    }

    #[test]
    fn a_changed_signature_is_checked_even_after_the_token_was_accepted() {
        let key = SigningKey::generate();
        let verifier =
            TokenVerifier::from_jwks(&jwks(&key), &TokenAudience::default()).expect("verifier");
        let token = token(&key, 600);
        verifier.verify(&token).expect("valid");
        let (signed, signature) = token.rsplit_once('.').expect("three parts");
        let flipped = if signature.starts_with('A') { "B" } else { "A" };
        let forged = format!("{signed}.{flipped}{}", &signature[1..]);
        assert!(verifier.verify(&forged).is_err());
    }
}
