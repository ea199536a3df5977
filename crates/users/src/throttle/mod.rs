//! Login throttling: after too many failed logins for one account, or from one client
//! address, further attempts are refused for a while: in this process's memory
//! ([`MemoryThrottle`]), or in Redis ([`RedisThrottle`]) shared by every identity instance.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;

mod shared;
pub use shared::RedisThrottle;

#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    pub max_failures_per_account: usize,
    pub max_failures_per_client: usize,
    pub window: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            max_failures_per_account: 5,
            max_failures_per_client: 20,
            window: Duration::from_secs(15 * 60),
        }
    }
}

/// Who a login attempt is charged to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    Account(String),
    Client(String),
}

#[async_trait]
pub trait LoginThrottle: Send + Sync {
    /// `Err(wait)` when any subject has used up its failures within the window.
    async fn check(&self, subjects: &[Subject]) -> Result<(), Duration>;
    async fn record_failure(&self, subjects: &[Subject]);
    /// A successful login forgives the account's failures (not the client's).
    async fn forgive(&self, subject: &Subject);
}

/// Sliding-window failure counts per subject, in this process's memory.
#[derive(Debug)]
pub struct MemoryThrottle {
    policy: ThrottlePolicy,
    failures: Mutex<HashMap<Subject, VecDeque<Instant>>>,
    /// Map size at which the next full sweep of expired entries happens.
    sweep_at: AtomicUsize,
}

impl MemoryThrottle {
    pub fn new(policy: ThrottlePolicy) -> Self {
        Self {
            policy,
            failures: Mutex::new(HashMap::new()),
            sweep_at: AtomicUsize::new(1024),
        }
    }

    fn limit(&self, subject: &Subject) -> usize {
        match subject {
            Subject::Account(_) => self.policy.max_failures_per_account,
            Subject::Client(_) => self.policy.max_failures_per_client,
        }
    }

    fn with_failures<T>(&self, f: impl FnOnce(&mut HashMap<Subject, VecDeque<Instant>>) -> T) -> T {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Forget what fell out of the window, so memory stays bounded by recent failures. A
        // full sweep only when the map has doubled since the last one keeps each call O(1)
        // amortised, even under a flood of distinct emails.
        if failures.len() >= self.sweep_at.load(Ordering::Relaxed) {
            let now = Instant::now();
            failures.retain(|_, times| {
                self.forget_expired(times, now);
                !times.is_empty()
            });
            self.sweep_at
                .store((failures.len() * 2).max(1024), Ordering::Relaxed);
        }
        f(&mut failures)
    }

    fn forget_expired(&self, times: &mut VecDeque<Instant>, now: Instant) {
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.policy.window)
        {
            times.pop_front();
        }
    }
}

#[async_trait]
impl LoginThrottle for MemoryThrottle {
    async fn check(&self, subjects: &[Subject]) -> Result<(), Duration> {
        let now = Instant::now();
        self.with_failures(|failures| {
            let mut wait = Duration::ZERO;
            for subject in subjects {
                let Some(times) = failures.get_mut(subject) else {
                    continue;
                };
                self.forget_expired(times, now);
                let limit = self.limit(subject);
                if times.len() >= limit {
                    // Blocked until enough failures age out to fall below the limit.
                    let freeing = times[times.len() - limit];
                    wait = wait.max(
                        self.policy
                            .window
                            .saturating_sub(now.duration_since(freeing)),
                    );
                }
            }
            if wait.is_zero() { Ok(()) } else { Err(wait) }
        })
    }

    async fn record_failure(&self, subjects: &[Subject]) {
        let now = Instant::now();
        self.with_failures(|failures| {
            for subject in subjects {
                failures.entry(subject.clone()).or_default().push_back(now);
            }
        });
    }

    async fn forgive(&self, subject: &Subject) {
        self.with_failures(|failures| failures.remove(subject));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blocks_after_the_limit_and_success_forgives() {
        let throttle = MemoryThrottle::new(ThrottlePolicy {
            max_failures_per_account: 3,
            max_failures_per_client: 10,
            window: Duration::from_secs(60),
        });
        let who = [
            Subject::Account("a@x.io".into()),
            Subject::Client("1.2.3.4".into()),
        ];
        for _ in 0..3 {
            assert!(throttle.check(&who).await.is_ok());
            throttle.record_failure(&who).await;
        }
        let wait = throttle.check(&who).await.unwrap_err();
        assert!(wait > Duration::from_secs(55) && wait <= Duration::from_secs(60));
        // Another account from the same client is not blocked by the first account's limit.
        let other = [
            Subject::Account("b@x.io".into()),
            Subject::Client("1.2.3.4".into()),
        ];
        assert!(throttle.check(&other).await.is_ok());
        throttle.forgive(&who[0]).await;
        assert!(throttle.check(&who).await.is_ok());
    }

    #[tokio::test]
    async fn failures_age_out_of_the_window() {
        let throttle = MemoryThrottle::new(ThrottlePolicy {
            max_failures_per_account: 1,
            max_failures_per_client: 10,
            window: Duration::from_millis(50),
        });
        let who = [Subject::Account("a@x.io".into())];
        throttle.record_failure(&who).await;
        assert!(throttle.check(&who).await.is_err());
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(throttle.check(&who).await.is_ok());
    }
}
