use std::time::Duration;

/// Bounded retries with exponential backoff and full jitter.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// How long an event may wait for one it depends on (`HandlerError::NotYet`) before it is
    /// dead-lettered; covers a consumer group's rebalance after a crash.
    pub prerequisite_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            prerequisite_wait: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The ceiling of the pause after failed attempt number `attempt` (1-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// A random pause between half the ceiling and the ceiling, so that consumers that failed
    /// together do not retry together.
    pub fn delay(&self, attempt: u32) -> Duration {
        jittered(self.ceiling(attempt))
    }

    /// The pause after the `failures`-th transaction in a row that the database failed (an
    /// outage, not a handler's fault): from a tenth of a second, doubling, at most
    /// `OUTAGE_CEILING`, jittered. It has no limit in number: the consumer waits out the
    /// outage.
    pub fn outage_delay(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
        jittered(
            Duration::from_millis(100)
                .saturating_mul(factor)
                .min(OUTAGE_CEILING),
        )
    }
}

/// The longest pause between two tries of a consumer's transaction during an outage.
pub const OUTAGE_CEILING: Duration = Duration::from_secs(10);

fn jittered(ceiling: Duration) -> Duration {
    let half = ceiling / 2;
    half + ceiling.saturating_sub(half).mul_f64(rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            ..RetryPolicy::default()
        };
        assert_eq!(policy.ceiling(1), Duration::from_millis(100));
        assert_eq!(policy.ceiling(2), Duration::from_millis(200));
        assert_eq!(policy.ceiling(4), Duration::from_millis(800));
        assert_eq!(policy.ceiling(5), Duration::from_millis(1000));
        assert_eq!(policy.ceiling(60), Duration::from_millis(1000));
        for attempt in 1..8 {
            let delay = policy.delay(attempt);
            assert!(delay >= policy.ceiling(attempt) / 2 && delay <= policy.ceiling(attempt));
        }
    }
}
