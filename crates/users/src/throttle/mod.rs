//! Throttling of password guessing and of sign-up floods.
//!
//! Every attempt is charged *before* the password is checked, in one atomic step for all the
//! subjects it counts against, so concurrent guesses cannot all slip past a limit that each
//! of them checked before any was recorded. A login that succeeds gives its charge back.
//!
//! A throttle slows down; it does not lock out. Past a subject's free allowance, each further
//! attempt must wait twice as long after the previous one as the last had to (1 s, 2 s,
//! 4 s, ...), up to a ceiling. Guesses are charged to the (account, client) pair, where the
//! ceiling is the whole window, so an attacker's failures delay the attacker. The account
//! as a whole (guesses spread over many addresses) has a low ceiling, so its owner, signing in
//! from elsewhere with the right password, waits a minute at most. The client address as a
//! whole (one address trying many accounts) has the window as ceiling.
//!
//! Counts live in this process's memory ([`MemoryThrottle`]) or in Redis ([`RedisThrottle`]),
//! shared by every identity instance.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
// Tokio's clock, so tests can move time on instead of sleeping.
use tokio::time::Instant;

mod shared;
pub use shared::RedisThrottle;

/// The most an account's owner can be slowed down by guesses made against the account from
/// addresses other than theirs.
pub const ACCOUNT_MAX_DELAY: Duration = Duration::from_secs(60);

/// How many attempts a subject makes freely, and the longest it can be made to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    pub free: u32,
    pub max_delay: Duration,
}

impl Allowance {
    /// How long after its last attempt a subject that has made `attempts` may make another.
    pub fn spacing(&self, attempts: u32, first_delay: Duration) -> Duration {
        if attempts < self.free {
            return Duration::ZERO;
        }
        let doublings = (attempts - self.free).min(30);
        first_delay
            .saturating_mul(1 << doublings)
            .min(self.max_delay)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    /// Failed logins per account from one client address.
    pub per_account_and_client: u32,
    /// Failed logins per account from every address together.
    pub per_account: u32,
    /// Failed logins per client address, whatever the account.
    pub per_client: u32,
    /// Sign-ups per client address; `None`: unlimited.
    pub registrations_per_client: Option<u32>,
    /// The wait after the first attempt past an allowance; each further one doubles it.
    pub first_delay: Duration,
    /// How long a subject's attempts are remembered after its last one.
    pub window: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            per_account_and_client: 5,
            per_account: 20,
            per_client: 20,
            registrations_per_client: None,
            first_delay: Duration::from_secs(1),
            window: Duration::from_secs(15 * 60),
        }
    }
}

impl ThrottlePolicy {
    fn allowance(&self, subject: &Subject) -> Allowance {
        let (free, max_delay) = match subject {
            Subject::AccountFromClient { .. } => (self.per_account_and_client, self.window),
            Subject::Account(_) => (self.per_account, ACCOUNT_MAX_DELAY.min(self.window)),
            Subject::Client(_) => (self.per_client, self.window),
            Subject::Registrant(_) => (
                self.registrations_per_client.unwrap_or(u32::MAX),
                self.window,
            ),
        };
        Allowance { free, max_delay }
    }

    /// What a login for `account` (as typed, normalised) from `client` is charged to.
    pub fn login_subjects(&self, account: &str, client: Option<&str>) -> Vec<Subject> {
        let account = account.trim().to_lowercase();
        match client {
            Some(client) => vec![
                Subject::AccountFromClient {
                    account: account.clone(),
                    client: client.to_owned(),
                },
                Subject::Account(account),
                Subject::Client(client.to_owned()),
            ],
            None => vec![Subject::Account(account)],
        }
    }

    /// What a sign-up from `client` is charged to; nothing when sign-ups are unlimited.
    pub fn registration_subjects(&self, client: Option<&str>) -> Vec<Subject> {
        match (self.registrations_per_client, client) {
            (Some(_), Some(client)) => vec![Subject::Registrant(client.to_owned())],
            _ => Vec::new(),
        }
    }
}

/// Who an attempt is charged to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    AccountFromClient { account: String, client: String },
    Account(String),
    Client(String),
    Registrant(String),
}

