//! The SQLite driver that runs statements on the caller's thread (`platform::db::inline_sqlite`),
//! through sqlx's `Any` as every store uses it.

#![allow(clippy::unwrap_used)] // Tests fail loudly on the first surprise.

use std::path::Path;
use std::time::Duration;

use sqlx::{AnyConnection, Connection as _, Executor as _, Row as _};

async fn connect(dir: &Path, options: &str) -> AnyConnection {
    platform::db::install_drivers().unwrap();
    let url = format!("sqlite://{}?mode=rwc{options}", dir.join("t.db").display());
    AnyConnection::connect(&url).await.unwrap()
}

async fn with_table(dir: &Path) -> AnyConnection {
    let mut conn = connect(dir, "").await;
    conn.execute(
        "PRAGMA journal_mode = WAL; \
         CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER, x REAL, b BLOB, note TEXT)",
    )
    .await
    .unwrap();
    conn
}

async fn count(conn: &mut AnyConnection) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM t")
        .fetch_one(conn)
        .await
        .unwrap()
}

/// Takes the write lock of `holder`'s database (a transaction that has written) and gives it
/// back 200 ms after the returned future is first polled.
async fn hold_the_lock(holder: &mut AnyConnection) -> impl Future<Output = ()> + '_ {
    let mut tx = holder.begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query("INSERT INTO t (id) VALUES ('first')")
        .execute(&mut *tx)
        .await
        .unwrap();
    async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        tx.commit().await.unwrap();
    }
}

#[tokio::test]
async fn values_come_back_as_they_were_bound() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = with_table(dir.path()).await;
    let done = sqlx::query("INSERT INTO t (id, n, x, b, note) VALUES ($1, $2, $3, $4, $5)")
        .bind("a")
        .bind(i64::MAX)
        .bind(2.5f64)
        .bind(vec![0u8, 255])
        .bind(None::<String>)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1);
    let row = sqlx::query("SELECT id, n, x, b, note, n > 0 AS positive FROM t WHERE id = $1")
        .bind("a")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>("id"), "a");
    assert_eq!(row.get::<i64, _>("n"), i64::MAX);
    assert_eq!(row.get::<f64, _>("x"), 2.5);
    assert_eq!(row.get::<Vec<u8>, _>("b"), vec![0, 255]);
    assert_eq!(row.get::<Option<String>, _>("note"), None);
    assert_eq!(row.get::<i64, _>("positive"), 1);
    assert_eq!(row.columns().len(), 6);
    let missing = sqlx::query("SELECT id FROM t WHERE id = $1")
        .bind("b")
        .fetch_optional(&mut conn)
        .await
        .unwrap();
    assert!(missing.is_none());
}

#[tokio::test]
async fn numbered_parameters_name_their_argument_in_any_order_and_any_number_of_times() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = with_table(dir.path()).await;
    sqlx::query("INSERT INTO t (id, n, note) VALUES ($2, $1, $2 || '-' || $1)")
        .bind(7i64)
        .bind("seven")
        .execute(&mut conn)
        .await
        .unwrap();
    let (id, n, note): (String, i64, String) = sqlx::query_as("SELECT id, n, note FROM t")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!((id.as_str(), n, note.as_str()), ("seven", 7, "seven-7"));
    let missing = sqlx::query("SELECT $2")
        .bind(1i64)
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(
        matches!(missing, sqlx::Error::AnyDriverError(_)),
        "{missing:?}"
    );
}

#[tokio::test]
async fn a_returning_statement_writes_when_only_its_first_row_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = with_table(dir.path()).await;
    for id in ["a", "b", "c"] {
        sqlx::query("INSERT INTO t (id, n) VALUES ($1, 0)")
            .bind(id)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let first: Option<String> = sqlx::query_scalar("UPDATE t SET n = 1 RETURNING id")
        .fetch_optional(&mut conn)
        .await
        .unwrap();
    assert!(first.is_some());
    let updated: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t WHERE n = 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(updated, 3);
    let done = sqlx::query("DELETE FROM t WHERE n = 1")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 3);
}

