//! Times are UTC. In the database they are integer milliseconds since the Unix epoch, the one
//! representation both SQLite and PostgreSQL store and compare natively through sqlx `Any`.

use chrono::{DateTime, TimeZone, Utc};

pub fn now() -> DateTime<Utc> {
    Utc::now()
}

pub fn to_millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// `span` before `now`, in milliseconds: the cut-off of what is kept for `span` (a span too
/// long to subtract keeps everything).
pub fn millis_before(now: DateTime<Utc>, span: std::time::Duration) -> i64 {
    let span = i64::try_from(span.as_millis()).unwrap_or(i64::MAX);
    to_millis(now).saturating_sub(span)
}

/// A stored timestamp back as a `DateTime`; out-of-range values (never written by us) clamp to
/// the epoch rather than failing a read.
pub fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// The smallest UUIDv7, as text, of anything created at or after `t`. Ids are UUIDv7, whose
/// text sorts by time, so "created since `t`" is a range of the primary key.
pub fn first_id_at(t: DateTime<Utc>) -> String {
    let millis = u64::try_from(t.timestamp_millis()).unwrap_or(0) & 0xffff_ffff_ffff;
    format!(
        "{:08x}-{:04x}-0000-0000-000000000000",
        millis >> 16,
        millis & 0xffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_made_after_a_time_sort_after_its_first_id_and_before_a_later_ones() {
        let before = now() - chrono::Duration::milliseconds(1);
        let id = uuid::Uuid::now_v7().to_string();
        let later = now() + chrono::Duration::milliseconds(50);
        assert!(first_id_at(before) <= id, "{} {id}", first_id_at(before));
        assert!(id < first_id_at(later), "{id} {}", first_id_at(later));
    }
}
