//! Attempt counts shared through Redis: one hash per subject (`n` attempts, `t` the last one's
//! time in Redis's own clock, so instances with skewed clocks agree), charged by one script so
//! the check and the count are one atomic step. When Redis is unavailable the instance's
//! own memory throttles; it mirrors every charge Redis accepted, so an outage weakens the
//! limits to per-instance but never lifts them.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use platform::shared_redis::SharedRedis;

use super::{AttemptThrottle, MemoryThrottle, Subject, ThrottlePolicy};

/// KEYS: one per subject. ARGV: window and first delay (ms), then each key's free attempts
/// and longest delay (ms). Returns 0 when charged, else the milliseconds to wait.
static CHARGE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local clock = redis.call('TIME')
local now = clock[1] * 1000 + math.floor(clock[2] / 1000)
local window = tonumber(ARGV[1])
local first = tonumber(ARGV[2])
local wait = 0
for i, key in ipairs(KEYS) do
  local seen = redis.call('HMGET', key, 'n', 't')
  local count = tonumber(seen[1]) or 0
  local free = tonumber(ARGV[1 + 2 * i])
  if count >= free then
    local spacing = math.min(first * 2 ^ math.min(count - free, 30), tonumber(ARGV[2 + 2 * i]))
    wait = math.max(wait, tonumber(seen[2]) + spacing - now)
  end
end
if wait > 0 then
  return math.ceil(wait)
end
for _, key in ipairs(KEYS) do
  redis.call('HINCRBY', key, 'n', 1)
  redis.call('HSET', key, 't', now)
  redis.call('PEXPIRE', key, window)
end
return 0
",
    )
});

/// KEYS: one per subject; each gives one attempt back.
static REFUND: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
for _, key in ipairs(KEYS) do
  if redis.call('HINCRBY', key, 'n', -1) <= 0 then
    redis.call('DEL', key)
  end
end
return 0
",
    )
});

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
            Subject::AccountFromClient { account, client } => {
                format!("attempts:account-client:{account}|{client}")
            }
            Subject::Account(account) => format!("attempts:account:{account}"),
            Subject::Client(client) => format!("attempts:client:{client}"),
            Subject::Registrant(client) => format!("attempts:registrant:{client}"),
        })
    }

    async fn invoke(
        &self,
        script: &redis::Script,
        subjects: &[Subject],
        args: Vec<u64>,
    ) -> Result<u64, String> {
        let mut invocation = script.prepare_invoke();
        for subject in subjects {
            invocation.key(self.key(subject));
        }
        for arg in args {
            invocation.arg(arg);
        }
        self.redis
            .run(|mut connection| async move { invocation.invoke_async(&mut connection).await })
            .await
            .map_err(|e| e.to_string())
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[async_trait]
impl AttemptThrottle for RedisThrottle {
    async fn charge(&self, subjects: &[Subject]) -> Result<(), Duration> {
        if subjects.is_empty() {
            return Ok(());
        }
        let mut args = vec![millis(self.policy.window), millis(self.policy.first_delay)];
        for subject in subjects {
            let allowance = self.policy.allowance(subject);
            args.extend([u64::from(allowance.free), millis(allowance.max_delay)]);
        }
        match self.invoke(&CHARGE, subjects, args).await {
            Ok(0) => {
                self.fallback.charge_now(subjects, false);
                Ok(())
            }
            Ok(wait) => Err(Duration::from_millis(wait)),
            Err(error) => {
                tracing::warn!(%error, "throttling falls back to this instance's memory");
                self.fallback.charge(subjects).await
            }
        }
    }

    async fn refund(&self, subjects: &[Subject]) {
        self.fallback.refund(subjects).await;
        if subjects.is_empty() {
            return;
        }
        if let Err(error) = self.invoke(&REFUND, subjects, Vec::new()).await {
            tracing::warn!(%error, "could not give a throttled attempt back in Redis");
        }
    }

    async fn forgive(&self, subject: &Subject) {
        self.fallback.forgive(subject).await;
        if let Err(error) = self.redis.delete(&self.key(subject)).await {
            tracing::warn!(%error, "could not forgive attempts in Redis");
        }
    }
}
