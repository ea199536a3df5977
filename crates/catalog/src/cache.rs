//! The product read cache. In Redis when configured, shared by every catalog instance; in the
//! process's memory for the embedded runtime, where every change to a product is made and
//! consumed in that one process; none otherwise (the database answers). An entry is dropped
//! when the product changes: right after the change commits, and again when the change's
//! event comes back through the bus. A reader takes a ticket before it reads the database,
//! and its copy is kept only if no change of the product came since, so a reader that raced
//! a change cannot put the old product back. A TTL bounds whatever slips past (a drop that
//! failed while Redis was away).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use platform::shared_redis::SharedRedis;
// Tokio's clock, so that a test can move time on instead of waiting for an entry to age.
use tokio::time::Instant;
use uuid::Uuid;

use crate::domain::Product;
use crate::store::row::StoredProduct;

/// What a look in the cache found.
#[derive(Debug)]
pub enum Lookup {
    Hit(Product),
    /// Not cached: the reader goes to the database and hands `ticket` back with what it read
    /// (`None`: nothing read now may be kept).
    Miss {
        ticket: Option<u64>,
    },
}

#[async_trait]
pub trait ProductCache: Send + Sync {
    async fn get(&self, id: Uuid) -> Lookup;
    /// Keeps `product`, read after `ticket` was taken, unless a change of it came since.
    async fn put(&self, product: &Product, ticket: u64);
    async fn forget(&self, id: Uuid);
}

/// No cache: every read goes to the database.
pub struct NoCache;

#[async_trait]
impl ProductCache for NoCache {
    async fn get(&self, _: Uuid) -> Lookup {
        Lookup::Miss { ticket: None }
    }

    async fn put(&self, _: &Product, _: u64) {}

    async fn forget(&self, _: Uuid) {}
}

/// Products in this process's memory, for a catalog that no other process changes (the
/// embedded runtime): every change and every availability update passes through here, so
/// dropping entries as they happen keeps the cache exact. A copy read before any change the
/// cache has since been told of is not kept (the ticket a miss hands out): a reader that
/// raced a change cannot put the old product back.
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
    async fn get(&self, id: Uuid) -> Lookup {
        match self.entries.get(&id) {
            Some((product, kept_at)) if kept_at.elapsed() < self.ttl => Lookup::Hit(product),
            _ => Lookup::Miss {
                ticket: Some(self.forgets.load(Ordering::SeqCst)),
            },
        }
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

/// KEYS: the entry, and its product's change count. ARGV: the count a reader saw before it
/// read the database (its ticket), the entry, its TTL in ms. Keeps the entry only if the
/// count is still the ticket: checked and written in one step, so a change cannot come
/// between (it counts itself before it drops the entry).
static PUT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
",
    )
});

/// Products in Redis, shared by every catalog instance. Each product has a change count
/// beside its entry: a change increments it and drops the entry in one transaction, and an
/// entry is written only against the count its reader saw before reading (`PUT`).
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

    fn changes_key(&self, id: Uuid) -> String {
        self.redis.key(&format!("catalog:product:{id}:changes"))
    }

    fn ttl_ms(&self) -> u64 {
        self.ttl.as_millis().try_into().unwrap_or(u64::MAX)
    }
}

#[async_trait]
impl ProductCache for RedisProductCache {
    /// The entry and its product's change count in one round trip: on a miss the count is
    /// the reader's ticket. A miss when the entry is unreadable, and one without a ticket
    /// when Redis is away (there is nothing to keep a copy in either).
    async fn get(&self, id: Uuid) -> Lookup {
        let (entry, changes) = (self.key(id), self.changes_key(id));
        let read = self
            .redis
            .run(|mut connection| async move {
                redis::cmd("MGET")
                    .arg(&entry)
                    .arg(&changes)
                    .query_async::<(Option<String>, Option<u64>)>(&mut connection)
                    .await
            })
            .await;
        let Ok((cached, count)) = read else {
            return Lookup::Miss { ticket: None };
        };
        let product = cached
            .and_then(|json| serde_json::from_str::<StoredProduct>(&json).ok())
            .and_then(|stored| stored.into_product().ok());
        match product {
            Some(product) => Lookup::Hit(product),
            None => Lookup::Miss {
                ticket: Some(count.unwrap_or(0)),
            },
        }
    }

    async fn put(&self, product: &Product, ticket: u64) {
        let Ok(value) = serde_json::to_string(&StoredProduct::of(product)) else {
            return;
        };
        let mut put = PUT.prepare_invoke();
        put.key(self.key(product.id))
            .key(self.changes_key(product.id))
            .arg(ticket)
            .arg(value)
            .arg(self.ttl_ms());
        let _ = self
            .redis
            .run(|mut connection| async move { put.invoke_async::<i64>(&mut connection).await })
            .await;
    }

