//! Redis-backed shared state against a real Redis: login throttling shared by identity
//! instances, and what happens when Redis is gone (quotas open, throttling falls back to the
//! instance's memory; nothing fails).

use std::sync::Arc;
use std::time::Duration;

use gateway::ratelimit::{RateLimits, RedisRateLimits};
use platform::shared_redis::SharedRedis;
use users::throttle::{LoginThrottle, RedisThrottle, Subject, ThrottlePolicy};

fn redis_url() -> Option<String> {
    testkit::required_env("REDIS_URL", "Redis")
}

fn shared(url: &str) -> Arc<SharedRedis> {
    let prefix = format!("t{}:", uuid::Uuid::new_v4().simple());
    Arc::new(SharedRedis::open(url, &prefix).unwrap())
}

const POLICY: ThrottlePolicy = ThrottlePolicy {
    max_failures_per_account: 3,
    max_failures_per_client: 100,
    window: Duration::from_secs(60),
};

#[tokio::test]
async fn identity_instances_share_login_failures() {
    let Some(url) = redis_url() else { return };
    let redis = shared(&url);
    // Two identity instances: separate throttles, one Redis.
    let first = RedisThrottle::new(POLICY, redis.clone());
    let second = RedisThrottle::new(POLICY, redis);
    let who = [
        Subject::Account("shared@example.com".into()),
        Subject::Client("10.0.0.1".into()),
    ];
    first.record_failure(&who).await;
    second.record_failure(&who).await;
    assert!(first.check(&who).await.is_ok());
    first.record_failure(&who).await;
    let wait = second
        .check(&who)
        .await
        .expect_err("three failures across instances block");
    assert!(
        wait > Duration::from_secs(50) && wait <= Duration::from_secs(60),
        "{wait:?}"
    );
    second.forgive(&who[0]).await;
    assert!(
        first.check(&who).await.is_ok(),
        "a success on one instance forgives on all"
    );
}

#[tokio::test]
async fn without_redis_quotas_open_and_throttling_stays_per_instance() {
    // Nothing listens on port 9 (discard) here: every command fails fast.
    let gone = shared("redis://127.0.0.1:9");
    let limits = RateLimits {
        store: Arc::new(RedisRateLimits {
            redis: gone.clone(),
        }),
        per_client: Some(1),
        per_user: None,
    };
    for _ in 0..3 {
        assert!(
            limits.charge("client:10.0.0.2", 1).await.is_ok(),
            "quotas fail open"
        );
    }
    let throttle = RedisThrottle::new(POLICY, gone.clone());
    let who = [Subject::Account("offline@example.com".into())];
    for _ in 0..3 {
        assert!(throttle.check(&who).await.is_ok());
        throttle.record_failure(&who).await;
    }
    assert!(
        throttle.check(&who).await.is_err(),
        "the instance's own memory still throttles"
    );
    assert!(gone.failures() > 0, "the failures are counted");
}
