//! Product changes committed by any process, heard from PostgreSQL: a trigger on `products`
//! (migration `product_changes`) sends the product's id on `CHANNEL` with every insert or
//! update, delivered when the transaction commits and only if it does. Every catalog
//! instance listens, so its search index learns of what the others write (a consumer group
//! hands each event to one instance only) and of writes that emit no event (`available`
//! from inventory's stock, products seeded or fixed by hand).
//!
//! Notifications sent while the listening connection is down are lost: the index stops
//! answering when the connection goes (the database answers) and reads every product again
//! once it listens again.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::search_index::MemorySearch;
use crate::store::ProductStore;

/// The channel the `products` trigger notifies; its name is in the migration too.
pub const CHANNEL: &str = "catalog_product_changed";

/// How long to wait before listening again after a failure, at first and at most.
const FIRST_RETRY: Duration = Duration::from_millis(200);
const LAST_RETRY: Duration = Duration::from_secs(10);

pub struct ChangeFollower {
    url: SecretString,
    search: Arc<MemorySearch>,
    products: ProductStore,
}

impl ChangeFollower {
    /// Follows the changes to the products of the PostgreSQL database at `url` into `search`.
    pub fn new(url: SecretString, search: Arc<MemorySearch>, products: ProductStore) -> Self {
        Self {
            url,
            search,
            products,
        }
    }

    /// Listens until `cancel` fires, listening again whenever the connection is lost.
    pub async fn run(self, cancel: CancellationToken) {
        let mut retry = FIRST_RETRY;
        loop {
            let outcome = tokio::select! {
                () = cancel.cancelled() => return,
                outcome = self.follow(&mut retry) => outcome,
            };
            self.search.out_of_step();
            match outcome {
                Ok(()) => tracing::warn!(
                    "lost the connection that hears product changes; searching the database \
                     until it is back"
                ),
                Err(error) => tracing::warn!(
                    %error,
                    "cannot hear product changes; searching the database until they are heard"
                ),
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(retry) => {}
            }
            retry = (retry * 2).min(LAST_RETRY);
        }
    }

    /// Listens, then notes each change until the connection is lost (`Ok`) or fails.
    async fn follow(&self, retry: &mut Duration) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect(self.url.expose_secret()).await?;
        // A lost connection ends this listener; the next one reads everything again.
        listener.eager_reconnect(false);
        listener.listen(CHANNEL).await?;
        self.search.back_in_step();
        *retry = FIRST_RETRY;
        if let Err(error) = self.search.load(&self.products).await {
            tracing::warn!(%error, "could not load the search index; the first search will");
        }
        while let Some(notification) = listener.try_recv().await? {
            match notification.payload().parse::<Uuid>() {
                Ok(id) => self.search.changed(id),
                // Only the trigger notifies this channel; anything else is not a product id.
                Err(_) => tracing::warn!(
                    payload = notification.payload(),
                    "ignored a product change notification that names no product"
                ),
            }
        }
        Ok(())
    }
}
