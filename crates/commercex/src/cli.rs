//! The command line. Every option has a `COMMERCEX_*` environment twin; a config file
//! (`--config`) supplies values for options given neither as flag nor as environment.
//! Precedence: flags > environment > config file > defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

/// Secrets given on the command line or in the environment stay redacted in Debug output.
fn secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value.to_owned()))
}

#[derive(Debug, Parser)]
#[command(
    name = "commercex",
    version,
    about = "CommerceX: an event-driven commerce backend."
)]
pub struct Cli {
    #[command(flatten)]
    pub options: Options,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every service and the gateway in this process (the default), or one of them.
    Serve {
        /// The one service this process runs; without it, everything runs here.
        #[arg(value_enum)]
        service: Option<ServiceName>,
    },
    /// Manage the event bus's Kafka topics.
    #[command(subcommand)]
    Topics(TopicsCommand),
    /// Apply every service's database migrations, then exit.
    Migrate,
    /// Inspect and act on dead-lettered events.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Load a demo catalog with stock (idempotent: existing demo SKUs are skipped).
    Seed {
        /// How many products.
        #[arg(long, default_value_t = 1000)]
        products: u32,
        /// Same seed, same catalog.
        #[arg(long, default_value_t = 42)]
        rng_seed: u64,
    },
    /// Drive a running CommerceX with concurrent customers and report throughput and latency.
    Bench {
        /// Base URL of the running platform.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Concurrent customers.
        #[arg(long, default_value_t = 8)]
        customers: usize,
        /// Orders each customer places, one after the other.
        #[arg(long, default_value_t = 10)]
        orders_per_customer: usize,
        /// Products created (and stocked) for the run.
        #[arg(long, default_value_t = 20)]
        products: usize,
        /// The platform's processes (PostgreSQL's and the broker's too, if they count): the
        /// CPU time they and their children spend while measuring is reported per confirmed
        /// order. Without it, CPU is not measured.
        #[arg(long, value_delimiter = ',')]
        server_pids: Vec<i32>,
        /// Every `/metrics` URL of the platform (one per process); their
        /// `commercex_db_transactions_total` gives write transactions per order. Default:
        /// URL/metrics.
        #[arg(long, value_delimiter = ',')]
        metrics_url: Vec<String>,
    },
    /// Measure the Kafka event bus alone (`--bus kafka`): for each partition count, a fresh
    /// topic, events published, then consumed by a group with a member per partition.
    #[cfg(feature = "kafka")]
    BenchEvents {
        /// Events per partition count.
        #[arg(long, default_value_t = 20_000)]
        events: usize,
        /// Partition counts, one run each.
        #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
        partitions: Vec<i32>,
    },
    /// Manage administrators.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Exit 0 if URL answers 2xx within 3 s, else 1: a health check for images without curl.
    Probe {
        #[arg(default_value = "http://127.0.0.1:9464/healthz")]
        url: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List the dead letters that wait for an operator.
    List,
    /// Show one dead letter with its event.
    Show { id: String },
    /// Hand the event back to its consumer; the running platform handles it.
    Replay { id: String },
    /// Give up on the event for good (the entry is kept as a record).
    Discard { id: String },
}

#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// Create missing topics (events and dead letters) and report under-replicated ones.
    Ensure,
}

/// What a `serve` process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum ServiceName {
    Users,
    Catalog,
    Inventory,
    Orders,
    Payments,
    /// Webhook deliveries to integrators' endpoints.
    Webhooks,
    Gateway,
    /// The storefront, calling the gateway (`--web-api-url`).
    Web,
}

impl ServiceName {
    pub fn name(self) -> &'static str {
        match self {
            Self::Users => "users",
            Self::Catalog => "catalog",
            Self::Inventory => "inventory",
            Self::Orders => "orders",
            Self::Payments => "payments",
            Self::Webhooks => "webhooks",
            Self::Gateway => "gateway",
            Self::Web => "web",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BusKind {
    /// Tables in the database (the `bus` schema): nothing else to run.
    Db,
    /// A Kafka cluster (`--kafka-brokers`).
    Kafka,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an administrator, or make an existing account one.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "Administrator")]
        name: String,
        /// File holding the password (default: read one line from standard input).
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// Make an existing account that is not an administrator one (its sessions end).
        /// Without it such an account is refused: someone may have registered the address
        /// first.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SqliteSynchronous {
    Normal,
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Profile {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Args)]
pub struct Options {
    /// TOML file with default values for these options (keys are the long option names).
    #[arg(long, global = true, env = "COMMERCEX_CONFIG")]
    pub config: Option<PathBuf>,