#[tokio::test]
async fn transactions_commit_roll_back_and_nest_as_savepoints() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = with_table(dir.path()).await;
    let insert = |id: &'static str| sqlx::query("INSERT INTO t (id) VALUES ($1)").bind(id);

    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.unwrap();
    insert("kept").execute(&mut *tx).await.unwrap();
    {
        let mut inner = tx.begin().await.unwrap();
        insert("undone").execute(&mut *inner).await.unwrap();
        inner.rollback().await.unwrap();
    }
    {
        let mut inner = tx.begin().await.unwrap();
        insert("released").execute(&mut *inner).await.unwrap();
        inner.commit().await.unwrap();
    }
    {
        // Dropped unfinished: rolled back.
        let mut inner = tx.begin().await.unwrap();
        insert("dropped").execute(&mut *inner).await.unwrap();
    }
    tx.commit().await.unwrap();
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM t ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(ids, ["kept", "released"]);

    {
        let mut tx = conn.begin().await.unwrap();
        insert("abandoned").execute(&mut *tx).await.unwrap();
    }
    assert!(!conn.is_in_transaction());
    assert_eq!(count(&mut conn).await, 2);
    let mut tx = conn.begin().await.unwrap();
    let nested_begin = tx.begin_with("BEGIN IMMEDIATE").await.unwrap_err();
    assert!(matches!(
        nested_begin,
        sqlx::Error::InvalidSavePointStatement
    ));
}

#[tokio::test]
async fn a_duplicate_key_is_a_unique_violation_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = with_table(dir.path()).await;
    let insert = || sqlx::query("INSERT INTO t (id, n) VALUES ('a', 1)");
    insert().execute(&mut conn).await.unwrap();
    let duplicate = insert().execute(&mut conn).await.unwrap_err();
    assert!(
        platform::db::is_unique_violation(&duplicate),
        "{duplicate:?}"
    );
    assert!(!platform::db::is_unavailable(&duplicate));
    assert_eq!(count(&mut conn).await, 1);
}

/// The statement that finds the database locked must wait without holding its thread: on a
/// runtime of one thread, the lock's holder releases it only if the waiting statement lets it
/// run. SQLite's own busy handler would sleep on that thread and fail after its timeout.
#[tokio::test(flavor = "current_thread")]
async fn a_locked_database_is_waited_for_without_holding_the_thread() {
    let dir = tempfile::tempdir().unwrap();
    let mut holder = with_table(dir.path()).await;
    let mut waiter = connect(dir.path(), "&busy_timeout=5000").await;
    let release = hold_the_lock(&mut holder).await;
    let wait = sqlx::query("INSERT INTO t (id) VALUES ('second')").execute(&mut waiter);
    let (waited, ()) = tokio::join!(wait, release);
    waited.unwrap();
    assert_eq!(count(&mut waiter).await, 2);
}

/// A batch whose second statement finds the database locked goes on from there once the lock
/// is free: its first statement (a write to the connection's own temporary table, which no
/// other connection's lock holds up) runs once.
#[tokio::test(flavor = "current_thread")]
async fn a_batch_held_up_by_a_lock_runs_each_statement_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut holder = with_table(dir.path()).await;
    let mut waiter = connect(dir.path(), "").await;
    waiter
        .execute("CREATE TEMP TABLE seen (n INTEGER)")
        .await
        .unwrap();
    let release = hold_the_lock(&mut holder).await;
    let batch =
        waiter.execute("INSERT INTO temp.seen VALUES (1); INSERT INTO t (id) VALUES ('second')");
    let (ran, ()) = tokio::join!(batch, release);
    assert_eq!(ran.unwrap().rows_affected(), 2);
    let seen: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM temp.seen")
        .fetch_one(&mut waiter)
        .await
        .unwrap();
    assert_eq!(seen, 1);
    assert_eq!(count(&mut waiter).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_that_sync_the_log_run_on_a_multi_threaded_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = with_table(dir.path()).await;
    let mut full = connect(dir.path(), "&synchronous=full").await;
    let level: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&mut full)
        .await
        .unwrap();
    assert_eq!(level, 2);
    let mut tx = full.begin().await.unwrap();
    sqlx::query("INSERT INTO t (id) VALUES ('in a transaction')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    sqlx::query("INSERT INTO t (id) VALUES ('on its own')")
        .execute(&mut full)
        .await
        .unwrap();
    assert_eq!(count(&mut conn).await, 2);
}

#[tokio::test]
async fn unknown_url_options_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    platform::db::install_drivers().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc&journal=wal",
        dir.path().join("t.db").display()
    );
    let refused = AnyConnection::connect(&url).await.unwrap_err();
    assert!(
        matches!(refused, sqlx::Error::Configuration(_)),
        "{refused:?}"
    );
}
