//! Checkout metrics: orders placed, how the saga ended for each (confirmed, or cancelled and
//! why), how long that took, and the orders still pending.
//!
//! A saga step settles an order inside the handler's transaction, which may still roll back
//! (a retry, a concurrent duplicate). So the outcome is parked under the causing event's id
//! and counted only once that transaction has committed ([`Settled::record`]).

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use platform::db::Db;
use uuid::Uuid;

use crate::domain::CancelReason;

/// How the checkout of one order ended.
#[derive(Debug, Clone, Copy)]
pub struct Finished {
    pub order_id: Uuid,
    pub cancelled: Option<CancelReason>,
    pub placed_at: DateTime<Utc>,
}

impl Finished {
    /// `commercex_orders_finished_total{outcome, reason}` and
    /// `commercex_checkout_duration_seconds{outcome}` (placed to settled).
    pub fn record(self) {
        let (outcome, reason) = match self.cancelled {
            None => ("confirmed", ""),
            Some(reason) => ("cancelled", reason.as_str()),
        };
        metrics::counter!(
            "commercex_orders_finished_total",
            "outcome" => outcome,
            "reason" => reason,
        )
        .increment(1);
        let took = (Utc::now() - self.placed_at).to_std().unwrap_or_default();
        metrics::histogram!("commercex_checkout_duration_seconds", "outcome" => outcome)
            .record(took.as_secs_f64());
    }
}

/// Outcomes written by transactions that have not committed yet, by causing event.
#[derive(Debug, Default)]
pub struct Settled(Mutex<HashMap<Uuid, Finished>>);

impl Settled {
    pub fn park(&self, cause: Uuid, finished: Finished) {
        self.lock().insert(cause, finished);
    }

    /// Forgets what an earlier, rolled-back attempt at `cause` parked.
    pub fn forget(&self, cause: Uuid) {
        self.lock().remove(&cause);
    }

    /// Counts what `cause`'s committed transaction settled; the order it settled, if any.
    pub fn record(&self, cause: Uuid) -> Option<Uuid> {
        let finished = self.lock().remove(&cause)?;
        finished.record();
        Some(finished.order_id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Finished>> {
        // A panic while holding this lock leaves a map that is still consistent.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

pub fn count_placed() {
    metrics::counter!("commercex_orders_placed_total").increment(1);
}

pub fn count_timed_out() {
    metrics::counter!("commercex_saga_timeouts_total").increment(1);
}

/// `commercex_orders_pending` and `commercex_orders_pending_oldest_age_seconds`: orders the
/// saga has not settled yet; a growing age means an order is stuck.
pub async fn sample_pending(db: &Db) -> Result<(), sqlx::Error> {
    let (count, oldest): (i64, Option<i64>) =
        sqlx::query_as("SELECT COUNT(*), MIN(created_at) FROM orders WHERE status = 'pending'")
            .fetch_one(db.pool())
            .await?;
    metrics::gauge!("commercex_orders_pending").set(count as f64);
    let age = oldest.map_or(0.0, |millis| {
        (platform::time::to_millis(platform::time::now()) - millis).max(0) as f64 / 1000.0
    });
    metrics::gauge!("commercex_orders_pending_oldest_age_seconds").set(age);
    Ok(())
}

/// Help text for the metrics above.
pub fn describe() {
    metrics::describe_counter!(
        "commercex_saga_timeouts_total",
        "Orders cancelled because they were still pending at the saga deadline."
    );
    metrics::describe_counter!(
        "commercex_orders_placed_total",
        "Orders accepted (repeats of an idempotent request not counted)."
    );
    metrics::describe_counter!(
        "commercex_orders_finished_total",
        "Orders whose checkout ended, by outcome (confirmed, cancelled) and cancellation reason."
    );
    metrics::describe_histogram!(
        "commercex_checkout_duration_seconds",
        metrics::Unit::Seconds,
        "Time from placing an order to its confirmation or cancellation."
    );
    metrics::describe_gauge!(
        "commercex_orders_pending",
        "Orders placed and not yet confirmed or cancelled."
    );
    metrics::describe_gauge!(
        "commercex_orders_pending_oldest_age_seconds",
        metrics::Unit::Seconds,
        "Age of the oldest pending order (0 when none is pending)."
    );
}
