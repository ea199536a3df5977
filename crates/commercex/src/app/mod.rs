//! Building and running a CommerceX process. `Application::build` runs everything in one
//! process with no network hops (the embedded runtime); `Application::build_service` runs one
//! service, or the gateway in proxy mode, as production does on Kubernetes. Both do
//! everything `serve` does except wait for a signal, so tests start the app exactly as
//! production does.

mod bus;
mod connections;
mod edge;
mod jwks;
mod sampler;
pub mod services;
mod storefront;
mod workers;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use axum::Extension;
use axum::http::{HeaderValue, header};
use events::outbox::Handoff;
use events::retention::{InboxRetention, LogRetention};
use events::sequencer::{Sequencer, SequencerSettings};
use platform::auth::TokenVerifier;
use platform::db::Db;
use platform::http::{ForwardedBy, ReadinessCheck};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::set_header::SetResponseHeaderLayer;
use users::UsersService;
use users::app::{IdentityError, Promotion};
use users::domain::{DisplayName, Email, Password, User};

use bus::{BusReady, open_bus};
use services::{DOMAIN_SERVICES, Services};
use workers::Workers;

use crate::cli::ServiceName;
use crate::settings::Settings;
use crate::telemetry;

/// How often expired reservations are looked for; an expired hold lingers at most this long.
const RESERVATION_SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    databases: Vec<Db>,
    workers: Workers,
    shutdown_timeout: std::time::Duration,
    tls: Option<Arc<rustls::ServerConfig>>,
    connection_limits: connections::ConnectionLimits,
    /// A listener of its own for `/metrics`, `/healthz` and `/readyz`, when the API's is
    /// public or needs a client certificate.
    management: Option<(SocketAddr, axum::Router)>,
}

