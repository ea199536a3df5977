//! Turns command-line options into validated settings: secrets read from their files, the
//! storage chosen, signing keys loaded, and the production profile's refusals applied.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use events::relay::RelaySettings;
use events::retention::RetentionSettings;
use events::service_db::StoreSettings;
use jsonwebtoken::jwk::Jwk;
use platform::auth::{SigningKey, TokenAudience};
use platform::db::{PoolSettings, Storage, Synchronous};
use platform::http::HttpLimits;
use platform::sealing::SealingKeys;
use platform::secret::read_secret_file;
use secrecy::{ExposeSecret, SecretString};
use users::throttle::ThrottlePolicy;
use users::tokens::TokenLifetimes;

use gateway::proxy::routes::Service;

use crate::cli::{BusKind, LogFormat, Options, Profile, ServiceName, SqliteSynchronous};
use crate::secrets::vault::VaultSession;
use crate::secrets::{Field, StoredSecrets};
use crate::tls::{ClientTls, ReloadingCertificate, ServerTls};

#[derive(Debug, Clone)]
pub struct SigningKeys {
    pub current: Arc<SigningKey>,
    /// Public halves of retired keys, still in the JWKS until their tokens expire.
    pub retired: Vec<Jwk>,
}

/// Which keys the process needs: the signing keys when it runs the identity service (it signs
/// access tokens), the payment token keys when it runs orders (it seals) or payments (it
/// opens), the session secret when it serves the storefront.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeededKeys {
    pub signing: bool,
    pub payment_tokens: bool,
    pub web_session: bool,
    pub webhook_secrets: bool,
}

impl NeededKeys {
    pub const ALL: NeededKeys = NeededKeys {
        signing: true,
        payment_tokens: true,
        web_session: true,
        webhook_secrets: true,
    };

    /// For `serve` of one service, or of them all (`None`).
    pub fn for_service(service: Option<ServiceName>) -> Self {
        let runs = |name: ServiceName| service.is_none_or(|service| service == name);
        Self {
            signing: runs(ServiceName::Users),
            payment_tokens: runs(ServiceName::Orders) || runs(ServiceName::Payments),
            web_session: runs(ServiceName::Web),
            webhook_secrets: runs(ServiceName::Webhooks),
        }
    }
}

#[derive(Debug)]
pub struct AdminBootstrap {
    pub email: String,
    pub password: SecretString,
}

#[derive(Debug)]
pub struct Settings {
    pub profile: Profile,
    pub listen: std::net::SocketAddr,
    pub storage: Storage,
    pub store: StoreSettings,
    pub limits: HttpLimits,
    /// The keys access tokens are signed with: only a process that runs the identity service
    /// has them.
    pub signing: Option<SigningKeys>,
    /// The keys payment tokens are sealed with: only processes that run orders or payments.
    pub payment_token_keys: Option<Arc<SealingKeys>>,
    /// The keys webhook signing secrets are sealed with at rest: only processes that run
    /// the webhooks service.
    pub webhook_secret_keys: Option<Arc<SealingKeys>>,
    pub audience: TokenAudience,
    pub lifetimes: TokenLifetimes,
    pub throttle: ThrottlePolicy,
    pub admin: Option<AdminBootstrap>,
    pub relay: RelaySettings,
    pub inbox_retention: RetentionSettings,
    /// The in-database bus's log.
    pub event_retention: RetentionSettings,
    pub reservation_ttl: std::time::Duration,
    /// How long an order may stay pending before it is cancelled as timed out.
    pub saga_deadline: std::time::Duration,
    pub shutdown_timeout: std::time::Duration,
    pub bus: BusSettings,
    pub redis_url: Option<SecretString>,
    pub redis_ca_file: Option<PathBuf>,
    pub redis_key_prefix: String,
    pub product_cache_ttl: Duration,
    pub search_in_memory: bool,
    pub service_urls: ServiceUrls,
    pub upstream_timeout: Duration,
    pub route_timeouts: HashMap<Service, Duration>,
    pub jwks_refresh: Duration,
    pub rate_limits: RateLimitSettings,
    pub tls: Option<ServerTls>,
    pub internal_tls: ClientTls,
    /// Serve `/metrics` on this separate address instead of the app's listener.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The sandbox payment provider may run although the profile is production.
    pub allow_sandbox_payments: bool,
    /// Proxies whose `x-forwarded-for` is believed.
    pub trusted_proxies: Arc<[ipnet::IpNet]>,
    /// Open connections per listener at most.
    pub max_connections: usize,
    /// Time for a request's headers, and the longest idle connection.
    pub header_read_timeout: Duration,
    /// The Vault login the secrets came from, kept alive while the process runs.
    pub vault: Option<Arc<VaultSession>>,
    /// What the storefront encrypts its session cookie under: only a process that serves it.
    pub web_session_secret: Option<SecretString>,
    /// The API a storefront of its own calls.
    pub web_api_url: String,
    pub webhooks: webhooks::WebhooksSettings,
}

