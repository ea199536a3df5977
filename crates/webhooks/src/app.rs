//! What operators do with webhooks through the admin API: register, change and remove
//! endpoints, rotate their secrets, read their deliveries, replay and send a test event.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use events::Envelope;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::domain::{EventTypeFilter, SigningSecret};
use crate::reactions::Subscriptions;
use crate::store::{
    Attempt, Delivery, DeliveryStatus, Endpoint, EndpointChanges, StoreError, WebhookStore,
};

pub const SOURCE: &str = "commercex/webhooks";
/// The type of the event an operator sends to try an endpoint out. It is never published on
/// the bus: only the endpoint it is sent to sees it.
pub const TEST_EVENT_TYPE: &str = "commercex.webhook.test.v1";
/// The most messages one "replay since" queues again.
pub const REPLAY_LIMIT: u32 = 10_000;
/// The longest a rotated-out secret may keep signing.
pub const MAX_OVERLAP: Duration = Duration::from_secs(7 * 86_400);

#[derive(Debug, thiserror::Error)]
pub enum WebhooksError {
    #[error("no such webhook endpoint")]
    NoEndpoint,
    #[error("no such delivery for this endpoint")]
    NoDelivery,
    #[error("internal error")]
    Internal(#[source] platform::BoxError),
}

impl From<StoreError> for WebhooksError {
    fn from(error: StoreError) -> Self {
        Self::Internal(error.into())
    }
}

impl From<sqlx::Error> for WebhooksError {
    fn from(error: sqlx::Error) -> Self {
        Self::Internal(StoreError::from(error).into())
    }
}

/// An endpoint to register, its fields already checked.
#[derive(Debug)]
pub struct NewEndpoint {
    pub url: String,
    pub description: String,
    pub event_types: EventTypeFilter,
    pub enabled: bool,
}

pub struct Webhooks {
    store: WebhookStore,
    subscriptions: Arc<Subscriptions>,
    /// Wakes the dispatcher when something is queued here.
    wake: Arc<Notify>,
}

impl Webhooks {
    pub fn new(store: WebhookStore, subscriptions: Arc<Subscriptions>, wake: Arc<Notify>) -> Self {
        Self {
            store,
            subscriptions,
            wake,
        }
    }

    pub fn store(&self) -> &WebhookStore {
        &self.store
    }

    /// Registers an endpoint; its signing secret is returned now and never again.
    pub async fn register(
        &self,
        new: NewEndpoint,
    ) -> Result<(Endpoint, SigningSecret), WebhooksError> {
        let secret = SigningSecret::generate();
        let endpoint = self
            .store
            .create_endpoint(
                &new.url,
                &new.description,
                &new.event_types,
                new.enabled,
                &secret,
            )
            .await?;
        self.subscriptions.refresh(&self.store).await?;
        tracing::info!(endpoint_id = %endpoint.id, url = %endpoint.url, "webhook endpoint registered");
        Ok((endpoint, secret))
    }

    pub async fn endpoints(&self) -> Result<Vec<Endpoint>, WebhooksError> {
        Ok(self.store.endpoints().await?)
    }

    pub async fn endpoint(&self, id: Uuid) -> Result<Endpoint, WebhooksError> {
        self.store
            .endpoint(id)
            .await?
            .ok_or(WebhooksError::NoEndpoint)
    }

    pub async fn update(
        &self,
        id: Uuid,
        changes: EndpointChanges,
    ) -> Result<Endpoint, WebhooksError> {
        let endpoint = self
            .store
            .update_endpoint(id, &changes)
            .await?
            .ok_or(WebhooksError::NoEndpoint)?;
        self.subscriptions.refresh(&self.store).await?;
        if endpoint.enabled {
            self.wake.notify_one();
        }
        Ok(endpoint)
    }

    /// Removes the endpoint and everything recorded for it, undelivered deliveries included.
    pub async fn delete(&self, id: Uuid) -> Result<(), WebhooksError> {
        if !self.store.delete_endpoint(id).await? {
            return Err(WebhooksError::NoEndpoint);
        }
        self.subscriptions.refresh(&self.store).await?;
        tracing::info!(endpoint_id = %id, "webhook endpoint deleted");
        Ok(())
    }

    /// A new signing secret; the ones in use keep signing for `overlap` (capped at
    /// [`MAX_OVERLAP`]), so that the receiver can switch without refusing a delivery.
    pub async fn rotate_secret(
        &self,
        id: Uuid,
        overlap: Duration,
    ) -> Result<(SigningSecret, DateTime<Utc>), WebhooksError> {
        self.endpoint(id).await?;
        let secret = SigningSecret::generate();
        let overlap = chrono::Duration::from_std(overlap.min(MAX_OVERLAP)).unwrap_or_default();
        let old_until = platform::time::now() + overlap;
        self.store.rotate_secret(id, &secret, old_until).await?;
        Ok((secret, old_until))
    }

    pub async fn deliveries(
        &self,
        id: Uuid,
        status: Option<DeliveryStatus>,
        limit: u32,
        before: Option<Uuid>,
    ) -> Result<Vec<Delivery>, WebhooksError> {
        self.endpoint(id).await?;
        Ok(self.store.deliveries(id, status, limit, before).await?)
    }

    pub async fn delivery(
        &self,
        id: Uuid,
        delivery: Uuid,
    ) -> Result<(Delivery, Vec<Attempt>), WebhooksError> {
        self.store
            .delivery(id, delivery)
            .await?
            .ok_or(WebhooksError::NoDelivery)
    }

    /// Sends one delivery again, with the same `webhook-id`.
    pub async fn replay(&self, id: Uuid, delivery: Uuid) -> Result<(), WebhooksError> {
        if !self.store.replay(id, delivery).await? {
            return Err(WebhooksError::NoDelivery);
        }
        self.wake.notify_one();
        Ok(())
    }

    /// Sends again every recorded event since `since` that the endpoint's types match;
    /// how many were queued, and whether the limit left some out.
    pub async fn replay_since(
        &self,
        id: Uuid,
        since: DateTime<Utc>,
    ) -> Result<(u64, bool), WebhooksError> {
        let endpoint = self.endpoint(id).await?;
        let queued = self
            .store
            .replay_since(&endpoint, since, REPLAY_LIMIT)
            .await?;
        self.wake.notify_one();
        Ok(queued)
    }

    /// Queues a test event to this endpoint alone, whatever types it subscribes to.
    pub async fn send_test(&self, id: Uuid) -> Result<Uuid, WebhooksError> {
        self.endpoint(id).await?;
        let data = serde_json::json!({
            "endpoint_id": id,
            "message": "A test event sent by an operator from CommerceX.",
        });
        let event = Envelope::new(SOURCE, TEST_EVENT_TYPE, id.to_string(), &data);
        let mut tx = self.store.db().begin_as("webhooks.send_test").await?;
        WebhookStore::enqueue(&mut tx, &event, &[id]).await?;
        tx.commit().await?;
        self.wake.notify_one();
        Ok(event.id)
    }
}
