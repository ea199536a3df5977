//! Turns command-line options into validated settings: secrets read from their files, the
//! storage chosen, signing keys loaded, and the production profile's refusals applied.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use events::relay::RelaySettings;
use jsonwebtoken::jwk::Jwk;
use platform::auth::{SigningKey, TokenAudience};
use platform::db::{PoolSettings, Storage};
use platform::http::HttpLimits;
use platform::secret::read_secret_file;
use secrecy::{ExposeSecret, SecretString};
use users::throttle::ThrottlePolicy;
use users::tokens::TokenLifetimes;

use gateway::proxy::routes::Service;

use crate::cli::{BusKind, LogFormat, Options, Profile};
use crate::tls::{ClientTls, ServerTls};

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
    pub pool: PoolSettings,
    pub limits: HttpLimits,
    pub signing_key: Arc<SigningKey>,
    pub retired_keys: Vec<Jwk>,
    pub audience: TokenAudience,
    pub lifetimes: TokenLifetimes,
    pub throttle: ThrottlePolicy,
    pub admin: Option<AdminBootstrap>,
    pub relay: RelaySettings,
    pub reservation_ttl: std::time::Duration,
    pub shutdown_timeout: std::time::Duration,
    pub bus: BusSettings,
    pub redis_url: Option<SecretString>,
    pub redis_key_prefix: String,
    pub product_cache_ttl: Duration,
    pub service_urls: ServiceUrls,
    pub upstream_timeout: Duration,
    pub route_timeouts: HashMap<Service, Duration>,
    pub jwks_refresh: Duration,
    pub rate_limits: RateLimitSettings,
    pub tls: Option<ServerTls>,
    pub internal_tls: ClientTls,
    /// Serve `/metrics` on this separate address instead of the app's listener.
    pub metrics_listen: Option<std::net::SocketAddr>,
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
}

impl ServiceUrls {
    pub fn of(&self, service: Service) -> &[String] {
        match service {
            Service::Users => &self.users,
            Service::Catalog => &self.catalog,
            Service::Inventory => &self.inventory,
            Service::Orders => &self.orders,
            Service::Payments => &self.payments,
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
    options.log_format.unwrap_or(match options.profile {
        Profile::Development => LogFormat::Pretty,
        Profile::Production => LogFormat::Json,
    })
}

/// Where the data lives: PostgreSQL when a URL is given, else SQLite files in the data dir.
pub fn storage(options: &Options) -> anyhow::Result<Storage> {
    let url = match (&options.database_url, &options.database_url_file) {
        (Some(url), _) => Some(url.clone()),
        (None, Some(file)) => Some(read_secret_file(file)?),
        (None, None) => None,
    };
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
            dir: options.data_dir.clone(),
        }),
    }
}

pub fn pool(options: &Options) -> PoolSettings {
    PoolSettings {
        max_connections: options.db_max_connections,
        statement_timeout: options.db_statement_timeout,
        ..PoolSettings::default()
    }
}

impl Settings {
    /// Everything `serve` needs. In the production profile, refuses development defaults and
    /// names every setting that must change.
    pub fn load(options: &Options) -> anyhow::Result<Self> {
        if options.profile == Profile::Production {
            refuse_development_defaults(options)?;
        }
        let signing_key = match &options.jwt_signing_key_file {
            Some(file) => SigningKey::from_pkcs8_pem(&read_secret_file(file)?)
                .with_context(|| format!("loading the signing key {}", file.display()))?,
            None => development_key(&options.data_dir)?,
        };
        let retired_keys = options
            .jwt_retired_key_files
            .iter()
            .map(|file| {
                SigningKey::from_pkcs8_pem(&read_secret_file(file)?)
                    .map(|key| key.public_jwk().clone())
                    .with_context(|| format!("loading the retired key {}", file.display()))
            })
            .collect::<anyhow::Result<_>>()?;
        let admin = admin(options)?;
        Ok(Self {
            profile: options.profile,
            listen: options.listen,
            storage: storage(options)?,
            pool: pool(options),
            limits: HttpLimits {
                max_body_bytes: options.max_body_bytes,
                request_timeout: options.request_timeout,
            },
            signing_key: Arc::new(signing_key),
            retired_keys,
            audience: TokenAudience {
                issuer: options.jwt_issuer.clone(),
                audience: options.jwt_audience.clone(),
            },
            lifetimes: TokenLifetimes {
                access: options.access_token_ttl,
                refresh: options.refresh_token_ttl,
            },
            throttle: ThrottlePolicy {
                max_failures_per_account: options.login_max_failures,
                max_failures_per_client: options.login_max_failures_per_client,
                window: options.login_failure_window,
            },
            admin,
            relay: RelaySettings::default(),
            reservation_ttl: options.reservation_ttl,
            shutdown_timeout: options.shutdown_timeout,
            bus: bus(options)?,
            redis_url: options.redis_url.clone(),
            redis_key_prefix: options.redis_key_prefix.clone(),
            product_cache_ttl: options.product_cache_ttl,
            service_urls: ServiceUrls {
                users: options.users_url.clone(),
                catalog: options.catalog_url.clone(),
                inventory: options.inventory_url.clone(),
                orders: options.orders_url.clone(),
                payments: options.payments_url.clone(),
            },
            upstream_timeout: options.upstream_timeout,
            route_timeouts: route_timeouts(&options.route_timeouts)?,
            jwks_refresh: options.jwks_refresh,
            rate_limits: rate_limits(options),
            tls: server_tls(options),
            internal_tls: ClientTls {
                ca_file: options.internal_ca_file.clone(),
                identity: options
                    .internal_cert_file
                    .clone()
                    .zip(options.internal_key_file.clone())
                    .or_else(|| {
                        options
                            .tls_cert_file
                            .clone()
                            .zip(options.tls_key_file.clone())
                    }),
            },
            metrics_listen: options.metrics_listen,
        })
    }
}

