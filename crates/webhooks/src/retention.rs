//! The delivery history is kept for a while, then pruned: an operator looks at recent
//! deliveries and replays them; a record of every event ever sent to every endpoint would
//! only fill the disk. What waits to be delivered is never pruned.

use std::time::Duration;

use chrono::{DateTime, Utc};
use platform::db::drain;
use tokio_util::sync::CancellationToken;

use crate::store::{StoreError, WebhookStore};

/// Rows deleted per transaction: requests and the dispatcher queue between batches, never
/// behind one long delete.
const BATCH: i64 = 500;

/// What one pruning deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub deliveries: u64,
    pub messages: u64,
}

pub struct Retention {
    store: WebhookStore,
    keep: Duration,
}

impl Retention {
    pub fn new(store: WebhookStore, keep: Duration) -> Self {
        Self { store, keep }
    }

    /// Prunes every ten minutes until `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) {
        platform::periodic::prune_every(
            "webhook history",
            platform::periodic::PRUNE_EVERY,
            &cancel,
            |now| self.prune(now),
        )
        .await;
    }

    /// Deletes deliveries delivered more than the retention before `now` (with their tries),
    /// then the messages of events that old that no delivery needs any more.
    pub async fn prune(&self, now: DateTime<Utc>) -> Result<Pruned, StoreError> {
        let cutoff = platform::time::millis_before(now, self.keep);
        let pruned = Pruned {
            deliveries: drain(BATCH, || self.store.prune_delivered(cutoff, BATCH)).await?,
            messages: drain(BATCH, || self.store.prune_messages(cutoff, BATCH)).await?,
        };
        crate::metrics::record_pruned(pruned);
        Ok(pruned)
    }
}
