//! The gateway's side of the wiring: Redis, quotas, the internal HTTP client and proxy mode.

use std::sync::Arc;

use anyhow::Context;
use gateway::proxy::routes::Service;
use gateway::proxy::upstream::Upstream;
use gateway::proxy::{ProxyParts, client_builder, forward_client, proxy_router};
use gateway::ratelimit::{MemoryRateLimits, RateLimitStore, RateLimits, RedisRateLimits};
use platform::shared_redis::SharedRedis;
use secrecy::ExposeSecret;

use super::jwks::RemoteJwks;
use super::workers::Workers;
use crate::settings::Settings;

pub fn shared_redis(settings: &Settings) -> anyhow::Result<Option<Arc<SharedRedis>>> {
    let Some(url) = &settings.redis_url else {
        return Ok(None);
    };
    let root_ca = settings
        .redis_ca_file
        .as_ref()
        .map(|file| std::fs::read(file).with_context(|| format!("reading {}", file.display())))
        .transpose()?;
    SharedRedis::open(url.expose_secret(), root_ca, &settings.redis_key_prefix)
        .map(|redis| Some(Arc::new(redis)))
        .context("COMMERCEX_REDIS_URL")
}

/// Quotas counted in Redis when there is one (shared by every gateway), else in memory.
pub fn rate_limits(settings: &Settings, redis: Option<Arc<SharedRedis>>) -> RateLimits {
    let store: Arc<dyn RateLimitStore> = match redis {
        Some(redis) => Arc::new(RedisRateLimits { redis }),
        None => Arc::new(MemoryRateLimits::default()),
    };
    RateLimits {
        store,
        per_client: settings.rate_limits.per_client,
        per_user: settings.rate_limits.per_user,
    }
}

/// The client services and the gateway use to call services.
pub fn internal_client(settings: &Settings) -> anyhow::Result<reqwest::Client> {
    crate::tls::client(client_builder(), &settings.internal_tls)?
        .build()
        .context("building the internal HTTP client")
}

/// The gateway in proxy mode: every service's instances, the identity service's keys.
pub async fn proxy(
    settings: &Settings,
    redis: Option<Arc<SharedRedis>>,
    workers: &mut Workers,
) -> anyhow::Result<axum::Router> {
    let urls = &settings.service_urls;
    let upstreams = Service::ALL
        .into_iter()
        .map(|service| {
            let timeout = settings
                .route_timeouts
                .get(&service)
                .copied()
                .unwrap_or(settings.upstream_timeout);
            Upstream::new(service, urls.of(service), timeout)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let client = internal_client(settings)?;
    let forward = forward_client(crate::tls::client_config(&settings.internal_tls)?);
    let remote = RemoteJwks::new(client.clone(), &urls.users);
    let verifier = Arc::new(remote.verifier(&settings.audience).await?);
    let every = settings.jwks_refresh;
    let refreshed = verifier.clone();
    workers.spawn(move |cancel| remote.refresh(refreshed, every, cancel));
    Ok(proxy_router(ProxyParts {
        upstreams,
        client,
        forward,
        guard: gateway::edge::EdgeGuard {
            verifier,
            rate_limits: rate_limits(settings, redis),
        },
        limits: settings.limits,
        scheme: if settings.tls.is_some() {
            "https"
        } else {
            "http"
        },
    }))
}
