use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the signing key is not an Ed25519 private key in PKCS#8 PEM form: {0}")]
    Parse(String),
    #[error("signing a token failed: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// The private Ed25519 key access tokens are signed with, and its public JWK.
pub struct SigningKey {
    encoding: EncodingKey,
    pkcs8_pem: SecretString,
    jwk: Jwk,
    kid: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh random key: development only (a production profile refuses to run on one).
    pub fn generate() -> Self {
        let secret: [u8; 32] = rand::random();
        Self::from_dalek(&ed25519_dalek::SigningKey::from_bytes(&secret))
    }

    pub fn from_pkcs8_pem(pem: &SecretString) -> Result<Self, KeyError> {
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem.expose_secret())
            .map_err(|e| KeyError::Parse(e.to_string()))?;
        Ok(Self::from_dalek(&key))
    }

    fn from_dalek(key: &ed25519_dalek::SigningKey) -> Self {
        let der = key
            .to_pkcs8_der()
            .map(|doc| doc.as_bytes().to_vec())
            .unwrap_or_default();
        let pem = key
            .to_pkcs8_pem(Default::default())
            .map(|pem| pem.to_string())
            .unwrap_or_default();
        let mut jwk = Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(KeyAlgorithm::EdDSA),
                ..Default::default()
            },
            algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                key_type: OctetKeyPairType::OctetKeyPair,
                curve: EllipticCurve::Ed25519,
                x: URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
            }),
        };
        // RFC 7638 thumbprint: the same key always gets the same kid, on every replica.
        let kid = jwk.thumbprint(ThumbprintHash::SHA256).unwrap_or_default();
        jwk.common.key_id = Some(kid.clone());
        Self {
            encoding: EncodingKey::from_ed_der(&der),
            pkcs8_pem: SecretString::from(pem),
            jwk,
            kid,
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half, as published in the JWKS.
    pub fn public_jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// PKCS#8 PEM, for persisting a generated development key.
    pub fn to_pkcs8_pem(&self) -> &SecretString {
        &self.pkcs8_pem
    }

    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, KeyError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        header.typ = Some("at+jwt".into());
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_round_trips_through_pem_with_the_same_kid() {
        let key = SigningKey::generate();
        let again = SigningKey::from_pkcs8_pem(key.to_pkcs8_pem()).expect("parse");
        assert_eq!(key.kid(), again.kid());
        assert!(!key.kid().is_empty());
    }

    #[test]
    fn garbage_is_not_a_key() {
        assert!(SigningKey::from_pkcs8_pem(&SecretString::from("nope".to_owned())).is_err());
    }
}
