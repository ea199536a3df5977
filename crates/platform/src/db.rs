//! Database access shared by every service: one query set over sqlx's `Any` driver, running on
//! SQLite (a file per service in the data directory) or PostgreSQL (a schema per service).
//!
//! The `Any` driver carries only bool/int/float/text/blob, so ids are TEXT (UUIDv7 strings),
//! times are i64 milliseconds (see `crate::time`) and money is i64 minor units.
//!
//! On SQLite, `Any` runs each statement on the calling task's thread ([`inline_sqlite`]);
//! migrations and checkpoints, which write and sync many pages, run on sqlx's own SQLite
//! connection, on a thread of its own.

pub mod inline_sqlite;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use tracing::Instrument;
// Schema names are checked to be `[a-z_]+` before they reach any SQL text.
use sqlx::{
    Any, AnyPool, AssertSqlSafe, ConnectOptions as _, Connection as _, Executor, Transaction,
};

/// Where the services keep their data.
#[derive(Debug, Clone)]
pub enum Storage {
    /// Embedded: one SQLite file per service in this directory.
    Sqlite {
        dir: PathBuf,
        synchronous: Synchronous,
    },
    /// PostgreSQL: one schema per service in this database.
    Postgres { url: SecretString },
}

/// How hard SQLite works to keep a commit (its `synchronous` setting, in WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// The write-ahead log is synced at checkpoints: a commit survives a crash of the
    /// process, but the last ones before a power loss may be lost.
    #[default]
    Normal,
    /// The log is synced at every commit: an acknowledged order survives power loss, as
    /// PostgreSQL's defaults promise.
    Full,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Self::Normal => "NORMAL",
            Self::Full => "FULL",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// PostgreSQL `statement_timeout`; SQLite has none.
    pub statement_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(15),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot create data directory {dir}: {source}")]
    DataDir { dir: String, source: std::io::Error },
    #[error(
        "sqlx's database drivers were installed elsewhere, without this platform's SQLite driver"
    )]
    Drivers,
    #[error("invalid schema name {0:?}")]
    SchemaName(String),
    #[error("cannot connect to the {schema} database: {source}")]
    Connect { schema: String, source: sqlx::Error },
    #[error("migrating the {schema} database failed: {source}")]
    Migrate {
        schema: String,
        source: sqlx::migrate::MigrateError,
    },
}

/// The same migrations written for each backend's SQL dialect.
pub struct Migrations {
    pub sqlite: Migrator,
    pub postgres: Migrator,
}

/// A transaction with its trace span. It is a `Transaction` for everything but committing,
/// which ends the span too and runs what waits for the commit (`on_commit`).
///
/// Every write transaction begun is counted (`commercex_db_transactions_total{db_namespace}`):
/// transactions per order is a design figure of the event path, read by `commercex bench`.
pub struct Tx {
    inner: Transaction<'static, Any>,
    span: tracing::Span,
    on_commit: Vec<Box<dyn FnOnce() + Send>>,
}

impl Tx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        let committed = self.inner.commit().instrument(self.span.clone()).await;
        match committed {
            Ok(()) => self.on_commit.into_iter().for_each(|run| run()),
            Err(_) => {
                self.span.record("otel.status_code", "ERROR");
            }
        }
        committed
    }

    /// Runs `run` once this transaction has committed (never if it rolls back): how what it
    /// wrote is announced, e.g. the outbox waking its readers.
    pub fn on_commit(&mut self, run: impl FnOnce() + Send + 'static) {
        self.on_commit.push(Box::new(run));
    }

    /// The transaction's span: work done inside the transaction runs in it, so the events it
    /// writes are its children in traces.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Rolls back now rather than when dropped.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.inner.rollback().instrument(self.span).await
    }
}