#[derive(Debug, Clone)]
pub enum BusSettings {
    Db,
    #[cfg(feature = "kafka")]
    Kafka(events::bus::kafka::KafkaConfig),
}

/// Base URLs of each service's instances.
#[derive(Debug, Clone, Default)]
pub struct ServiceUrls {
    pub users: Vec<String>,
    pub catalog: Vec<String>,
    pub inventory: Vec<String>,
    pub orders: Vec<String>,
    pub payments: Vec<String>,
    pub webhooks: Vec<String>,
}

impl ServiceUrls {
    pub fn of(&self, service: Service) -> &[String] {
        match service {
            Service::Users => &self.users,
            Service::Catalog => &self.catalog,
            Service::Inventory => &self.inventory,
            Service::Orders => &self.orders,
            Service::Payments => &self.payments,
            Service::Webhooks => &self.webhooks,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RateLimitSettings {
    pub per_client: Option<u64>,
    pub per_user: Option<u64>,
}

const DEV_KEY_FILE: &str = "dev-signing-key.pem";

pub fn log_format(options: &Options) -> LogFormat {
    options
        .telemetry
        .log_format
        .unwrap_or(match options.profile {
            Profile::Development => LogFormat::Pretty,
            Profile::Production => LogFormat::Json,
        })
}

/// Where the services' data lives and how each opens its store: all the one-shot commands
/// that work on the databases (migrate, dlq, seed) need.
pub struct Databases {
    pub storage: Storage,
    pub store: StoreSettings,
}

impl Databases {
    pub fn resolve(options: &Options, stored: &StoredSecrets) -> anyhow::Result<Self> {
        Ok(Self {
            storage: storage(options, stored)?,
            store: store(options),
        })
    }

    /// Every service's database (migrated as it opens), with its schema name.
    pub async fn open_every_service(
        &self,
    ) -> anyhow::Result<[(&'static str, platform::db::Db); 6]> {
        let (storage, store) = (&self.storage, self.store);
        Ok([
            (
                users::service::SCHEMA,
                users::UsersService::open_db(storage, store).await?.db,
            ),
            (
                catalog::service::SCHEMA,
                catalog::CatalogService::open_db(storage, store).await?.db,
            ),
            (
                inventory::service::SCHEMA,
                inventory::InventoryService::open_db(storage, store)
                    .await?
                    .db,
            ),
            (
                orders::service::SCHEMA,
                orders::OrdersService::open_db(storage, store).await?.db,
            ),
            (
                payments::service::SCHEMA,
                payments::PaymentsService::open_db(storage, store).await?.db,
            ),
            (
                webhooks::service::SCHEMA,
                webhooks::WebhooksService::open_db(storage, store).await?.db,
            ),
        ])
    }
}

/// Where the data lives: PostgreSQL when a URL is given, else SQLite files in the data dir.
pub fn storage(options: &Options, stored: &StoredSecrets) -> anyhow::Result<Storage> {
    let url = stored.resolve(
        options.storage.database_url.as_ref(),
        options.storage.database_url_file.as_ref(),
        Field::DatabaseUrl,
    )?;
    match url {
        Some(url)
            if url.expose_secret().starts_with("postgres://")
                || url.expose_secret().starts_with("postgresql://") =>
        {
            Ok(Storage::Postgres { url })
        }
        Some(_) => {
            bail!("--database-url must be a postgres:// URL (leave it unset for embedded SQLite)")
        }
        None => Ok(Storage::Sqlite {
            dir: options.storage.data_dir.clone(),
            synchronous: sqlite_synchronous(options),
        }),
    }
}

/// `--sqlite-synchronous`, or what the profile implies: production keeps every acknowledged
/// commit through a power loss.
fn sqlite_synchronous(options: &Options) -> Synchronous {
    match (options.storage.sqlite_synchronous, options.profile) {
        (Some(SqliteSynchronous::Full), _) | (None, Profile::Production) => Synchronous::Full,
        (Some(SqliteSynchronous::Normal), _) | (None, Profile::Development) => Synchronous::Normal,
    }
}

/// How each service opens its store: its pool, and whether a relay takes its events to
/// Kafka or its outbox is the in-database bus's log.
pub fn store(options: &Options) -> StoreSettings {
    StoreSettings {
        pool: PoolSettings {
            max_connections: options.storage.db_max_connections,
            statement_timeout: options.storage.db_statement_timeout,
            ..PoolSettings::default()
        },
        relayed: options.events.bus == BusKind::Kafka,
    }
}

impl Settings {
    /// Everything `serve` needs. In the production profile, refuses development defaults and
    /// names every setting that must change.
    pub fn load(
        options: &Options,
        stored: &StoredSecrets,
        keys: NeededKeys,
    ) -> anyhow::Result<Self> {
        if options.profile == Profile::Production {
            refuse_development_defaults(options, stored, keys)?;
        }
        let signing = match keys.signing {
            true => Some(signing_keys(options, stored)?),
            false => None,
        };
        let payment_token_keys = match keys.payment_tokens {
            true => Some(Arc::new(sealing_keys(
                options,
                stored,
                SealedWith::PaymentTokens,
            )?)),
            false => None,
        };
        let web_session_secret = match keys.web_session {
            true => Some(web_session_secret(options, stored)?),
            false => None,
        };
        let webhook_secret_keys = match keys.webhook_secrets {
            true => Some(Arc::new(sealing_keys(
                options,
                stored,
                SealedWith::WebhookSecrets,
            )?)),
            false => None,
        };
        let admin = admin(options, stored)?;
        let tls = tls(options)?;
        Ok(Self {
            profile: options.profile,
            listen: options.http.listen,
            storage: storage(options, stored)?,
            store: store(options),
            limits: HttpLimits {
                max_body_bytes: options.http.max_body_bytes,
                request_timeout: options.http.request_timeout,
            },
            signing,
            payment_token_keys,
            webhook_secret_keys,
            audience: TokenAudience {
                issuer: options.identity.jwt_issuer.clone(),
                audience: options.identity.jwt_audience.clone(),
            },
            lifetimes: TokenLifetimes {
                access: options.identity.access_token_ttl,
                refresh: options.identity.refresh_token_ttl,
                session: options.identity.session_max_age,
            },
            throttle: throttle(options),
            admin,
            relay: RelaySettings::default(),
            inbox_retention: RetentionSettings {
                keep: options.events.inbox_retention,
                ..RetentionSettings::default()
            },
            event_retention: RetentionSettings {
                keep: options.events.event_retention,
                ..RetentionSettings::default()
            },
            reservation_ttl: options.commerce.reservation_ttl,
            // A payment may wait for the customer (3-D Secure) until the reservation
            // expires; the deadline is for the sagas nothing will move any more.
            saga_deadline: options
                .commerce
                .saga_deadline
                .unwrap_or(options.commerce.reservation_ttl + Duration::from_secs(5 * 60)),
            shutdown_timeout: options.shutdown_timeout,
            bus: bus(options, stored)?,
            redis_url: stored.resolve(
                options.redis.redis_url.as_ref(),
                options.redis.redis_url_file.as_ref(),
                Field::RedisUrl,
            )?,
            redis_ca_file: options.redis.redis_ca_file.clone(),
            redis_key_prefix: options.redis.redis_key_prefix.clone(),
            product_cache_ttl: options.redis.product_cache_ttl,
            search_in_memory: options.commerce.search_in_memory,
            service_urls: ServiceUrls {
                users: options.gateway.users_url.clone(),
                catalog: options.gateway.catalog_url.clone(),
                inventory: options.gateway.inventory_url.clone(),
                orders: options.gateway.orders_url.clone(),
                payments: options.gateway.payments_url.clone(),
                webhooks: options.gateway.webhooks_url.clone(),
            },
            upstream_timeout: options.gateway.upstream_timeout,
            route_timeouts: route_timeouts(&options.gateway.route_timeouts)?,
            jwks_refresh: options.gateway.jwks_refresh,
            rate_limits: rate_limits(options),
            tls: tls.server,
            internal_tls: tls.client,
            metrics_listen: options.telemetry.metrics_listen,
            allow_sandbox_payments: options.commerce.allow_sandbox_payments,
            trusted_proxies: options.http.trusted_proxies.clone().into(),
            max_connections: options.http.max_connections,
            header_read_timeout: options.http.header_read_timeout,
            vault: stored.session(),
            web_session_secret,
            web_api_url: options.web.web_api_url.clone(),
            webhooks: webhook_settings(options),
        })
    }
}

/// The event bus from `--bus` and, for Kafka, its brokers and topic settings.
pub fn bus(options: &Options, stored: &StoredSecrets) -> anyhow::Result<BusSettings> {
    match options.events.bus {
        BusKind::Db => Ok(BusSettings::Db),
        BusKind::Kafka => kafka(options, stored),
    }
}

#[cfg(feature = "kafka")]
fn kafka(options: &Options, stored: &StoredSecrets) -> anyhow::Result<BusSettings> {
    use events::bus::kafka::{KafkaConfig, TopicSettings};
    if options.events.kafka_brokers.is_empty() {
        bail!("--bus kafka needs brokers: set COMMERCEX_KAFKA_BROKERS (host:port,...)");
    }
    let production = options.profile == Profile::Production;
    let pairs = |name: &str, given: &[String]| {
        given
            .iter()
            .map(|pair| {
                pair.split_once('=')
                    .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
                    .with_context(|| format!("{name}: {pair:?} is not key=value"))
            })
            .collect::<anyhow::Result<Vec<_>>>()
    };
    // Credentials from the secret store first, so the operator's own options win. A bad
    // line is named by its number: it may hold a password.
    let mut client_options = stored
        .get(Field::KafkaOptions)
        .map(|text| {
            text.expose_secret()
                .lines()
                .map(str::trim)
                .enumerate()
                .filter(|(_, line)| !line.is_empty())
                .map(|(number, line)| {
                    line.split_once('=')
                        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
                        .with_context(|| {
                            format!(
                                "kafka_options in Vault: line {} is not key=value",
                                number + 1
                            )
                        })
                })
                .collect::<anyhow::Result<Vec<_>>>()
        })
        .transpose()?
        .unwrap_or_default();
    client_options.extend(pairs(
        "COMMERCEX_KAFKA_OPTIONS",
        &options.events.kafka_options,
    )?);
    let producer_options = pairs(
        "COMMERCEX_KAFKA_PRODUCER_OPTIONS",
        &options.events.kafka_producer_options,
    )?;
    Ok(BusSettings::Kafka(KafkaConfig {
        brokers: options.events.kafka_brokers.join(","),
        topic_prefix: options.events.kafka_topic_prefix.clone(),
        client_options,
        producer_options,
        create_topics: options.events.kafka_create_topics,
        topics: TopicSettings {
            partitions: options.events.kafka_partitions,
            replication_factor: options
                .events
                .kafka_replication_factor
                .unwrap_or(if production { 3 } else { 1 }),
            min_insync_replicas: options
                .events
                .kafka_min_insync_replicas
                .unwrap_or(if production { 2 } else { 1 }),
        },
    }))
}

#[cfg(not(feature = "kafka"))]
fn kafka(_: &Options, _: &StoredSecrets) -> anyhow::Result<BusSettings> {
    bail!("this build of commercex has no Kafka support: rebuild with `--features kafka`")
}

struct Tls {
    server: Option<ServerTls>,
    client: ClientTls,
}

/// The listener's certificate and the internal client's, loaded now (a bad pair fails
/// start-up) and shared when they are the same files, so one reload serves both.
fn tls(options: &Options) -> anyhow::Result<Tls> {
    let server = options
        .tls
        .tls_cert_file
        .clone()
        .zip(options.tls.tls_key_file.clone())
        .map(|(cert, key)| ReloadingCertificate::load(cert, key).map(Arc::new))
        .transpose()?;
    let identity = match (
        &options.tls.internal_cert_file,
        &options.tls.internal_key_file,
    ) {
        (Some(cert), Some(key)) => match &server {
            Some(server) if server.is_from(cert, key) => Some(server.clone()),
            _ => Some(Arc::new(ReloadingCertificate::load(
                cert.clone(),
                key.clone(),
            )?)),
        },
        _ => server.clone(),
    };
    Ok(Tls {
        server: server.map(|certificate| ServerTls {
            certificate,
            client_ca_file: options.tls.tls_client_ca_file.clone(),
        }),
        client: ClientTls {
            ca_file: options.tls.internal_ca_file.clone(),
            identity,
        },
    })
}

/// Login and sign-up throttling; sign-ups are unlimited in development unless set.
fn throttle(options: &Options) -> ThrottlePolicy {
    let production = options.profile == Profile::Production;
    let signups = options
        .identity
        .signups_per_client
        .unwrap_or(if production { 10 } else { 0 });
    ThrottlePolicy {
        per_account_and_client: options.identity.login_max_failures,
        per_account: options.identity.login_max_failures_per_account,
        per_client: options.identity.login_max_failures_per_client,
        registrations_per_client: (signups > 0).then_some(signups),
        window: options.identity.login_failure_window,
        ..ThrottlePolicy::default()
    }
}

/// Quotas at the gateway: unlimited in development unless set, protective in production.
fn rate_limits(options: &Options) -> RateLimitSettings {
    let production = options.profile == Profile::Production;
    let limit = |given: Option<u64>, production_default: u64| {
        let limit = given.unwrap_or(if production { production_default } else { 0 });
        (limit > 0).then_some(limit)
    };
    RateLimitSettings {
        per_client: limit(options.gateway.rate_limit_per_client, 1200),
        per_user: limit(options.gateway.rate_limit_per_user, 600),
    }
}

/// `orders=20s,payments=30s` into per-service timeouts.
fn route_timeouts(pairs: &[String]) -> anyhow::Result<HashMap<Service, Duration>> {
    pairs
        .iter()
        .map(|pair| {
            let (name, duration) = pair.split_once('=').with_context(|| {
                format!("COMMERCEX_ROUTE_TIMEOUTS: {pair:?} is not service=duration")
            })?;
            let service = Service::parse(name.trim())
                .with_context(|| format!("COMMERCEX_ROUTE_TIMEOUTS: no service called {name:?}"))?;
            let duration = humantime::parse_duration(duration.trim()).with_context(|| {
                format!("COMMERCEX_ROUTE_TIMEOUTS: {duration:?} is not a duration")
            })?;
            Ok((service, duration))
        })
        .collect()
}

/// The administrator to create at start-up, from `--admin-email` and its password.
pub fn admin(options: &Options, stored: &StoredSecrets) -> anyhow::Result<Option<AdminBootstrap>> {
    let Some(email) = &options.identity.admin_email else {
        return Ok(None);
    };
    let password = match (
        &options.identity.admin_password_file,
        &options.identity.admin_password,
    ) {
        (Some(file), _) => Some(read_secret_file(file)?),
        (None, given) => stored.resolve(given.as_ref(), None, Field::AdminPassword)?,
    };
    let Some(password) = password else {
        bail!(
            "COMMERCEX_ADMIN_EMAIL is set but no password: set COMMERCEX_ADMIN_PASSWORD_FILE \
             (or --admin-password-file), or admin_password in Vault"
        )
    };
    Ok(Some(AdminBootstrap {
        email: email.clone(),
        password,
    }))
}

fn refuse_development_defaults(
    options: &Options,
    stored: &StoredSecrets,
    keys: NeededKeys,
) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    for (needed, which) in [
        (keys.payment_tokens, SealedWith::PaymentTokens),
        (keys.webhook_secrets, SealedWith::WebhookSecrets),
    ] {
        let setting = which.setting(options);
        if needed && setting.file.is_none() && stored.get(setting.field).is_none() {
            problems.push(setting.missing);
        }
    }
    if keys.web_session
        && options.web.web_session_secret_file.is_none()
        && stored.get(Field::WebSessionSecret).is_none()
    {
        problems.push(
            "no storefront session secret: set COMMERCEX_WEB_SESSION_SECRET_FILE \
             (--web-session-secret-file) to a file with 32 bytes or more (e.g. from \
             `openssl rand -base64 48`), the same for every web instance, or \
             web_session_secret in Vault",
        );
    }
    if keys.signing
        && options.identity.jwt_signing_key_file.is_none()
        && stored.get(Field::JwtSigningKey).is_none()
    {
        problems.push(
            "no signing key: set COMMERCEX_JWT_SIGNING_KEY_FILE (--jwt-signing-key-file) to an Ed25519 \
             PKCS#8 PEM key, e.g. from `openssl genpkey -algorithm ed25519`, or jwt_signing_key in Vault",
        );
    }
    if options.vault.vault_token.is_some() {
        problems.push(
            "the Vault token comes from the environment: put it in a file and set \
             COMMERCEX_VAULT_TOKEN_FILE, or use COMMERCEX_VAULT_AUTH=kubernetes",
        );
    }
    if options.redis.redis_url.is_some() && redis_url_has_password(options) {
        problems.push(
            "the Redis URL carries a password in the clear: put it in a file and set \
             COMMERCEX_REDIS_URL_FILE instead of COMMERCEX_REDIS_URL",
        );
    }
    if options.identity.admin_password.is_some() {
        problems.push(
            "the admin password comes from the environment: put it in a file and set \
             COMMERCEX_ADMIN_PASSWORD_FILE instead of COMMERCEX_ADMIN_PASSWORD",
        );
    }
    if options.storage.database_url.is_some() {
        problems.push(
            "the database URL is given in the clear: put it in a file and set \
             COMMERCEX_DATABASE_URL_FILE instead of COMMERCEX_DATABASE_URL",
        );
    }
    if options.storage.sqlite_synchronous == Some(SqliteSynchronous::Normal)
        && options.storage.database_url.is_none()
        && options.storage.database_url_file.is_none()
    {
        problems.push(
            "SQLite with COMMERCEX_SQLITE_SYNCHRONOUS=normal (--sqlite-synchronous) can lose \
             acknowledged orders in a power loss: leave it unset or set it to full",
        );
    }
    if !options.http.listen.ip().is_loopback()
        && options.tls.tls_cert_file.is_none()
        && !options.http.allow_plaintext
    {
        problems.push(
            "plain HTTP on a non-loopback address: set COMMERCEX_TLS_CERT_FILE and \
             COMMERCEX_TLS_KEY_FILE, or terminate TLS in front of CommerceX and set \
             COMMERCEX_ALLOW_PLAINTEXT=true (--allow-plaintext), or listen on a loopback address",
        );
    }
    if options.telemetry.metrics_listen.is_none() {
        problems.push(
            "/metrics would be served on the public listener: set COMMERCEX_METRICS_LISTEN \
             (--metrics-listen) to an address of its own for Prometheus and the probes",
        );
    }
    if options.gateway.rate_limit_per_client == Some(0) {
        problems.push(
            "COMMERCEX_RATE_LIMIT_PER_CLIENT=0 turns the per-client quota off: leave it unset \
             (1200 per minute) or set a limit",
        );
    }
    if options.identity.signups_per_client == Some(0) {
        problems.push(
            "COMMERCEX_SIGNUPS_PER_CLIENT=0 turns the sign-up throttle off: leave it unset \
             (10 per client address) or set a limit",
        );
    }
    if options.gateway.rate_limit_per_user == Some(0) {
        problems.push(
            "COMMERCEX_RATE_LIMIT_PER_USER=0 turns the per-user quota off: leave it unset \
             (600 per minute) or set a limit",
        );
    }
    if problems.is_empty() {
        return Ok(());
    }
    bail!(
        "the production profile refuses to start:\n  - {}",
        problems.join("\n  - ")
    )
}

/// The signing key (from its file, the secret store, or in development one generated into the
/// data directory) and the retired ones.
fn signing_keys(options: &Options, stored: &StoredSecrets) -> anyhow::Result<SigningKeys> {
    let current = match stored.resolve(
        None,
        options.identity.jwt_signing_key_file.as_ref(),
        Field::JwtSigningKey,
    )? {
        Some(pem) => {
            SigningKey::from_pkcs8_pem(&pem).context("loading the access token signing key")?
        }
        None => development_key(&options.storage.data_dir)?,
    };
    Ok(SigningKeys {
        current: Arc::new(current),
        retired: retired_keys(options, stored)?,
    })
}

const DEV_WEB_SESSION_SECRET_FILE: &str = "dev-web-session-secret";

/// Which keys of `platform::sealing`.
#[derive(Debug, Clone, Copy)]
enum SealedWith {
    PaymentTokens,
    WebhookSecrets,
}

/// Where a set of sealing keys is configured.
struct KeysSetting<'o> {
    /// The keys file given, if any.
    file: Option<&'o PathBuf>,
    /// Their field in the secret store.
    field: Field,
    /// Their file in a development data directory.
    dev_file: &'static str,
    /// The setting that names the file.
    env: &'static str,
    /// What they are, for errors.
    what: &'static str,
    /// Why the production profile refuses to start without them.
    missing: &'static str,
}

impl SealedWith {
    fn setting(self, options: &Options) -> KeysSetting<'_> {
        match self {
            Self::PaymentTokens => KeysSetting {
                file: options.commerce.payment_token_keys_file.as_ref(),
                field: Field::PaymentTokenKeys,
                dev_file: "dev-payment-token-keys",
                env: "COMMERCEX_PAYMENT_TOKEN_KEYS_FILE",
                what: "the payment token keys",
                missing: "no payment token keys: set COMMERCEX_PAYMENT_TOKEN_KEYS_FILE \
                          (--payment-token-keys-file) to a file with 32 random bytes in base64 \
                          (e.g. from `openssl rand -base64 32`), the same for orders and \
                          payments, or payment_token_keys in Vault",
            },
            Self::WebhookSecrets => KeysSetting {
                file: options.webhooks.webhook_secret_keys_file.as_ref(),
                field: Field::WebhookSecretKeys,
                dev_file: "dev-webhook-secret-keys",
                env: "COMMERCEX_WEBHOOK_SECRET_KEYS_FILE",
                what: "the webhook secret keys",
                missing: "no webhook secret keys: set COMMERCEX_WEBHOOK_SECRET_KEYS_FILE \
                          (--webhook-secret-keys-file) to a file with 32 random bytes in base64 \
                          (e.g. from `openssl rand -base64 32`), the same for every webhooks \
                          instance, or webhook_secret_keys in Vault",
            },
        }
    }
}

/// Sealing keys: from their file, the secret store, or in development generated once into the
/// data directory (which every process of a development deployment shares).
fn sealing_keys(
    options: &Options,
    stored: &StoredSecrets,
    which: SealedWith,
) -> anyhow::Result<SealingKeys> {
    let setting = which.setting(options);
    let text = match stored.resolve(None, setting.file, setting.field)? {
        Some(text) => text,
        None => development_secret(options, setting.dev_file, setting.env, || {
            Ok(SealingKeys::generate_line()?)
        })?,
    };
    SealingKeys::parse(text.expose_secret()).with_context(|| format!("loading {}", setting.what))
}

fn web_session_secret(options: &Options, stored: &StoredSecrets) -> anyhow::Result<SecretString> {
    let given = stored.resolve(
        None,
        options.web.web_session_secret_file.as_ref(),
        Field::WebSessionSecret,
    )?;
    let secret = match given {
        Some(secret) => secret,
        None => development_secret(
            options,
            DEV_WEB_SESSION_SECRET_FILE,
            "COMMERCEX_WEB_SESSION_SECRET_FILE",
            || {
                let bytes: [u8; 48] = rand::random();
                Ok(base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    bytes,
                ))
            },
        )?,
    };
    if secret.expose_secret().trim().len() < web::MIN_SECRET_LEN {
        bail!(
            "the web session secret is shorter than {} bytes: make one with `openssl rand -base64 48`",
            web::MIN_SECRET_LEN
        );
    }
    Ok(secret)
}