    /// `production` refuses development defaults (generated keys, plaintext on a public address).
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_PROFILE",
        value_enum,
        default_value = "development"
    )]
    pub profile: Profile,

    /// How long shutdown waits for in-flight work.
    #[arg(long, global = true, env = "COMMERCEX_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    #[command(flatten)]
    pub storage: StorageOptions,

    #[command(flatten)]
    pub events: BusOptions,

    #[command(flatten)]
    pub redis: RedisOptions,

    #[command(flatten)]
    pub identity: IdentityOptions,

    #[command(flatten)]
    pub commerce: CommerceOptions,

    #[command(flatten)]
    pub webhooks: WebhookOptions,

    #[command(flatten)]
    pub http: HttpOptions,

    #[command(flatten)]
    pub gateway: GatewayOptions,

    #[command(flatten)]
    pub web: WebOptions,

    #[command(flatten)]
    pub tls: TlsOptions,

    #[command(flatten)]
    pub telemetry: TelemetryOptions,

    #[command(flatten)]
    pub vault: VaultOptions,
}

/// Where each service keeps its data.
#[derive(Debug, Args)]
#[command(next_help_heading = "Storage")]
pub struct StorageOptions {
    /// Directory for the embedded SQLite databases (and the development signing key).
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_DATA_DIR",
        default_value = "./data"
    )]
    pub data_dir: PathBuf,

    /// PostgreSQL URL (postgres://...). Each service uses its own schema. Default: SQLite in --data-dir.
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_DATABASE_URL",
        hide_env_values = true,
        value_parser = secret
    )]
    pub database_url: Option<SecretString>,

    /// File holding the PostgreSQL URL (it may contain a password).
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_DATABASE_URL_FILE",
        conflicts_with = "database_url"
    )]
    pub database_url_file: Option<PathBuf>,

    /// How SQLite keeps commits: `full` syncs the log at every commit (an acknowledged order
    /// survives power loss), `normal` only at checkpoints (it survives a crash of the
    /// process). Default: `full` in the production profile, `normal` in development.
    #[arg(long, global = true, env = "COMMERCEX_SQLITE_SYNCHRONOUS", value_enum)]
    pub sqlite_synchronous: Option<SqliteSynchronous>,

    /// Connections per service pool.
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_DB_MAX_CONNECTIONS",
        default_value_t = 10
    )]
    pub db_max_connections: u32,

    /// PostgreSQL statement timeout, e.g. `15s`.
    #[arg(long, global = true, env = "COMMERCEX_DB_STATEMENT_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub db_statement_timeout: Duration,
}

/// How events travel between the services.
#[derive(Debug, Args)]
#[command(next_help_heading = "Event bus")]
pub struct BusOptions {
    /// Where events travel: `db` (tables in the database) or `kafka`.
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_BUS",
        value_enum,
        default_value = "db"
    )]
    pub bus: BusKind,

    /// Kafka bootstrap servers, comma-separated `host:port`.
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_KAFKA_BROKERS",
        value_delimiter = ','
    )]
    pub kafka_brokers: Vec<String>,

    /// Prepended to every topic name, so several platforms can share one cluster.
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_KAFKA_TOPIC_PREFIX",
        default_value = ""
    )]
    pub kafka_topic_prefix: String,

    /// Extra librdkafka client properties, comma-separated `key=value` (e.g. security.protocol=ssl).
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_KAFKA_OPTIONS",
        value_delimiter = ','
    )]
    pub kafka_options: Vec<String>,

    /// librdkafka properties for the producer only, comma-separated `key=value`
    /// (e.g. linger.ms=5).
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_KAFKA_PRODUCER_OPTIONS",
        value_delimiter = ','
    )]
    pub kafka_producer_options: Vec<String>,

    /// Partitions of each event topic.
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_KAFKA_PARTITIONS",
        default_value_t = 6
    )]
    pub kafka_partitions: i32,

    /// Replication factor of each topic; default 3 in production, 1 in development.
    #[arg(long, global = true, env = "COMMERCEX_KAFKA_REPLICATION_FACTOR")]
    pub kafka_replication_factor: Option<i32>,

    /// `min.insync.replicas` of each topic; default 2 in production, 1 in development.
    #[arg(long, global = true, env = "COMMERCEX_KAFKA_MIN_INSYNC_REPLICAS")]
    pub kafka_min_insync_replicas: Option<i32>,

    /// Create missing topics at start-up and each consumer group's dead-letter topic when it
    /// joins. `false` when topics are managed outside CommerceX (Strimzi `KafkaTopic`
    /// resources) and its Kafka users may not create topics.
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_KAFKA_CREATE_TOPICS",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub kafka_create_topics: bool,

    /// How long each consumer group remembers the events it handled (its inbox), so that one
    /// delivered again is known as a duplicate, e.g. `14days`; older rows are pruned. On
    /// Kafka it must outlast the topics' `retention.ms` plus `segment.ms` (7 days each by
    /// default): a group whose offsets expired reads again from the oldest record kept.
    #[arg(long, global = true, env = "COMMERCEX_INBOX_RETENTION", default_value = "14days", value_parser = retention)]
    pub inbox_retention: Duration,

    /// With the in-database bus (`--bus db`), how long an event stays in the log (its
    /// producer's outbox) after it was written, e.g. `7days`; it stays longer until every
    /// consumer group has read it. A group that reads nothing for this long is taken to be
    /// gone, as Kafka forgets a group's offsets.
    #[arg(long, global = true, env = "COMMERCEX_EVENT_RETENTION", default_value = "7days", value_parser = retention)]
    pub event_retention: Duration,
}