impl std::ops::Deref for Tx {
    type Target = Transaction<'static, Any>;

    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

/// A service's connection pool, and which backend is behind it.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    /// SQLite only: the single connection write transactions queue for.
    writer: Option<AnyPool>,
    backend: Backend,
    schema: String,
    /// SQLite only: the file, which migrations open with sqlx's own driver.
    file: Option<PathBuf>,
    /// SQLite only: stops the checkpoints when the last handle on the database goes.
    _checkpointer: Option<Arc<Checkpointer>>,
    /// Write transactions begun through this pool (what `commercex_db_transactions_total`
    /// counts for the whole process).
    transactions: Arc<AtomicU64>,
}

#[derive(Debug)]
struct Checkpointer(tokio::task::AbortHandle);

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Storage {
    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite { .. } => Backend::Sqlite,
            Self::Postgres { .. } => Backend::Postgres,
        }
    }

    /// Opens the database (SQLite file or PostgreSQL schema) named `schema`, creating it if it
    /// does not exist yet.
    pub async fn open(&self, schema: &str, settings: PoolSettings) -> Result<Db, DbError> {
        install_drivers()?;
        if schema.is_empty() || !schema.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            return Err(DbError::SchemaName(schema.to_owned()));
        }
        let connect_error = |source| DbError::Connect {
            schema: schema.to_owned(),
            source,
        };
        let options = AnyPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout);
        let mut checkpointer = None;
        let mut sqlite_file = None;
        let (pool, writer) = match self {
            Self::Sqlite { dir, synchronous } => {
                let file = dir.join(format!("{schema}.db"));
                create_private_dir(dir)
                    .and_then(|()| create_private_file(&file))
                    .map_err(|source| DbError::DataDir {
                        dir: dir.display().to_string(),
                        source,
                    })?;
                let url = format!(
                    "sqlite://{}?mode=rwc&synchronous={}",
                    file.display(),
                    synchronous.pragma()
                );
                let connect: AnyConnectOptions = url.parse().map_err(connect_error)?;
                let setup = sqlite_setup();
                // A file does not drop connections: pinging one before every use would be
                // a round trip to its thread for nothing.
                let pool = options
                    .test_before_acquire(false)
                    .after_connect(setup.clone())
                    .connect_with(connect.clone())
                    .await
                    .map_err(connect_error)?;
                // SQLite has one writer at a time, and writers that find the lock taken poll
                // it with sleeps of up to 100 ms: under load most of the time goes to sleeping.
                // Write transactions queue for one dedicated connection instead, in order and
                // without polling; reads keep the other pool.
                let writer = AnyPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(settings.acquire_timeout.max(Duration::from_secs(30)))
                    .test_before_acquire(false)
                    .after_connect(setup)
                    .connect_with(connect)
                    .await
                    .map_err(connect_error)?;
                let checkpoints = tokio::spawn(checkpoint_regularly(
                    sqlite_own_connection(&file).await.map_err(connect_error)?,
                    pool.clone(),
                ));
                checkpointer = Some(Arc::new(Checkpointer(checkpoints.abort_handle())));
                sqlite_file = Some(file);
                (pool, Some(writer))
            }
            Self::Postgres { url } => {
                let connect: AnyConnectOptions =
                    url.expose_secret().parse().map_err(connect_error)?;
                let mut admin = sqlx::AnyConnection::connect_with(&connect)
                    .await
                    .map_err(connect_error)?;
                // Concurrent start-ups race on CREATE SCHEMA IF NOT EXISTS; the loser sees a
                // unique violation on the catalog, which means the schema now exists.
                if let Err(error) = admin
                    .execute(AssertSqlSafe(format!(
                        "CREATE SCHEMA IF NOT EXISTS {schema}"
                    )))
                    .await
                {
                    let exists = error
                        .as_database_error()
                        .is_some_and(|e| e.is_unique_violation());
                    if !exists {
                        return Err(connect_error(error));
                    }
                }
                let setup = format!(
                    "SET search_path TO {schema}; SET statement_timeout = {}",
                    settings.statement_timeout.as_millis()
                );
                let pool = options
                    // sqlx pings a connection as it goes back to the pool; pinging it again
                    // as it comes out, microseconds later, is a round trip to PostgreSQL per
                    // statement or transaction for nothing. Only a connection that has sat
                    // idle, which a restart or a failover may have cut, is tested.
                    .test_before_acquire(false)
                    .before_acquire(|conn, meta| {
                        Box::pin(async move {
                            if meta.idle_for > PING_IF_IDLE_FOR {
                                conn.ping().await?;
                            }
                            Ok(true)
                        })
                    })
                    .after_connect(move |conn, _| {
                        let setup = setup.clone();
                        Box::pin(async move {
                            conn.execute(AssertSqlSafe(setup)).await?;
                            Ok(())
                        })
                    })
                    .connect_with(connect)
                    .await
                    .map_err(connect_error)?;
                (pool, None)
            }
        };
        Ok(Db {
            pool,
            writer,
            backend: self.backend(),
            schema: schema.to_owned(),
            file: sqlite_file,
            _checkpointer: checkpointer,
            transactions: Arc::default(),
        })
    }
}

