use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

/// What an operator's dashboard shows of orders, counted at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct OrdersSummary {
    pub at: DateTime<Utc>,
    /// Orders placed in each of the last 60 minutes, oldest minute first (the current,
    /// unfinished minute last).
    pub placed_per_minute: Vec<i64>,
    pub pending: i64,
    /// How long the oldest pending order has waited, in seconds (0 with none pending).
    pub oldest_pending_seconds: f64,
    /// Of the orders placed in the last 24 hours: how many are in each status, and why the
    /// cancelled ones were cancelled.
    pub last_day_by_status: BTreeMap<String, i64>,
    pub last_day_cancelled_by_reason: BTreeMap<String, i64>,
}

/// The per-minute series from (minute since the epoch, count) pairs: the 60 minutes up to
/// and including `now`'s, zero where nothing was placed.
pub fn per_minute(now: DateTime<Utc>, counts: &[(i64, i64)]) -> Vec<i64> {
    let current = now.timestamp_millis().div_euclid(60_000);
    (current - 59..=current)
        .map(|minute| {
            counts
                .iter()
                .filter(|(m, _)| *m == minute)
                .map(|(_, n)| n)
                .sum()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_series_has_sixty_minutes_ending_with_the_current_one() {
        let now = DateTime::from_timestamp_millis(120 * 60_000 + 30_000).unwrap();
        let series = per_minute(now, &[(120, 4), (119, 2), (61, 1), (60, 9), (121, 5)]);
        assert_eq!(series.len(), 60);
        assert_eq!(series[59], 4, "the current minute");
        assert_eq!(series[58], 2);
        assert_eq!(series[0], 1, "the oldest minute kept");
        assert_eq!(
            series.iter().sum::<i64>(),
            7,
            "older and future minutes are left out"
        );
    }
}