/// At least an hour: a shorter inbox could forget an event that a relay's restart or a
/// consumer group's rebalance delivers again, and a shorter log could forget a group that
/// is only restarting.
fn retention(text: &str) -> Result<Duration, String> {
    let retention = humantime::parse_duration(text).map_err(|error| error.to_string())?;
    if retention < Duration::from_secs(60 * 60) {
        return Err(format!(
            "{text} is too short: events are kept for at least 1h"
        ));
    }
    Ok(retention)
}

/// State the instances of a service share: quotas, login throttling, the product cache.
#[derive(Debug, Args)]
#[command(next_help_heading = "Redis")]
pub struct RedisOptions {
    /// Redis URL: shared rate limits, login throttling and the product cache.
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_REDIS_URL",
        hide_env_values = true,
        value_parser = secret
    )]
    pub redis_url: Option<SecretString>,

    /// File holding the Redis URL (it may contain a password).
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_REDIS_URL_FILE",
        conflicts_with = "redis_url"
    )]
    pub redis_url_file: Option<PathBuf>,

    /// CA certificate (PEM) a `rediss://` server's certificate is checked against (default:
    /// the system's CAs).
    #[arg(long, global = true, env = "COMMERCEX_REDIS_CA_FILE")]
    pub redis_ca_file: Option<PathBuf>,

    /// Starts every Redis key, so several platforms can share one Redis.
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_REDIS_KEY_PREFIX",
        default_value = "commercex:"
    )]
    pub redis_key_prefix: String,

    /// How long a product stays in the read cache (Redis, or memory when embedded) at most;
    /// changes drop it sooner.
    #[arg(long, global = true, env = "COMMERCEX_PRODUCT_CACHE_TTL", default_value = "60s", value_parser = humantime::parse_duration)]
    pub product_cache_ttl: Duration,
}

/// Access and refresh tokens, their keys, login throttling and the first administrator.
#[derive(Debug, Args)]
#[command(next_help_heading = "Identity and sign-in")]
pub struct IdentityOptions {
    /// Ed25519 private key (PKCS#8 PEM) that signs access tokens. Default in development: a
    /// key generated once and kept in --data-dir.
    #[arg(long, global = true, env = "COMMERCEX_JWT_SIGNING_KEY_FILE")]
    pub jwt_signing_key_file: Option<PathBuf>,

