//! The PostgreSQL pool against a real server: a connection is tested before use only when it
//! has sat idle (`platform::db::PING_IF_IDLE_FOR`); sqlx tests each one as it goes back.

#![allow(clippy::unwrap_used)] // Tests fail loudly on the first surprise.

use platform::db::{Db, PING_IF_IDLE_FOR, PoolSettings, is_unavailable};
use sqlx::{AnyConnection, Connection as _, Executor as _};
use testkit::TestStorage;

/// A pool of one connection, so every statement uses the same one until it is replaced.
async fn one_connection(storage: &TestStorage) -> Db {
    let settings = PoolSettings {
        max_connections: 1,
        ..PoolSettings::default()
    };
    storage.storage.open("pool_test", settings).await.unwrap()
}

async fn backend_pid(db: &Db) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(db.pool())
        .await
}

/// Cuts the connection of backend `pid` from the server's side, as a restart or a failover
/// does, and waits until it is gone.
async fn cut(pid: i32) {
    let mut admin = AnyConnection::connect(&testkit::postgres_url().unwrap())
        .await
        .unwrap();
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "SELECT pg_terminate_backend({pid})"
        )))
        .await
        .unwrap();
    // Within PING_IF_IDLE_FOR of the connection's last use: the server ends a backend soon.
    for _ in 0..50 {
        let alive: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}"
        )))
        .fetch_one(&mut admin)
        .await
        .unwrap();
        if alive == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("backend {pid} did not exit");
}

/// A pool of one connection that has just run a statement, its backend's pid, and the
/// server cutting that backend; `None` without PostgreSQL.
async fn a_used_connection_cut() -> Option<(TestStorage, Db, i32)> {
    let storage = TestStorage::postgres().await?;
    let db = one_connection(&storage).await;
    let first = backend_pid(&db).await.unwrap();
    cut(first).await;
    Some((storage, db, first))
}

#[tokio::test]
async fn an_idle_connection_cut_by_the_server_is_replaced_before_use() {
    let Some((_storage, db, first)) = a_used_connection_cut().await else {
        return;
    };
    tokio::time::sleep(PING_IF_IDLE_FOR * 3 / 2).await;

    let second = backend_pid(&db)
        .await
        .expect("the cut connection is replaced");
    assert_ne!(first, second);
    db.close().await;
}

/// The price of not pinging a connection that was in use a moment ago: if the server cuts it
/// in that moment, one statement fails, as unavailable (a 503, or a consumer's retry), and
/// the pool drops the connection.
#[tokio::test]
async fn a_connection_cut_while_in_use_fails_one_statement_as_unavailable() {
    let Some((_storage, db, first)) = a_used_connection_cut().await else {
        return;
    };

    let error = backend_pid(&db).await.expect_err("no ping before use");
    assert!(is_unavailable(&error), "{error:?}");
    let second = backend_pid(&db)
        .await
        .expect("the cut connection was dropped");
    assert_ne!(first, second);
    db.close().await;
}
