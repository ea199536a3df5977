//! The product read cache. In Redis when configured, shared by every catalog instance; in the
//! process's memory for the embedded runtime, where every change to a product is made and
//! consumed in that one process; none otherwise (the database answers). An entry is dropped
//! when the product changes: right after the change commits, and again when the change's
//! event comes back through the bus, which also clears an entry a concurrent reader put back
//! from before the change. A TTL bounds whatever slips past both.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use platform::shared_redis::SharedRedis;
// Tokio's clock, so that a test can move time on instead of waiting for an entry to age.
use tokio::time::Instant;
use uuid::Uuid;

use crate::domain::Product;
use crate::store::row::StoredProduct;

#[async_trait]
pub trait ProductCache: Send + Sync {
    async fn get(&self, id: Uuid) -> Option<Product>;
    /// What a reader takes before it reads the database, to hand back with what it read.
    fn ticket(&self) -> u64 {
        0
    }
    /// Keeps `product`, read after `ticket` was taken (a cache may refuse a copy read before
    /// a change it has seen since).
    async fn put(&self, product: &Product, ticket: u64);
    async fn forget(&self, id: Uuid);
}

/// No cache: every read goes to the database.
pub struct NoCache;

#[async_trait]
impl ProductCache for NoCache {
    async fn get(&self, _: Uuid) -> Option<Product> {
        None
    }

    async fn put(&self, _: &Product, _: u64) {}

    async fn forget(&self, _: Uuid) {}
}

/// Products in this process's memory, for a catalog that no other process changes (the
/// embedded runtime): every change and every availability update passes through here, so
/// dropping entries as they happen keeps the cache exact. A copy read before any change the
/// cache has since been told of is not kept (`ticket`): a reader that raced a change cannot
/// put the old product back.
pub struct MemoryProductCache {
    entries: quick_cache::sync::Cache<Uuid, (Product, Instant)>,
    ttl: Duration,
    /// How many entries have been dropped so far.
    forgets: AtomicU64,
}

impl MemoryProductCache {
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            entries: quick_cache::sync::Cache::new(capacity),
            ttl,
            forgets: AtomicU64::new(0),
        }
    }
}

#[async_trait]
impl ProductCache for MemoryProductCache {
    async fn get(&self, id: Uuid) -> Option<Product> {
        let (product, kept_at) = self.entries.get(&id)?;
        (kept_at.elapsed() < self.ttl).then_some(product)
    }

    fn ticket(&self) -> u64 {
        self.forgets.load(Ordering::SeqCst)
    }

    /// Checked again after the insert: a change that counts itself and drops the entry
    /// between the first check and the insert would otherwise leave the old copy in for
    /// its whole TTL (seen in the browser tests: a product's availability stuck at 0). The
    /// change counts itself before it drops, so either its drop comes after the insert, or
    /// the second check sees its count.
    async fn put(&self, product: &Product, ticket: u64) {
        if self.forgets.load(Ordering::SeqCst) != ticket {
            return;
        }
        self.entries
            .insert(product.id, (product.clone(), Instant::now()));
        if self.forgets.load(Ordering::SeqCst) != ticket {
            self.entries.remove(&product.id);
        }
    }

    async fn forget(&self, id: Uuid) {
        self.forgets.fetch_add(1, Ordering::SeqCst);
        self.entries.remove(&id);
    }
}

pub struct RedisProductCache {
    redis: Arc<SharedRedis>,
    ttl: Duration,
}

impl RedisProductCache {
    pub fn new(redis: Arc<SharedRedis>, ttl: Duration) -> Self {
        Self { redis, ttl }
    }

    fn key(&self, id: Uuid) -> String {
        self.redis.key(&format!("catalog:product:{id}"))
    }
}

#[async_trait]
impl ProductCache for RedisProductCache {
    /// A miss when Redis is down or the entry is unreadable: the database answers instead.
    async fn get(&self, id: Uuid) -> Option<Product> {
        let key = self.key(id);
        let cached: Option<String> = self
            .redis
            .run(|mut connection| async move {
                redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut connection)
                    .await
            })
            .await
            .ok()
            .flatten();
        let stored: StoredProduct = serde_json::from_str(&cached?).ok()?;
        stored.into_product().ok()
    }

    async fn put(&self, product: &Product, _: u64) {
        let Ok(value) = serde_json::to_string(&StoredProduct::of(product)) else {
            return;
        };
        let key = self.key(product.id);
        let ttl = self.ttl.as_millis().try_into().unwrap_or(u64::MAX);
        let _ = self
            .redis
            .run(|mut connection| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(value)
                    .arg("PX")
                    .arg(ttl)
                    .query_async::<()>(&mut connection)
                    .await
            })
            .await;
    }

    async fn forget(&self, id: Uuid) {
        if let Err(error) = self.redis.delete(&self.key(id)).await {
            tracing::warn!(%error, product_id = %id, "could not drop a cached product; its TTL will");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {

    use super::*;

    fn product() -> Product {
        crate::domain::sample_product()
    }

    #[tokio::test]
    async fn a_copy_read_before_a_change_is_not_kept() {
        let cache = MemoryProductCache::new(10, Duration::from_secs(60));
        let lamp = product();
        let ticket = cache.ticket();
        // The product changes (and is dropped) while the reader is at the database.
        cache.forget(lamp.id).await;
        cache.put(&lamp, ticket).await;
        assert!(cache.get(lamp.id).await.is_none());
        cache.put(&lamp, cache.ticket()).await;
        assert_eq!(cache.get(lamp.id).await.unwrap().id, lamp.id);
        cache.forget(lamp.id).await;
        assert!(cache.get(lamp.id).await.is_none());
    }

    /// A reader that read before a change puts its copy while the change drops the entry,
    /// on two threads at once: whichever way they interleave, the old copy must not stay.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_copy_put_while_the_change_drops_it_does_not_stay() {
        let cache = Arc::new(MemoryProductCache::new(10, Duration::from_secs(60)));
        let lamp = product();
        let mut kept = 0;
        for _ in 0..50_000 {
            let ticket = cache.ticket();
            let reader = tokio::spawn({
                let (cache, lamp) = (cache.clone(), lamp.clone());
                async move { cache.put(&lamp, ticket).await }
            });
            let change = tokio::spawn({
                let cache = cache.clone();
                async move { cache.forget(lamp.id).await }
            });
            reader.await.unwrap();
            change.await.unwrap();
            if cache.get(lamp.id).await.is_some() {
                kept += 1;
                cache.forget(lamp.id).await;
            }
        }
        assert_eq!(kept, 0, "copies read before a change that stayed after it");
    }

    #[tokio::test(start_paused = true)]
    async fn an_entry_is_kept_for_its_ttl_and_not_after() {
        let cache = MemoryProductCache::new(10, Duration::from_secs(60));
        let lamp = product();
        cache.put(&lamp, cache.ticket()).await;
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(cache.get(lamp.id).await.is_some(), "fresh for 60 s");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(cache.get(lamp.id).await.is_none(), "gone at 60 s");
    }
}