    /// The count outlives the entries written against it; once it expires it reads as 0,
    /// which only refuses the copies of readers that saw it before.
    async fn forget(&self, id: Uuid) {
        let (entry, changes, ttl) = (self.key(id), self.changes_key(id), self.ttl_ms());
        let dropped = self
            .redis
            .run(|mut connection| async move {
                redis::pipe()
                    .atomic()
                    .incr(&changes, 1)
                    .ignore()
                    .pexpire(&changes, i64::try_from(ttl).unwrap_or(i64::MAX))
                    .ignore()
                    .del(&entry)
                    .ignore()
                    .query_async::<()>(&mut connection)
                    .await
            })
            .await;
        if let Err(error) = dropped {
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

    impl Lookup {
        fn hit(self) -> Option<Product> {
            match self {
                Lookup::Hit(product) => Some(product),
                Lookup::Miss { .. } => None,
            }
        }
    }

    /// The ticket of a miss of `id`.
    async fn ticket(cache: &dyn ProductCache, id: Uuid) -> u64 {
        match cache.get(id).await {
            Lookup::Miss { ticket } => ticket.expect("a ticket"),
            Lookup::Hit(_) => panic!("a hit"),
        }
    }

    #[tokio::test]
    async fn a_copy_read_before_a_change_is_not_kept() {
        let cache = MemoryProductCache::new(10, Duration::from_secs(60));
        let lamp = product();
        let before_the_change = ticket(&cache, lamp.id).await;
        // The product changes (and is dropped) while the reader is at the database.
        cache.forget(lamp.id).await;
        cache.put(&lamp, before_the_change).await;
        assert!(cache.get(lamp.id).await.hit().is_none());
        cache.put(&lamp, ticket(&cache, lamp.id).await).await;
        assert_eq!(cache.get(lamp.id).await.hit().unwrap().id, lamp.id);
        cache.forget(lamp.id).await;
        assert!(cache.get(lamp.id).await.hit().is_none());
    }

    /// How many times, of `rounds`, a copy read before a change stayed after it, when the
    /// reader puts it (through `reader`) while the change drops the entry (through `changer`)
    /// on the other thread.
    async fn stale_copies_kept(
        reader: Arc<dyn ProductCache>,
        changer: Arc<dyn ProductCache>,
        rounds: usize,
    ) -> usize {
        let lamp = product();
        let mut kept = 0;
        for _ in 0..rounds {
            let ticket = ticket(reader.as_ref(), lamp.id).await;
            let put = tokio::spawn({
                let (reader, lamp) = (reader.clone(), lamp.clone());
                async move { reader.put(&lamp, ticket).await }
            });
            let change = tokio::spawn({
                let changer = changer.clone();
                async move { changer.forget(lamp.id).await }
            });
            put.await.unwrap();
            change.await.unwrap();
            if reader.get(lamp.id).await.hit().is_some() {
                kept += 1;
                changer.forget(lamp.id).await;
            }
        }
        kept
    }

    /// Whichever way the put and the drop interleave, the old copy must not stay: checking
    /// the count only before the insert kept it in 1-6 of 20,000 rounds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_copy_put_while_the_change_drops_it_does_not_stay() {
        let cache: Arc<dyn ProductCache> =
            Arc::new(MemoryProductCache::new(10, Duration::from_secs(60)));
        assert_eq!(stale_copies_kept(cache.clone(), cache, 50_000).await, 0);
    }

    /// The same against a real Redis, the reader and the change on two catalog instances:
    /// without the change count, a reader's `SET` after the change's `DEL` kept the old
    /// product for the TTL.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn in_redis_a_copy_put_while_another_instance_drops_it_does_not_stay() {
        let Some(url) = testkit::required_env("REDIS_URL", "Redis") else {
            return;
        };
        let prefix = format!("t{}:", Uuid::new_v4().simple());
        let instance = || -> Arc<dyn ProductCache> {
            let redis = SharedRedis::open(&url, None, &prefix).unwrap();
            Arc::new(RedisProductCache::new(
                Arc::new(redis),
                Duration::from_secs(60),
            ))
        };
        assert_eq!(stale_copies_kept(instance(), instance(), 2_000).await, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_entry_is_kept_for_its_ttl_and_not_after() {
        let cache = MemoryProductCache::new(10, Duration::from_secs(60));
        let lamp = product();
        cache.put(&lamp, ticket(&cache, lamp.id).await).await;
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(cache.get(lamp.id).await.hit().is_some(), "fresh for 60 s");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(cache.get(lamp.id).await.hit().is_none(), "gone at 60 s");
    }
}
