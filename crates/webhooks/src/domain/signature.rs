//! Signing as the Standard Webhooks specification says: `webhook-signature` holds
//! `v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">` for each secret in
//! use, separated by spaces, so that a receiver holding either secret verifies the delivery
//! while a secret is being rotated.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;

const PREFIX: &str = "whsec_";
/// Bytes of key a new secret has (the specification asks for 24 to 64).
const SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a signing secret is `whsec_` and 24 to 64 bytes in base64")]
pub struct MalformedSecret;

/// An endpoint's signing key. Shown to its owner once, when made; never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(Vec<u8>);

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(..)")
    }
}

impl SigningSecret {
    pub fn generate() -> Self {
        let bytes: [u8; SECRET_BYTES] = rand::random();
        Self(bytes.to_vec())
    }

    pub fn parse(text: &str) -> Result<Self, MalformedSecret> {
        let encoded = text.strip_prefix(PREFIX).ok_or(MalformedSecret)?;
        let bytes = STANDARD.decode(encoded).map_err(|_| MalformedSecret)?;
        match bytes.len() {
            24..=64 => Ok(Self(bytes)),
            _ => Err(MalformedSecret),
        }
    }

    /// `whsec_` and the key in base64: what the receiver configures.
    pub fn expose(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// `v1,` and the signature of one delivery.
    pub fn sign(&self, webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let mut context = hmac::Context::with_key(&key);
        context.update(webhook_id.as_bytes());
        context.update(b".");
        context.update(timestamp.to_string().as_bytes());
        context.update(b".");
        context.update(body);
        format!("v1,{}", STANDARD.encode(context.sign().as_ref()))
    }
}

/// The `webhook-signature` header: one signature per secret in use.
pub fn signature_header(
    secrets: &[SigningSecret],
    webhook_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|secret| secret.sign(webhook_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example in the Standard Webhooks specification's reference libraries' tests.
    #[test]
    fn signs_the_specifications_example_as_its_libraries_do() {
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("valid");
        let signature = secret.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_generated_secret_reads_back_and_signs_alike() {
        let secret = SigningSecret::generate();
        let again = SigningSecret::parse(&secret.expose()).expect("round trip");
        assert_eq!(again.sign("id", 1, b"{}"), secret.sign("id", 1, b"{}"));
        assert_ne!(SigningSecret::generate(), secret);
    }

    #[test]
    fn every_secret_in_use_signs() {
        let (old, new) = (SigningSecret::generate(), SigningSecret::generate());
        let header = signature_header(&[new.clone(), old.clone()], "id", 7, b"body");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(
            parts,
            vec![new.sign("id", 7, b"body"), old.sign("id", 7, b"body")]
        );
    }

    #[test]
    fn secrets_without_the_prefix_or_too_short_are_refused() {
        assert_eq!(
            SigningSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            Err(MalformedSecret)
        );
        assert_eq!(SigningSecret::parse("whsec_c2hvcnQ="), Err(MalformedSecret));
        assert!(!format!("{:?}", SigningSecret::generate()).contains("whsec"));
    }
}