    /// Retired signing keys (PEM files, comma-separated) still published in the JWKS during rotation.
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_JWT_RETIRED_KEY_FILES",
        value_delimiter = ','
    )]
    pub jwt_retired_key_files: Vec<PathBuf>,

    /// `iss` of access tokens.
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_JWT_ISSUER",
        default_value = "commercex"
    )]
    pub jwt_issuer: String,

    /// `aud` of access tokens.
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_JWT_AUDIENCE",
        default_value = "commercex-api"
    )]
    pub jwt_audience: String,

    /// How long an access token is valid: also how long one outlives its revoked session.
    #[arg(long, global = true, env = "COMMERCEX_ACCESS_TOKEN_TTL", default_value = "15m", value_parser = humantime::parse_duration)]
    pub access_token_ttl: Duration,

    /// How long a refresh token is valid when it is not used (each use rotates it).
    #[arg(long, global = true, env = "COMMERCEX_REFRESH_TOKEN_TTL", default_value = "30days", value_parser = humantime::parse_duration)]
    pub refresh_token_ttl: Duration,

    /// How long a session lasts at most from its login, however often its refresh token is
    /// rotated; then the user signs in again.
    #[arg(long, global = true, env = "COMMERCEX_SESSION_MAX_AGE", default_value = "90days", value_parser = humantime::parse_duration)]
    pub session_max_age: Duration,

    /// Failed logins for one account from one client address before each further attempt
    /// from there must wait: 1 s, then twice as long each time, up to --login-failure-window.
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_LOGIN_MAX_FAILURES",
        default_value_t = 5
    )]
    pub login_max_failures: u32,

    /// Failed logins for one account from all addresses together before each further attempt
    /// must wait: growing delays that end at one minute, so guesses from elsewhere slow the
    /// owner down but never lock them out.
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_LOGIN_MAX_FAILURES_PER_ACCOUNT",
        default_value_t = 20
    )]
    pub login_max_failures_per_account: u32,

    /// Failed logins from one client address, whatever the account, before each further
    /// attempt from it must wait (growing delays up to --login-failure-window).
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_LOGIN_MAX_FAILURES_PER_CLIENT",
        default_value_t = 20
    )]
    pub login_max_failures_per_client: u32,

    /// How long failed logins and sign-ups are remembered after the last one.
    #[arg(long, global = true, env = "COMMERCEX_LOGIN_FAILURE_WINDOW", default_value = "15m", value_parser = humantime::parse_duration)]
    pub login_failure_window: Duration,

    /// Sign-ups from one client address (within --login-failure-window) before each further
    /// one must wait (0: unlimited); default 10 in production, unlimited in development.
    #[arg(long, global = true, env = "COMMERCEX_SIGNUPS_PER_CLIENT")]
    pub signups_per_client: Option<u32>,

    /// Email of the first administrator, created (or promoted) at start-up.
    #[arg(long, global = true, env = "COMMERCEX_ADMIN_EMAIL")]
    pub admin_email: Option<String>,

    /// File holding that administrator's password.
    #[arg(long, global = true, env = "COMMERCEX_ADMIN_PASSWORD_FILE")]
    pub admin_password_file: Option<PathBuf>,

    /// That administrator's password, from the environment (development only; prefer the file).
    #[arg(
        long = "admin-password",
        global = true,
        env = "COMMERCEX_ADMIN_PASSWORD",
        hide_env_values = true,
        hide = true,
        value_parser = secret
    )]
    pub admin_password: Option<SecretString>,
}

/// How the catalog searches and how the checkout saga runs.
#[derive(Debug, Args)]
#[command(next_help_heading = "Catalog and checkout")]
pub struct CommerceOptions {
    /// Answer catalog listings and searches from an index in memory (up to 50,000 products;
    /// on PostgreSQL each catalog instance hears every change through LISTEN/NOTIFY; on
    /// SQLite in the embedded runtime); `false` asks the database (FTS5 or pg_trgm).
    #[arg(long, global = true, env = "COMMERCEX_SEARCH_IN_MEMORY", default_value_t = true, action = clap::ArgAction::Set)]
    pub search_in_memory: bool,

    /// The keys that seal customers' payment tokens inside events (AES-256-GCM; 32 bytes in
    /// base64, one per line: the first seals, all open, so a rotation puts the new key first).
    /// Orders and payments need the same file. Default in development: a key generated once
    /// and kept in --data-dir.
    #[arg(long, global = true, env = "COMMERCEX_PAYMENT_TOKEN_KEYS_FILE")]
    pub payment_token_keys_file: Option<PathBuf>,

    /// Let the production profile run the sandbox payment provider (it charges nothing: a
    /// demonstration, or a staging copy). Without it, production refuses to take payments.
    #[arg(long, global = true, env = "COMMERCEX_ALLOW_SANDBOX_PAYMENTS")]
    pub allow_sandbox_payments: bool,

