//! Product changes committed by any process, heard from PostgreSQL: a trigger on `products`
//! (migration `product_changes`) sends the product's id on `CHANNEL` with every insert or
//! update. Every catalog instance listens, so its search index learns of what the others
//! write (a consumer group hands each event to one instance only) and of writes that emit no
//! event (`available` from inventory's stock, products seeded or fixed by hand).
//!
//! While the listening connection is down, the index stops answering (the database answers)
//! and it reads every product again once it listens again.

use std::sync::Arc;

use async_trait::async_trait;
use platform::notifications::{Follower, ListenError, Listener};
use secrecy::SecretString;
use uuid::Uuid;

use crate::search_index::MemorySearch;
use crate::store::ProductStore;

/// The channel the `products` trigger notifies; its name is in the migration too.
pub const CHANNEL: &str = "catalog_product_changed";

/// Keeps a search index in step with the products of the PostgreSQL database at `url`.
pub fn follower(
    url: SecretString,
    search: Arc<MemorySearch>,
    products: ProductStore,
) -> Listener<ProductChanges> {
    Listener::new(url, CHANNEL, ProductChanges { search, products })
}

pub struct ProductChanges {
    search: Arc<MemorySearch>,
    products: ProductStore,
}

#[async_trait]
impl Follower for ProductChanges {
    async fn listening(&self) {
        self.search.back_in_step();
        if let Err(error) = self.search.load(&self.products).await {
            tracing::warn!(%error, "could not load the search index; the first search will");
        }
    }

    async fn heard(&self, payload: &str) {
        match payload.parse::<Uuid>() {
            Ok(id) => self.search.changed(id),
            // Only the trigger notifies this channel; anything else is not a product id.
            Err(_) => tracing::warn!(
                payload,
                "ignored a product change notification that names no product"
            ),
        }
    }

    fn deaf(&self, error: Option<&ListenError>) {
        self.search.out_of_step();
        match error {
            None => tracing::warn!(
                "lost the connection that hears product changes; searching the database \
                 until it is back"
            ),
            Some(error) => tracing::warn!(
                %error,
                "cannot hear product changes; searching the database until they are heard"
            ),
        }
    }
}
