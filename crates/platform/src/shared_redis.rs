//! The shared Redis connection every Redis-backed feature goes through. Redis is an
//! accelerator here, never a dependency the platform fails without: the connection is made
//! lazily and re-made in the background, and after an error callers get `Unavailable`
//! at once for a short while (a circuit breaker) instead of each waiting out a timeout.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// How long a command may take before Redis counts as down.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
/// How long callers skip Redis after it failed.
const OPEN_CIRCUIT_FOR: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum RedisUnavailable {
    #[error("the Redis URL is invalid: {0}")]
    BadUrl(String),
    #[error("Redis is unavailable: {0}")]
    Down(String),
}

pub struct SharedRedis {
    connection: ConnectionManager,
    /// Starts every key, so several platforms (or test runs) can share one Redis.
    key_prefix: String,
    /// Until when calls fail fast, after a failure.
    open_until: Mutex<Option<Instant>>,
    failures: AtomicU64,
}

impl std::fmt::Debug for SharedRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRedis")
            .field("failures", &self.failures())
            .finish_non_exhaustive()
    }
}

impl SharedRedis {
    /// Parses `url` (`redis://`, or `rediss://` for TLS, checked against `root_ca` (PEM) when
    /// given, else the system's CAs); connects on first use, so a Redis that is down at
    /// start-up does not stop the platform starting.
    pub fn open(
        url: &str,
        root_ca: Option<Vec<u8>>,
        key_prefix: &str,
    ) -> Result<Self, RedisUnavailable> {
        let client = match root_ca {
            Some(root_cert) => redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                },
            ),
            None => redis::Client::open(url),
        }
        .map_err(|e| RedisUnavailable::BadUrl(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| RedisUnavailable::BadUrl(e.to_string()))?;
        Ok(Self {
            connection,
            key_prefix: key_prefix.to_owned(),
            open_until: Mutex::new(None),
            failures: AtomicU64::new(0),
        })
    }

    /// Runs `command` on the shared connection, unless Redis failed moments ago.
    pub async fn run<T, F, Fut>(&self, command: F) -> Result<T, RedisUnavailable>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if self.circuit_open() {
            return Err(RedisUnavailable::Down("recent failures; skipping".into()));
        }
        let outcome = tokio::time::timeout(COMMAND_TIMEOUT, command(self.connection.clone())).await;
        let error = match outcome {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("no answer within {COMMAND_TIMEOUT:?}"),
        };
        self.failures.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("commercex_redis_failures_total").increment(1);
        let mut open_until = self.lock();
        if open_until.is_none() {
            tracing::warn!(%error, "Redis failed; degrading (rate limits open, caches bypassed)");
        }
        *open_until = Some(Instant::now() + OPEN_CIRCUIT_FOR);
        Err(RedisUnavailable::Down(error))
    }

    /// The full name of key `name`.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.key_prefix)
    }

    /// Commands that failed since start-up.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Deletes `key` (a full key, from [`SharedRedis::key`]).
    pub async fn delete(&self, key: &str) -> Result<(), RedisUnavailable> {
        self.run(|mut connection| async move {
            redis::cmd("DEL")
                .arg(key)
                .query_async::<()>(&mut connection)
                .await
        })
        .await
    }

    pub async fn ping(&self) -> Result<(), RedisUnavailable> {
        self.run(|mut connection| async move {
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
                .map(drop)
        })
        .await
    }

    fn circuit_open(&self) -> bool {
        let mut open_until = self.lock();
        match *open_until {
            Some(until) if Instant::now() < until => true,
            Some(_) => {
                *open_until = None;
                tracing::info!("retrying Redis");
                false
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.open_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
