//! Proxy mode: the gateway as the one public entry point in front of services that run as
//! their own processes. It checks tokens and rate limits at the edge, routes each path to the
//! owning service's instances over pooled keep-alive connections, and turns a service that is
//! down or slow into a 503 or 504 problem within the route's timeout, never a hang.

mod client;
mod forward;
mod openapi;
pub mod routes;
pub mod upstream;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::routing::{any, get};
use platform::http::{HttpLimits, ReadinessCheck, apply_conventions, health_routes};
use routes::Service;
use upstream::Upstream;

use crate::edge::{EdgeGuard, edge_layer};
pub use client::{ForwardClient, forward_client};

/// What the proxy needs: where each service runs, and how to reach it.
pub struct ProxyParts {
    pub upstreams: Vec<Upstream>,
    /// Configured for the internal CA and the gateway's client certificate when services
    /// require mutual TLS: for probes and documents.
    pub client: reqwest::Client,
    /// The same trust and identity, for the requests it forwards.
    pub forward: ForwardClient,
    pub guard: EdgeGuard,
    pub limits: HttpLimits,
    /// `http` or `https`: what the gateway itself serves, told to services.
    pub scheme: &'static str,
}

pub struct Proxy {
    upstreams: HashMap<Service, Arc<Upstream>>,
    client: reqwest::Client,
    forward: ForwardClient,
    max_body_bytes: usize,
    scheme: &'static str,
    openapi: openapi::MergedDocument,
}

impl Proxy {
    /// The upstream that serves `path`.
    fn upstream_for(&self, path: &str) -> Option<&Upstream> {
        self.upstreams.get(&routes::owner(path)?).map(Arc::as_ref)
    }
}

/// A client builder with pooled keep-alive connections, as the proxy wants it; the caller adds
/// the internal CA and the gateway's certificate.
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        // Below the services' header read timeout (10 s), which closes idle connections:
        // the gateway lets a connection go before a service can close it under a request.
        .pool_idle_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(64)
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
}

pub fn proxy_router(parts: ProxyParts) -> Router {
    let upstreams: HashMap<Service, Arc<Upstream>> = parts
        .upstreams
        .into_iter()
        .map(|upstream| (upstream.service, Arc::new(upstream)))
        .collect();
    let readiness = upstreams
        .values()
        .map(|upstream| {
            Arc::new(UpstreamReady {
                upstream: upstream.clone(),
                client: parts.client.clone(),
            }) as Arc<dyn ReadinessCheck>
        })
        .collect();
    let proxy = Arc::new(Proxy {
        openapi: openapi::MergedDocument::new(upstreams.values().cloned().collect()),
        upstreams,
        client: parts.client,
        forward: parts.forward,
        max_body_bytes: parts.limits.max_body_bytes,
        scheme: parts.scheme,
    });
    // A route per owned prefix, so requests are traced and counted under it (`POST
    // /api/v1/orders`, `GET /api/v1/orders/{*rest}`) from the moment they arrive.
    let mut api = Router::new().route("/openapi.json", get(openapi::serve));
    for prefix in routes::prefixes() {
        api = api
            .route(prefix, any(forward::forward))
            .route(&format!("{prefix}/{{*rest}}"), any(forward::forward));
    }
    let api = api
        // Nobody's: `forward` answers 404 for it.
        .route("/{*path}", any(forward::forward))
        .with_state(proxy)
        .merge(crate::docs_ui())
        .merge(events::asyncapi::routes())
        .merge(health_routes(readiness));
    apply_conventions(edge_layer(api, parts.guard), parts.limits)
}

/// Ready when at least one instance of the service answers its liveness probe.
struct UpstreamReady {
    upstream: Arc<Upstream>,
    client: reqwest::Client,
}

#[async_trait]
impl ReadinessCheck for UpstreamReady {
    fn name(&self) -> &str {
        self.upstream.service.name()
    }

    async fn check(&self) -> Result<(), String> {
        let mut last = String::from("no instance");
        for base in self.upstream.rotation() {
            let probe = self
                .client
                .get(base.url_for("/healthz"))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            match probe {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => last = format!("{base} answered {}", response.status()),
                Err(error) => last = format!("{base}: {error}"),
            }
        }
        Err(last)
    }
}