impl Db {
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// How a query taking rows to delete in batches ends: on PostgreSQL, rows another
    /// transaction holds are skipped rather than waited for, so replicas prune side by side
    /// without waiting for (or deadlocking with) each other. SQLite has one writer.
    pub fn skip_locked(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        }
    }

    /// Write transactions begun through this handle and its clones so far.
    pub fn write_transactions(&self) -> u64 {
        self.transactions.load(Ordering::Relaxed)
    }

    /// `db_client_connections_usage{db_namespace, state}` (idle, used) and
    /// `db_client_connections_max`, as OpenTelemetry's database metrics name them.
    pub fn record_pool_usage(&self) {
        let pools = std::iter::once(&self.pool).chain(self.writer.as_ref());
        let (mut idle, mut size, mut max) = (0u64, 0u64, 0u64);
        for pool in pools {
            idle += pool.num_idle() as u64;
            size += u64::from(pool.size());
            max += u64::from(pool.options().get_max_connections());
        }
        let namespace = self.schema.clone();
        metrics::gauge!("db_client_connections_usage", "db_namespace" => namespace.clone(), "state" => "idle")
            .set(idle as f64);
        metrics::gauge!("db_client_connections_usage", "db_namespace" => namespace.clone(), "state" => "used")
            .set(size.saturating_sub(idle) as f64);
        metrics::gauge!("db_client_connections_max", "db_namespace" => namespace).set(max as f64);
    }

    /// A span for one transaction on this database (OpenTelemetry database conventions).
    pub fn transaction_span(&self, operation: &'static str) -> tracing::Span {
        tracing::info_span!(
            "db.transaction",
            otel.name = %format!("{operation} {}", self.schema),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            db.system.name = match self.backend {
                Backend::Postgres => "postgresql",
                Backend::Sqlite => "sqlite",
            },
            db.namespace = %self.schema,
            db.operation.name = operation,
        )
    }

    /// Begins a write transaction named `operation` in traces: its span lasts from here to
    /// the commit (or the rollback when it is dropped). On SQLite it takes the write lock up
    /// front (`BEGIN IMMEDIATE`): a deferred transaction that reads and then writes can fail
    /// with "database is locked" instead of waiting its turn.
    pub async fn begin_as(&self, operation: &'static str) -> Result<Tx, sqlx::Error> {
        let span = self.transaction_span(operation);
        let begun = match &self.writer {
            Some(writer) => {
                writer
                    .begin_with("BEGIN IMMEDIATE")
                    .instrument(span.clone())
                    .await
            }
            None => self.pool.begin().instrument(span.clone()).await,
        };
        metrics::counter!("commercex_db_transactions_total", "db_namespace" => self.schema.clone())
            .increment(1);
        self.transactions.fetch_add(1, Ordering::Relaxed);
        match begun {
            Ok(inner) => Ok(Tx {
                inner,
                span,
                on_commit: Vec::new(),
            }),
            Err(error) => {
                span.record("otel.status_code", "ERROR");
                Err(error)
            }
        }
    }

    /// Runs `work` in a write transaction named `operation` and commits it if `work`
    /// succeeds (an error rolls it back): a use case that an event handler also runs inside
    /// the consumer's transaction (its `*_in` form), run on its own.
    pub async fn transact<T, E>(
        &self,
        operation: &'static str,
        work: impl AsyncFnOnce(&mut Tx) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<sqlx::Error>,
    {
        let mut tx = self.begin_as(operation).await?;
        let done = work(&mut tx).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Runs one statement in a write transaction of its own named `operation`: on SQLite it
    /// queues for the writer like every other write, rather than taking the lock from a
    /// reading connection and waiting for it.
    pub async fn write_one(
        &self,
        operation: &'static str,
        statement: sqlx::query::Query<'_, Any, sqlx::any::AnyArguments>,
    ) -> Result<sqlx::any::AnyQueryResult, sqlx::Error> {
        self.transact(operation, async |tx| statement.execute(&mut ***tx).await)
            .await
    }

    /// Deletes a batch of rows past their retention and what refers to them, in one write
    /// transaction named `operation`; returns how many rows `select` named. `select` names
    /// the rows by id, with `$1` bound to `cutoff`, and ends with its limit (and
    /// [`Db::skip_locked`]); each of `deletes` is run in order, children first, with `{ids}`
    /// standing for the ids' placeholders. Table and column names are our own constants.
    pub async fn delete_batch(
        &self,
        operation: &'static str,
        select: &str,
        cutoff: i64,
        deletes: &[&str],
    ) -> Result<u64, sqlx::Error> {
        self.transact(operation, async |tx| {
            let ids: Vec<String> = sqlx::query_scalar(AssertSqlSafe(select.to_owned()))
                .bind(cutoff)
                .fetch_all(&mut ***tx)
                .await?;
            if ids.is_empty() {
                return Ok(0);
            }
            let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
            let placeholders = placeholders.join(", ");
            for delete in deletes {
                let sql = delete.replace("{ids}", &placeholders);
                let mut delete = sqlx::query(AssertSqlSafe(sql));
                for id in &ids {
                    delete = delete.bind(id);
                }
                delete.execute(&mut ***tx).await?;
            }
            Ok(ids.len() as u64)
        })
        .await
    }

    /// Applies `migrations` for this backend. Several migration sets (a service's own and the
    /// event tables) share one schema, so each ignores the versions it does not know.
    pub async fn migrate(&self, migrations: &Migrations) -> Result<(), DbError> {
        let failed = |source| DbError::Migrate {
            schema: self.schema.clone(),
            source,
        };
        let migrator = match self.backend {
            Backend::Sqlite => &migrations.sqlite,
            Backend::Postgres => &migrations.postgres,
        };
        let mut migrator = Migrator {
            migrations: migrator.migrations.clone(),
            ..Migrator::DEFAULT
        };
        migrator.set_ignore_missing(true);
        match &self.file {
            Some(file) => {
                let mut own = sqlite_own_connection(file)
                    .await
                    .map_err(|error| failed(error.into()))?;
                let migrated = migrator.run(&mut own).await.map_err(failed);
                own.close().await.map_err(|error| failed(error.into()))?;
                migrated
            }
            None => migrator.run(&self.pool).await.map_err(failed),
        }
    }

    /// One page of `table`'s rows whose `owner_column` is `owner`, newest first, starting
    /// after the row with id `before` (see [`NewestFirst`]). Table and column names are our
    /// own constants.
    pub async fn newest_first(
        &self,
        table: &'static str,
        columns: &'static str,
        owner_column: &'static str,
        owner: &str,
        limit: u32,
        before: Option<uuid::Uuid>,
    ) -> Result<Vec<sqlx::any::AnyRow>, sqlx::Error> {
        NewestFirst::default()
            .and(&format!("{owner_column} = {{}}"), owner.to_owned())
            .fetch(self, table, columns, limit, before)
            .await
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        self.pool.execute("SELECT 1").await.map(|_| ())
    }

    pub async fn close(&self) {
        if let Some(writer) = &self.writer {
            writer.close().await;
        }
        self.pool.close().await;
    }
}

/// A page of a table's rows, newest first, that meet every condition added. Ids are UUIDv7, so
/// id order is creation order and the id alone is a stable keyset cursor; only the
/// conditions given are in the statement.
#[derive(Debug, Default)]
pub struct NewestFirst {
    conditions: Vec<String>,
    values: Vec<String>,
}

impl NewestFirst {
    /// Adds a condition on one text value; each `{}` in `condition` (our own SQL, never
    /// input) stands for the value's placeholder.
    pub fn and(&mut self, condition: &str, value: String) -> &mut Self {
        self.values.push(value);
        let placeholder = format!("${}", self.values.len());
        self.conditions.push(condition.replace("{}", &placeholder));
        self
    }

    /// Adds `column IN (...)` over `values` (none: no row matches).
    pub fn any_of(&mut self, column: &str, values: Vec<String>) -> &mut Self {
        if values.is_empty() {
            self.conditions.push("1 = 0".to_owned());
            return self;
        }
        let first = self.values.len() + 1;
        let placeholders = (first..first + values.len())
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(", ");
        self.values.extend(values);
        self.conditions
            .push(format!("{column} IN ({placeholders})"));
        self
    }

    /// At most `limit` rows of `table` (its `columns`), after the row with id `before`.
    pub async fn fetch(
        &mut self,
        db: &Db,
        table: &'static str,
        columns: &'static str,
        limit: u32,
        before: Option<uuid::Uuid>,
    ) -> Result<Vec<sqlx::any::AnyRow>, sqlx::Error> {
        if let Some(before) = before {
            self.and("id < {}", before.to_string());
        }
        let condition = match self.conditions.is_empty() {
            true => String::new(),
            false => format!("WHERE {}", self.conditions.join(" AND ")),
        };
        let sql = format!(
            "SELECT {columns} FROM {table} {condition} ORDER BY id DESC {}",
            literal_limit(i64::from(limit))
        );
        let mut query = sqlx::query::<Any>(AssertSqlSafe(sql));
        for value in &self.values {
            query = query.bind(value.clone());
        }
        query.fetch_all(&db.pool).await
    }
}

/// Creates `dir` and its missing parents readable by this user only (0700): orders,
/// customers and password hashes live there. A directory that exists keeps its mode.
pub fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Creates `file` empty with mode 0600 unless it exists. SQLite then opens it as it is, and
/// gives its write-ahead log and shared-memory files the same mode.
fn create_private_file(file: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
    {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}

/// `LIMIT n`, to be written into the SQL text rather than bound as a parameter. SQLite (3.51)
/// plans a bound LIMIT with the value it was prepared with, and so marks the statement to be
/// prepared again whenever that parameter is bound anew: on every execution. Re-parsing the
/// event log's and the outbox's polling queries was a fifth of the embedded runtime's
/// instructions per order (docs/BENCHMARKS.md). An integer cannot inject anything.
/// Runs `delete_batch` (a batch of at most `batch` rows deleted in a transaction of its own)
/// until a run deletes fewer; how many rows in all. Between batches, other writers take
/// their turn.
pub async fn drain<F, Fut, E>(batch: i64, mut delete_batch: F) -> Result<u64, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<u64, E>>,
{
    let mut deleted = 0;
    loop {
        let now = delete_batch().await?;
        deleted += now;
        if now < batch.unsigned_abs() {
            return Ok(deleted);
        }
    }
}

pub fn literal_limit(n: i64) -> String {
    format!("LIMIT {n}")
}

/// True when `error` says the database could not do the work now, rather than that the work
/// was wrong: unreachable, restarting, out of connections, busy or locked, out of disk. Such
/// a request may succeed if tried again (a 503 with Retry-After, and a consumer that waits
/// instead of spending its attempts).
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(database) => {
            let postgres = database
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some();
            database.code().is_some_and(|code| {
                if postgres {
                    // SQLSTATE: connection exceptions, an administrator's or a crash's
                    // shutdown, "cannot connect now", too many connections, disk full, a
                    // database not accepting connections, and a statement or lock wait cut
                    // short by its timeout (a table locked by someone else: SQLite's BUSY).
                    code.starts_with("08")
                        || matches!(
                            code.as_ref(),
                            "57P01"
                                | "57P02"
                                | "57P03"
                                | "53300"
                                | "53100"
                                | "55000"
                                | "57014"
                                | "55P03"
                        )
                } else {
                    // SQLite's result code, whose low byte is the primary one: BUSY, LOCKED,
                    // IOERR, FULL, CANTOPEN.
                    code.parse::<i64>()
                        .is_ok_and(|sqlite| matches!(sqlite & 0xff, 5 | 6 | 10 | 13 | 14))
                }
            })
        }
        _ => false,
    }
}