impl Application {
    /// Every service and the gateway in this process.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let redis = edge::shared_redis(&settings)?;
        let services = Services::open(&settings, &DOMAIN_SERVICES, redis.clone()).await?;
        let users = services
            .users
            .as_ref()
            .context("the users service is open")?;
        bootstrap_configured_admin(&settings, users).await?;
        let verifier =
            TokenVerifier::from_jwks(&users.identity().issuer().jwks(), &settings.audience)
                .context("building the token verifier from our own JWKS")?;
        let mut parts = Self::domain_parts(&settings, services, Arc::new(verifier)).await?;
        parts.rate_limits = Some(edge::rate_limits(&settings, redis));
        parts.storefront = true;
        Self::assemble(settings, parts, "commercex").await
    }

    /// One service, or the gateway in proxy mode.
    pub async fn build_service(settings: Settings, service: ServiceName) -> anyhow::Result<Self> {
        if service == ServiceName::Gateway {
            let redis = edge::shared_redis(&settings)?;
            let mut workers = Workers::default();
            let router = edge::proxy(&settings, redis, &mut workers)
                .await?
                .layer(Extension(ForwardedBy {
                    any_peer: false,
                    proxies: settings.trusted_proxies.clone(),
                }));
            return Self::listen(settings, router, Vec::new(), workers, service.name()).await;
        }
        if service == ServiceName::Web {
            let api =
                client::ApiClient::with(edge::internal_client(&settings)?, &settings.web_api_url);
            let router = storefront::alone(&settings, api)?;
            return Self::listen(
                settings,
                router,
                Vec::new(),
                Workers::default(),
                service.name(),
            )
            .await;
        }
        let redis = edge::shared_redis(&settings)?;
        let services = Services::open(&settings, &[service], redis).await?;
        let (verifier, refresher) = match &services.users {
            Some(users) => {
                bootstrap_configured_admin(&settings, users).await?;
                let jwks = users.identity().issuer().jwks();
                let verifier = TokenVerifier::from_jwks(&jwks, &settings.audience)
                    .context("building the token verifier from our own JWKS")?;
                (Arc::new(verifier), None)
            }
            None => {
                let remote = jwks::RemoteJwks::new(
                    edge::internal_client(&settings)?,
                    &settings.service_urls.users,
                );
                let verifier = Arc::new(remote.verifier(&settings.audience).await?);
                (verifier.clone(), Some((remote, verifier)))
            }
        };
        let mut parts = Self::domain_parts(&settings, services, verifier).await?;
        if let Some((remote, verifier)) = refresher {
            let every = settings.jwks_refresh;
            parts
                .workers
                .spawn(move |cancel| remote.refresh(verifier, every, cancel));
        }
        // Behind the gateway, the client is who the gateway says it is.
        parts.behind_gateway = true;
        Self::assemble(settings, parts, service.name()).await
    }

    /// The routers, readiness checks, relays, consumers and sweeper of the open services.
    async fn domain_parts(
        settings: &Settings,
        services: Services,
        verifier: Arc<TokenVerifier>,
    ) -> anyhow::Result<DomainParts> {
        let bus = open_bus(settings, &services).await?;
        let mut readiness: Vec<Arc<dyn ReadinessCheck>> = services
            .stores()
            .iter()
            .map(|store| Arc::new(DbReady(store.db.clone())) as Arc<dyn ReadinessCheck>)
            .collect();
        readiness.push(Arc::new(BusReady(bus.bus.clone())));
        let mut workers = Workers::default();
        for store in services.stores() {
            match store.outbox.handoff() {
                Handoff::InPlace => {}
                Handoff::Sequenced => {
                    let sequencer = Sequencer::new(
                        store.db.clone(),
                        store.outbox.clone(),
                        SequencerSettings::default(),
                    );
                    workers.spawn_publisher(move |cancel| sequencer.run(cancel));
                }
                Handoff::Relayed => {
                    let relay = events::relay::Relay::new(
                        store.db.clone(),
                        store.outbox.clone(),
                        bus.bus.clone(),
                        settings.relay,
                    );
                    workers.spawn_publisher(move |cancel| relay.run(cancel));
                }
            }
            let retention = InboxRetention::new(store.db.clone(), settings.inbox_retention);
            workers.spawn(move |cancel| retention.run(cancel));
        }
        if let Some(log) = bus.log {
            let retention = LogRetention::new(log, settings.event_retention);
            workers.spawn(move |cancel| retention.run(cancel));
        }
        let consumers = services.consumers(&bus.bus, settings);
        let groups = consumers
            .iter()
            .map(|consumer| consumer.settings().clone())
            .collect();
        for consumer in consumers {
            workers.spawn(move |cancel| consumer.run(cancel));
        }
        if let Some(follower) = services
            .catalog
            .as_ref()
            .and_then(catalog::CatalogService::change_follower)
        {
            workers.spawn(move |cancel| follower.run(cancel));
        }
        if let Some(follower) = services
            .webhooks
            .as_ref()
            .and_then(webhooks::WebhooksService::subscription_follower)
        {
            workers.spawn(move |cancel| follower.run(cancel));
        }
        if let Some(follower) = services
            .orders
            .as_ref()
            .and_then(orders::OrdersService::settlement_follower)
        {
            workers.spawn(move |cancel| follower.run(cancel));
        }
        if let Some(users) = &services.users {
            let retention = users.session_retention();
            workers.spawn(move |cancel| retention.run(cancel));
        }
        if let Some(inventory) = &services.inventory {
            let sweeper = inventory.sweeper(RESERVATION_SWEEP_INTERVAL);
            workers.spawn(move |cancel| sweeper.run(cancel));
        }
        if let Some(orders) = &services.orders {
            let deadline = orders.deadline(settings.saga_deadline);
            workers.spawn(move |cancel| deadline.run(cancel));
        }
        if let Some(webhooks) = &services.webhooks {
            let dispatcher = webhooks
                .dispatcher(webhook_client()?)
                .context("building the webhook client")?;
            workers.spawn(move |cancel| dispatcher.run(cancel));
            let retention = webhooks.retention();
            workers.spawn(move |cancel| retention.run(cancel));
        }
        let sampler = sampler::Sampler {
            stores: services.stores().iter().map(|s| s.db.clone()).collect(),
            orders: services.orders.as_ref().map(|s| s.store().db.clone()),
            bus: bus.bus.clone(),
            groups,
        };
        workers.spawn(move |cancel| sampler.run(cancel));
        let mut databases: Vec<Db> = services.stores().iter().map(|s| s.db.clone()).collect();
        databases.extend(bus.databases);
        Ok(DomainParts {
            routers: services.routers(),
            readiness,
            verifier,
            databases,
            workers,
            rate_limits: None,
            behind_gateway: false,
            storefront: false,
        })
    }

    async fn assemble(
        settings: Settings,
        parts: DomainParts,
        service: &'static str,
    ) -> anyhow::Result<Self> {
        let mut router = gateway::router(gateway::GatewayParts {
            services: parts.routers,
            readiness: parts.readiness,
            verifier: parts.verifier,
            limits: settings.limits,
            rate_limits: parts.rate_limits,
        });
        // Behind the gateway over mutual TLS, every peer proved it is one of ours, and the
        // gateway names the client; over plain HTTP only the trusted proxies are believed.
        let mutual_tls = settings
            .tls
            .as_ref()
            .is_some_and(|tls| tls.client_ca_file.is_some());
        router = router.layer(Extension(ForwardedBy {
            any_peer: parts.behind_gateway && mutual_tls,
            proxies: settings.trusted_proxies.clone(),
        }));
        if parts.storefront {
            router = storefront::beside(&settings, router)?;
        }
        Self::listen(settings, router, parts.databases, parts.workers, service).await
    }

    async fn listen(
        settings: Settings,
        router: axum::Router,
        databases: Vec<Db>,
        mut workers: Workers,
        service: &'static str,
    ) -> anyhow::Result<Self> {
        spawn_credential_upkeep(&settings, &mut workers);
        let metrics = telemetry::metrics::routes(telemetry::metrics::recorder(service));
        // With a listener of its own, metrics and the health endpoints are served there in
        // plain HTTP for Prometheus and the kubelet's probes, which have no client
        // certificate for a mutual-TLS API port.
        let (router, management) = match settings.metrics_listen {
            None => (router.merge(metrics), None),
            Some(addr) => {
                let health = router.clone().into_service::<axum::body::Body>();
                let management = metrics
                    .route_service("/healthz", health.clone())
                    .route_service("/readyz", health);
                (router, Some((addr, management)))
            }
        };
        let tls = settings
            .tls
            .as_ref()
            .map(crate::tls::server_config)
            .transpose()?;
        // Served over TLS, browsers are told to come back only that way (a year).
        let router = if tls.is_some() {
            router.layer(SetResponseHeaderLayer::if_not_present(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=31536000"),
            ))
        } else {
            router
        };
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("listening on {}", settings.listen))?;
        Ok(Self {
            listener,
            router,
            databases,
            workers,
            shutdown_timeout: settings.shutdown_timeout,
            tls,
            connection_limits: connections::ConnectionLimits {
                max: settings.max_connections,
                header_read_timeout: settings.header_read_timeout,
            },
            management,
        })
    }

    /// The databases the process opened (each service's, and the in-database bus's): what an
    /// operator's tool or a test holds to look at, or lean on, the pools the process uses.
    pub fn databases(&self) -> &[Db] {
        &self.databases
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// `https` when this process serves TLS.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Serves until `shutdown` fires; then stops accepting, finishes in-flight requests,
    /// lets consumers finish the event in hand and the relays publish what is committed,
    /// and closes the databases.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        if let Some((addr, management)) = self.management {
            telemetry::metrics::serve_separately(addr, management, shutdown.clone()).await?;
        }
        let background = self.workers.start();
        let app = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        // One server for plain HTTP and TLS, so both get the same limits and the same
        // bounded drain.
        let handle = axum_server::Handle::new();
        let draining = handle.clone();
        let drain_within = self.shutdown_timeout;
        tokio::spawn(async move {
            shutdown.cancelled().await;
            draining.graceful_shutdown(Some(drain_within));
        });
        let listener = self.listener.into_std().context("taking the listener")?;
        match self.tls {
            None => {
                let server = axum_server::from_tcp(listener).context("serving HTTP")?;
                connections::limit(server, handle, self.connection_limits)
                    .serve(app)
                    .await
                    .context("serving HTTP")?;
            }
            Some(config) => {
                let config = axum_server::tls_rustls::RustlsConfig::from_config(config);
                let server =
                    axum_server::from_tcp_rustls(listener, config).context("serving HTTPS")?;
                connections::limit(server, handle, self.connection_limits)
                    .serve(app)
                    .await
                    .context("serving HTTPS")?;
            }
        }
        tracing::info!("HTTP drained; stopping background work");
        if !background.stop(self.shutdown_timeout).await {
            tracing::warn!("background work did not stop within the shutdown timeout");
        }
        for db in &self.databases {
            db.close().await;
        }
        Ok(())
    }
}