/// The event bus from `--bus` and, for Kafka, its brokers and topic settings.
pub fn bus(options: &Options) -> anyhow::Result<BusSettings> {
    match options.bus {
        BusKind::Db => Ok(BusSettings::Db),
        BusKind::Kafka => kafka(options),
    }
}

#[cfg(feature = "kafka")]
fn kafka(options: &Options) -> anyhow::Result<BusSettings> {
    use events::bus::kafka::{KafkaConfig, TopicSettings};
    if options.kafka_brokers.is_empty() {
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
    let client_options = pairs("COMMERCEX_KAFKA_OPTIONS", &options.kafka_options)?;
    let producer_options = pairs(
        "COMMERCEX_KAFKA_PRODUCER_OPTIONS",
        &options.kafka_producer_options,
    )?;
    Ok(BusSettings::Kafka(KafkaConfig {
        brokers: options.kafka_brokers.join(","),
        topic_prefix: options.kafka_topic_prefix.clone(),
        client_options,
        producer_options,
        topics: TopicSettings {
            partitions: options.kafka_partitions,
            replication_factor: options.kafka_replication_factor.unwrap_or(if production {
                3
            } else {
                1
            }),
            min_insync_replicas: options.kafka_min_insync_replicas.unwrap_or(if production {
                2
            } else {
                1
            }),
        },
    }))
}

#[cfg(not(feature = "kafka"))]
fn kafka(_: &Options) -> anyhow::Result<BusSettings> {
    bail!("this build of commercex has no Kafka support: rebuild with `--features kafka`")
}

fn server_tls(options: &Options) -> Option<ServerTls> {
    let (cert_file, key_file) = options
        .tls_cert_file
        .clone()
        .zip(options.tls_key_file.clone())?;
    Some(ServerTls {
        cert_file,
        key_file,
        client_ca_file: options.tls_client_ca_file.clone(),
    })
}

/// Quotas at the gateway: unlimited in development unless set, protective in production.
fn rate_limits(options: &Options) -> RateLimitSettings {
    let production = options.profile == Profile::Production;
    let limit = |given: Option<u64>, production_default: u64| {
        let limit = given.unwrap_or(if production { production_default } else { 0 });
        (limit > 0).then_some(limit)
    };
    RateLimitSettings {
        per_client: limit(options.rate_limit_per_client, 1200),
        per_user: limit(options.rate_limit_per_user, 600),
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
pub fn admin(options: &Options) -> anyhow::Result<Option<AdminBootstrap>> {
    let Some(email) = &options.admin_email else {
        return Ok(None);
    };
    let password = match (&options.admin_password_file, &options.admin_password) {
        (Some(file), _) => read_secret_file(file)?,
        (None, Some(password)) => password.clone(),
        (None, None) => bail!(
            "COMMERCEX_ADMIN_EMAIL is set but no password: set COMMERCEX_ADMIN_PASSWORD_FILE \
             (or --admin-password-file)"
        ),
    };
    Ok(Some(AdminBootstrap {
        email: email.clone(),
        password,
    }))
}

fn refuse_development_defaults(options: &Options) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    if options.jwt_signing_key_file.is_none() {
        problems.push(
            "no signing key: set COMMERCEX_JWT_SIGNING_KEY_FILE (--jwt-signing-key-file) to an Ed25519 \
             PKCS#8 PEM key, e.g. from `openssl genpkey -algorithm ed25519`",
        );
    }
    if options.admin_password.is_some() {
        problems.push(
            "the admin password comes from the environment: put it in a file and set \
             COMMERCEX_ADMIN_PASSWORD_FILE instead of COMMERCEX_ADMIN_PASSWORD",
        );
    }
    if options.database_url.is_some() {
        problems.push(
            "the database URL is given in the clear: put it in a file and set \
             COMMERCEX_DATABASE_URL_FILE instead of COMMERCEX_DATABASE_URL",
        );
    }
    if !options.listen.ip().is_loopback()
        && options.tls_cert_file.is_none()
        && !options.allow_plaintext
    {
        problems.push(
            "plain HTTP on a non-loopback address: set COMMERCEX_TLS_CERT_FILE and \
             COMMERCEX_TLS_KEY_FILE, or terminate TLS in front of CommerceX and set \
             COMMERCEX_ALLOW_PLAINTEXT=true (--allow-plaintext), or listen on a loopback address",
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

/// The development signing key: generated on first start and kept in the data directory, so
/// tokens survive restarts.
fn development_key(data_dir: &Path) -> anyhow::Result<SigningKey> {
    let path = data_dir.join(DEV_KEY_FILE);
    if !path.exists() {
        std::fs::create_dir_all(data_dir)
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

#[cfg(test)]
mod tests {
    use super::*;

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
