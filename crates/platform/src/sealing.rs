//! Sealed secrets: AES-256-GCM under keys an operator gives (from a file or Vault), each
//! sealed value bound to what it belongs to (the associated data: a sealed value copied
//! elsewhere does not open). Two uses, each with keys of its own:
//! - payment tokens. A customer's payment token crosses the platform inside `order.placed`,
//!   which outlives the order on the bus (retention, replays, dead letters, every consumer
//!   and integrator that reads the topic). So orders seals it at the edge, for the order it
//!   was given for, under a key only orders and payments hold, and payments opens it only at
//!   the moment it charges;
//! - webhook signing secrets, sealed at rest in the webhooks database, so that a reader of
//!   that database (a backup, a replica, an injection elsewhere) cannot sign deliveries.
//!
//! Keys are 32 random bytes, base64, one per line: the first seals, every one opens, so a
//! rotation adds the new key on top and drops the old one once nothing sealed under it is
//! needed. A sealed value is `cxs1.<key id>.<base64url(nonce | ciphertext | tag)>`; the key id
//! is the first four bytes of the key's SHA-256, so the right key is found without trying each.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::SecretString;
use sha2::{Digest, Sha256};

const PREFIX: &str = "cxs1";
const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealingError {
    #[error("line {line} of the keys is not 32 bytes in base64")]
    BadKey { line: usize },
    #[error("no key given")]
    NoKeys,
    #[error("not a sealed value")]
    Malformed,
    #[error("it was sealed with key {0}, which is not among the keys")]
    UnknownKey(String),
    #[error("it does not open (altered, or sealed for something else)")]
    DoesNotOpen,
    #[error("the system's random source failed")]
    NoRandomness,
}

struct Key {
    id: String,
    key: LessSafeKey,
}

/// The keys that seal and open one kind of secret; the first seals.
pub struct SealingKeys {
    keys: Vec<Key>,
    random: SystemRandom,
}

impl std::fmt::Debug for SealingKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|key| key.id.as_str()).collect();
        f.debug_struct("SealingKeys").field("ids", &ids).finish()
    }
}

impl SealingKeys {
    /// Keys in base64, one per line (blank lines and `#` comments skipped).
    pub fn parse(text: &str) -> Result<Self, SealingError> {
        let keys = text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
            .map(|(n, line)| {
                let bytes = STANDARD
                    .decode(line.trim())
                    .ok()
                    .filter(|bytes| bytes.len() == KEY_LEN)
                    .ok_or(SealingError::BadKey { line: n + 1 })?;
                Ok(Key {
                    id: key_id(&bytes),
                    key: LessSafeKey::new(
                        UnboundKey::new(&AES_256_GCM, &bytes)
                            .map_err(|_| SealingError::BadKey { line: n + 1 })?,
                    ),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(SealingError::NoKeys);
        }
        Ok(Self {
            keys,
            random: SystemRandom::new(),
        })
    }

    /// A new random key, as a line for a keys file.
    pub fn generate_line() -> Result<String, SealingError> {
        let mut bytes = [0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| SealingError::NoRandomness)?;
        Ok(STANDARD.encode(bytes))
    }

    /// Seals `token` for `owner` (any bytes naming what it belongs to: the order, the row).
    pub fn seal(&self, token: &str, owner: &[u8]) -> Result<String, SealingError> {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| SealingError::NoRandomness)?;
        let mut sealed = token.as_bytes().to_vec();
        // Fails only past AES-GCM's message limit (64 GiB); what is sealed is a few hundred
        // bytes at most.
        key.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(owner),
                &mut sealed,
            )
            .map_err(|_| SealingError::Malformed)?;
        let mut body = nonce.to_vec();
        body.extend(sealed);
        Ok(format!(
            "{PREFIX}.{}.{}",
            key.id,
            URL_SAFE_NO_PAD.encode(body)
        ))
    }

    /// What `sealed` holds, if it was sealed for `owner` by one of the keys.
    pub fn open(&self, sealed: &str, owner: &[u8]) -> Result<SecretString, SealingError> {
        let mut parts = sealed.splitn(3, '.');
        let (Some(PREFIX), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(SealingError::Malformed);
        };
        let key = self
            .keys
            .iter()
            .find(|key| key.id == id)
            .ok_or_else(|| SealingError::UnknownKey(id.to_owned()))?;
        let mut body = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| SealingError::Malformed)?;
        if body.len() < NONCE_LEN {
            return Err(SealingError::Malformed);
        }
        let mut sealed = body.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&body).map_err(|_| SealingError::Malformed)?;
        let token = key
            .key
            .open_in_place(nonce, Aad::from(owner), &mut sealed)
            .map_err(|_| SealingError::DoesNotOpen)?;
        let token = std::str::from_utf8(token).map_err(|_| SealingError::DoesNotOpen)?;
        Ok(SecretString::from(token.to_owned()))
    }

    /// Whether `sealed` was sealed by the key that seals now (false for anything else: a
    /// value sealed by an older key, or not sealed at all), i.e. whether sealing it again
    /// would change its key.
    pub fn sealed_by_current_key(&self, sealed: &str) -> bool {
        let mut parts = sealed.splitn(3, '.');
        parts.next() == Some(PREFIX) && parts.next() == Some(self.keys[0].id.as_str())
    }
}

