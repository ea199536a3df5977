//! The dispatcher: sends what is due, endpoint by endpoint. One sender at a time holds an
//! endpoint (a lease in its row, so instances share the work without sending one delivery
//! twice at once), and it sends that endpoint's deliveries one after another in event-time
//! order. A failure stops the endpoint until its backoff is over; what is behind waits, so
//! the order holds across an outage.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::{Backoff, EndpointVerdict};
use crate::sender::Sender;
use crate::store::{Due, StoreError, TryRecord, WebhookStore};

/// How often the gauges are read from the database.
const HEALTH_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy)]
pub struct DispatchSettings {
    pub backoff: Backoff,
    /// An endpoint failing every try for this long is disabled.
    pub disable_after: Duration,
    /// How often waiting deliveries are looked for when nothing wakes the dispatcher (what
    /// other instances queue, backoffs that end).
    pub poll: Duration,
    /// Endpoints sent to at once by one instance.
    pub concurrency: usize,
    /// How long a sender holds an endpoint without renewing: more than one try takes.
    pub lease: Duration,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        Self {
            backoff: Backoff::default(),
            disable_after: Duration::from_secs(86_400),
            poll: Duration::from_secs(1),
            concurrency: 32,
            lease: Duration::from_secs(60),
        }
    }
}

pub struct Dispatcher {
    store: WebhookStore,
    sender: Arc<Sender>,
    settings: DispatchSettings,
    wake: Arc<Notify>,
}

impl Dispatcher {
    pub fn new(
        store: WebhookStore,
        sender: Sender,
        settings: DispatchSettings,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            sender: Arc::new(sender),
            settings,
            wake,
        }
    }

    /// Sends until `cancel` fires; a try in flight then is abandoned (it goes again later,
    /// with the same `webhook-id`).
    pub async fn run(self, cancel: CancellationToken) {
        let this = Arc::new(self);
        let mut sending: HashSet<Uuid> = HashSet::new();
        let mut tasks: JoinSet<Uuid> = JoinSet::new();
        let mut reported = HashSet::new();
        let mut health_read_at = tokio::time::Instant::now() - HEALTH_EVERY;
        loop {
            if health_read_at.elapsed() >= HEALTH_EVERY {
                health_read_at = tokio::time::Instant::now();
                match this.store.health().await {
                    Ok(health) => crate::metrics::record_health(&health, &mut reported),
                    Err(error) => tracing::warn!(%error, "reading webhook endpoints' health"),
                }
            }
            match this.store.waiting_endpoints(platform::time::now()).await {
                Ok(waiting) => {
                    for (endpoint, url) in waiting {
                        if sending.len() >= this.settings.concurrency {
                            break;
                        }
                        if sending.insert(endpoint) {
                            let (this, cancel) = (this.clone(), cancel.clone());
                            tasks.spawn(async move {
                                if let Err(error) = this.drain(endpoint, &url, &cancel).await {
                                    tracing::warn!(%error, %endpoint, "webhook delivery interrupted; will retry");
                                }
                                endpoint
                            });
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "looking for webhook deliveries failed; will retry")
                }
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                Some(done) = tasks.join_next() => {
                    if let Ok(endpoint) = done {
                        sending.remove(&endpoint);
                    }
                }
                () = this.wake.notified() => {}
                () = tokio::time::sleep(this.settings.poll) => {}
            }
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Sends the endpoint's due deliveries in order until one fails, none is due, or the
    /// endpoint is disabled.
    async fn drain(
        &self,
        endpoint: Uuid,
        url: &str,
        cancel: &CancellationToken,
    ) -> Result<(), StoreError> {
        let lease = chrono::Duration::from_std(self.settings.lease).unwrap_or_default();
        let now = platform::time::now();
        if !self.store.lease(endpoint, now, now + lease, false).await? {
            return Ok(());
        }
        let drained = async {
            while let Some(due) = self.store.head(endpoint).await? {
                let now = platform::time::now();
                if due.next_attempt_at > now || cancel.is_cancelled() {
                    break;
                }
                if !self.store.lease(endpoint, now, now + lease, true).await? {
                    break;
                }
                let delivered = tokio::select! {
                    () = cancel.cancelled() => break,
                    delivered = self.try_once(endpoint, url, &due) => delivered?,
                };
                if !delivered {
                    break;
                }
            }
            Ok::<_, StoreError>(())
        }
        .await;
        let released = self.store.release(endpoint).await;
        drained.and(released)
    }

    /// One try of `due`; true if the endpoint took it.
    async fn try_once(&self, endpoint: Uuid, url: &str, due: &Due) -> Result<bool, StoreError> {
        let secrets = self
            .store
            .signing_secrets(endpoint, platform::time::now())
            .await?;
        let answer = self
            .sender
            .send(url, &due.event_id.to_string(), due.body.clone(), &secrets)
            .await;
        let delivered = answer.succeeded();
        crate::metrics::record_try(delivered, answer.latency);
        let record = TryRecord {
            status_code: answer.status,
            error: answer.error.clone(),
            latency_ms: i64::try_from(answer.latency.as_millis()).unwrap_or(i64::MAX),
            at: answer.at,
        };
        if delivered {
            self.store
                .delivered(endpoint, due.delivery_id, &record)
                .await?;
            return Ok(true);
        }
        let attempts = u32::try_from(due.attempts + 1).unwrap_or(u32::MAX);
        let wait =
            self.settings
                .backoff
                .next_wait(attempts, rand::random::<f64>(), answer.retry_after);
        let next = answer.at + chrono::Duration::from_std(wait).unwrap_or_default();
        let failing_since = self
            .store
            .failed(endpoint, due.delivery_id, &record, next)
            .await?;
        tracing::info!(
            %endpoint, delivery_id = %due.delivery_id, attempts, status = ?answer.status,
            error = answer.error.as_deref().unwrap_or(""), next_attempt_at = %next,
            "webhook delivery failed"
        );
        self.give_up_if_failing_too_long(endpoint, failing_since, answer.at, &record)
            .await?;
        Ok(false)
    }

    async fn give_up_if_failing_too_long(
        &self,
        endpoint: Uuid,
        failing_since: DateTime<Utc>,
        now: DateTime<Utc>,
        last: &TryRecord,
    ) -> Result<(), StoreError> {
        let verdict =
            EndpointVerdict::after_failure(failing_since, now, self.settings.disable_after);
        if verdict == EndpointVerdict::KeepTrying {
            return Ok(());
        }
        let reason = format!(
            "every delivery failed since {}; the last: {}",
            failing_since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            last.error.as_deref().unwrap_or("no answer")
        );
        self.store.disable(endpoint, &reason).await?;
        crate::metrics::record_disabled();
        tracing::warn!(%endpoint, %reason, "webhook endpoint disabled");
        Ok(())
    }
}