/// Work that keeps the process's credentials current: its Vault token, and certificates
/// renewed in place.
fn spawn_credential_upkeep(settings: &Settings, workers: &mut Workers) {
    if let Some(vault) = settings.vault.clone() {
        workers.spawn(move |cancel| async move { vault.run(cancel).await });
    }
    let mut certificates: Vec<_> = settings
        .tls
        .iter()
        .map(|tls| tls.certificate.clone())
        .collect();
    if let Some(identity) = &settings.internal_tls.identity
        && !certificates.iter().any(|c| Arc::ptr_eq(c, identity))
    {
        certificates.push(identity.clone());
    }
    if !certificates.is_empty() {
        workers.spawn(move |cancel| crate::tls::keep_reloading(certificates, cancel));
    }
}

/// The client webhooks are sent with: the public roots (an endpoint is an integrator's
/// server on the internet, never one of ours).
fn webhook_client() -> anyhow::Result<reqwest::ClientBuilder> {
    let public = crate::tls::client_config(&crate::tls::ClientTls::default())?;
    Ok(reqwest::Client::builder().use_preconfigured_tls(public))
}

/// What the open domain services contribute to the process.
struct DomainParts {
    routers: Vec<utoipa_axum::router::OpenApiRouter>,
    readiness: Vec<Arc<dyn ReadinessCheck>>,
    verifier: Arc<TokenVerifier>,
    databases: Vec<Db>,
    workers: Workers,
    rate_limits: Option<gateway::ratelimit::RateLimits>,
    /// A service process: its peer is the gateway, whose `x-forwarded-for` names the client
    /// (believed over mutual TLS, or from a trusted proxy address).
    behind_gateway: bool,
    /// The storefront is served beside the API (the embedded runtime).
    storefront: bool,
}