fn key_id(key: &[u8]) -> String {
    Sha256::digest(key)[..4]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn keys(lines: &[&str]) -> SealingKeys {
        SealingKeys::parse(&lines.join("\n")).unwrap()
    }

    #[test]
    fn a_sealed_token_opens_for_its_order_only_and_shows_nothing_of_itself() {
        let line = SealingKeys::generate_line().unwrap();
        let keys = keys(&[&line]);
        let sealed = keys.seal("tok_visa", b"order-1").unwrap();
        assert!(sealed.starts_with("cxs1.") && !sealed.contains("visa"));
        assert_ne!(
            sealed,
            keys.seal("tok_visa", b"order-1").unwrap(),
            "a fresh nonce each time"
        );
        assert_eq!(
            keys.open(&sealed, b"order-1").unwrap().expose_secret(),
            "tok_visa"
        );
        assert_eq!(
            keys.open(&sealed, b"order-2").unwrap_err(),
            SealingError::DoesNotOpen
        );
        let mut altered = sealed.clone();
        altered.replace_range(sealed.len() - 3.., "AAA");
        assert_eq!(
            keys.open(&altered, b"order-1").unwrap_err(),
            SealingError::DoesNotOpen
        );
        assert_eq!(
            keys.open("tok_visa", b"order-1").unwrap_err(),
            SealingError::Malformed
        );
    }

    #[test]
    fn after_a_rotation_old_tokens_open_and_new_ones_use_the_new_key() {
        let (old, new) = (
            SealingKeys::generate_line().unwrap(),
            SealingKeys::generate_line().unwrap(),
        );
        let before = keys(&[&old]);
        let during = keys(&["# the new key first", &new, "", &old]);
        let sealed_before = before.seal("tok_visa", b"o").unwrap();
        assert_eq!(
            during.open(&sealed_before, b"o").unwrap().expose_secret(),
            "tok_visa"
        );
        assert!(before.sealed_by_current_key(&sealed_before));
        assert!(
            !during.sealed_by_current_key(&sealed_before),
            "sealed by the old key"
        );
        assert!(!during.sealed_by_current_key("tok_visa"), "not sealed");
        let sealed_during = during.seal("tok_mastercard", b"o").unwrap();
        assert!(during.sealed_by_current_key(&sealed_during));
        assert!(matches!(
            before.open(&sealed_during, b"o"),
            Err(SealingError::UnknownKey(_))
        ));
    }

    #[test]
    fn keys_that_are_not_32_bytes_are_refused_by_line() {
        assert_eq!(
            SealingKeys::parse("c2hvcnQ=").unwrap_err(),
            SealingError::BadKey { line: 1 }
        );
        assert_eq!(
            SealingKeys::parse("\n# none\n").unwrap_err(),
            SealingError::NoKeys
        );
    }
}
