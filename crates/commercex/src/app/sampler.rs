//! Gauges that come from looking rather than from events as they pass: outbox backlogs,
//! dead-letter depths, pools, consumer lag and pending orders, sampled every few seconds so a
//! scrape costs no queries.

use std::sync::Arc;
use std::time::Duration;

use events::bus::EventBus;
use events::consumer::ConsumerSettings;
use platform::db::Db;
use tokio_util::sync::CancellationToken;

/// Often enough for a 15 s scrape interval to see every change.
const EVERY: Duration = Duration::from_secs(5);

pub struct Sampler {
    pub stores: Vec<Db>,
    /// The orders database, where pending orders are counted, when this process runs orders.
    pub orders: Option<Db>,
    pub bus: Arc<dyn EventBus>,
    pub groups: Vec<ConsumerSettings>,
}

impl Sampler {
    pub async fn run(self, cancel: CancellationToken) {
        for group in &self.groups {
            events::telemetry::start_dlq_depth(&group.group);
        }
        platform::periodic::every(EVERY, &cancel, || self.sample()).await;
    }

    async fn sample(&self) {
        for db in &self.stores {
            if let Err(error) = events::telemetry::sample_store(db).await {
                tracing::debug!(schema = db.schema(), %error, "could not sample the service database");
            }
        }
        for group in &self.groups {
            if let Err(error) = self.bus.sample_lag(&group.group, &group.topics).await {
                tracing::debug!(group = group.group, %error, "could not sample consumer lag");
            }
        }
        if let Some(db) = &self.orders
            && let Err(error) = orders::metrics::sample_pending(db).await
        {
            tracing::debug!(%error, "could not sample pending orders");
        }
    }
}
