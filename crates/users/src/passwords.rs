//! Password hashing with Argon2id (OWASP-recommended parameters: 19 MiB, 2 passes). Hashing
//! is CPU-bound for tens of milliseconds, so it runs on the blocking pool, off the async
//! workers, and it is bounded: one hash per core at a time (more would add memory, not
//! speed: 64 logins at once took a process from 261 to 1,051 MiB), a short queue behind
//! them, and beyond it the caller is told to come back ([`HashError::Busy`], a 503).

use std::num::NonZero;
use std::sync::{Arc, LazyLock};

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};
use tokio::sync::Semaphore;

use crate::domain::Password;

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("too many passwords are being checked at once")]
    Busy,
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// Requests allowed to wait for a core, per core: at ~50 ms a hash, about a second's work.
const WAITING_PER_CORE: usize = 16;

/// Admission to the hashing work: `running` permits one per core, `admitted` those plus the
/// queue. A permit is held by the blocking task itself, so a caller that goes away (a client
/// that disconnected) does not free a core that is still hashing.
struct Work {
    running: Arc<Semaphore>,
    admitted: Arc<Semaphore>,
}

impl Work {
    fn new(cores: usize, waiting: usize) -> Self {
        Self {
            running: Arc::new(Semaphore::new(cores)),
            admitted: Arc::new(Semaphore::new(cores + waiting)),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| HashError::Busy)?;
        let running = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HashError::Busy)?;
        tokio::task::spawn_blocking(move || {
            let _permits = (admitted, running);
            work()
        })
        .await
        .map_err(|e| HashError::Failed(e.to_string()))
    }
}

static WORK: LazyLock<Work> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, NonZero::get);
    Work::new(cores, cores * WAITING_PER_CORE)
});

pub async fn hash(password: &Password) -> Result<String, HashError> {
    let clear = password.expose().to_owned();
    WORK.run(move || {
        argon2()
            .hash_password(clear.as_bytes())
            .map(|hash: PasswordHash| hash.to_string())
            .map_err(|e| HashError::Failed(e.to_string()))
    })
    .await?
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
pub async fn verify(clear: String, stored: Option<String>) -> Result<bool, HashError> {
    verify_with(&WORK, clear, stored).await
}

async fn verify_with(
    work: &Work,
    clear: String,
    stored: Option<String>,
) -> Result<bool, HashError> {
    let real = stored.is_some();
    work.run(move || {
        let Some(stored) = stored.or_else(|| DECOY.clone()) else {
            return false;
        };
        let Ok(parsed) = PasswordHash::new(&stored) else {
            return false;
        };
        argon2().verify_password(clear.as_bytes(), &parsed).is_ok() && real
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_only_the_right_password() {
        let password = Password::parse("correct horse battery").unwrap();
        let stored = hash(&password).await.unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(
            verify("correct horse battery".into(), Some(stored.clone()))
                .await
                .unwrap()
        );
        assert!(
            !verify("wrong horse battery".into(), Some(stored))
                .await
                .unwrap()
        );
        assert!(
            !verify("decoy password never matches".into(), None)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn beyond_the_cores_and_the_queue_callers_are_told_to_come_back() {
        let stored = hash(&Password::parse("correct horse battery").unwrap())
            .await
            .unwrap();
        // One core, one waiting: of three at once, the third is turned away at once.
        let work = Work::new(1, 1);
        let check = || verify_with(&work, "correct horse battery".into(), Some(stored.clone()));
        let (first, second, third) = tokio::join!(check(), check(), check());
        assert!(first.unwrap());
        assert!(second.unwrap());
        assert!(matches!(third, Err(HashError::Busy)));
        // The permits come back when the work is done.
        assert!(check().await.unwrap());
    }
}
