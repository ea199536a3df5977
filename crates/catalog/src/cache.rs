//! The product read cache. In Redis when configured, shared by every catalog instance; none
//! otherwise (the database answers). An entry is dropped when the product changes: right
//! after the change commits, and again when the change's event comes back through the bus,
//! which also clears an entry a concurrent reader put back from before the change. A TTL
//! bounds whatever slips past both.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use platform::shared_redis::SharedRedis;
use uuid::Uuid;

use crate::domain::Product;
use crate::stored::StoredProduct;

#[async_trait]
pub trait ProductCache: Send + Sync {
    async fn get(&self, id: Uuid) -> Option<Product>;
    async fn put(&self, product: &Product);
    async fn forget(&self, id: Uuid);
}

/// No cache: every read goes to the database.
pub struct NoCache;

#[async_trait]
impl ProductCache for NoCache {
    async fn get(&self, _: Uuid) -> Option<Product> {
        None
    }

    async fn put(&self, _: &Product) {}

    async fn forget(&self, _: Uuid) {}
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

    async fn put(&self, product: &Product) {
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
