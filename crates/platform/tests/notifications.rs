//! A listener against a real PostgreSQL, directly and behind a real PgBouncer in transaction
//! mode, where `LISTEN` succeeds and nothing is heard.

#![allow(clippy::unwrap_used)] // Tests fail loudly on the first surprise.

use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use platform::notifications::{Follower, ListenError, Listener};
use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use testkit::wait_for;
use tokio_util::sync::CancellationToken;

/// What a follower was told, in order.
#[derive(Clone, Default)]
struct Told(Arc<Mutex<Vec<String>>>);

impl Told {
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    fn push(&self, what: String) {
        self.0.lock().unwrap().push(what);
    }
}

#[async_trait]
impl Follower for Told {
    async fn listening(&self) {
        self.push("listening".into());
    }

    async fn heard(&self, payload: &str) {
        self.push(format!("heard {payload}"));
    }

    fn deaf(&self, error: Option<&ListenError>) {
        self.push(format!(
            "deaf: {}",
            error.map(ToString::to_string).unwrap_or_default()
        ));
    }
}

/// A channel no other test listens to.
fn channel() -> &'static str {
    format!("cx_test_{}", uuid::Uuid::new_v4().simple()).leak()
}

/// Runs `listener` until the returned token is cancelled (or dropped with the test).
fn follow(listener: Listener<Told>) -> tokio_util::sync::DropGuard {
    let cancel = CancellationToken::new();
    tokio::spawn(listener.run(cancel.clone()));
    cancel.drop_guard()
}

#[tokio::test]
async fn a_listener_passes_on_what_is_sent_and_never_its_probes() {
    let Some(url) = testkit::postgres_url() else {
        return;
    };
    let (told, channel) = (Told::default(), channel());
    let listener = Listener::new(url.clone().into(), channel, told.clone())
        .probing(Duration::from_millis(100), Duration::from_secs(5));
    let _running = follow(listener);
    wait_for("listening", || async { !told.all().is_empty() }).await;
    let mut sender = PgConnection::connect(&url).await.unwrap();
    sqlx::query("SELECT pg_notify($1, 'changed')")
        .bind(channel)
        .execute(&mut sender)
        .await
        .unwrap();
    wait_for("the notification passed on", || async {
        told.all().len() >= 2
    })
    .await;
    // Several probes go and come back meanwhile.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(told.all(), ["listening", "heard changed"]);
}

/// A PgBouncer in transaction mode in front of the test's PostgreSQL, stopped on drop.
struct Pooler {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Pooler {
    fn start(pgbouncer: &std::path::Path, postgres_url: &str) -> Self {
        let server = PgConnectOptions::from_str(postgres_url).unwrap();
        let port = testkit::free_port();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("pgbouncer.ini");
        std::fs::write(
            &config,
            format!(
                "[databases]\n* = host={} port={} user={}\n\n[pgbouncer]\nlisten_addr = \
                 127.0.0.1\nlisten_port = {port}\nauth_type = any\npool_mode = transaction\n\
                 unix_socket_dir =\nignore_startup_parameters = extra_float_digits\n",
                server.get_host(),
                server.get_port(),
                server.get_username(),
            ),
        )
        .unwrap();
        // (The setting every sqlx or JDBC client behind PgBouncer needs.)
        let mut command = Command::new(pgbouncer);
        // It refuses to run as root; it reads its configuration before it changes user.
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| out.stdout.trim_ascii() == b"0");
        if root {
            command.args(["-u", "nobody"]);
        }
        let child = command
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let database = server.get_database().unwrap_or("postgres");
        Self {
            child,
            url: format!("postgres://anyone@127.0.0.1:{port}/{database}"),
            _dir: dir,
        }
    }
}

impl Drop for Pooler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn behind_a_transaction_pooler_a_listener_says_it_cannot_hear() {
    let Some(url) = testkit::postgres_url() else {
        return;
    };
    let Some(pgbouncer) = testkit::required_tool("pgbouncer", "a pooler in transaction mode")
    else {
        return;
    };
    let pooler = Pooler::start(&pgbouncer, &url);
    wait_for("the pooler to let a client in", || async {
        PgConnection::connect(&pooler.url).await.is_ok()
    })
    .await;
    let told = Told::default();
    let listener = Listener::new(pooler.url.clone().into(), channel(), told.clone())
        .probing(Duration::from_secs(30), Duration::from_secs(1));
    let _running = follow(listener);
    wait_for("the listener to give up", || async {
        !told.all().is_empty()
    })
    .await;
    // It tries again meanwhile, and gives up again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let said = told.all();
    assert!(said.len() >= 2, "{said:?}");
    for what in &said {
        assert!(what.starts_with("deaf: no probe on cx_test_"), "{said:?}");
    }
}
