//! One SQLite connection whose statements run where they are awaited, and the transactions
//! and savepoints sqlx's `Any` asks of it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt};
use futures::stream::{self, BoxStream, StreamExt};
use rusqlite::types::ValueRef as SqliteValue;
use sqlx::{Connection, Either, Error, SqlStr, Transaction};
use sqlx_core::any::{
    AnyArguments, AnyColumn, AnyConnectionBackend, AnyQueryResult, AnyRow, AnyStatement,
    AnyTypeInfo, AnyTypeInfoKind, AnyValue, AnyValueKind,
};
use sqlx_core::ext::ustr::UStr;
use sqlx_core::transaction::{
    TransactionManager, begin_ansi_transaction_sql, commit_ansi_transaction_sql,
    rollback_ansi_transaction_sql,
};

use super::error::{from_rusqlite, is_busy};
use super::{InlineConnectOptions, InlineSqlite};

/// Prepared statements kept per connection. A service runs a few dozen distinct statements;
/// the rest (pages with a literal limit, say) come and go.
const STATEMENT_CACHE: usize = 256;

/// The pauses of a statement that waits for another connection's lock: short at first, as a
/// write transaction in this process lasts about a millisecond.
const FIRST_PAUSE: Duration = Duration::from_millis(1);
const LONGEST_PAUSE: Duration = Duration::from_millis(50);

pub struct InlineConnection {
    sqlite: rusqlite::Connection,
    /// 0 outside a transaction, 1 inside one, one more per savepoint inside it.
    depth: usize,
    busy_timeout: Duration,
    /// `synchronous` is FULL or EXTRA: a commit waits for the disk.
    commits_sync: bool,
    /// The columns of each cached statement, which every row it returns shares.
    shapes: HashMap<String, Arc<Shape>>,
}

impl std::fmt::Debug for InlineConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InlineConnection")
            .field("path", &self.sqlite.path())
            .field("depth", &self.depth)
            .finish_non_exhaustive()
    }
}

/// A statement's columns, as `AnyRow` carries them.
struct Shape {
    names: Arc<sqlx_core::HashMap<UStr, usize>>,
    columns: Vec<AnyColumn>,
}

impl Shape {
    fn of(statement: &rusqlite::Statement<'_>) -> Self {
        let columns: Vec<AnyColumn> = statement
            .columns()
            .iter()
            .enumerate()
            .map(|(ordinal, column)| AnyColumn {
                ordinal,
                name: UStr::new(column.name()),
                type_info: AnyTypeInfo {
                    kind: declared(column.decl_type()),
                },
            })
            .collect();
        let names = columns
            .iter()
            .map(|c| (c.name.clone(), c.ordinal))
            .collect();
        Self {
            names: Arc::new(names),
            columns,
        }
    }
}

/// The kind of a column from its declared type, by SQLite's affinity rules; an expression
/// (no declared type) or a NUMERIC column has none, and its values say what they are.
fn declared(declared: Option<&str>) -> AnyTypeInfoKind {
    let Some(declared) = declared.map(str::to_ascii_uppercase) else {
        return AnyTypeInfoKind::Null;
    };
    let has = |part: &str| declared.contains(part);
    if has("INT") {
        AnyTypeInfoKind::BigInt
    } else if has("CHAR") || has("CLOB") || has("TEXT") {
        AnyTypeInfoKind::Text
    } else if has("BLOB") || declared.is_empty() {
        AnyTypeInfoKind::Blob
    } else if has("REAL") || has("FLOA") || has("DOUB") {
        AnyTypeInfoKind::Double
    } else {
        AnyTypeInfoKind::Null
    }
}

/// How many rows a statement is run for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rows {
    All,
    First,
}

/// What a statement gave.
struct Ran {
    rows: Vec<AnyRow>,
    rows_affected: u64,
}

