use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::OrderStatus;

/// Which orders an administrator is looking for; every part is optional and they all apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderFilter {
    pub status: Option<OrderStatus>,
    pub customer: Option<Uuid>,
    /// Placed at or after.
    pub placed_from: Option<DateTime<Utc>>,
    /// Placed before.
    pub placed_to: Option<DateTime<Utc>>,
}