    /// How long stock is held for an order awaiting payment, e.g. `2s`, `15m`.
    #[arg(long, global = true, env = "COMMERCEX_RESERVATION_TTL", default_value = "15m", value_parser = humantime::parse_duration)]
    pub reservation_ttl: Duration,

    /// How long an order may stay pending before it is cancelled (`timed_out`), whatever
    /// holds it up: a dead letter, a service down. Default: the reservation TTL plus 5 minutes.
    #[arg(long, global = true, env = "COMMERCEX_SAGA_DEADLINE", value_parser = humantime::parse_duration)]
    pub saga_deadline: Option<Duration>,
}

/// The listener and what every request is held to.
#[derive(Debug, Args)]
#[command(next_help_heading = "HTTP")]
pub struct HttpOptions {
    /// Address the gateway listens on.
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,

    /// Serve plain HTTP on a non-loopback address in production (TLS terminated in front).
    #[arg(long, global = true, env = "COMMERCEX_ALLOW_PLAINTEXT")]
    pub allow_plaintext: bool,

    /// Open connections a listener keeps at most; more are closed when accepted.
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_MAX_CONNECTIONS",
        default_value_t = 4096
    )]
    pub max_connections: usize,

    /// How long a client may take to send a request's headers, and how long an idle
    /// connection stays open.
    #[arg(long, global = true, env = "COMMERCEX_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,

    /// Largest accepted request body, in bytes.
    #[arg(long, global = true, env = "COMMERCEX_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Longest a request may take before it is answered 503.
    #[arg(long, global = true, env = "COMMERCEX_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// Proxies in front of CommerceX whose `X-Forwarded-For` is believed (CIDRs,
    /// comma-separated, e.g. the ingress controller's network). The client is the right-most
    /// address in the header that is not one of them; without any, the TCP peer is the client.
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// How webhook deliveries are sent.
#[derive(Debug, Args)]
#[command(next_help_heading = "Webhooks")]
pub struct WebhookOptions {
    /// Networks webhook endpoints may be in although private (production refuses private,
    /// loopback and link-local destinations otherwise), comma-separated CIDRs.
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_WEBHOOK_ALLOW_NETWORKS",
        value_delimiter = ','
    )]
    pub webhook_allow_networks: Vec<ipnet::IpNet>,

    /// The keys that seal endpoints' signing secrets in the webhooks database (AES-256-GCM;
    /// 32 bytes in base64, one per line: the first seals, all open, so a rotation puts the
    /// new key first; secrets under an older key are sealed again at start-up, after which
    /// it can go). Default in development: a key generated once and kept in --data-dir.
    #[arg(long, global = true, env = "COMMERCEX_WEBHOOK_SECRET_KEYS_FILE")]
    pub webhook_secret_keys_file: Option<PathBuf>,

    /// An endpoint that failed every try for this long is disabled (with the reason); what
    /// waits for it goes out once an operator enables it again.
    #[arg(long, global = true, env = "COMMERCEX_WEBHOOK_DISABLE_AFTER", default_value = "24h", value_parser = humantime::parse_duration)]
    pub webhook_disable_after: Duration,

    /// How long delivered deliveries (with their tries and messages) are kept for operators
    /// to look at and replay, e.g. `30days`. Waiting deliveries are kept until delivered.
    #[arg(long, global = true, env = "COMMERCEX_WEBHOOK_RETENTION", default_value = "30days", value_parser = humantime::parse_duration)]
    pub webhook_retention: Duration,

    /// The wait after a delivery's first failure; it doubles with each, up to
    /// --webhook-retry-max, with jitter.
    #[arg(long, global = true, env = "COMMERCEX_WEBHOOK_RETRY_FIRST", default_value = "5s", value_parser = humantime::parse_duration)]
    pub webhook_retry_first: Duration,

    /// The longest wait between two tries of a delivery (a `Retry-After` too).
    #[arg(long, global = true, env = "COMMERCEX_WEBHOOK_RETRY_MAX", default_value = "1h", value_parser = humantime::parse_duration)]
    pub webhook_retry_max: Duration,

    /// How long one try may take, from connecting to the end of the answer.
    #[arg(long, global = true, env = "COMMERCEX_WEBHOOK_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub webhook_timeout: Duration,
}