/// A development default: a secret generated once (by `generate`, as a line of text) and kept
/// in --data-dir, so it survives restarts; production names `setting` instead.
fn development_secret(
    options: &Options,
    file: &str,
    setting: &str,
    generate: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<SecretString> {
    let path = options.storage.data_dir.join(file);
    if !path.exists() {
        platform::db::create_private_dir(&options.storage.data_dir)
            .with_context(|| format!("creating {}", options.storage.data_dir.display()))?;
        let line = generate()?;
        if publish_private(&path, &format!("{line}\n"))? {
            tracing::warn!(path = %path.display(), "generated a development secret; production needs {setting}");
        }
    }
    Ok(read_secret_file(&path)?)
}

/// The public halves of retired signing keys, still published in the JWKS during a rotation:
/// from their files, else from the secret store. A file holds any number of PEM keys, none
/// included: a mounted secret keeps its `previous.pem` key, empty between rotations.
fn retired_keys(options: &Options, stored: &StoredSecrets) -> anyhow::Result<Vec<Jwk>> {
    let texts = if options.identity.jwt_retired_key_files.is_empty() {
        stored
            .get(Field::JwtRetiredKeys)
            .cloned()
            .into_iter()
            .collect()
    } else {
        options
            .identity
            .jwt_retired_key_files
            .iter()
            .map(|file| read_secret_file(file).map_err(anyhow::Error::from))
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    texts
        .iter()
        .flat_map(crate::secrets::pem_blocks)
        .collect::<Vec<_>>()
        .iter()
        .map(|pem| {
            SigningKey::from_pkcs8_pem(pem)
                .map(|key| key.public_jwk().clone())
                .context("loading a retired signing key")
        })
        .collect()
}

/// Whether `--redis-url` has a password in it (`redis://:secret@host`).
fn redis_url_has_password(options: &Options) -> bool {
    options.redis.redis_url.as_ref().is_some_and(|url| {
        reqwest::Url::parse(url.expose_secret()).is_ok_and(|url| url.password().is_some())
    })
}

/// The development signing key: generated on first start and kept in the data directory, so
/// tokens survive restarts.
fn development_key(data_dir: &Path) -> anyhow::Result<SigningKey> {
    let path = data_dir.join(DEV_KEY_FILE);
    if !path.exists() {
        platform::db::create_private_dir(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let key = SigningKey::generate();
        if publish_private(&path, key.to_pkcs8_pem().expose_secret())? {
            tracing::warn!(path = %path.display(), "generated a development signing key; production needs COMMERCEX_JWT_SIGNING_KEY_FILE");
            return Ok(key);
        }
    }
    SigningKey::from_pkcs8_pem(&read_secret_file(&path)?)
        .with_context(|| format!("loading the development key {}", path.display()))
}

/// Writes `contents` to `path` (mode 0600) unless it exists; `false` when another process got
/// there first. Written aside and linked into place, so nobody reads a half-written key when
/// several processes start together in one data directory.
fn publish_private(path: &Path, contents: &str) -> anyhow::Result<bool> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let aside = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&aside)
        .with_context(|| format!("creating {}", aside.display()))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    let linked = std::fs::hard_link(&aside, path);
    std::fs::remove_file(&aside).ok();
    match linked {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(error) => Err(error).with_context(|| format!("creating {}", path.display())),
    }
}

/// How webhooks are sent: production sends over HTTPS to public addresses only.
fn webhook_settings(options: &Options) -> webhooks::WebhooksSettings {
    let hooks = &options.webhooks;
    webhooks::WebhooksSettings {
        dispatch: webhooks::dispatch::DispatchSettings {
            backoff: webhooks::domain::Backoff {
                first: hooks.webhook_retry_first,
                max: hooks.webhook_retry_max,
            },
            disable_after: hooks.webhook_disable_after,
            ..Default::default()
        },
        retention: hooks.webhook_retention,
        timeouts: webhooks::sender::Timeouts {
            connect: hooks.webhook_timeout.min(std::time::Duration::from_secs(5)),
            total: hooks.webhook_timeout,
        },
        destinations: webhooks::domain::DestinationPolicy {
            production: options.profile == Profile::Production,
            allowed: hooks.webhook_allow_networks.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka_client_options(
        options: &[&str],
        stored: &StoredSecrets,
    ) -> anyhow::Result<Vec<(String, String)>> {
        let mut args = vec!["commercex", "--bus", "kafka", "--kafka-brokers", "k:9092"];
        args.extend(options);
        let cli = crate::config_file::parse_cli_from(args.into_iter().map(Into::into).collect())?;
        match bus(&cli.options, stored)? {
            BusSettings::Kafka(config) => Ok(config.client_options),
            BusSettings::Db => unreachable!("--bus kafka"),
        }
    }

    #[test]
    fn kafka_credentials_from_vault_come_first_and_a_bad_line_is_named_not_shown() {
        let stored = StoredSecrets::holding([(
            Field::KafkaOptions,
            "sasl.username=vault\n\n sasl.password = p=ss \n",
        )]);
        let options = kafka_client_options(&["--kafka-options", "sasl.username=operator"], &stored)
            .expect("options");
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(
            options,
            [
                pair("sasl.username", "vault"),
                pair("sasl.password", "p=ss"),
                // librdkafka takes the last value: the operator's.
                pair("sasl.username", "operator"),
            ]
        );
        let broken = StoredSecrets::holding([(Field::KafkaOptions, "sasl.password=x\nhunter2")]);
        let error = format!(
            "{:#}",
            kafka_client_options(&[], &broken).expect_err("bad line")
        );
        assert!(error.contains("line 2"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn processes_starting_together_share_one_development_key() {
        let dir = tempfile::tempdir().expect("dir");
        let kids: Vec<String> = std::thread::scope(|scope| {
            let starts: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| development_key(dir.path()).expect("key").kid().to_owned()))
                .collect();
            starts
                .into_iter()
                .map(|s| s.join().expect("thread"))
                .collect()
        });
        assert!(kids.windows(2).all(|pair| pair[0] == pair[1]), "{kids:?}");
        let leftovers = std::fs::read_dir(dir.path()).expect("read dir").count();
        assert_eq!(leftovers, 1, "only the key file remains");
    }
}