impl InlineConnection {
    pub(super) async fn open(options: &InlineConnectOptions) -> Result<Self, Error> {
        let sqlite = rusqlite::Connection::open_with_flags(&options.path, options.flags)
            .map_err(from_rusqlite)?;
        sqlite.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // SQLite's busy handler sleeps on the calling thread, a runtime worker here: a
        // statement that finds the database busy pauses asynchronously instead (`run`).
        sqlite.busy_timeout(Duration::ZERO).map_err(from_rusqlite)?;
        let mut conn = Self {
            sqlite,
            depth: 0,
            busy_timeout: options.busy_timeout,
            commits_sync: options.commits_sync(),
            shapes: HashMap::new(),
        };
        // Reads the schema, so it can find the database busy: another process's last
        // connection checkpoints and removes the log under an exclusive lock as it closes.
        if let Some(level) = options.synchronous {
            let sql = format!("PRAGMA synchronous = {level}");
            conn.run(&sql, false, &[], Rows::All).await?;
        }
        Ok(conn)
    }

    /// Runs `sql`. Outside a transaction, a statement that finds another connection holding
    /// the lock had no effect, and is tried again after a pause until the busy timeout; inside
    /// one, waiting could not help (the snapshot it read is stale), so it fails at once.
    async fn run(
        &mut self,
        sql: &str,
        persistent: bool,
        arguments: &[AnyValueKind],
        rows: Rows,
    ) -> Result<Ran, Error> {
        let mut busy_since = None;
        let mut pause = FIRST_PAUSE;
        let mut progress = Progress::default();
        loop {
            match self.run_once(sql, persistent, arguments, rows, false, &mut progress) {
                Err(error) if is_busy(&error) && self.depth == 0 && self.sqlite.is_autocommit() => {
                    let since = *busy_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= self.busy_timeout {
                        return Err(from_rusqlite(error));
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(LONGEST_PAUSE);
                }
                ran => return ran.map_err(from_rusqlite),
            }
        }
    }

    fn run_once(
        &mut self,
        sql: &str,
        persistent: bool,
        arguments: &[AnyValueKind],
        rows: Rows,
        commit: bool,
        progress: &mut Progress,
    ) -> rusqlite::Result<Ran> {
        let prepared = match persistent {
            true => self.sqlite.prepare_cached(sql).map(Prepared::Cached),
            false => self.sqlite.prepare(sql).map(Prepared::Once),
        };
        let mut statement = match prepared {
            Ok(statement) => statement,
            Err(rusqlite::Error::MultipleStatement) if arguments.is_empty() => {
                return batch(&self.sqlite, sql, progress);
            }
            Err(error) => return Err(error),
        };
        let shape = match (&statement, self.shapes.get(sql)) {
            (Prepared::Cached(_), Some(shape)) => shape.clone(),
            (Prepared::Cached(cached), None) => {
                // Bounded as the statement cache is: the few statements evicted are shaped
                // again when next run.
                if self.shapes.len() >= STATEMENT_CACHE {
                    self.shapes.clear();
                }
                let shape = Arc::new(Shape::of(cached));
                self.shapes.insert(sql.to_owned(), shape.clone());
                shape
            }
            (Prepared::Once(once), _) => Arc::new(Shape::of(once)),
        };
        let statement = statement.as_mut();
        let writes = !statement.readonly();
        // A commit that syncs the log, or a write outside a transaction (which commits
        // itself), waits for the disk: off the runtime's workers.
        let waits_for_disk =
            self.commits_sync && (commit || (writes && self.sqlite.is_autocommit()));
        let found = match waits_for_disk {
            true => off_the_workers(|| step(statement, &shape, arguments, rows)),
            false => step(statement, &shape, arguments, rows),
        }?;
        let rows_affected = match writes {
            true => self.sqlite.changes(),
            false => 0,
        };
        Ok(Ran {
            rows: found,
            rows_affected,
        })
    }

    /// Ends the innermost transaction or savepoint with `sql` (its commit, release or
    /// rollback); `commit` when it commits the whole transaction, which can wait for the disk.
    fn end(&mut self, sql: SqlStr, commit: bool) -> rusqlite::Result<()> {
        let progress = &mut Progress::default();
        self.run_once(sql.as_str(), true, &[], Rows::All, commit, progress)?;
        self.depth -= 1;
        Ok(())
    }

    /// After a failure SQLite may have rolled the whole transaction back itself (a full disk
    /// or an I/O error does): then there is nothing left to roll back.
    fn rolled_back_by_sqlite(&mut self) -> bool {
        if self.depth > 0 && self.sqlite.is_autocommit() {
            self.depth = 0;
            return true;
        }
        false
    }
}

enum Prepared<'c> {
    Cached(rusqlite::CachedStatement<'c>),
    Once(rusqlite::Statement<'c>),
}

impl<'c> Prepared<'c> {
    fn as_mut(&mut self) -> &mut rusqlite::Statement<'c> {
        match self {
            Self::Cached(cached) => cached,
            Self::Once(once) => once,
        }
    }
}

/// How far a batch got before an attempt found the database busy.
#[derive(Debug, Default)]
struct Progress {
    statements: usize,
    rows_affected: u64,
}

/// Several statements in one string, without arguments (the pragmas a pool runs on each new
/// connection): run in turn, their rows ignored. Each runs on its own, so one that finds the
/// database busy had no effect while those before it did: tried again, the batch goes on from
/// that statement (`progress`) rather than running the others twice.
fn batch(
    sqlite: &rusqlite::Connection,
    sql: &str,
    progress: &mut Progress,
) -> rusqlite::Result<Ran> {
    use rusqlite::fallible_iterator::FallibleIterator as _;
    let mut statements = rusqlite::Batch::new(sqlite, sql);
    let mut at = 0;
    while let Some(mut statement) = statements.next()? {
        if at == progress.statements {
            let writes = !statement.readonly();
            let mut rows = statement.raw_query();
            while rows.next()?.is_some() {}
            progress.statements += 1;
            if writes {
                progress.rows_affected += sqlite.changes();
            }
        }
        at += 1;
    }
    Ok(Ran {
        rows: Vec::new(),
        rows_affected: progress.rows_affected,
    })
}

/// Binds `arguments` and runs the statement.
fn step(
    statement: &mut rusqlite::Statement<'_>,
    shape: &Shape,
    arguments: &[AnyValueKind],
    rows: Rows,
) -> rusqlite::Result<Vec<AnyRow>> {
    bind(statement, arguments)?;
    let mut found = Vec::new();
    let mut cursor = statement.raw_query();
    while let Some(row) = cursor.next()? {
        found.push(any_row(row, shape)?);
        if rows == Rows::First {
            break;
        }
    }
    Ok(found)
}

/// `$N` (and `?N`) is the Nth argument, however often and in whatever order the statement
/// uses it; a bare `?` is the next one.
fn bind(
    statement: &mut rusqlite::Statement<'_>,
    arguments: &[AnyValueKind],
) -> rusqlite::Result<()> {
    for index in 1..=statement.parameter_count() {
        let nth = statement
            .parameter_name(index)
            .and_then(|name| name.get(1..)?.parse::<usize>().ok())
            .unwrap_or(index);
        let Some(value) = nth.checked_sub(1).and_then(|at| arguments.get(at)) else {
            return Err(rusqlite::Error::InvalidParameterCount(nth, arguments.len()));
        };
        match value {
            AnyValueKind::Null(_) => statement.raw_bind_parameter(index, rusqlite::types::Null),
            AnyValueKind::Bool(b) => statement.raw_bind_parameter(index, i64::from(*b)),
            AnyValueKind::SmallInt(i) => statement.raw_bind_parameter(index, i64::from(*i)),
            AnyValueKind::Integer(i) => statement.raw_bind_parameter(index, i64::from(*i)),
            AnyValueKind::BigInt(i) => statement.raw_bind_parameter(index, *i),
            AnyValueKind::Real(r) => statement.raw_bind_parameter(index, f64::from(*r)),
            AnyValueKind::Double(d) => statement.raw_bind_parameter(index, *d),
            AnyValueKind::Text(text) => statement.raw_bind_parameter(index, text.as_str()),
            AnyValueKind::TextSlice(text) => statement.raw_bind_parameter(index, &**text),
            AnyValueKind::Blob(blob) => statement.raw_bind_parameter(index, blob.as_slice()),
            other => Err(rusqlite::Error::ToSqlConversionFailure(
                format!("no SQLite value for {other:?}").into(),
            )),
        }?;
    }
    Ok(())
}

fn any_row(row: &rusqlite::Row<'_>, shape: &Shape) -> rusqlite::Result<AnyRow> {
    let values = shape
        .columns
        .iter()
        .map(|column| {
            let kind = match row.get_ref(column.ordinal)? {
                SqliteValue::Null => AnyValueKind::Null(column.type_info.kind()),
                SqliteValue::Integer(i) => AnyValueKind::BigInt(i),
                SqliteValue::Real(r) => AnyValueKind::Double(r),
                SqliteValue::Text(text) => AnyValueKind::Text(Arc::new(
                    std::str::from_utf8(text)
                        .map_err(|error| rusqlite::Error::Utf8Error(column.ordinal, error))?
                        .to_owned(),
                )),
                SqliteValue::Blob(blob) => AnyValueKind::Blob(Arc::new(blob.to_vec())),
            };
            Ok(AnyValue { kind })
        })
        .collect::<rusqlite::Result<_>>()?;
    Ok(AnyRow {
        column_names: shape.names.clone(),
        columns: shape.columns.clone(),
        values,
    })
}

/// Runs `work`, which waits for the disk, letting the runtime move this worker's other tasks
/// to another thread meanwhile. A single-threaded runtime (some tests) has nowhere to move
/// them, and runs it in place.
fn off_the_workers<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// Transactions and savepoints, named as sqlx's other drivers name them.
pub enum Transactions {}

impl TransactionManager for Transactions {
    type Database = InlineSqlite;

