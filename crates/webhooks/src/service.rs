//! Building the webhooks service: its database, routes, event consumer and dispatcher.

use std::sync::Arc;

use events::bus::EventBus;
use events::consumer::{Consumer, ConsumerSettings};
use events::service_db::{ServiceDb, StoreSettings};
use platform::db::{DbError, Migrations, Storage};
use platform::notifications::Listener;
use platform::sealing::SealingKeys;
use secrecy::SecretString;
use tokio::sync::Notify;
use utoipa_axum::router::OpenApiRouter;

use crate::app::Webhooks;
use crate::dispatch::{DispatchSettings, Dispatcher};
use crate::domain::DestinationPolicy;
use crate::reactions::{CHANNEL, GROUP, SubscriptionChanges, Subscriptions, WebhookReactions};
use crate::retention::Retention;
use crate::sender::{Sender, Timeouts};
use crate::store::WebhookStore;

pub const SCHEMA: &str = "webhooks";

pub fn migrations() -> Migrations {
    Migrations {
        sqlite: sqlx::migrate!("migrations/sqlite"),
        postgres: sqlx::migrate!("migrations/postgres"),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("reading the webhook endpoints and their secrets")]
    Read(#[from] crate::store::StoreError),
}

/// How deliveries are sent and where they may go.
#[derive(Debug, Clone)]
pub struct WebhooksSettings {
    pub dispatch: DispatchSettings,
    /// How long delivered deliveries are kept.
    pub retention: std::time::Duration,
    pub timeouts: Timeouts,
    pub destinations: DestinationPolicy,
}

impl Default for WebhooksSettings {
    fn default() -> Self {
        Self {
            dispatch: DispatchSettings::default(),
            retention: std::time::Duration::from_secs(30 * 24 * 60 * 60),
            timeouts: Timeouts::default(),
            destinations: DestinationPolicy::default(),
        }
    }
}

pub struct WebhooksService {
    store: ServiceDb,
    webhooks: Arc<Webhooks>,
    subscriptions: Arc<Subscriptions>,
    /// PostgreSQL with other instances: the database changes to the subscriptions are heard
    /// from.
    changes_from: Option<SecretString>,
    wake: Arc<Notify>,
    settings: WebhooksSettings,
}

impl WebhooksService {
    pub async fn open_db(storage: &Storage, store: StoreSettings) -> Result<ServiceDb, DbError> {
        ServiceDb::open(storage, store, SCHEMA, &migrations()).await
    }

    /// `sole_instance`: this process makes every change to the endpoints (the embedded
    /// runtime on SQLite, whose files are its alone), so it knows which event types are
    /// wanted without asking the database. On PostgreSQL other processes may (replicas,
    /// whatever runtime they run), and it knows once its `subscription_follower` hears the
    /// changes. `secret_keys` seal the endpoints' signing secrets at rest; any secret not
    /// sealed by the first of them is sealed again now.
    pub async fn open(
        storage: &Storage,
        store: StoreSettings,
        settings: WebhooksSettings,
        secret_keys: Arc<SealingKeys>,
        sole_instance: bool,
    ) -> Result<Self, OpenError> {
        let store = Self::open_db(storage, store).await?;
        let webhook_store = WebhookStore::new(store.db.clone(), secret_keys);
        let resealed = webhook_store.seal_secrets_at_rest().await?;
        if resealed.sealed > 0 {
            tracing::info!(
                secrets = resealed.sealed,
                "sealed webhook signing secrets under the current webhook secret key"
            );
        }
        if resealed.unopenable > 0 {
            tracing::error!(
                secrets = resealed.unopenable,
                "webhook signing secrets do not open with the webhook secret keys: their \
                 endpoints get nothing until the key is given back or their secret rotated"
            );
        }
        let changes_from = match storage {
            Storage::Postgres { url } => Some(url.clone()),
            Storage::Sqlite { .. } => None,
        };
        let subscriptions = Arc::new(Subscriptions::new(sole_instance));
        subscriptions.refresh(&webhook_store).await?;
        let wake = Arc::new(Notify::new());
        let webhooks = Arc::new(Webhooks::new(
            webhook_store,
            subscriptions.clone(),
            wake.clone(),
        ));
        Ok(Self {
            store,
            webhooks,
            subscriptions,
            changes_from,
            wake,
            settings,
        })
    }

    /// What keeps the subscriptions this instance knows in step with the changes other
    /// instances commit; `None` when there is nothing to hear (SQLite).
    pub fn subscription_follower(&self) -> Option<Listener<SubscriptionChanges>> {
        let url = self.changes_from.clone()?;
        Some(Listener::new(
            url,
            CHANNEL,
            SubscriptionChanges::new(self.subscriptions.clone(), self.webhooks.store().clone()),
        ))
    }

    pub fn router(&self) -> OpenApiRouter {
        crate::api::router(self.webhooks.clone(), &self.settings.destinations)
    }

    /// The consumer that records what endpoints want, from every topic.
    pub fn consumer(&self, bus: Arc<dyn EventBus>) -> Consumer {
        Consumer::new(
            self.store.db.clone(),
            bus,
            WebhookReactions::new(self.subscriptions.clone(), self.wake.clone()),
            ConsumerSettings::new(GROUP, &events::contract::TOPICS),
        )
    }

    /// The dispatcher, its HTTP client built on `client` (which brings the TLS roots).
    pub fn dispatcher(&self, client: reqwest::ClientBuilder) -> Result<Dispatcher, reqwest::Error> {
        let sender = Sender::new(
            client,
            Arc::new(self.settings.destinations.clone()),
            self.settings.timeouts,
        )?;
        Ok(Dispatcher::new(
            self.webhooks.store().clone(),
            sender,
            self.settings.dispatch,
            self.wake.clone(),
        ))
    }

    /// What prunes the delivery history past its retention.
    pub fn retention(&self) -> Retention {
        Retention::new(self.webhooks.store().clone(), self.settings.retention)
    }

    pub fn store(&self) -> &ServiceDb {
        &self.store
    }
}
