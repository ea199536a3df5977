//! Times are UTC. In the database they are integer milliseconds since the Unix epoch, the one
//! representation both SQLite and PostgreSQL store and compare natively through sqlx `Any`.

use chrono::{DateTime, TimeZone, Utc};

pub fn now() -> DateTime<Utc> {
    Utc::now()
}

pub fn to_millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// A stored timestamp back as a `DateTime`; out-of-range values (never written by us) clamp to
/// the epoch rather than failing a read.
pub fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}
