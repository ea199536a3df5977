//! When a failed delivery is tried again, and when its endpoint is given up on.
//!
//! Deliveries to one endpoint go in event-time order, one at a time, so the oldest one that
//! fails holds the others back: its backoff is the endpoint's, and an endpoint that keeps
//! failing gets one request per backoff period, not one per event (the breaker's open
//! state). Failing without a break for `disable_after` disables the endpoint with the reason;
//! its deliveries stay pending and go out, in order, once an operator enables it again.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Exponential backoff with jitter: the n-th retry waits between half and all of
/// `first * 2^(n-1)`, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    /// 5 s, 10 s, 20 s ... up to an hour, each less up to half by the jitter: about forty
    /// tries over a day.
    fn default() -> Self {
        Self {
            first: Duration::from_secs(5),
            max: Duration::from_secs(3600),
        }
    }
}

impl Backoff {
    /// The wait after the `attempts`-th failure (1 for the first), `jitter` in [0, 1) spreading
    /// it over its upper half so that endpoints failing together do not retry together.
    pub fn delay(&self, attempts: u32, jitter: f64) -> Duration {
        let doublings = attempts.saturating_sub(1).min(30);
        let ceiling = self
            .first
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.max);
        let jitter = jitter.clamp(0.0, 1.0);
        ceiling.div_f64(2.0).mul_f64(1.0 + jitter)
    }

    /// The wait before the next try: the backoff, or longer when the receiver asked for more
    /// time (`Retry-After`), though never more than `max`.
    pub fn next_wait(&self, attempts: u32, jitter: f64, asked: Option<Duration>) -> Duration {
        let backoff = self.delay(attempts, jitter);
        match asked {
            Some(asked) => backoff.max(asked.min(self.max)),
            None => backoff,
        }
    }
}

/// How long the receiver asked to be left alone (`Retry-After`: seconds, or an HTTP date).
pub fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&Utc) - now).to_std().ok()
}

/// What a failed delivery means for its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointVerdict {
    /// Failing, not yet for long enough: try again after the backoff.
    KeepTrying,
    /// Failing without a break for `disable_after`: disable it, with the reason.
    Disable,
}

impl EndpointVerdict {
    pub fn after_failure(
        failing_since: DateTime<Utc>,
        now: DateTime<Utc>,
        disable_after: Duration,
    ) -> Self {
        match (now - failing_since).to_std() {
            Ok(failing) if failing >= disable_after => Self::Disable,
            _ => Self::KeepTrying,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn waits_double_from_the_first_and_stop_at_the_max() {
        let backoff = Backoff::default();
        assert!(backoff.delay(1, 1.0 - f64::EPSILON) <= SECOND * 5);
        assert_eq!(backoff.delay(1, 0.0), SECOND * 5 / 2);
        assert_eq!(backoff.delay(2, 0.0), SECOND * 5);
        assert_eq!(backoff.delay(3, 0.0), SECOND * 10);
        assert_eq!(backoff.delay(40, 0.0), SECOND * 1800);
        assert_eq!(backoff.delay(u32::MAX, 1.0), SECOND * 3600);
    }

    #[test]
    fn a_day_of_failures_is_about_forty_tries() {
        let backoff = Backoff::default();
        let (mut waited, mut tries) = (Duration::ZERO, 0u32);
        while waited < Duration::from_secs(86_400) {
            tries += 1;
            waited += backoff.delay(tries, 0.5);
        }
        assert!((30..=45).contains(&tries), "{tries} tries");
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_max() {
        let backoff = Backoff::default();
        assert_eq!(backoff.next_wait(1, 0.0, Some(SECOND * 30)), SECOND * 30);
        assert_eq!(backoff.next_wait(1, 0.0, Some(SECOND)), SECOND * 5 / 2);
        assert_eq!(
            backoff.next_wait(1, 0.0, Some(SECOND * 86_400)),
            SECOND * 3600
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = DateTime::parse_from_rfc3339("2026-12-06T10:00:00Z")
            .expect("date")
            .with_timezone(&Utc);
        assert_eq!(retry_after("120", now), Some(SECOND * 120));
        assert_eq!(
            retry_after("Sun, 06 Dec 2026 10:01:30 GMT", now),
            Some(SECOND * 90)
        );
        assert_eq!(retry_after("Sun, 06 Dec 2026 09:00:00 GMT", now), None);
        assert_eq!(retry_after("soon", now), None);
    }

    #[test]
    fn an_endpoint_is_disabled_once_it_has_failed_for_the_whole_period() {
        let since = Utc::now();
        let day = Duration::from_secs(86_400);
        let later = |secs| since + chrono::Duration::seconds(secs);
        assert_eq!(
            EndpointVerdict::after_failure(since, later(86_399), day),
            EndpointVerdict::KeepTrying
        );
        assert_eq!(
            EndpointVerdict::after_failure(since, later(86_400), day),
            EndpointVerdict::Disable
        );
    }

    proptest! {
        #[test]
        fn a_wait_is_never_shorter_than_half_its_step_nor_longer_than_the_max(
            attempts in 1u32..100, jitter in 0.0f64..1.0,
        ) {
            let backoff = Backoff::default();
            let wait = backoff.delay(attempts, jitter);
            prop_assert!(wait <= backoff.max);
            prop_assert!(wait >= backoff.delay(attempts, 0.0));
            prop_assert!(backoff.delay(attempts + 1, 0.0) >= backoff.delay(attempts, 0.0));
        }
    }
}
