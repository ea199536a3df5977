use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// An opaque refresh token as handed to the client: 256 random bits.
#[derive(Debug, Clone)]
pub struct RefreshToken(SecretString);

/// What the database keeps instead of the token: its SHA-256. The token has full entropy, so
/// a fast hash is enough; a database leak does not yield usable tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenHash(pub String);

impl RefreshToken {
    pub fn generate() -> Self {
        let bytes: [u8; 32] = rand::random();
        Self(SecretString::from(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// A presented token; `None` when it cannot be one of ours (wrong length or alphabet).
    pub fn parse(raw: &str) -> Option<Self> {
        let plausible = raw.len() == 43
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        plausible.then(|| Self(SecretString::from(raw.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn hash(&self) -> RefreshTokenHash {
        let digest = Sha256::digest(self.0.expose_secret().as_bytes());
        RefreshTokenHash(digest.iter().map(|b| format!("{b:02x}")).collect())
    }
}

/// A refresh token's record, with the state of its family.
#[derive(Debug, Clone)]
pub struct StoredRefreshToken {
    pub family_id: Uuid,
    /// When the session's login happened: its absolute lifetime counts from here.
    pub family_began: DateTime<Utc>,
    pub user_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub rotated_at: Option<DateTime<Utc>>,
    pub family_revoked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshVerdict {
    /// Valid: replace it with a new token in the same family.
    Rotate,
    /// Already rotated: someone holds a copy. Revoke the whole family (OAuth 2.0 BCP).
    Reused,
    Expired,
    /// The family was revoked (logout or detected reuse).
    Revoked,
}

impl StoredRefreshToken {
    pub fn judge(&self, now: DateTime<Utc>) -> RefreshVerdict {
        if self.family_revoked {
            RefreshVerdict::Revoked
        } else if self.rotated_at.is_some() {
            RefreshVerdict::Reused
        } else if self.expires_at <= now {
            RefreshVerdict::Expired
        } else {
            RefreshVerdict::Rotate
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn stored() -> StoredRefreshToken {
        StoredRefreshToken {
            family_id: Uuid::now_v7(),
            family_began: Utc::now(),
            user_id: Uuid::now_v7(),
            expires_at: Utc::now() + Duration::days(1),
            rotated_at: None,
            family_revoked: false,
        }
    }

    #[test]
    fn generated_tokens_parse_and_hash_stably() {
        let token = RefreshToken::generate();
        let again = RefreshToken::parse(token.expose()).expect("parses");
        assert_eq!(token.hash(), again.hash());
        assert_ne!(token.hash(), RefreshToken::generate().hash());
        assert!(RefreshToken::parse("short").is_none());
        assert!(RefreshToken::parse(&"!".repeat(43)).is_none());
    }

    #[test]
    fn verdicts() {
        let now = Utc::now();
        assert_eq!(stored().judge(now), RefreshVerdict::Rotate);
        let rotated = StoredRefreshToken {
            rotated_at: Some(now),
            ..stored()
        };
        assert_eq!(rotated.judge(now), RefreshVerdict::Reused);
        let expired = StoredRefreshToken {
            expires_at: now,
            ..stored()
        };
        assert_eq!(expired.judge(now), RefreshVerdict::Expired);
        let revoked = StoredRefreshToken {
            family_revoked: true,
            rotated_at: Some(now),
            ..stored()
        };
        assert_eq!(revoked.judge(now), RefreshVerdict::Revoked);
    }
}
