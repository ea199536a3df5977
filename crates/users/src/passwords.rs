//! Password hashing with Argon2id (OWASP-recommended parameters: 19 MiB, 2 passes). Hashing
//! is CPU-bound for tens of milliseconds, so it runs on the blocking pool, off the async
//! workers.

use std::sync::LazyLock;

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};

use crate::domain::Password;

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

pub async fn hash(password: &Password) -> Result<String, HashError> {
    let clear = password.expose().to_owned();
    tokio::task::spawn_blocking(move || {
        argon2()
            .hash_password(clear.as_bytes())
            .map(|hash: PasswordHash| hash.to_string())
            .map_err(|e| HashError(e.to_string()))
    })
    .await
    .map_err(|e| HashError(e.to_string()))?
}

/// A hash of nothing in particular, checked against when the email is unknown so that a
/// login for a missing account costs the same time as one with a wrong password.
static DECOY: LazyLock<Option<String>> = LazyLock::new(|| {
    argon2()
        .hash_password(b"decoy password never matches")
        .ok()
        .map(|hash: PasswordHash| hash.to_string())
});

/// Checks `clear` against `stored`, or against the decoy when there is no account.
pub async fn verify(clear: String, stored: Option<String>) -> bool {
    let real = stored.is_some();
    tokio::task::spawn_blocking(move || {
        let Some(stored) = stored.or_else(|| DECOY.clone()) else {
            return false;
        };
        let Ok(parsed) = PasswordHash::new(&stored) else {
            return false;
        };
        argon2().verify_password(clear.as_bytes(), &parsed).is_ok() && real
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_only_the_right_password() {
        let password = Password::parse("correct horse battery").unwrap();
        let stored = hash(&password).await.unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify("correct horse battery".into(), Some(stored.clone())).await);
        assert!(!verify("wrong horse battery".into(), Some(stored)).await);
        assert!(!verify("decoy password never matches".into(), None).await);
    }
}