/// Where the services are, and the quotas at the edge.
#[derive(Debug, Args)]
#[command(next_help_heading = "Gateway (distributed runtime)")]
pub struct GatewayOptions {
    /// Base URLs of the identity service's instances, comma-separated.
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_USERS_URL",
        value_delimiter = ','
    )]
    pub users_url: Vec<String>,

    /// Base URLs of the catalog service's instances, comma-separated.
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_CATALOG_URL",
        value_delimiter = ','
    )]
    pub catalog_url: Vec<String>,

    /// Base URLs of the inventory service's instances, comma-separated.
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_INVENTORY_URL",
        value_delimiter = ','
    )]
    pub inventory_url: Vec<String>,

    /// Base URLs of the order service's instances, comma-separated.
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_ORDERS_URL",
        value_delimiter = ','
    )]
    pub orders_url: Vec<String>,

    /// Base URLs of the payment service's instances, comma-separated.
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_PAYMENTS_URL",
        value_delimiter = ','
    )]
    pub payments_url: Vec<String>,

    /// Base URLs of the webhooks service's instances, comma-separated.
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_WEBHOOKS_URL",
        value_delimiter = ','
    )]
    pub webhooks_url: Vec<String>,

    /// How long the gateway waits for a service before answering 504, e.g. `10s`.
    #[arg(long, global = true, env = "COMMERCEX_UPSTREAM_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub upstream_timeout: Duration,

    /// Per-service overrides of --upstream-timeout, comma-separated `service=duration`
    /// (e.g. `orders=20s,payments=30s`).
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_ROUTE_TIMEOUTS",
        value_delimiter = ','
    )]
    pub route_timeouts: Vec<String>,

    /// How often a service re-reads the identity service's JWKS (picks up rotated keys).
    #[arg(long, global = true, env = "COMMERCEX_JWKS_REFRESH", default_value = "5m", value_parser = humantime::parse_duration)]
    pub jwks_refresh: Duration,

    /// Requests per client address per minute at the gateway (0: unlimited); default 1200 in
    /// production, unlimited in development.
    #[arg(long, global = true, env = "COMMERCEX_RATE_LIMIT_PER_CLIENT")]
    pub rate_limit_per_client: Option<u64>,

    /// Requests per signed-in user per minute at the gateway (0: unlimited); default 600 in
    /// production, unlimited in development.
    #[arg(long, global = true, env = "COMMERCEX_RATE_LIMIT_PER_USER")]
    pub rate_limit_per_user: Option<u64>,
}

/// HTTPS on the listener, and mutual TLS between the services.
#[derive(Debug, Args)]
#[command(next_help_heading = "TLS")]
pub struct TlsOptions {
    /// PEM certificate chain this process serves HTTPS with (HTTP/1.1 and HTTP/2).
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_TLS_CERT_FILE",
        requires = "tls_key_file"
    )]
    pub tls_cert_file: Option<PathBuf>,

    /// PEM private key of --tls-cert-file.
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_TLS_KEY_FILE",
        requires = "tls_cert_file"
    )]
    pub tls_key_file: Option<PathBuf>,

    /// Require clients to present a certificate signed by this CA (mutual TLS between
    /// services); needs --tls-cert-file.
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_TLS_CLIENT_CA_FILE",
        requires = "tls_cert_file"
    )]
    pub tls_client_ca_file: Option<PathBuf>,

    /// The CA that signs the services' certificates: the only one trusted on https service URLs.
    #[arg(long, global = true, env = "COMMERCEX_INTERNAL_CA_FILE")]
    pub internal_ca_file: Option<PathBuf>,

    /// Client certificate presented to services that require mutual TLS (default: --tls-cert-file).
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_INTERNAL_CERT_FILE",
        requires = "internal_key_file"
    )]
    pub internal_cert_file: Option<PathBuf>,

    /// Private key of --internal-cert-file.
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_INTERNAL_KEY_FILE",
        requires = "internal_cert_file"
    )]
    pub internal_key_file: Option<PathBuf>,
}

/// Metrics and logs (traces: the OTEL_* variables).
#[derive(Debug, Args)]
#[command(next_help_heading = "Telemetry")]
pub struct TelemetryOptions {
    /// Serve Prometheus metrics at http://ADDR/metrics, and /healthz and /readyz for probes
    /// (a separate plain-HTTP listener, not public).
    #[arg(long, global = true, env = "COMMERCEX_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Log format; default: pretty in development, json in production.
    #[arg(long, global = true, env = "COMMERCEX_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
}