#[async_trait]
pub trait AttemptThrottle: Send + Sync {
    /// Counts one attempt against every subject, or against none and `Err(wait)` when any of
    /// them must wait that long first.
    async fn charge(&self, subjects: &[Subject]) -> Result<(), Duration>;
    /// Gives one charged attempt back to each subject.
    async fn refund(&self, subjects: &[Subject]);
    /// Forgets every attempt of `subject`.
    async fn forgive(&self, subject: &Subject);
}

#[derive(Debug, Clone, Copy)]
struct Attempts {
    count: u32,
    last: Instant,
}

/// Attempt counts per subject, in this process's memory.
#[derive(Debug)]
pub struct MemoryThrottle {
    policy: ThrottlePolicy,
    attempts: Mutex<HashMap<Subject, Attempts>>,
    /// Map size at which the next full sweep of expired entries happens.
    sweep_at: AtomicUsize,
}

impl MemoryThrottle {
    pub fn new(policy: ThrottlePolicy) -> Self {
        Self {
            policy,
            attempts: Mutex::new(HashMap::new()),
            sweep_at: AtomicUsize::new(1024),
        }
    }

    fn with_attempts<T>(&self, f: impl FnOnce(&mut HashMap<Subject, Attempts>) -> T) -> T {
        let mut attempts = self
            .attempts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        let window = self.policy.window;
        // A full sweep only when the map has doubled since the last one keeps each call O(1)
        // amortised, even under a flood of distinct emails, and memory bounded by the
        // subjects seen within the window.
        if attempts.len() >= self.sweep_at.load(Ordering::Relaxed) {
            attempts.retain(|_, seen| now.duration_since(seen.last) < window);
            self.sweep_at
                .store((attempts.len() * 2).max(1024), Ordering::Relaxed);
        }
        f(&mut attempts)
    }

    /// Charges the attempt and answers zero, or answers how long it must wait; a mirror of
    /// what Redis decided (`enforce` false) does not second-guess it.
    fn charge_now(&self, subjects: &[Subject], enforce: bool) -> Duration {
        let now = Instant::now();
        let window = self.policy.window;
        self.with_attempts(|attempts| {
            let current = |attempts: &HashMap<Subject, Attempts>, subject: &Subject| {
                attempts
                    .get(subject)
                    .filter(|seen| now.duration_since(seen.last) < window)
                    .copied()
            };
            let wait = subjects
                .iter()
                .filter(|_| enforce)
                .filter_map(|subject| {
                    let seen = current(attempts, subject)?;
                    let spacing = self
                        .policy
                        .allowance(subject)
                        .spacing(seen.count, self.policy.first_delay);
                    Some(spacing.saturating_sub(now.duration_since(seen.last)))
                })
                .max()
                .unwrap_or_default();
            if !wait.is_zero() {
                return wait;
            }
            for subject in subjects {
                let count = current(attempts, subject).map_or(0, |seen| seen.count);
                attempts.insert(
                    subject.clone(),
                    Attempts {
                        count: count.saturating_add(1),
                        last: now,
                    },
                );
            }
            Duration::ZERO
        })
    }
}

#[async_trait]
impl AttemptThrottle for MemoryThrottle {
    async fn charge(&self, subjects: &[Subject]) -> Result<(), Duration> {
        let wait = self.charge_now(subjects, true);
        if wait.is_zero() { Ok(()) } else { Err(wait) }
    }

    async fn refund(&self, subjects: &[Subject]) {
        self.with_attempts(|attempts| {
            for subject in subjects {
                if let Some(seen) = attempts.get_mut(subject) {
                    seen.count = seen.count.saturating_sub(1);
                }
            }
        });
    }