    async fn begin(conn: &mut InlineConnection, statement: Option<SqlStr>) -> Result<(), Error> {
        let sql = match statement {
            None => begin_ansi_transaction_sql(conn.depth),
            Some(_) if conn.depth > 0 => return Err(Error::InvalidSavePointStatement),
            Some(statement) => statement,
        };
        conn.run(sql.as_str(), true, &[], Rows::All).await?;
        if conn.sqlite.is_autocommit() {
            return Err(Error::BeginFailed);
        }
        conn.depth += 1;
        Ok(())
    }

    async fn commit(conn: &mut InlineConnection) -> Result<(), Error> {
        if conn.depth == 0 {
            return Ok(());
        }
        let whole = conn.depth == 1;
        conn.end(commit_ansi_transaction_sql(conn.depth), whole)
            .map_err(from_rusqlite)
    }

    async fn rollback(conn: &mut InlineConnection) -> Result<(), Error> {
        if conn.depth == 0 || conn.rolled_back_by_sqlite() {
            return Ok(());
        }
        conn.end(rollback_ansi_transaction_sql(conn.depth), false)
            .map_err(from_rusqlite)
    }

    /// A transaction dropped unfinished: rolled back now, since nothing here waits.
    fn start_rollback(conn: &mut InlineConnection) {
        if conn.depth == 0 || conn.rolled_back_by_sqlite() {
            return;
        }
        if let Err(error) = conn.end(rollback_ansi_transaction_sql(conn.depth), false) {
            tracing::warn!(%error, "rolling back an abandoned SQLite transaction failed");
        }
    }