/// True when `error` is a unique-constraint violation, which callers turn into a 409.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}

type SetupFuture<'c> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), sqlx::Error>> + Send + 'c>>;

/// How often the write-ahead log is folded into the database file (see
/// `checkpoint_regularly`).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// A PostgreSQL connection idle longer than this is pinged before use (HikariCP's window is
/// 500 ms); one used more recently answered sqlx's ping as it went back to the pool.
pub const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Every SQLite connection: WAL lets readers run beside the writer. Checkpoints are not
/// left to whichever commit crosses the threshold (it would copy pages and sync the file
/// while requests queue behind it): `checkpoint_regularly` does them. `synchronous` and the
/// wait for another process's lock are in the URL, for the driver (`inline_sqlite`).
fn sqlite_setup()
-> impl Fn(&mut sqlx::AnyConnection, sqlx::pool::PoolConnectionMetadata) -> SetupFuture<'_>
+ Clone
+ Send
+ Sync
+ 'static {
    move |conn, _| {
        Box::pin(async move {
            conn.execute(
                "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; \
                 PRAGMA wal_autocheckpoint = 0;",
            )
            .await?;
            Ok(())
        })
    }
}

/// Installs sqlx's PostgreSQL driver and this platform's SQLite driver for `Any`, once per
/// process. Anything that connects through `Any` calls this first.
pub fn install_drivers() -> Result<(), DbError> {
    static INSTALLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let installed = INSTALLED.get_or_init(|| {
        sqlx::any::install_drivers(&[sqlx::postgres::any::DRIVER, inline_sqlite::DRIVER]).is_ok()
    });
    match installed {
        true => Ok(()),
        false => Err(DbError::Drivers),
    }
}

