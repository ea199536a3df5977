//! Clients waiting for orders to settle (`GET /api/v1/orders/{id}?wait=5s`): a waiter is woken
//! the moment its order's final status commits, instead of asking again and again.
//!
//! This process wakes its waiters when it settles an order. Another instance of the service
//! may settle it instead: on PostgreSQL every instance hears each settlement from the
//! database (`SettlementFollower`, a trigger's `NOTIFY`). While this process hears every
//! settlement (`exact`: it is the only instance, or it is listening), a waiter sleeps until it
//! is woken or its wait ends. While it may miss one (not listening yet, or the connection
//! was lost), a waiter looks at the database every `RECHECK_EVERY`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use platform::notifications::{Follower, ListenError};
use tokio::sync::Notify;
use uuid::Uuid;

/// How often a waiter looks again without being woken, while settlements may go unheard.
pub const RECHECK_EVERY: Duration = Duration::from_millis(250);

/// The channel the settlement trigger notifies (migrations/postgres), with the order's id.
pub const CHANNEL: &str = "orders_settled";

#[derive(Debug)]
pub struct Watchers {
    orders: Mutex<HashMap<Uuid, Arc<Notify>>>,
    /// Whether every settlement, whoever commits it, wakes this process's waiters.
    exact: AtomicBool,
}

/// One client's interest in one order, until dropped.
pub struct Watch<'a> {
    watchers: &'a Watchers,
    order: Uuid,
    notify: Arc<Notify>,
}

impl Watchers {
    /// `exact`: this process settles every order (the only instance), so it hears every
    /// settlement from the start.
    pub fn new(exact: bool) -> Self {
        Self {
            orders: Mutex::default(),
            exact: AtomicBool::new(exact),
        }
    }

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

    /// How long a waiter may sleep before it looks at the database again, if nothing wakes
    /// it: as long as it likes while every settlement is heard.
    pub fn recheck_within(&self, left: Duration) -> Duration {
        if self.exact.load(Ordering::Acquire) {
            left
        } else {
            left.min(RECHECK_EVERY)
        }
    }

    /// Every settlement is heard from now on (`true`), or may not be (`false`). Every waiter
    /// is woken to look again: settlements may have gone unheard until now, and a waiter
    /// asleep for its whole wait must start looking every `RECHECK_EVERY`.
    fn set_exact(&self, exact: bool) {
        self.exact.store(exact, Ordering::Release);
        for notify in self.lock().values() {
            notify.notify_waiters();
        }
    }
}

/// Wakes this process's waiters when another instance settles their order.
pub struct SettlementFollower {
    watchers: Arc<Watchers>,
}

impl SettlementFollower {
    pub fn new(watchers: Arc<Watchers>) -> Self {
        Self { watchers }
    }
}

#[async_trait]
impl Follower for SettlementFollower {
    async fn listening(&self) {
        self.watchers.set_exact(true);
    }

    async fn heard(&self, payload: &str) {
        match Uuid::parse_str(payload) {
            Ok(order) => self.watchers.settled(order),
            Err(error) => {
                tracing::warn!(payload, %error, "a settlement notification without an order id")
            }
        }
    }

    fn deaf(&self, error: Option<&ListenError>) {
        self.watchers.set_exact(false);
        match error {
            None => tracing::warn!(
                "lost the connection that hears orders settled by other instances; waiting \
                 clients look at the database until it is back"
            ),
            Some(error) => tracing::warn!(
                %error,
                "cannot hear orders settled by other instances; waiting clients look at the \
                 database until they are heard"
            ),
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

    /// Waits on `watch` as a client does, and expects `wake` to end the wait.
    async fn woken_by(watch: &Watch<'_>, wake: impl FnOnce(), expected: &str) {
        let notified = watch.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        wake();
        tokio::time::timeout(Duration::from_secs(1), notified)
            .await
            .expect(expected);
    }

    #[tokio::test]
    async fn a_settlement_wakes_the_waiter_and_the_last_one_out_cleans_up() {
        let watchers = Watchers::new(true);
        let order = Uuid::now_v7();
        let watch = watchers.watch(order);
        woken_by(&watch, || watchers.settled(order), "woken").await;
        drop(watch);
        assert!(watchers.lock().is_empty());
    }

    #[tokio::test]
    async fn a_waiter_asleep_for_its_whole_wait_is_woken_when_settlements_may_go_unheard() {
        let watchers = Watchers::new(true);
        let wait = Duration::from_secs(8);
        assert_eq!(
            watchers.recheck_within(wait),
            wait,
            "every settlement is heard"
        );
        let watch = watchers.watch(Uuid::now_v7());
        woken_by(&watch, || watchers.set_exact(false), "woken to look again").await;
        assert_eq!(watchers.recheck_within(wait), RECHECK_EVERY);
    }
}
