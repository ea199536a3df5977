//! The webhooks consumer: every event some endpoint wants is recorded, once, with a delivery
//! per endpoint, in the consumer's transaction with its inbox row. The event was written in
//! its producer's transaction (the outbox); from there to the endpoint it is never held
//! only in memory.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use events::Envelope;
use events::consumer::{EventHandler, HandlerError};
use platform::db::Tx;
use tokio::sync::Notify;

use crate::domain::EventTypeFilter;
use crate::store::{StoreError, WebhookStore};

pub const GROUP: &str = "webhooks";

impl From<StoreError> for HandlerError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Corrupt(_) => HandlerError::permanent(error),
            StoreError::Db(_) => HandlerError::transient(error),
        }
    }
}

/// The event types endpoints subscribe to, as this process knows them. When this process
/// makes every change to the endpoints (the embedded runtime), the list is exact and events
/// no endpoint wants cost no transaction. With several instances, another one may have just
/// registered an endpoint: then every event is looked at in the database.
pub struct Subscriptions {
    exact: bool,
    filters: RwLock<Vec<EventTypeFilter>>,
}

impl Subscriptions {
    pub fn new(exact: bool) -> Self {
        Self {
            exact,
            filters: RwLock::new(Vec::new()),
        }
    }

    pub fn may_want(&self, event_type: &str) -> bool {
        if !self.exact {
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
