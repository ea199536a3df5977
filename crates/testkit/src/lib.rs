//! Test support shared by every crate's integration tests: a fresh, isolated storage per test,
//! on SQLite (a temporary directory) or PostgreSQL (a new database on the server named by
//! `TEST_DATABASE_URL`, dropped afterwards).
//!
//! PostgreSQL tests need `TEST_DATABASE_URL`; distributed tests also need `KAFKA_BROKERS` and
//! `REDIS_URL`. Without them they say so and skip, except under `CI=true`, where a missing
//! backend fails the test.

use platform::db::{Backend, Storage};
use secrecy::SecretString;
use sqlx::{AnyConnection, AssertSqlSafe, Connection, Executor};

pub mod otlp;

pub struct TestStorage {
    pub storage: Storage,
    /// Run the platform as separate processes (one per service) on Kafka and Redis.
    pub distributed: Option<Distributed>,
    _guard: Guard,
}

/// Where the distributed runtime's Kafka and Redis are.
#[derive(Debug, Clone)]
pub struct Distributed {
    pub kafka_brokers: String,
    pub redis_url: String,
}

enum Guard {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Database { admin_url: String, name: String },
}

impl TestStorage {
    pub async fn sqlite() -> Option<Self> {
        let dir = tempfile::tempdir().expect("create a temporary data directory");
        Some(Self {
            storage: Storage::Sqlite {
                dir: dir.path().to_owned(),
                synchronous: platform::db::Synchronous::Normal,
            },
            distributed: None,
            _guard: Guard::Dir(dir),
        })
    }

    /// A new empty PostgreSQL database, or `None` (after saying so) when no server is given.
    pub async fn postgres() -> Option<Self> {
        let admin_url = postgres_url()?;
        platform::db::install_drivers().expect("install the database drivers");
        let name = format!("cx_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = AnyConnection::connect(&admin_url)
            .await
            .expect("connect to TEST_DATABASE_URL");
        admin
            .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create a test database");
        let url = with_database(&admin_url, &name);
        Some(Self {
            storage: Storage::Postgres {
                url: SecretString::from(url),
            },
            distributed: None,
            _guard: Guard::Database { admin_url, name },
        })
    }

    /// A fresh PostgreSQL database for a platform of separate processes on Kafka and Redis, or
    /// `None` (after saying so) when PostgreSQL, Kafka or Redis is not given.
    pub async fn distributed() -> Option<Self> {
        let distributed = Distributed {
            kafka_brokers: required_env("KAFKA_BROKERS", "a Kafka-protocol broker")?,
            redis_url: required_env("REDIS_URL", "Redis")?,
        };
        let mut storage = Self::postgres().await?;
        storage.distributed = Some(distributed);
        Some(storage)
    }

    pub fn backend(&self) -> Backend {
        self.storage.backend()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let Guard::Database { admin_url, name } = self else {
            return;
        };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        // Drop runs outside any async context we could borrow; a scoped thread with its own
        // runtime finishes the cleanup before the test returns.
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                if let Ok(runtime) = runtime {
                    runtime.block_on(async {
                        if let Ok(mut admin) = AnyConnection::connect(&admin_url).await {
                            let _ = admin
                                .execute(AssertSqlSafe(format!(
                                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                                )))
                                .await;
                        }
                    });
                }
            });
        });
    }
}

/// Set to `1` to let the tests whose servers or programs are missing pass as skipped, each
/// saying `SKIPPED` (outside CI only). Without it such a test fails, so that a run without
/// them never looks all green; `scripts/test` sets it when it could not provide one, and says
/// which runtimes it tested.
pub const ALLOW_SKIP: &str = "COMMERCEX_TEST_ALLOW_SKIP";

