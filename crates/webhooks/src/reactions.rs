//! The webhooks consumer: every event some endpoint wants is recorded, once, with a delivery
//! per endpoint, in the consumer's transaction with its inbox row. The event was written in
//! its producer's transaction (the outbox); from there to the endpoint it is never held
//! only in memory.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use events::Envelope;
use events::consumer::{EventHandler, HandlerError};
use platform::db::Tx;
use platform::notifications::{Follower, ListenError};
use tokio::sync::Notify;

use crate::domain::EventTypeFilter;
use crate::store::{StoreError, WebhookStore};

pub const GROUP: &str = "webhooks";

impl From<StoreError> for HandlerError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Corrupt(_) | StoreError::Sealing(_) => HandlerError::permanent(error),
            StoreError::Db(_) => HandlerError::transient(error),
        }
    }
}

/// The channel the `webhook_endpoints` trigger notifies (PostgreSQL); its name is in the
/// migration too.
pub const CHANNEL: &str = "webhook_endpoints_changed";

/// The event types endpoints subscribe to, as this process knows them, so that events no
/// endpoint wants cost no transaction. The list is exact in the process that makes every
/// change to the endpoints (the embedded runtime), and in an instance among several while it
/// hears every change (`SubscriptionChanges`, PostgreSQL). Otherwise every event is looked at
/// in the database.
pub struct Subscriptions {
    exact: AtomicBool,
    filters: RwLock<Vec<EventTypeFilter>>,
}

impl Subscriptions {
    pub fn new(exact: bool) -> Self {
        Self {
            exact: AtomicBool::new(exact),
            filters: RwLock::new(Vec::new()),
        }
    }

    pub fn may_want(&self, event_type: &str) -> bool {
        if !self.exact.load(Ordering::Acquire) {
            return true;
        }
        let filters = self.filters.read().unwrap_or_else(|e| e.into_inner());
        filters.iter().any(|f| f.matches(event_type))
    }

    /// Reads the subscriptions again, after a change this process committed.
    pub async fn refresh(&self, store: &WebhookStore) -> Result<(), StoreError> {
        let endpoints = store.endpoints().await?;
        let filters = endpoints
            .into_iter()
            .filter(|e| e.enabled || e.disabled_reason.is_some())
            .map(|e| e.event_types)
            .collect();
        *self.filters.write().unwrap_or_else(|e| e.into_inner()) = filters;
        Ok(())
    }

    fn set_exact(&self, exact: bool) {
        self.exact.store(exact, Ordering::Release);
    }
}

/// Keeps an instance's `Subscriptions` exact while it hears the changes other instances
/// commit. A change takes effect here when its notification arrives, a moment after its
/// commit; while the list is read again, and while nothing is heard, every event is looked
/// at in the database.
pub struct SubscriptionChanges {
    subscriptions: Arc<Subscriptions>,
    store: WebhookStore,
}

impl SubscriptionChanges {
    pub fn new(subscriptions: Arc<Subscriptions>, store: WebhookStore) -> Self {
        Self {
            subscriptions,
            store,
        }
    }

    async fn read_again(&self) {
        self.subscriptions.set_exact(false);
        match self.subscriptions.refresh(&self.store).await {
            Ok(()) => self.subscriptions.set_exact(true),
            Err(error) => tracing::warn!(
                %error,
                "could not read the webhook subscriptions; every event is looked at in the \
                 database until the next change is heard"
            ),
        }
    }
}

#[async_trait]
impl Follower for SubscriptionChanges {
    async fn listening(&self) {
        self.read_again().await;
    }

    async fn heard(&self, _payload: &str) {
        self.read_again().await;
    }

    fn deaf(&self, error: Option<&ListenError>) {
        self.subscriptions.set_exact(false);
        match error {
            None => tracing::warn!(
                "lost the connection that hears webhook subscription changes; every event is \
                 looked at in the database until it is back"
            ),
            Some(error) => tracing::warn!(
                %error,
                "cannot hear webhook subscription changes; every event is looked at in the \
                 database until they are heard"
            ),
        }
    }
}

pub struct WebhookReactions {
    subscriptions: Arc<Subscriptions>,
    wake: Arc<Notify>,
}

impl WebhookReactions {
    pub fn new(subscriptions: Arc<Subscriptions>, wake: Arc<Notify>) -> Arc<Self> {
        Arc::new(Self {
            subscriptions,
            wake,
        })
    }
}

#[async_trait]
impl EventHandler for WebhookReactions {
    fn handles(&self, event_type: &str) -> bool {
        self.subscriptions.may_want(event_type)
    }

    async fn handle(&self, tx: &mut Tx, event: &Envelope) -> Result<(), HandlerError> {
        let endpoints: Vec<_> = WebhookStore::subscribers(tx)
            .await?
            .into_iter()
            .filter(|(_, types)| types.matches(&event.event_type))
            .map(|(id, _)| id)
            .collect();
        if endpoints.is_empty() {
            return Ok(());
        }
        WebhookStore::enqueue(tx, event, &endpoints).await?;
        let wake = self.wake.clone();
        tx.on_commit(move || wake.notify_one());
        Ok(())
    }
}
