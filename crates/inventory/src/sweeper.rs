//! The reservation sweeper: releases reservations that outlived their time, so units held by
//! abandoned checkouts go back on sale.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::app::Inventory;

pub struct Sweeper {
    inventory: Arc<Inventory>,
    interval: Duration,
}

impl Sweeper {
    pub fn new(inventory: Arc<Inventory>, interval: Duration) -> Self {
        Self {
            inventory,
            interval,
        }
    }

    /// Sweeps every `interval` until `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) {
        platform::periodic::every(self.interval, &cancel, || self.sweep()).await;
    }

    async fn sweep(&self) {
        match self.inventory.expire_due(platform::time::now()).await {
            Ok(expired) if !expired.is_empty() => {
                tracing::info!(count = expired.len(), "released expired reservations");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "sweeping reservations failed; will retry"),
        }
    }
}
