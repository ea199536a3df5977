//! One way to start CommerceX for a test: the real application on a random port with its
//! own fresh storage, driven over real HTTP.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use commercex::app::Application;
use commercex::settings::{NeededKeys, Settings};
use platform::db::{Db, PoolSettings, Storage};
use reqwest::{Client, Response};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use testkit::TestStorage;

use crate::deployment::{Deployment, Layout};
pub use testkit::wait_for;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const PASSWORD: &str = "correct horse battery staple";
pub const SERVICE_SCHEMAS: [&str; 5] = ["users", "catalog", "inventory", "orders", "payments"];

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: Client,
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
    TestApp {
        addr,
        client: test_client(),
        data_dir,
        storage: storage.storage.clone(),
        shutdown,
        task: Some(task),
        deployment: None,
        databases,
        stopped: false,
        _data_dir_guard: guard,
    }
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
        TestApp {
            addr,
            client: test_client(),
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

    pub async fn register(&self, email: &str) -> Value {
        let response = self
            .post_json(
                "/api/v1/auth/register",
                &json!({"email": email, "password": PASSWORD, "name": "Test User"}),
            )
            .await;
        assert_eq!(response.status(), 201, "register {email}");
        response.json().await.expect("user json")
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/api/v1/auth/login",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    /// Registers `email` and logs in: (access token, refresh token).
    pub async fn signed_up(&self, email: &str) -> (String, String) {
        self.register(email).await;
        let response = self.login(email, PASSWORD).await;
        assert_eq!(response.status(), 200);
        let tokens: Value = response.json().await.expect("tokens");
        (
            tokens["access_token"].as_str().expect("access").to_owned(),
            tokens["refresh_token"]
                .as_str()
                .expect("refresh")
                .to_owned(),
        )
    }

    /// An access token of the configured administrator.
    pub async fn admin_token(&self) -> String {
        let response = self.login(ADMIN_EMAIL, PASSWORD).await;
        assert_eq!(response.status(), 200, "admin login");
        let tokens: Value = response.json().await.expect("tokens");
        tokens["access_token"].as_str().expect("access").to_owned()
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

    /// A connection to one of the app's databases, for assertions on what it stored.
    pub async fn database(&self, schema: &str) -> Db {
        let settings = PoolSettings {
            max_connections: 2,
            ..PoolSettings::default()
        };
        self.storage
            .open(schema, settings)
            .await
            .expect("open database")
    }

    /// The envelopes published about `key` (an aggregate id), in publication order per
    /// topic, from whichever bus the app runs on (the in-database bus: the services'
    /// outboxes, rows that are in the log).
    pub async fn published(&self, key: &str) -> Vec<Value> {
        match &self.deployment {
            Some(deployment) => published_on_kafka(deployment, key).await,
            None => {
                let mut rows: Vec<String> = Vec::new();
                for schema in SERVICE_SCHEMAS {
                    let db = self.database(schema).await;
                    rows.extend(
                        sqlx::query_scalar::<_, String>(
                            "SELECT envelope FROM outbox WHERE event_key = $1 \
                             AND published_at IS NOT NULL ORDER BY seq",
                        )
                        .bind(key)
                        .fetch_all(db.pool())
                        .await
                        .expect("read an outbox"),
                    );
                    db.close().await;
                }
                rows.iter()
                    .map(|row| serde_json::from_str(row).expect("envelope json"))
                    .collect()
            }
        }
    }

    /// Publishes `envelope` on `topic` of the app's bus, as a faulty or hostile producer
    /// would.
    pub async fn inject(&self, topic: &str, envelope: events::Envelope) {
        use events::bus::{EventBus, Outgoing};
        let outgoing = [Outgoing {
            topic: topic.to_owned(),
            envelope,
        }];
        match &self.deployment {
            Some(deployment) => kafka_bus(deployment).publish(&outgoing).await,
            None => {
                // Into the producer's outbox, as a second instance of it would write: the
                // running app reads it at its next poll.
                let schema = topic.strip_prefix("commercex.").expect("a CommerceX topic");
                let db = self.database(schema).await;
                let handoff = match db.backend() {
                    platform::db::Backend::Sqlite => events::outbox::Handoff::InPlace,
                    platform::db::Backend::Postgres => events::outbox::Handoff::Sequenced,
                };
                let source = events::bus::outbox_log::Source {
                    db: db.clone(),
                    outbox: events::outbox::Outbox::new(handoff),
                };
                let published = events::bus::outbox_log::OutboxLog::new()
                    .with_source(topic, source)
                    .publish(&outgoing)
                    .await;
                db.close().await;
                published
            }
        }
        .expect("publish");
    }

    /// The app's metrics in the Prometheus text format, from `base` (its own address in the
    /// embedded runtime, a management address otherwise).
    pub async fn metrics_of(&self, base: &str) -> String {
        let response = self
            .client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain; version=0.0.4")
        );
        response.text().await.unwrap()
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

/// A client of the deployment's Kafka, with its topic prefix.
fn kafka_bus(deployment: &Deployment) -> events::bus::kafka::KafkaBus {
    use events::bus::kafka::{KafkaBus, KafkaConfig, TopicSettings};
    KafkaBus::connect(KafkaConfig {
        brokers: deployment.kafka_brokers.clone(),
        topic_prefix: deployment.kafka_prefix.clone(),
        client_options: Vec::new(),
        producer_options: Vec::new(),
        create_topics: true,
        topics: TopicSettings {
            partitions: 3,
            replication_factor: 1,
            min_insync_replicas: 1,
        },
    })
    .expect("kafka client")
}

/// Reads every event topic from the start with a throwaway consumer group.
async fn published_on_kafka(deployment: &Deployment, key: &str) -> Vec<Value> {
    use events::bus::EventBus;
    let bus = kafka_bus(deployment);
    let topics: Vec<String> = events::contract::TOPICS
        .iter()
        .map(|t| (*t).to_owned())
        .collect();
    let group = format!("reader-{}", uuid::Uuid::new_v4().simple());
    let mut subscription = bus
        .subscribe(&group, &topics, &Default::default())
        .await
        .expect("subscribe");
    let mut found = Vec::new();
    // Joining the group takes a moment; then the topics are read until they go quiet.
    let mut wait = Duration::from_secs(10);
    loop {
        let batch = subscription.poll(500, wait).await.expect("poll");
        if batch.is_empty() {
            break;
        }
        wait = Duration::from_secs(1);
        found.extend(
            batch
                .into_iter()
                .filter(|delivery| delivery.envelope.subject == key)
                .map(|delivery| serde_json::to_value(&delivery.envelope).expect("envelope")),
        );
    }
    found
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

/// The `commercex` binary, with no inherited `COMMERCEX_*` settings.
pub fn commercex_command() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_commercex"));
    for (key, _) in std::env::vars() {
        if key.starts_with("COMMERCEX_") {
            command.env_remove(key);
        }
    }
    command.kill_on_drop(true);
    command
}

/// The address (`host:port`) a server logs when it is up, if `line` is that line. Servers log
/// to stdout, pretty or JSON, so the line is found among the others.
pub fn announced_address(line: &str) -> Option<String> {
    let rest = line.split_once("CommerceX listening on ")?.1;
    let url: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"')
        .collect();
    url.split_once("://").map(|(_, addr)| addr.to_owned())
}

/// Starts `command` with stdout piped and waits for the address it announces; stdout keeps
/// being drained so the child never blocks on a full pipe.
pub async fn start_and_wait_for_address(
    command: &mut tokio::process::Command,
) -> (tokio::process::Child, String) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start commercex");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            if let Some(addr) = announced_address(&line) {
                return addr;
            }
        }
        panic!("commercex exited without announcing its address")
    })
    .await
    .expect("commercex announces itself");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

/// The JWKS the process at `addr` (`host:port`, plain HTTP) publishes.
pub async fn published_jwks(addr: &str) -> Value {
    reqwest::get(format!("http://{addr}/.well-known/jwks.json"))
        .await
        .expect("GET the JWKS")
        .json()
        .await
        .expect("a JWKS")
}

pub fn write_file(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write file");
    path
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

/// The value of the first series of `name` whose labels include every one of `labels`.
pub fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}
