//! The orders use cases. Customers place, read and cancel orders over HTTP
//! (`placing` and the reads here); the saga's events move an order to its final state
//! (`saga`), and so does the deadline.

mod placing;
mod saga;

use std::sync::Arc;
use std::time::{Duration, Instant};

use events::consumer::HandlerError;
use events::outbox::Outbox;
use platform::auth::AuthUser;
use platform::db::Db;
use platform::sealing::SealingKeys;
use uuid::Uuid;

use crate::domain::{FieldProblem, Order, OrderFilter, OrderStatus, OrdersSummary};
use crate::metrics::Settled;
use crate::store::{OrderStore, StoreError, TimelineEntry};
use crate::watchers::Watchers;

pub use placing::Placed;

pub const SOURCE: &str = "commercex/orders";

#[derive(Debug, thiserror::Error)]
pub enum OrdersError {
    #[error("no such order")]
    NotFound,
    #[error("this Idempotency-Key was used for a different request")]
    KeyReused,
    #[error("the order is already cancelled")]
    AlreadyCancelled,
    #[error("the order changed meanwhile; try again")]
    Changed,
    #[error("the order cannot be placed")]
    Unplaceable(Vec<FieldProblem>),
    /// A fault of ours (a database that failed or could not be reached, a broken invariant),
    /// with its cause.
    #[error("internal error")]
    Internal(#[source] platform::BoxError),
}

impl From<StoreError> for OrdersError {
    fn from(error: StoreError) -> Self {
        Self::Internal(error.into())
    }
}

impl From<sqlx::Error> for OrdersError {
    fn from(error: sqlx::Error) -> Self {
        Self::Internal(error.into())
    }
}

impl From<StoreError> for HandlerError {
    fn from(error: StoreError) -> Self {
        HandlerError::transient(error)
    }
}

pub struct Orders {
    db: Db,
    outbox: Outbox,
    /// Seal the customer's payment token before it goes into `order.placed`.
    payment_tokens: Arc<SealingKeys>,
    store: OrderStore,
    settled: Settled,
    watchers: Arc<Watchers>,
}

impl Orders {
    /// `watchers` are woken when orders settle; see [`Watchers`].
    pub fn new(
        db: Db,
        outbox: Outbox,
        payment_tokens: Arc<SealingKeys>,
        watchers: Arc<Watchers>,
    ) -> Self {
        Self {
            store: OrderStore::new(db.clone()),
            db,
            outbox,
            payment_tokens,
            settled: Settled::default(),
            watchers,
        }
    }

    pub fn store(&self) -> &OrderStore {
        &self.store
    }

    /// The order, if the caller owns it or is an admin; anyone else learns nothing.
    pub async fn get(&self, id: Uuid, caller: &AuthUser) -> Result<Order, OrdersError> {
        match self.store.find(id).await? {
            Some(order) if caller.is_admin() || order.customer_id == caller.id => Ok(order),
            _ => Err(OrdersError::NotFound),
        }
    }

    /// As [`Self::get`], but a pending order is answered once it settles, or when `wait`
    /// has passed, whichever comes first.
    pub async fn get_settled(
        &self,
        id: Uuid,
        caller: &AuthUser,
        wait: Duration,
    ) -> Result<Order, OrdersError> {
        let deadline = Instant::now() + wait;
        let watch = self.watchers.watch(id);
        loop {
            let notified = watch.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let order = self.get(id, caller).await?;
            let now = Instant::now();
            if order.status != OrderStatus::Pending || now >= deadline {
                return Ok(order);
            }
            let nap = self.watchers.recheck_within(deadline - now);
            let _ = tokio::time::timeout(nap, notified).await;
        }
    }

    /// The outcome `cause` settled, once its transaction has committed: counted, and the
    /// order's waiters woken.
    pub fn settled_by(&self, cause: Uuid) {
        if let Some(order) = self.settled.record(cause) {
            self.watchers.settled(order);
        }
    }

    pub async fn list(
        &self,
        caller: &AuthUser,
        limit: u32,
        before: Option<Uuid>,
    ) -> Result<Vec<Order>, OrdersError> {
        Ok(self.store.list(caller.id, limit, before).await?)
    }

    /// Every customer's orders that match `filter` (administrators).
    pub async fn search(
        &self,
        filter: &OrderFilter,
        limit: u32,
        before: Option<Uuid>,
    ) -> Result<Vec<Order>, OrdersError> {
        Ok(self.store.search(filter, limit, before).await?)
    }

    /// The dashboard's figures, now (administrators).
    pub async fn summary(&self) -> Result<OrdersSummary, OrdersError> {
        Ok(self.store.summary(platform::time::now()).await?)
    }

    pub async fn timeline(
        &self,
        id: Uuid,
        caller: &AuthUser,
    ) -> Result<Vec<TimelineEntry>, OrdersError> {
        self.get(id, caller).await?;
        Ok(self.store.timeline(id).await?)
    }
}