    fn get_transaction_depth(conn: &InlineConnection) -> usize {
        conn.depth
    }
}

impl Connection for InlineConnection {
    type Database = InlineSqlite;
    type Options = InlineConnectOptions;

    async fn close(self) -> Result<(), Error> {
        self.sqlite
            .close()
            .map_err(|(_, error)| from_rusqlite(error))
    }

    async fn close_hard(self) -> Result<(), Error> {
        Connection::close(self).await
    }

    async fn ping(&mut self) -> Result<(), Error> {
        self.run("SELECT 1", true, &[], Rows::All).await.map(drop)
    }

    fn begin(
        &mut self,
    ) -> impl Future<Output = Result<Transaction<'_, InlineSqlite>, Error>> + Send + '_ {
        Transaction::begin(self, None)
    }

    /// Rows belong to their callers once returned: the connection keeps no buffers.
    fn shrink_buffers(&mut self) {}

    /// Statements run when awaited: nothing is ever queued to flush.
    async fn flush(&mut self) -> Result<(), Error> {
        Ok(())
    }

    fn should_flush(&self) -> bool {
        false
    }
}

fn arguments_of(arguments: Option<AnyArguments>) -> Vec<AnyValueKind> {
    arguments
        .map(|arguments| arguments.values.0)
        .unwrap_or_default()
}

impl AnyConnectionBackend for InlineConnection {
    fn name(&self) -> &str {
        <InlineSqlite as sqlx::Database>::NAME
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, Result<(), Error>> {
        Connection::close(*self).boxed()
    }

    fn close_hard(self: Box<Self>) -> BoxFuture<'static, Result<(), Error>> {
        Connection::close_hard(*self).boxed()
    }