/// A connection of sqlx's own SQLite driver, which runs on a thread of its own: for the work
/// that writes and syncs many pages (migrations, checkpoints), which must not hold a runtime
/// worker.
async fn sqlite_own_connection(
    file: &std::path::Path,
) -> Result<sqlx::SqliteConnection, sqlx::Error> {
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(file)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
        .connect()
        .await
}

/// Checkpoints the write-ahead log every `CHECKPOINT_EVERY` on a connection of its own, until
/// the pool closes. A passive checkpoint waits for nobody: the writer goes on appending
/// meanwhile, and the log restarts from its beginning once a checkpoint has caught up.
async fn checkpoint_regularly(mut own: sqlx::SqliteConnection, pool: AnyPool) {
    let mut every = tokio::time::interval(CHECKPOINT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if pool.is_closed() {
            return;
        }
        if let Err(error) = own.execute("PRAGMA wal_checkpoint(PASSIVE)").await
            && !pool.is_closed()
        {
            tracing::warn!(%error, "checkpointing the SQLite write-ahead log failed");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    async fn synchronous_of(synchronous: Synchronous) -> (i64, i64, i64) {
        let dir = std::env::temp_dir().join(format!("cx-db-{}", uuid::Uuid::now_v7()));
        let storage = Storage::Sqlite {
            dir: dir.clone(),
            synchronous,
        };
        let db = storage.open("test", PoolSettings::default()).await.unwrap();
        let read: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(db.pool())
            .await
            .unwrap();
        let mut tx = db.begin_as("test").await.unwrap();
        let written: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut **tx)
            .await
            .unwrap();
        let checkpoints: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
            .fetch_one(&mut **tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        db.close().await;
        std::fs::remove_dir_all(dir).unwrap();
        (read, written, checkpoints)
    }

    #[tokio::test]
    async fn sqlite_syncs_as_configured_and_leaves_checkpoints_to_the_checkpointer() {
        // SQLite's numbers: NORMAL is 1, FULL is 2.
        assert_eq!(synchronous_of(Synchronous::Normal).await, (1, 1, 0));
        assert_eq!(synchronous_of(Synchronous::Full).await, (2, 2, 0));
    }

    #[tokio::test]
    async fn data_files_are_the_owners_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir()
            .join(format!("cx-db-{}", uuid::Uuid::now_v7()))
            .join("data");
        let storage = Storage::Sqlite {
            dir: dir.clone(),
            synchronous: Synchronous::Normal,
        };
        let db = storage.open("test", PoolSettings::default()).await.unwrap();
        db.begin_as("test").await.unwrap().commit().await.unwrap();
        let mode =
            |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        for file in ["test.db", "test.db-wal", "test.db-shm"] {
            assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
        }
        db.close().await;
        std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    }

    #[tokio::test]
    async fn a_locked_sqlite_database_is_unavailable_not_broken() {
        use sqlx::Connection;
        install_drivers().unwrap();
        let dir = std::env::temp_dir().join(format!("cx-db-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        // No wait for the lock: the first busy answer is the error.
        let url = format!(
            "sqlite://{}?mode=rwc&busy_timeout=0",
            dir.join("locked.db").display()
        );
        let mut holder = sqlx::AnyConnection::connect(&url).await.unwrap();
        holder.execute("CREATE TABLE t (v INTEGER)").await.unwrap();
        holder.execute("BEGIN EXCLUSIVE").await.unwrap();
        let mut other = sqlx::AnyConnection::connect(&url).await.unwrap();
        let busy = other.execute("INSERT INTO t VALUES (1)").await.unwrap_err();
        assert!(is_unavailable(&busy), "{busy:?}");
        holder.execute("COMMIT").await.unwrap();
        let wrong = other
            .execute("INSERT INTO nowhere VALUES (1)")
            .await
            .unwrap_err();
        assert!(!is_unavailable(&wrong), "{wrong:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn write_transactions_are_counted() {
        let dir = std::env::temp_dir().join(format!("cx-db-{}", uuid::Uuid::now_v7()));
        let storage = Storage::Sqlite {
            dir: dir.clone(),
            synchronous: Synchronous::Normal,
        };
        let db = storage.open("test", PoolSettings::default()).await.unwrap();
        let clone = db.clone();
        for _ in 0..3 {
            clone
                .begin_as("test")
                .await
                .unwrap()
                .commit()
                .await
                .unwrap();
        }
        assert_eq!(db.write_transactions(), 3);
        db.close().await;
        std::fs::remove_dir_all(dir).unwrap();
    }
}
