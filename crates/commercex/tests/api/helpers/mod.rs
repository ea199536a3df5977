//! One way to start CommerceX for a test: the real application on a random port with its
//! own fresh storage, driven over real HTTP.
//!
//! `TestApp` is started and stopped here; what a test does with it lives in one module per
//! concern: `identity` (accounts and tokens), `catalog` (products, stock, listings),
//! `checkout` (orders, payments, levels), `inspect` (the services' databases and the events
//! they published), `metrics`, `browser` (the storefront as a browser sees it), and `binary` (the `commercex` command as a child process).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use client::ApiClient;
use commercex::app::Application;
use commercex::settings::{NeededKeys, Settings};
use platform::db::Storage;
use reqwest::{Client, Response};
use secrecy::ExposeSecret;
use serde_json::Value;
use testkit::TestStorage;

use crate::deployment::{Deployment, Layout};

mod binary;
mod browser;
mod catalog;
mod checkout;
mod identity;
mod inspect;
mod metrics;
mod python;
mod webhooks;

pub use binary::*;
pub use browser::{Browser, Page};
pub use catalog::product;
pub use checkout::order_body;
pub use inspect::listening;
pub use metrics::sample;
pub use python::PythonChecker;
pub use testkit::wait_for;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
pub use webhooks::{Received, Receiver, Reply, verify_with_reference_library};

pub const PASSWORD: &str = "correct horse battery staple";
pub const SERVICE_SCHEMAS: [&str; 6] = [
    "users",
    "catalog",
    "inventory",
    "orders",
    "payments",
    "webhooks",
];

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: Client,
    /// The typed client (the `client` crate) over the same connections, for what tests do as
    /// any client would: sign up, log in, wait for an order.
    pub api: ApiClient,
    pub data_dir: PathBuf,
    storage: Storage,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    /// The processes, when the platform runs distributed.
    pub deployment: Option<Deployment>,
    /// The pools the app itself uses, when it runs in this process.
    pub databases: Vec<platform::db::Db>,
    /// Stopped and checked (`stop`).
    stopped: bool,
    _data_dir_guard: Option<tempfile::TempDir>,
}

/// The arguments that point a `commercex` command at `storage`; a PostgreSQL run gets a
/// temporary data directory for its development key.
pub fn storage_args(storage: &TestStorage) -> (Vec<String>, PathBuf, Option<tempfile::TempDir>) {
    match &storage.storage {
        Storage::Sqlite { dir, .. } => (
            vec!["--data-dir".into(), dir.display().to_string()],
            dir.clone(),
            None,
        ),
        Storage::Postgres { url } => {
            let dir = tempfile::tempdir().expect("temporary data dir");
            let args = vec![
                "--database-url".into(),
                url.expose_secret().to_owned(),
                "--data-dir".into(),
                dir.path().display().to_string(),
            ];
            (args, dir.path().to_owned(), Some(dir))
        }
    }
}

pub async fn spawn_app(storage: &TestStorage) -> TestApp {
    spawn_app_with(storage, &[]).await
}

pub const ADMIN_EMAIL: &str = "admin@example.com";

/// Starts the app with extra command-line options, parsed exactly as the binary parses them.
/// Every app has an administrator, configured the way operators do it: an email and a
/// password file (with the trailing newline editors leave).
pub async fn spawn_app_with(storage: &TestStorage, extra: &[&str]) -> TestApp {
    spawn_app_layout(storage, extra, &Layout::default()).await
}

/// As [`spawn_app_with`]; a distributed storage runs the processes `layout` names.
pub async fn spawn_app_layout(storage: &TestStorage, extra: &[&str], layout: &Layout) -> TestApp {
    // The app's logs go to the test's captured output, shown when a test fails.
    let _ = commercex::telemetry::init(
        commercex::cli::LogFormat::Pretty,
        "commercex",
        commercex::telemetry::LogStream::Stderr,
    );
    let (mut args, data_dir, guard) = storage_args(storage);
    let password_file = write_file(&data_dir, "admin-password", &format!("{PASSWORD}\n"));
    args.insert(0, "commercex".into());
    args.extend(["--listen".into(), "127.0.0.1:0".into()]);
    args.extend(["--admin-email".into(), ADMIN_EMAIL.into()]);
    args.extend([
        "--admin-password-file".into(),
        password_file.display().to_string(),
    ]);
    if storage.distributed.is_some() {
        let deployment = Deployment::start(
            storage,
            &data_dir,
            (ADMIN_EMAIL, &password_file),
            extra,
            layout,
        )
        .await;
        let mut app = TestApp::attach(deployment.gateway(), storage);
        app.data_dir = data_dir;
        app.deployment = Some(deployment);
        app._data_dir_guard = guard;
        return app;
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let cli = commercex::config_file::parse_cli_from(args.into_iter().map(Into::into).collect())
        .expect("parse options");
    let settings =
        Settings::load(&cli.options, &Default::default(), NeededKeys::ALL).expect("load settings");
    let app = Application::build(settings)
        .await
        .expect("build the application");
    let addr = app.local_addr().expect("bound address");
    let databases = app.databases().to_vec();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app.run(shutdown.clone()));
    let mut app = TestApp::at(addr, data_dir, storage);
    app.shutdown = shutdown;
    app.task = Some(task);
    app.databases = databases;
    app._data_dir_guard = guard;
    app
}

