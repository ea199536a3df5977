//! Request quotas at the gateway: per client address and per signed-in user, counted in
//! fixed one-minute windows. In this process's memory by default; in Redis when configured,
//! so every gateway instance counts against the same quota.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use platform::shared_redis::SharedRedis;

pub const WINDOW: Duration = Duration::from_secs(60);

#[async_trait]
pub trait RateLimitStore: Send + Sync {
    /// Counts one request for `key` in window number `window`; the count so far, or why the
    /// store could not count (the caller lets the request through).
    async fn hit(&self, key: &str, window: u64) -> Result<u64, String>;
}

/// Counts in this process: right for one gateway instance.
#[derive(Debug, Default)]
pub struct MemoryRateLimits {
    counts: Mutex<HashMap<String, (u64, u64)>>,
}

#[async_trait]
impl RateLimitStore for MemoryRateLimits {
    async fn hit(&self, key: &str, window: u64) -> Result<u64, String> {
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if counts.len() > 100_000 {
            counts.retain(|_, (seen_in, _)| *seen_in == window);
        }
        let entry = counts.entry(key.to_owned()).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        entry.1 += 1;
        Ok(entry.1)
    }
}

/// Counts in Redis, shared by every gateway instance. Each window is its own key that expires
/// with the window, so nothing needs cleaning up.
pub struct RedisRateLimits {
    pub redis: Arc<SharedRedis>,
}

#[async_trait]
impl RateLimitStore for RedisRateLimits {
    async fn hit(&self, key: &str, window: u64) -> Result<u64, String> {
        let key = self.redis.key(&format!("ratelimit:{key}:{window}"));
        let ttl_ms = u64::try_from(WINDOW.as_millis()).unwrap_or(u64::MAX);
        self.redis
            .run(|mut connection| async move {
                let (count,): (u64,) = redis::pipe()
                    .atomic()
                    .incr(&key, 1)
                    .pexpire(&key, i64::try_from(ttl_ms).unwrap_or(i64::MAX))
                    .ignore()
                    .query_async(&mut connection)
                    .await?;
                Ok(count)
            })
            .await
            .map_err(|e| e.to_string())
    }
}

/// The quotas and where they are counted.
#[derive(Clone)]
pub struct RateLimits {
    pub store: Arc<dyn RateLimitStore>,
    /// Requests per window per client address; `None` for no limit.
    pub per_client: Option<u64>,
    /// Requests per window per signed-in user; `None` for no limit.
    pub per_user: Option<u64>,
}

/// Where a caller stands against one quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u64,
    pub remaining: u64,
    /// Until the window resets.
    pub reset: Duration,
}

impl Quota {
    pub fn exceeded(&self, count: u64) -> bool {
        count > self.limit
    }
}

/// The window `now` (time since the Unix epoch) falls in: its number and the time left in it.
/// Windows are the wall clock's minutes, so that every gateway instance agrees on them.
pub fn window_at(now: Duration) -> (u64, Duration) {
    let window_ms = WINDOW.as_millis();
    let number = now.as_millis() / window_ms;
    let left = window_ms - now.as_millis() % window_ms;
    (
        u64::try_from(number).unwrap_or(u64::MAX),
        Duration::from_millis(u64::try_from(left).unwrap_or(0)),
    )
}

impl RateLimits {
    /// Counts this request against `subject`'s quota (`client:1.2.3.4`, `user:<id>`). `Ok` with
    /// the quota left, `Err` with it when the request is over the limit. A store that cannot
    /// count lets the request through (fail open) and says so.
    pub async fn charge(&self, subject: &str, limit: u64) -> Result<Quota, Quota> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.charge_at(subject, limit, now).await
    }

    /// As [`Self::charge`], at `now` (time since the Unix epoch).
    pub async fn charge_at(
        &self,
        subject: &str,
        limit: u64,
        now: Duration,
    ) -> Result<Quota, Quota> {
        let (window, reset) = window_at(now);
        let count = match self.store.hit(subject, window).await {
            Ok(count) => count,
            Err(error) => {
                metrics::counter!("commercex_rate_limit_fail_open_total").increment(1);
                tracing::warn!(%error, "rate limit store unavailable; letting the request through");
                return Ok(Quota {
                    limit,
                    remaining: limit,
                    reset,
                });
            }
        };
        let quota = Quota {
            limit,
            remaining: limit.saturating_sub(count),
            reset,
        };
        if quota.exceeded(count) {
            Err(quota)
        } else {
            Ok(quota)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_counts_per_key_and_window() {
        let store = MemoryRateLimits::default();
        assert_eq!(store.hit("a", 1).await, Ok(1));
        assert_eq!(store.hit("a", 1).await, Ok(2));
        assert_eq!(store.hit("b", 1).await, Ok(1));
        assert_eq!(store.hit("a", 2).await, Ok(1));
    }

    /// 2026-12-06 10:00:15 UTC, 15 s into a window.
    const MORNING: Duration = Duration::from_secs(1_796_551_215);

    #[tokio::test]
    async fn the_request_after_the_limit_is_refused_until_the_next_window() {
        let limits = RateLimits {
            store: Arc::new(MemoryRateLimits::default()),
            per_client: Some(2),
            per_user: None,
        };
        let first = limits
            .charge_at("client:x", 2, MORNING)
            .await
            .expect("first");
        assert_eq!(first.remaining, 1);
        assert_eq!(first.reset, Duration::from_secs(45));
        let later = MORNING + Duration::from_secs(44);
        let second = limits
            .charge_at("client:x", 2, later)
            .await
            .expect("second");
        assert_eq!(second.remaining, 0);
        let third = limits
            .charge_at("client:x", 2, later)
            .await
            .expect_err("third");
        assert_eq!((third.remaining, third.reset), (0, Duration::from_secs(1)));
        let next_window = MORNING + Duration::from_secs(45);
        let fourth = limits
            .charge_at("client:x", 2, next_window)
            .await
            .expect("new window");
        assert_eq!((fourth.remaining, fourth.reset), (1, WINDOW));
    }

    struct Broken;

    #[async_trait]
    impl RateLimitStore for Broken {
        async fn hit(&self, _: &str, _: u64) -> Result<u64, String> {
            Err("down".into())
        }
    }

    #[tokio::test]
    async fn a_broken_store_fails_open() {
        let limits = RateLimits {
            store: Arc::new(Broken),
            per_client: Some(1),
            per_user: None,
        };
        for _ in 0..3 {
            assert!(limits.charge_at("client:x", 1, MORNING).await.is_ok());
        }
    }
}
