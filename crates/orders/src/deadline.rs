//! The saga deadline: an order still pending this long after it was placed is cancelled
//! (`timed_out`), so that no order waits for ever on a step that will not come.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::app::Orders;

pub struct Deadline {
    orders: Arc<Orders>,
    deadline: Duration,
}

impl Deadline {
    pub fn new(orders: Arc<Orders>, deadline: Duration) -> Self {
        Self { orders, deadline }
    }

    /// How often to look: often enough that an order is answered within about a tenth of the
    /// deadline after it passes, and at most every 10 s.
    fn every(&self) -> Duration {
        (self.deadline / 10).clamp(Duration::from_millis(100), Duration::from_secs(10))
    }

    /// Cancels overdue orders until `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) {
        platform::periodic::every(self.every(), &cancel, || self.time_out_overdue()).await;
    }

    async fn time_out_overdue(&self) {
        let deadline = chrono::Duration::from_std(self.deadline).unwrap_or(chrono::Duration::MAX);
        let placed_before = platform::time::now() - deadline;
        if let Err(error) = self.orders.time_out_overdue(placed_before).await {
            tracing::warn!(%error, "timing out overdue orders failed; will retry");
        }
    }
}