/// The client tests talk HTTP with. Idle connections are dropped before the server's
/// header read timeout (10 s) would close them under a request.
fn test_client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .expect("http client")
}

impl TestApp {
    /// Drives an app already running elsewhere (a `commercex` child process) at `addr`.
    pub fn attach(addr: SocketAddr, storage: &TestStorage) -> Self {
        let (_, data_dir, _) = storage_args(storage);
        Self::at(addr, data_dir, storage)
    }

    /// A client of the app at `addr`, owning nothing of it yet.
    fn at(addr: SocketAddr, data_dir: PathBuf, storage: &TestStorage) -> Self {
        let client = test_client();
        TestApp {
            api: ApiClient::with(client.clone(), &format!("http://{addr}")),
            addr,
            client,
            data_dir,
            storage: storage.storage.clone(),
            shutdown: CancellationToken::new(),
            task: None,
            deployment: None,
            databases: Vec::new(),
            stopped: false,
            _data_dir_guard: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("GET")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Response {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect("request")
    }

    pub fn signing_key_path(&self) -> PathBuf {
        self.data_dir.join("dev-signing-key.pem")
    }

    /// Stops the app the way SIGTERM does and checks it left no event behind in an outbox.
    /// A test that does not call it gets the same when the app is dropped.
    pub async fn stop(mut self) {
        self.stop_and_check().await;
    }

    async fn stop_and_check(&mut self) {
        self.stopped = true;
        if let Some(deployment) = self.deployment.as_mut() {
            deployment.stop().await;
        }
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("the app stops within its shutdown timeout")
                .expect("the app task did not panic")
                .expect("the app stopped cleanly");
        }
        for schema in SERVICE_SCHEMAS {
            let db = self.database(schema).await;
            let backlog = events::relay::backlog(&db).await.expect("backlog");
            assert_eq!(backlog, 0, "events left in the {schema} outbox");
            db.close().await;
        }
    }
}

impl Drop for TestApp {
    /// The checks of `stop`, for a test that forgot it (as crates.io's TestApp checks on
    /// drop); not while the test is failing already, and not for an app this one only drives
    /// (`attach`), whose processes the test stops itself.
    fn drop(&mut self) {
        let runs_the_app = self.task.is_some() || self.deployment.is_some();
        if self.stopped || !runs_the_app || std::thread::panicking() {
            self.shutdown.cancel();
            return;
        }
        let runtime = tokio::runtime::Handle::current();
        assert_eq!(
            runtime.runtime_flavor(),
            tokio::runtime::RuntimeFlavor::MultiThread,
            "call `app.stop().await`: on a current-thread runtime, dropping the app cannot wait \
             for it to stop and check its outboxes"
        );
        tokio::task::block_in_place(|| runtime.block_on(self.stop_and_check()));
    }
}

pub async fn problem(response: Response, status: u16) -> Value {
    assert_eq!(response.status(), status, "status");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "errors are problem+json"
    );
    let body: Value = response.json().await.expect("problem body");
    assert_eq!(body["status"], status);
    assert!(
        body["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("urn:commercex:problem:"))
    );
    assert!(body["title"].is_string() && body["detail"].is_string());
    body
}

/// A loopback port that refuses connections for as long as this lives: bound, so no other
/// test's server can take it (a port freed and reused made a "down" service answer 404),
/// but never listening, so every connection is refused.
pub struct RefusingPort(tokio::net::TcpSocket);

impl RefusingPort {
    pub fn reserve() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.1:0".parse().expect("loopback"))
            .expect("bind");
        Self(socket)
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.0.local_addr().expect("bound address")
    }
}
