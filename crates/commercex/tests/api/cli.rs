//! The `commercex` binary as an operator runs it.

use std::process::{Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use events::Envelope;
use events::bus::outbox_log::{OutboxLog, Source};
use events::bus::{EventBus, Outgoing};
use events::consumer::{Consumer, ConsumerSettings, EventHandler, HandlerError};
use events::dlq::{DeadLetters, Status};
use platform::db::Tx;
use serde_json::Value;
use testkit::{TestStorage, backend_tests};
use tokio::process::Child;
use tokio_util::sync::CancellationToken;

use crate::helpers::*;

async fn run_cli(args: &[String]) -> Output {
    let output = commercex_command().args(args).stdin(Stdio::null()).output();
    tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .expect("command finishes")
        .expect("command runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Starts `commercex` and waits for the line that says where it listens.
pub(crate) async fn start(args: &[String]) -> (Child, String) {
    start_and_wait_for_address(commercex_command().args(args).stderr(Stdio::inherit())).await
}

pub(crate) async fn signal_and_wait(child: &mut Child, signal: &str) -> std::process::ExitStatus {
    let pid = child.id().expect("running").to_string();
    let killed = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exits after the signal")
        .expect("wait")
}

pub(crate) fn with_storage(
    storage: &TestStorage,
    args: &[&str],
) -> (Vec<String>, Option<tempfile::TempDir>) {
    let (mut all, _, guard) = storage_args(storage);
    all.splice(0..0, args.iter().map(|s| (*s).to_owned()));
    (all, guard)
}

backend_tests! {
    async fn the_binary_serves_and_drains_on_sigterm_and_sigint(storage: TestStorage) {
        let (args, _guard) = with_storage(&storage, &["--listen", "127.0.0.1:0"]);
        for signal in ["-TERM", "-INT"] {
            let (mut child, addr) = start(&args).await;
            let health = reqwest::get(format!("http://{addr}/healthz")).await.expect("GET /healthz");
            assert_eq!(health.status(), 200);
            let status = signal_and_wait(&mut child, signal).await;
            assert!(status.success(), "exit status after {signal}: {status:?}");
        }
    }

    async fn migrate_applies_every_schema(storage: TestStorage) {
        let (args, _guard) = with_storage(&storage, &["migrate"]);
        let output = run_cli(&args).await;
        assert!(output.status.success(), "{}", text(&output.stderr));
        let stdout = text(&output.stdout);
        for schema in SERVICE_SCHEMAS {
            assert!(stdout.contains(&format!("{schema}: migrated")), "{stdout}");
        }
        // Twice is fine: migrations are applied once.
        assert!(run_cli(&args).await.status.success());
    }

    async fn dead_letters_are_listed_shown_and_replayed_from_the_command_line(storage: TestStorage) {
        let store = users::UsersService::open_db(&storage.storage, Default::default()).await.unwrap();
        let users = store.db.clone();
        let bus = Arc::new(OutboxLog::new().with_source("commercex.cli", Source { db: store.db.clone(), outbox: store.outbox.clone() }));
        let handler = Arc::new(Fragile::default());
        let mut settings = ConsumerSettings::new("cli-test", &["commercex.cli"]);
        settings.poll_wait = Duration::from_millis(100);
        let consumer = Consumer::new(users.clone(), bus.clone() as Arc<dyn EventBus>, handler.clone(), settings);
        let cancel = CancellationToken::new();
        let running = tokio::spawn(consumer.run(cancel.clone()));
        let sequencer = events::sequencer::Sequencer::new(store.db.clone(), store.outbox.clone(), Default::default());
        let sequencing = tokio::spawn(sequencer.run(cancel.clone()));
        let poison = Envelope::new("commercex/test", "commercex.cli.poison.v1", "p-1", &serde_json::json!({}));
        bus.publish(&[Outgoing { topic: "commercex.cli".into(), envelope: poison.clone() }]).await.unwrap();
        let dlq = DeadLetters::new(users.clone());
        wait_for("the dead letter", || async { dlq.list_open().await.unwrap().len() == 1 }).await;
        let id = dlq.list_open().await.unwrap()[0].id.clone();

        let (list, _guard) = with_storage(&storage, &["dlq", "list"]);
        let output = run_cli(&list).await;
        assert!(output.status.success(), "{}", text(&output.stderr));
        let listing = text(&output.stdout);
        assert!(listing.contains(&id) && listing.contains("cli-test") && listing.contains("cannot digest"), "{listing}");
        assert!(listing.contains("1 dead letter(s)"));

        let (show, _guard) = with_storage(&storage, &["dlq", "show", &id]);
        let shown: Value = serde_json::from_slice(&run_cli(&show).await.stdout).unwrap();
        assert_eq!(shown["envelope"]["id"], poison.id.to_string());
        assert_eq!(shown["attempts"], 1);

        handler.healed.store(true, Ordering::SeqCst);
        let (replay, _guard) = with_storage(&storage, &["dlq", "replay", &id]);
        let output = run_cli(&replay).await;
        assert!(output.status.success(), "{}", text(&output.stderr));
        wait_for("the replay handled", || async { dlq.get(&id).await.unwrap().status == Status::Replayed }).await;
        assert!(handler.handled.load(Ordering::SeqCst));
        let again = run_cli(&replay).await;
        assert!(!again.status.success(), "a replayed letter cannot be replayed again");
        let (unknown, _guard) = with_storage(&storage, &["dlq", "replay", "no-such-id"]);
        assert!(!run_cli(&unknown).await.status.success());
        cancel.cancel();
        running.await.unwrap();
        sequencing.await.unwrap();
    }

    async fn seed_loads_a_stocked_demo_catalog_once(storage: TestStorage) {
        let (args, guard) = with_storage(&storage, &["seed", "--products", "60"]);
        let output = run_cli(&args).await;
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert!(text(&output.stdout).contains("seeded 60 products (0 already there)"));
        let again = run_cli(&args).await;
        assert!(text(&again.stdout).contains("seeded 0 products (60 already there)"), "{}", text(&again.stdout));
        drop(guard);

        let app = spawn_app(&storage).await;
        let everything = app.walk("limit=100", async || {}).await;
        assert_eq!(everything.len(), 60);
        // Stock went in through inventory; its events bring availability to the catalog.
        wait_for("availability from the seeded stock", || async {
            let page = app.list("in_stock=true&limit=100").await;
            page["items"].as_array().unwrap().len() >= 40
        })
        .await;
        let categories: std::collections::HashSet<String> = app.list("limit=100").await["items"]
            .as_array().unwrap().iter().map(|p| p["category"].as_str().unwrap().to_owned()).collect();
        assert!(categories.len() >= 4, "a varied catalog: {categories:?}");
        app.stop().await;
    }

    async fn admin_create_makes_an_administrator(storage: TestStorage) {
        let dir = tempfile::tempdir().unwrap();
        let password_file = write_file(dir.path(), "pw", "a long admin password\n");
        let (args, guard) = with_storage(
            &storage,
            &["admin", "create", "--email", "ops@example.com", "--password-file", password_file.to_str().unwrap()],
        );
        let output = run_cli(&args).await;
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert!(text(&output.stdout).contains("ops@example.com"));
        drop(guard);
        let app = spawn_app(&storage).await;
        let tokens: Value = app.login("ops@example.com", "a long admin password").await.json().await.unwrap();
        let me: Value = app.get("/api/v1/users/me", tokens["access_token"].as_str()).await.json().await.unwrap();
        assert!(me["roles"].as_array().unwrap().contains(&serde_json::json!("admin")));
        app.stop().await;
    }

    async fn an_account_registered_first_is_promoted_only_with_force_and_loses_its_sessions(storage: TestStorage) {
        let app = spawn_app(&storage).await;
        // Someone registers the future administrator's address before the operator does.
        let (_, squatter_refresh) = app.signed_up("boss@example.com").await;
        let dir = tempfile::tempdir().unwrap();
        let password_file = write_file(dir.path(), "pw", "the real admin password\n");
        let create = |force: bool| {
            let mut args = vec!["admin", "create", "--email", "boss@example.com", "--password-file", password_file.to_str().unwrap()];
            if force {
                args.push("--force");
            }
            with_storage(&storage, &args)
        };
        let (args, guard) = create(false);
        let refused = run_cli(&args).await;
        drop(guard);
        assert!(!refused.status.success(), "promoted without --force");
        assert!(text(&refused.stderr).contains("--force"), "{}", text(&refused.stderr));
        let still: Value = app.post_json("/api/v1/auth/refresh", &serde_json::json!({"refresh_token": squatter_refresh})).await.json().await.unwrap();
        let squatter_refresh = still["refresh_token"].as_str().unwrap().to_owned();
        let me: Value = app.get("/api/v1/users/me", still["access_token"].as_str()).await.json().await.unwrap();
        assert!(!me["roles"].as_array().unwrap().contains(&serde_json::json!("admin")));

        let (args, guard) = create(true);
        let forced = run_cli(&args).await;
        drop(guard);
        assert!(forced.status.success(), "{}", text(&forced.stderr));
        // The session opened before the promotion mints nothing any more.
        problem(app.post_json("/api/v1/auth/refresh", &serde_json::json!({"refresh_token": squatter_refresh})).await, 401).await;
        let tokens: Value = app.login("boss@example.com", "the real admin password").await.json().await.unwrap();
        let me: Value = app.get("/api/v1/users/me", tokens["access_token"].as_str()).await.json().await.unwrap();
        assert!(me["roles"].as_array().unwrap().contains(&serde_json::json!("admin")));
        app.stop().await;
    }
}

#[tokio::test]
async fn the_production_profile_refuses_development_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().display().to_string();
    let output = run_cli(&[
        "--profile".into(),
        "production".into(),
        "--listen".into(),
        "0.0.0.0:0".into(),
        "--data-dir".into(),
        data_dir.clone(),
        "--redis-url".into(),
        "redis://:hunter2@127.0.0.1:6379".into(),
        "--sqlite-synchronous".into(),
        "normal".into(),
        "--rate-limit-per-client".into(),
        "0".into(),
        "--signups-per-client".into(),
        "0".into(),
    ])
    .await;
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("COMMERCEX_REDIS_URL_FILE"), "{stderr}");
    assert!(stderr.contains("COMMERCEX_SQLITE_SYNCHRONOUS"), "{stderr}");
    assert!(
        !stderr.contains("hunter2"),
        "the refusal repeats the password"
    );
    assert!(
        stderr.contains("COMMERCEX_JWT_SIGNING_KEY_FILE"),
        "{stderr}"
    );
    assert!(stderr.contains("COMMERCEX_ALLOW_PLAINTEXT"), "{stderr}");
    assert!(stderr.contains("COMMERCEX_METRICS_LISTEN"), "{stderr}");
    assert!(
        stderr.contains("COMMERCEX_RATE_LIMIT_PER_CLIENT"),
        "{stderr}"
    );
    assert!(stderr.contains("COMMERCEX_SIGNUPS_PER_CLIENT"), "{stderr}");
    assert!(
        stderr.contains("COMMERCEX_PAYMENT_TOKEN_KEYS_FILE"),
        "{stderr}"
    );
    assert!(
        stderr.contains("COMMERCEX_WEB_SESSION_SECRET_FILE"),
        "{stderr}"
    );
    assert!(
        stderr.contains("COMMERCEX_WEBHOOK_SECRET_KEYS_FILE"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("dev-signing-key.pem").exists(),
        "no key was generated"
    );

    // With real keys and metrics apart, it refuses only the sandbox payments, by name.
    let key = platform::auth::SigningKey::generate();
    let key_file = write_file(
        dir.path(),
        "signing.pem",
        secrecy::ExposeSecret::expose_secret(key.to_pkcs8_pem()),
    );
    let payment_token_keys = write_file(
        dir.path(),
        "payment-token-keys",
        &platform::sealing::SealingKeys::generate_line().unwrap(),
    );
    let web_session_secret = write_file(
        dir.path(),
        "web-session-secret",
        "a storefront session secret of more than thirty-two bytes",
    );
    let webhook_secret_keys = write_file(
        dir.path(),
        "webhook-secret-keys",
        &platform::sealing::SealingKeys::generate_line().unwrap(),
    );
    let mut args: Vec<String> = [
        "--profile",
        "production",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
        "--data-dir",
        &data_dir,
        "--jwt-signing-key-file",
        &key_file.display().to_string(),
        "--payment-token-keys-file",
        &payment_token_keys.display().to_string(),
        "--web-session-secret-file",
        &web_session_secret.display().to_string(),
        "--webhook-secret-keys-file",
        &webhook_secret_keys.display().to_string(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let sandbox = run_cli(&args).await;
    assert!(!sandbox.status.success());
    let stderr = text(&sandbox.stderr);
    assert!(
        stderr.contains("COMMERCEX_ALLOW_SANDBOX_PAYMENTS"),
        "{stderr}"
    );
    // Told that the sandbox is meant, it starts.
    args.push("--allow-sandbox-payments".into());
    let (mut child, addr) = start(&args).await;
    let jwks = published_jwks(&addr).await;
    assert_eq!(jwks["keys"][0]["kid"], key.kid());
    assert!(signal_and_wait(&mut child, "-TERM").await.success());
}

#[tokio::test]
async fn flags_beat_environment_beats_config_file_beats_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file_port = testkit::free_port();
    let config = write_file(
        dir.path(),
        "commercex.toml",
        &format!(
            "listen = \"127.0.0.1:{file_port}\"\nmax-body-bytes = 4096\njwt_issuer = \"from-file\"\n"
        ),
    );
    let parse = |extra: &[&str]| {
        let mut args: Vec<std::ffi::OsString> =
            vec!["commercex".into(), "--config".into(), config.clone().into()];
        args.extend(extra.iter().map(Into::into));
        commercex::config_file::parse_cli_from(args)
            .unwrap()
            .options
    };
    let from_file = parse(&[]);
    assert_eq!(from_file.http.listen.port(), file_port);
    assert_eq!(from_file.http.max_body_bytes, 4096);
    assert_eq!(from_file.identity.jwt_issuer, "from-file");
    assert_eq!(
        from_file.identity.jwt_audience, "commercex-api",
        "unset keys keep their defaults"
    );
    assert_eq!(parse(&["--max-body-bytes", "10"]).http.max_body_bytes, 10);

    let data_dir = dir.path().join("data").display().to_string();
    let base = [
        "--config".to_owned(),
        config.display().to_string(),
        "--data-dir".to_owned(),
        data_dir,
    ];
    let (mut child, addr) = start(&base).await;
    assert_eq!(
        addr,
        format!("127.0.0.1:{file_port}"),
        "the file's listen address is used"
    );
    assert!(signal_and_wait(&mut child, "-TERM").await.success());

    let (mut child, addr) = start_and_wait_for_address(
        commercex_command()
            .args(&base)
            .env("COMMERCEX_LISTEN", "127.0.0.1:0")
            .stderr(Stdio::null()),
    )
    .await;
    assert_ne!(
        addr,
        format!("127.0.0.1:{file_port}"),
        "the environment wins over the file"
    );
    assert!(signal_and_wait(&mut child, "-TERM").await.success());

    let bad = write_file(dir.path(), "bad.toml", "no-such-option = 1\n");
    let output = run_cli(&[
        "--config".into(),
        bad.display().to_string(),
        "migrate".into(),
    ])
    .await;
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("no-such-option"));
}

/// Fails permanently until healed.
#[derive(Default)]
struct Fragile {
    healed: AtomicBool,
    handled: AtomicBool,
}

#[async_trait]
impl EventHandler for Fragile {
    fn handles(&self, _: &str) -> bool {
        true
    }

    async fn handle(&self, _: &mut Tx, _: &Envelope) -> Result<(), HandlerError> {
        if !self.healed.load(Ordering::SeqCst) {
            return Err(HandlerError::permanent("cannot digest this event"));
        }
        self.handled.store(true, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test]
async fn probe_passes_only_for_a_healthy_answer() {
    let dir = tempfile::tempdir().unwrap();
    let management = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (mut child, _) = start(&[
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--metrics-listen".into(),
        management.to_string(),
        "--data-dir".into(),
        dir.path().display().to_string(),
    ])
    .await;
    let probe = |url: String| async move { run_cli(&["probe".into(), url]).await };
    let healthy = probe(format!("http://{management}/healthz")).await;
    assert!(healthy.status.success(), "{}", text(&healthy.stderr));
    let ready = probe(format!("http://{management}/readyz")).await;
    assert!(ready.status.success(), "{}", text(&ready.stderr));
    let missing = probe(format!("http://{management}/no-such-page")).await;
    assert!(!missing.status.success());
    assert!(
        text(&missing.stderr).contains("404"),
        "{}",
        text(&missing.stderr)
    );
    assert!(signal_and_wait(&mut child, "-TERM").await.success());
    let gone = probe(format!("http://{management}/healthz")).await;
    assert!(!gone.status.success(), "a stopped process is not healthy");
}

/// A key rotation: the new key signs, the retired one is still published so tokens it signed
/// keep verifying, and an empty retired-key file (a mounted secret between rotations) is no
/// key at all.
#[tokio::test]
async fn retired_signing_keys_stay_in_the_jwks() {
    use secrecy::ExposeSecret;
    let dir = tempfile::tempdir().unwrap();
    let current = platform::auth::SigningKey::generate();
    let previous = platform::auth::SigningKey::generate();
    let current_file = write_file(
        dir.path(),
        "current.pem",
        current.to_pkcs8_pem().expose_secret(),
    );
    let previous_file = write_file(
        dir.path(),
        "previous.pem",
        previous.to_pkcs8_pem().expose_secret(),
    );
    let empty_file = write_file(dir.path(), "empty.pem", "");
    let (mut child, addr) = start(&[
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--data-dir".into(),
        dir.path().display().to_string(),
        "--jwt-signing-key-file".into(),
        current_file.display().to_string(),
        "--jwt-retired-key-files".into(),
        format!("{},{}", previous_file.display(), empty_file.display()),
    ])
    .await;
    let jwks = published_jwks(&addr).await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, [current.kid(), previous.kid()]);
    assert!(signal_and_wait(&mut child, "-TERM").await.success());
}

/// Only the identity service signs tokens: in production the other services start without a
/// signing key (they verify with the identity service's JWKS) and generate none.
#[tokio::test]
async fn in_production_only_the_identity_service_needs_the_signing_key() {
    use secrecy::ExposeSecret;
    let dir = tempfile::tempdir().unwrap();
    let key = platform::auth::SigningKey::generate();
    let key_file = write_file(
        dir.path(),
        "signing.pem",
        key.to_pkcs8_pem().expose_secret(),
    );
    let production = |data: &str| -> Vec<String> {
        [
            "--profile",
            "production",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--data-dir",
            data,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    };
    let users_data = dir.path().join("users").display().to_string();
    let mut users_args = vec!["serve".to_owned(), "users".to_owned()];
    users_args.extend(production(&users_data));
    users_args.extend([
        "--jwt-signing-key-file".into(),
        key_file.display().to_string(),
    ]);
    let (mut users, users_addr) = start(&users_args).await;

    let catalog_data = dir.path().join("catalog");
    let mut catalog_args = vec!["serve".to_owned(), "catalog".to_owned()];
    catalog_args.extend(production(&catalog_data.display().to_string()));
    catalog_args.extend(["--users-url".into(), format!("http://{users_addr}")]);
    let (mut catalog, catalog_addr) = start(&catalog_args).await;
    let ready = reqwest::get(format!("http://{catalog_addr}/readyz"))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert!(
        !catalog_data.join("dev-signing-key.pem").exists(),
        "the catalog made a signing key of its own"
    );
    for child in [&mut catalog, &mut users] {
        assert!(signal_and_wait(child, "-TERM").await.success());
    }
}