/// A test cannot run: `missing` is not given (`fix` says how to give it). Fails the test,
/// unless skips are allowed (`ALLOW_SKIP`, never under `CI=true`): then it says so and the
/// caller returns.
pub fn cannot_run(missing: &str, fix: &str) {
    let ci = std::env::var("CI").as_deref() == Ok("true");
    assert!(!ci, "{missing}: {fix}; CI must run every test");
    let allowed = std::env::var(ALLOW_SKIP).is_ok_and(|value| value == "1");
    assert!(
        allowed,
        "{missing}: {fix}, or set {ALLOW_SKIP}=1 to skip the tests that need it \
         (scripts/test provides the servers it can)"
    );
    eprintln!("SKIPPED: {missing} ({ALLOW_SKIP}=1)");
}

/// `TEST_DATABASE_URL`, or `None` once the test may be skipped (see [`ALLOW_SKIP`]).
pub fn postgres_url() -> Option<String> {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            cannot_run("PostgreSQL is not given", "set TEST_DATABASE_URL");
            None
        }
    }
}

/// The variable `name` (`what` the test needs), or `None` once the test may be skipped.
pub fn required_env(name: &str, what: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Some(value),
        _ => {
            cannot_run(&format!("{what} is not given"), &format!("set {name}"));
            None
        }
    }
}

/// The program `name` from `PATH` (for `what`), or `None` once the test may be skipped.
pub fn required_tool(name: &str, what: &str) -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        cannot_run(
            &format!("{name} is not installed ({what})"),
            &format!("install {name}"),
        );
    }
    found
}

/// `url` pointing at database `name` instead of the one it names.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_and_path = &base[scheme_end..];
    let prefix = match host_and_path.find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{prefix}/{name}?{query}"),
        None => format!("{prefix}/{name}"),
    }
}

/// A local port nothing listens on now, for a server a test starts (a broker, a pooler).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free local port")
        .port()
}

/// Polls `condition` until it holds; fails the test after 20 seconds. For effects that happen
/// asynchronously (a relay publishing, a consumer handling).
pub async fn wait_for<F, Fut>(what: &str, condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    wait_for_within(what, std::time::Duration::from_secs(20), condition).await;
}

/// As [`wait_for`], with a longer bound for recoveries that include a broker's own timeouts
/// (a crashed consumer's partitions move on only when its session expires).
pub async fn wait_for_within<F, Fut>(what: &str, bound: std::time::Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + bound;
    while !condition().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// Declares a test that runs once per storage backend: `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! backend_tests {
    ($($tests:tt)*) => {
        $crate::__runtime_tests!([sqlite postgres] $($tests)*);
    };
}

/// As [`backend_tests!`], plus `name::distributed`: the same scenario against the platform
/// run as separate processes on PostgreSQL, Kafka and Redis.
#[macro_export]
macro_rules! app_tests {
    ($($tests:tt)*) => {
        $crate::__runtime_tests!([sqlite postgres distributed] $($tests)*);
    };
}

/// Declares a test that runs on the runtimes with a server database, where several processes
/// share it: `name::postgres` and `name::distributed`.
#[macro_export]
macro_rules! server_database_tests {
    ($($tests:tt)*) => {
        $crate::__runtime_tests!([postgres distributed] $($tests)*);
    };
}

/// A module per scenario with a test per runtime in `$runtimes`.
#[doc(hidden)]
#[macro_export]
macro_rules! __runtime_tests {
    ($runtimes:tt $( $(#[$meta:meta])* async fn $name:ident($storage:ident : TestStorage) $body:block )*) => {
        $(
            $(#[$meta])*
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                async fn scenario($storage: $crate::TestStorage) $body

                $crate::__runtime_fns!($runtimes);
            }
        )*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __runtime_fns {
    ([$($runtime:ident)*]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $runtime() {
                if let Some(storage) = $crate::TestStorage::$runtime().await {
                    scenario(storage).await
                }
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn swaps_the_database_name() {
        assert_eq!(
            super::with_database("postgres://u@h:5432/test?sslmode=disable", "x"),
            "postgres://u@h:5432/x?sslmode=disable"
        );
        assert_eq!(super::with_database("postgres://h", "x"), "postgres://h/x");
    }
}