    fn ping(&mut self) -> BoxFuture<'_, Result<(), Error>> {
        Connection::ping(self).boxed()
    }

    fn begin(&mut self, statement: Option<SqlStr>) -> BoxFuture<'_, Result<(), Error>> {
        Transactions::begin(self, statement).boxed()
    }

    fn commit(&mut self) -> BoxFuture<'_, Result<(), Error>> {
        Transactions::commit(self).boxed()
    }

    fn rollback(&mut self) -> BoxFuture<'_, Result<(), Error>> {
        Transactions::rollback(self).boxed()
    }

    fn start_rollback(&mut self) {
        Transactions::start_rollback(self)
    }

    fn get_transaction_depth(&self) -> usize {
        self.depth
    }

    fn clear_cached_statements(&mut self) -> BoxFuture<'_, Result<(), Error>> {
        self.sqlite.flush_prepared_statement_cache();
        self.shapes.clear();
        Box::pin(async { Ok(()) })
    }

    fn shrink_buffers(&mut self) {
        Connection::shrink_buffers(self)
    }

    fn flush(&mut self) -> BoxFuture<'_, Result<(), Error>> {
        Connection::flush(self).boxed()
    }

    fn should_flush(&self) -> bool {
        Connection::should_flush(self)
    }

    fn fetch_many(
        &mut self,
        query: SqlStr,
        persistent: bool,
        arguments: Option<AnyArguments>,
    ) -> BoxStream<'_, Result<Either<AnyQueryResult, AnyRow>, Error>> {
        let arguments = arguments_of(arguments);
        stream::once(async move {
            self.run(query.as_str(), persistent, &arguments, Rows::All)
                .await
        })
        .flat_map(|ran| {
            let answers: Vec<_> = match ran {
                Ok(Ran {
                    rows,
                    rows_affected,
                }) => rows
                    .into_iter()
                    .map(|row| Ok(Either::Right(row)))
                    .chain([Ok(Either::Left(AnyQueryResult {
                        rows_affected,
                        last_insert_id: None,
                    }))])
                    .collect(),
                Err(error) => vec![Err(error)],
            };
            stream::iter(answers)
        })
        .boxed()
    }

    fn fetch_optional(
        &mut self,
        query: SqlStr,
        persistent: bool,
        arguments: Option<AnyArguments>,
    ) -> BoxFuture<'_, Result<Option<AnyRow>, Error>> {
        let arguments = arguments_of(arguments);
        Box::pin(async move {
            let ran = self
                .run(query.as_str(), persistent, &arguments, Rows::First)
                .await?;
            Ok(ran.rows.into_iter().next())
        })
    }

    fn prepare_with<'c, 'q: 'c>(
        &'c mut self,
        sql: SqlStr,
        _parameters: &[AnyTypeInfo],
    ) -> BoxFuture<'c, Result<AnyStatement, Error>> {
        let described = self.describe_now(sql.as_str());
        Box::pin(async move {
            let (shape, parameters) = described?;
            Ok(AnyStatement {
                sql,
                parameters: Some(Either::Right(parameters)),
                column_names: shape.names.clone(),
                columns: shape.columns.clone(),
            })
        })
    }

    fn describe(&mut self, sql: SqlStr) -> BoxFuture<'_, Result<sqlx::Describe<sqlx::Any>, Error>> {
        let described = self.describe_now(sql.as_str());
        Box::pin(async move {
            let (shape, parameters) = described?;
            Ok(sqlx::Describe {
                nullable: vec![None; shape.columns.len()],
                columns: shape.columns.clone(),
                parameters: Some(Either::Right(parameters)),
            })
        })
    }
}

impl InlineConnection {
    /// A statement's columns and how many parameters it takes.
    fn describe_now(&mut self, sql: &str) -> Result<(Arc<Shape>, usize), Error> {
        let statement = self.sqlite.prepare_cached(sql).map_err(from_rusqlite)?;
        Ok((Arc::new(Shape::of(&statement)), statement.parameter_count()))
    }
}