/// How a Vault login is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VaultAuth {
    /// A token from --vault-token-file (Vault Agent, a CI job) or, in development,
    /// COMMERCEX_VAULT_TOKEN.
    Token,
    /// The pod's service account token, exchanged for a Vault token under --vault-role.
    Kubernetes,
}

/// The storefront: served with everything else by `serve`, alone by `serve web`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Storefront")]
pub struct WebOptions {
    /// File with the secret (32 bytes or more, e.g. `openssl rand -base64 48`) the session
    /// cookie is encrypted under; the same for every web instance. Default in development: a
    /// secret generated once and kept in --data-dir.
    #[arg(long, global = true, env = "COMMERCEX_WEB_SESSION_SECRET_FILE")]
    pub web_session_secret_file: Option<PathBuf>,

    /// The API the storefront calls when it runs alone (`serve web`): the gateway. It must
    /// list the web instances in --trusted-proxies, so quotas count each visitor.
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_WEB_API_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub web_api_url: String,
}

/// Secrets straight from Vault's KV v2 API (or OpenBao's), for whatever the command line,
/// the environment and the `*_FILE` settings leave unset.
#[derive(Debug, Args)]
#[command(next_help_heading = "Secrets from Vault")]
pub struct VaultOptions {
    /// Vault's address, e.g. `https://vault.vault.svc:8200`; unset, Vault is not used.
    #[arg(long, global = true, env = "COMMERCEX_VAULT_ADDR")]
    pub vault_addr: Option<String>,

    #[arg(
        long,
        global = true,
        env = "COMMERCEX_VAULT_AUTH",
        value_enum,
        default_value = "token"
    )]
    pub vault_auth: VaultAuth,

    /// File holding the Vault token (token auth).
    #[arg(long, global = true, env = "COMMERCEX_VAULT_TOKEN_FILE")]
    pub vault_token_file: Option<PathBuf>,

    /// The Vault token, from the environment (development only; prefer the file).
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_VAULT_TOKEN",
        hide_env_values = true,
        hide = true,
        value_parser = secret,
        conflicts_with = "vault_token_file"
    )]
    pub vault_token: Option<SecretString>,

    /// Vault role to log in as (Kubernetes auth).
    #[arg(long, global = true, env = "COMMERCEX_VAULT_ROLE")]
    pub vault_role: Option<String>,

    /// Where Vault's Kubernetes auth method is mounted.
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_VAULT_AUTH_MOUNT",
        default_value = "kubernetes"
    )]
    pub vault_auth_mount: String,

    /// The service account token presented to Vault (Kubernetes auth).
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_VAULT_SERVICE_ACCOUNT_TOKEN_FILE",
        default_value = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    )]
    pub vault_service_account_token_file: PathBuf,

    /// Mount of the KV v2 secrets engine.
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_VAULT_KV_MOUNT",
        default_value = "secret"
    )]
    pub vault_kv_mount: String,

    /// Secret paths read in order, later ones winning a field both have (e.g.
    /// `commercex/shared,commercex/orders`).
    #[arg(
        long,
        global = true,
        env = "COMMERCEX_VAULT_SECRET_PATHS",
        value_delimiter = ',',
        default_value = "commercex"
    )]
    pub vault_secret_paths: Vec<String>,

    /// CA certificate (PEM) Vault's TLS certificate is checked against.
    #[arg(long, global = true, env = "COMMERCEX_VAULT_CA_FILE")]
    pub vault_ca_file: Option<PathBuf>,

    /// Vault Enterprise / OpenBao namespace.
    #[arg(long, global = true, env = "COMMERCEX_VAULT_NAMESPACE")]
    pub vault_namespace: Option<String>,

    /// How often the secrets are read again to notice a change in Vault.
    #[arg(long, global = true, env = "COMMERCEX_VAULT_REFRESH", default_value = "5m", value_parser = humantime::parse_duration)]
    pub vault_refresh: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retention_under_an_hour_is_refused() {
        assert_eq!(
            retention("14days"),
            Ok(Duration::from_secs(14 * 24 * 60 * 60))
        );
        assert_eq!(retention("1h"), Ok(Duration::from_secs(60 * 60)));
        let refused = retention("59m").expect_err("too short");
        assert!(refused.contains("at least 1h"), "{refused}");
        assert!(retention("soon").is_err());
    }
}
