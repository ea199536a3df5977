//! Clients waiting for orders to settle (`GET /api/v1/orders/{id}?wait=5s`): a waiter is woken
//! the moment this process commits the order's final status, instead of asking again and
//! again. Another instance of the service may settle the order instead, so a waiter also
//! looks at the database every `RECHECK_EVERY`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use uuid::Uuid;

/// How often a waiter looks again without being woken.
pub const RECHECK_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, Default)]
pub struct Watchers {
    orders: Mutex<HashMap<Uuid, Arc<Notify>>>,
}

/// One client's interest in one order, until dropped.
pub struct Watch<'a> {
    watchers: &'a Watchers,
    order: Uuid,
    notify: Arc<Notify>,
}

impl Watchers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<Notify>>> {
        // A panic while holding this lock leaves a map that is still consistent.
        self.orders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn watch(&self, order: Uuid) -> Watch<'_> {
        let notify = self.lock().entry(order).or_default().clone();
        Watch {
            watchers: self,
            order,
            notify,
        }
    }

    /// `order` reached a final status: wakes everyone waiting for it.
    pub fn settled(&self, order: Uuid) {
        if let Some(notify) = self.lock().get(&order) {
            notify.notify_waiters();
        }
    }
}

impl Watch<'_> {
    /// Resolves when the order settles. Register (`enable`) before reading the order, so a
    /// settlement in between is not missed.
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        let mut orders = self.watchers.lock();
        // The map's handle and ours: nobody else waits on this order.
        if Arc::strong_count(&self.notify) == 2 {
            orders.remove(&self.order);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_settlement_wakes_the_waiter_and_the_last_one_out_cleans_up() {
        let watchers = Watchers::default();
        let order = Uuid::now_v7();
        let watch = watchers.watch(order);
        {
            let notified = watch.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            watchers.settled(order);
            tokio::time::timeout(Duration::from_secs(1), notified)
                .await
                .expect("woken");
        }
        drop(watch);
        assert!(watchers.lock().is_empty());
    }
}
