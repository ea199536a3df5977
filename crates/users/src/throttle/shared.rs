//! Login throttling shared through Redis: a sorted set of failure times per subject, so the
//! window slides exactly as the in-memory one does. When Redis is unavailable the instance's
//! own memory throttles (it records every failure too), so an outage weakens the limit to
//! per-instance but never lifts it.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use platform::shared_redis::SharedRedis;

use super::{LoginThrottle, MemoryThrottle, Subject, ThrottlePolicy};

pub struct RedisThrottle {
    policy: ThrottlePolicy,
    redis: Arc<SharedRedis>,
    fallback: MemoryThrottle,
}

impl RedisThrottle {
    pub fn new(policy: ThrottlePolicy, redis: Arc<SharedRedis>) -> Self {
        Self {
            policy,
            redis,
            fallback: MemoryThrottle::new(policy),
        }
    }

    fn key(&self, subject: &Subject) -> String {
        self.redis.key(&match subject {
            Subject::Account(email) => format!("login-failures:account:{email}"),
            Subject::Client(addr) => format!("login-failures:client:{addr}"),
        })
    }

    fn limit(&self, subject: &Subject) -> usize {
        match subject {
            Subject::Account(_) => self.policy.max_failures_per_account,
            Subject::Client(_) => self.policy.max_failures_per_client,
        }
    }

    fn window_ms(&self) -> i64 {
        i64::try_from(self.policy.window.as_millis()).unwrap_or(i64::MAX)
    }

    /// How long `subject` must wait, per Redis.
    async fn wait_for(&self, subject: &Subject, now: i64) -> Result<Duration, String> {
        let key = self.key(subject);
        let limit = self.limit(subject);
        let window = self.window_ms();
        let (scored,): (Vec<(String, f64)>,) = self
            .redis
            .run(|mut connection| async move {
                redis::pipe()
                    .atomic()
                    .zrembyscore(&key, "-inf", now - window)
                    .ignore()
                    .cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query_async(&mut connection)
                    .await
            })
            .await
            .map_err(|e| e.to_string())?;
        // Scores are the failure times in milliseconds, well inside f64's exact range.
        let times: Vec<i64> = scored.into_iter().map(|(_, at)| at as i64).collect();
        if times.len() < limit || limit == 0 {
            return Ok(Duration::ZERO);
        }
        // Blocked until enough failures age out to fall below the limit.
        let freeing = times[times.len() - limit];
        let left = (freeing + window - now).max(0);
        Ok(Duration::from_millis(u64::try_from(left).unwrap_or(0)))
    }
}

fn now_ms() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait]
impl LoginThrottle for RedisThrottle {
    async fn check(&self, subjects: &[Subject]) -> Result<(), Duration> {
        let now = now_ms();
        let mut wait = Duration::ZERO;
        for subject in subjects {
            match self.wait_for(subject, now).await {
                Ok(left) => wait = wait.max(left),
                Err(error) => {
                    tracing::warn!(%error, "login throttle falls back to this instance's memory");
                    return self.fallback.check(subjects).await;
                }
            }
        }
        if wait.is_zero() { Ok(()) } else { Err(wait) }
    }

    async fn record_failure(&self, subjects: &[Subject]) {
        self.fallback.record_failure(subjects).await;
        let now = now_ms();
        let window = self.window_ms();
        let keys: Vec<String> = subjects.iter().map(|subject| self.key(subject)).collect();
        let member = format!("{now}-{}", uuid::Uuid::new_v4());
        let recorded = self
            .redis
            .run(|mut connection| async move {
                let mut pipe = redis::pipe();
                pipe.atomic();
                for key in &keys {
                    pipe.zadd(key, &member, now).ignore();
                    pipe.pexpire(key, window).ignore();
                }
                pipe.query_async::<()>(&mut connection).await
            })
            .await;
        if let Err(error) = recorded {
            tracing::warn!(%error, "could not record a failed login in Redis");
        }
    }

    async fn forgive(&self, subject: &Subject) {
        self.fallback.forgive(subject).await;
        if let Err(error) = self.redis.delete(&self.key(subject)).await {
            tracing::warn!(%error, "could not forgive failed logins in Redis");
        }
    }
}