async fn bootstrap_configured_admin(
    settings: &Settings,
    users: &UsersService,
) -> anyhow::Result<()> {
    let Some(admin) = &settings.admin else {
        return Ok(());
    };
    let made = bootstrap_admin(
        users,
        &admin.email,
        admin.password.expose_secret(),
        "Administrator",
        Promotion::AdminsOnly,
    )
    .await;
    match made {
        // Someone registered the configured address first. Refusing to start would let them
        // keep the platform down; it runs, without making their account an administrator.
        Err(error) if matches!(error.downcast_ref(), Some(IdentityError::NotAnAdmin)) => {
            tracing::error!(email = %admin.email, "the configured administrator was not created: {error:#}");
            Ok(())
        }
        made => made.map(|_| ()),
    }
}

pub async fn bootstrap_admin(
    users: &UsersService,
    email: &str,
    password: &str,
    name: &str,
    promotion: Promotion,
) -> anyhow::Result<User> {
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!("admin email: {e}"))?;
    let password = Password::parse(password).map_err(|e| anyhow::anyhow!("admin password: {e}"))?;
    let name = DisplayName::parse(name).map_err(|e| anyhow::anyhow!("admin name: {e}"))?;
    let admin = users
        .identity()
        .ensure_admin(email, password, name, promotion)
        .await
        .context("creating the admin account")?;
    tracing::info!(user_id = %admin.id, "admin account ready");
    Ok(admin)
}

struct DbReady(Db);

#[async_trait]
impl ReadinessCheck for DbReady {
    fn name(&self) -> &str {
        self.0.schema()
    }

    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}