    async fn forgive(&self, subject: &Subject) {
        self.with_attempts(|attempts| attempts.remove(subject));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const POLICY: ThrottlePolicy = ThrottlePolicy {
        per_account_and_client: 3,
        per_account: 10,
        per_client: 10,
        registrations_per_client: Some(2),
        first_delay: Duration::from_secs(1),
        window: Duration::from_secs(15 * 60),
    };

    #[test]
    fn the_spacing_doubles_past_the_allowance_up_to_its_ceiling() {
        let allowance = Allowance {
            free: 2,
            max_delay: Duration::from_secs(10),
        };
        let second = Duration::from_secs(1);
        let spacings: Vec<u64> = (0..8)
            .map(|n| allowance.spacing(n, second).as_secs())
            .collect();
        assert_eq!(spacings, [0, 0, 1, 2, 4, 8, 10, 10]);
        assert_eq!(allowance.spacing(u32::MAX, second), Duration::from_secs(10));
    }

    #[tokio::test]
    async fn past_the_allowance_the_pair_waits_and_other_clients_do_not() {
        let throttle = MemoryThrottle::new(POLICY);
        let attacker = POLICY.login_subjects("a@x.io", Some("6.6.6.6"));
        for _ in 0..3 {
            throttle.charge(&attacker).await.unwrap();
        }
        let wait = throttle.charge(&attacker).await.unwrap_err();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1));
        // The owner, from their own address, is not slowed by the attacker's guesses.
        let owner = POLICY.login_subjects("A@x.io ", Some("1.2.3.4"));
        assert!(throttle.charge(&owner).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn once_the_wait_is_over_the_pair_is_let_through_a_delay_not_a_lockout() {
        let throttle = MemoryThrottle::new(POLICY);
        let guesser = POLICY.login_subjects("a@x.io", Some("6.6.6.6"));
        for _ in 0..3 {
            throttle.charge(&guesser).await.unwrap();
        }
        let wait = throttle.charge(&guesser).await.unwrap_err();
        tokio::time::advance(wait - Duration::from_millis(1)).await;
        assert!(
            throttle.charge(&guesser).await.is_err(),
            "not a moment early"
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(throttle.charge(&guesser).await.is_ok());
    }

    #[tokio::test]
    async fn concurrent_attempts_cannot_all_pass_a_check_made_before_any_was_counted() {
        let throttle = Arc::new(MemoryThrottle::new(POLICY));
        let who = POLICY.login_subjects("a@x.io", Some("6.6.6.6"));
        let attempts = (0..30).map(|_| {
            let (throttle, who) = (throttle.clone(), who.clone());
            tokio::spawn(async move { throttle.charge(&who).await.is_ok() })
        });
        let mut passed = 0;
        for attempt in attempts {
            passed += usize::from(attempt.await.unwrap());
        }
        assert_eq!(passed, 3);
    }

    #[tokio::test]
    async fn a_refund_gives_an_attempt_back_and_forgiving_forgets_them_all() {
        let throttle = MemoryThrottle::new(POLICY);
        let who = POLICY.login_subjects("a@x.io", Some("6.6.6.6"));
        for _ in 0..3 {
            throttle.charge(&who).await.unwrap();
        }
        throttle.refund(&who).await;
        throttle.charge(&who).await.unwrap();
        assert!(throttle.charge(&who).await.is_err());
        throttle.forgive(&who[0]).await;
        throttle.forgive(&who[1]).await;
        throttle.forgive(&who[2]).await;
        assert!(throttle.charge(&who).await.is_ok());
    }

    #[tokio::test]
    async fn guesses_from_many_addresses_slow_the_account_by_a_minute_at_most() {
        let throttle = MemoryThrottle::new(ThrottlePolicy {
            per_account: 2,
            first_delay: Duration::from_secs(1000),
            ..POLICY
        });
        for n in 0..2 {
            let from = POLICY.login_subjects("a@x.io", Some(&format!("10.0.0.{n}")));
            throttle.charge(&from).await.unwrap();
        }
        let owner = POLICY.login_subjects("a@x.io", Some("1.2.3.4"));
        let wait = throttle.charge(&owner).await.unwrap_err();
        assert!(wait <= ACCOUNT_MAX_DELAY && wait > ACCOUNT_MAX_DELAY / 2);
    }

    #[tokio::test]
    async fn sign_ups_are_counted_per_client_only_when_limited() {
        let throttle = MemoryThrottle::new(POLICY);
        let client = POLICY.registration_subjects(Some("6.6.6.6"));
        throttle.charge(&client).await.unwrap();
        throttle.charge(&client).await.unwrap();
        assert!(throttle.charge(&client).await.is_err());
        let unlimited = ThrottlePolicy {
            registrations_per_client: None,
            ..POLICY
        };
        assert!(unlimited.registration_subjects(Some("6.6.6.6")).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_are_forgotten_a_window_after_the_last() {
        let throttle = MemoryThrottle::new(ThrottlePolicy {
            window: Duration::from_secs(60),
            ..POLICY
        });
        let who = POLICY.login_subjects("a@x.io", None);
        for _ in 0..10 {
            throttle.charge(&who).await.unwrap();
        }
        assert!(throttle.charge(&who).await.is_err());
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(throttle.charge(&who).await.is_ok());
    }
}
