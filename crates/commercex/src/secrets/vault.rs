//! Vault's KV v2 API (HashiCorp Vault, OpenBao). The process logs in with a token or as its
//! Kubernetes service account, reads its secret paths once at start-up, and then keeps its
//! token alive for as long as it runs: renewed at two thirds of its lease, and obtained again
//! when it can no longer be renewed (a new Kubernetes login, or the token file read again). It re-reads its paths every
//! `--vault-refresh`; a change is logged and shown as `commercex_vault_secrets_changed` (the
//! new values take effect at the next rolling restart, as with mounted secret files).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;
use vaultrs::client::{Client as _, VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

use crate::cli::{VaultAuth, VaultOptions};

/// How long one Vault call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The wait before trying again after a failed renewal or login.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// How the process proves who it is to Vault.
#[derive(Debug)]
enum Login {
    /// A token given to the process. From a file (Vault Agent's sink, a mounted secret) it is
    /// read again when it cannot be renewed; from the environment it can only be renewed.
    Token { file: Option<PathBuf> },
    /// The service account token, exchanged for a Vault token under `role`.
    Kubernetes {
        mount: String,
        role: String,
        jwt_file: PathBuf,
    },
}

/// A token's lease: how long it lives from now, and whether it can be extended.
#[derive(Debug, Clone, Copy)]
struct Lease {
    ttl: Duration,
    renewable: bool,
}

impl Lease {
    /// Root and periodic-less tokens without a TTL never expire.
    fn expires(&self) -> bool {
        !self.ttl.is_zero()
    }
}

pub struct VaultSession {
    client: RwLock<VaultClient>,
    login: Login,
    kv_mount: String,
    paths: Vec<String>,
    refresh: Duration,
    /// The lease the start-up login got; the keep-alive worker takes it from there.
    initial_lease: Lease,
    /// What the fields read at start-up hash to, to notice a change.
    fingerprint: [u8; 32],
}

impl std::fmt::Debug for VaultSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultSession")
            .field("login", &self.login)
            .field("kv_mount", &self.kv_mount)
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

impl VaultSession {
    /// Logs in as `options` say; `None` when no Vault address is configured.
    pub async fn connect(options: &VaultOptions) -> anyhow::Result<Option<Self>> {
        let Some(address) = &options.vault_addr else {
            return Ok(None);
        };
        reqwest::Url::parse(address)
            .with_context(|| format!("COMMERCEX_VAULT_ADDR: {address:?} is not a URL"))?;
        let login = match options.vault_auth {
            VaultAuth::Token => Login::Token {
                file: options.vault_token_file.clone(),
            },
            VaultAuth::Kubernetes => Login::Kubernetes {
                mount: options.vault_auth_mount.clone(),
                role: options.vault_role.clone().context(
                    "Kubernetes auth needs a role: set COMMERCEX_VAULT_ROLE (--vault-role)",
                )?,
                jwt_file: options.vault_service_account_token_file.clone(),
            },
        };
        let token = match (&login, &options.vault_token) {
            (Login::Token { file: None }, Some(token)) => token.clone(),
            (Login::Token { file: None }, None) => bail!(
                "Vault token auth needs a token: set COMMERCEX_VAULT_TOKEN_FILE \
                 (--vault-token-file), or use COMMERCEX_VAULT_AUTH=kubernetes"
            ),
            // Set by the login below.
            _ => SecretString::from(String::new()),
        };
        let mut settings = VaultClientSettingsBuilder::default();
        settings
            .address(address)
            .token(token.expose_secret())
            .timeout(Some(CALL_TIMEOUT))
            .ca_certs(
                options
                    .vault_ca_file
                    .iter()
                    .map(|path| path.display().to_string())
                    .collect(),
            );
        if let Some(namespace) = &options.vault_namespace {
            settings.set_namespace(namespace.clone());
        }
        let client = VaultClient::new(settings.build().context("Vault client settings")?)
            .context("creating the Vault client")?;
        let mut session = Self {
            client: RwLock::new(client),
            login,
            kv_mount: options.vault_kv_mount.clone(),
            paths: options.vault_secret_paths.clone(),
            refresh: options.vault_refresh,
            initial_lease: Lease {
                ttl: Duration::ZERO,
                renewable: false,
            },
            fingerprint: [0; 32],
        };
        let lease = session
            .log_in()
            .await
            .with_context(|| format!("logging in to Vault at {address}"))?;
        session.initial_lease = lease;
        session.fingerprint = fingerprint(&session.read_fields().await?);
        tracing::info!(
            address,
            ttl_seconds = lease.ttl.as_secs(),
            renewable = lease.renewable,
            "logged in to Vault"
        );
        Ok(Some(session))
    }

    /// A fresh token (Kubernetes), or the given token (from its file again) and its lease.
    async fn log_in(&self) -> anyhow::Result<Lease> {
        match &self.login {
            Login::Token { file } => {
                let mut client = self.client.write().await;
                if let Some(file) = file {
                    client.set_token(platform::secret::read_secret_file(file)?.expose_secret());
                }
                let me = vaultrs::token::lookup_self(&*client)
                    .await
                    .map_err(said)
                    .context("the Vault token was refused")?;
                Ok(Lease {
                    ttl: Duration::from_secs(me.ttl),
                    renewable: me.renewable,
                })
            }
            Login::Kubernetes {
                mount,
                role,
                jwt_file,
            } => {
                // Read each time: the kubelet rotates projected service account tokens.
                let jwt = platform::secret::read_secret_file(jwt_file)?;
                let mut client = self.client.write().await;
                let auth =
                    vaultrs::auth::kubernetes::login(&*client, mount, role, jwt.expose_secret())
                        .await
                        .map_err(said)
                        .with_context(|| format!("Kubernetes login as role {role}"))?;
                client.set_token(&auth.client_token);
                Ok(Lease {
                    ttl: Duration::from_secs(auth.lease_duration),
                    renewable: auth.renewable,
                })
            }
        }
    }

    /// Every field of every path, later paths winning.
    pub async fn read_fields(&self) -> anyhow::Result<BTreeMap<String, SecretString>> {
        let client = self.client.read().await;
        let mut fields = BTreeMap::new();
        for path in &self.paths {
            let entry: BTreeMap<String, String> =
                vaultrs::kv2::read(&*client, &self.kv_mount, path)
                    .await
                    .map_err(said)
                    .with_context(|| format!("reading {}/{path} from Vault", self.kv_mount))?;
            fields.extend(
                entry
                    .into_iter()
                    .map(|(key, value)| (key, SecretString::from(value))),
            );
        }
        Ok(fields)
    }

    /// Keeps the token alive and watches the secrets until `cancel`.
    pub async fn run(&self, cancel: CancellationToken) {
        let mut lease = self.initial_lease;
        let mut leased_at = tokio::time::Instant::now();
        let mut next_refresh = leased_at + self.refresh;
        loop {
            metrics::gauge!("commercex_vault_token_ttl_seconds").set(lease.ttl.as_secs_f64());
            // Renewed at two thirds of the lease: time to try again before it runs out.
            let renewal = lease.expires().then(|| leased_at + lease.ttl * 2 / 3);
            let wake = renewal.map_or(next_refresh, |renewal| renewal.min(next_refresh));
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep_until(wake) => {}
            }
            let now = tokio::time::Instant::now();
            if renewal.is_some_and(|renewal| renewal <= now) {
                lease = self.renew(lease).await;
                leased_at = tokio::time::Instant::now();
            }
            if next_refresh <= now {
                self.check_for_changes().await;
                next_refresh = tokio::time::Instant::now() + self.refresh;
            }
        }
    }

    /// Extends the token's lease, or logs in again when it cannot be extended any more.
    async fn renew(&self, lease: Lease) -> Lease {
        if lease.renewable {
            let renewed = {
                let client = self.client.read().await;
                vaultrs::token::renew_self(&*client, None).await
            };
            match renewed {
                // A lease that did not grow back has hit the token's max TTL.
                Ok(auth) if Duration::from_secs(auth.lease_duration) * 3 > lease.ttl * 2 => {
                    tracing::debug!(ttl_seconds = auth.lease_duration, "renewed the Vault token");
                    return Lease {
                        ttl: Duration::from_secs(auth.lease_duration),
                        renewable: auth.renewable,
                    };
                }
                Ok(auth) => {
                    tracing::info!(
                        ttl_seconds = auth.lease_duration,
                        "the Vault token is near its max TTL"
                    );
                    if !self.can_log_in_again() {
                        return self.token_expiring(Duration::from_secs(auth.lease_duration));
                    }
                }
                Err(error) => {
                    tracing::warn!(error = %said(error), "could not renew the Vault token");
                    if !self.can_log_in_again() {
                        return self.token_expiring(RETRY_AFTER * 3 / 2);
                    }
                }
            }
        } else if !self.can_log_in_again() {
            return self.token_expiring(lease.ttl.max(RETRY_AFTER * 3 / 2));
        }
        match self.log_in().await {
            Ok(lease) => {
                tracing::info!(
                    ttl_seconds = lease.ttl.as_secs(),
                    "logged in to Vault again"
                );
                lease
            }
            Err(error) => {
                tracing::error!(
                    error = format!("{error:#}"),
                    "could not log in to Vault again"
                );
                // Try again after RETRY_AFTER (two thirds of this lease).
                Lease {
                    ttl: RETRY_AFTER * 3 / 2,
                    renewable: false,
                }
            }
        }
    }

    /// Whether a new token can be had without the operator: by a Kubernetes login, or from
    /// the token file that Vault Agent (or a secret) keeps current.
    fn can_log_in_again(&self) -> bool {
        !matches!(self.login, Login::Token { file: None })
    }

    /// A given token that cannot be extended: it will expire, and only the operator can give
    /// a new one. Said loudly; checked again later.
    fn token_expiring(&self, ttl: Duration) -> Lease {
        tracing::error!(
            ttl_seconds = ttl.as_secs(),
            "the Vault token cannot be renewed and will expire: give the process a token file \
             (COMMERCEX_VAULT_TOKEN_FILE) or use Kubernetes auth"
        );
        Lease {
            ttl,
            renewable: true,
        }
    }

    async fn check_for_changes(&self) {
        match self.read_fields().await {
            Ok(fields) => {
                let changed = fingerprint(&fields) != self.fingerprint;
                metrics::gauge!("commercex_vault_secrets_changed")
                    .set(f64::from(u8::from(changed)));
                if changed {
                    tracing::warn!(
                        "the secrets in Vault changed since start-up; a rolling restart applies them"
                    );
                }
            }
            Err(error) => tracing::warn!(
                error = format!("{error:#}"),
                "could not read the secrets from Vault again"
            ),
        }
    }
}

/// A vaultrs error with what Vault said: its own message shows only the status code.
fn said(error: ClientError) -> anyhow::Error {
    match error {
        ClientError::APIError { code, errors } => {
            anyhow::anyhow!("Vault answered {code}: {}", errors.join("; "))
        }
        other => anyhow::Error::new(other),
    }
}

fn fingerprint(fields: &BTreeMap<String, SecretString>) -> [u8; 32] {
    let mut hash = Sha256::new();
    for (key, value) in fields {
        hash.update(key.as_bytes());
        hash.update([0]);
        hash.update(value.expose_secret().as_bytes());
        hash.update([0]);
    }
    hash.finalize().into()
}

/// Help text for the Vault metrics.
pub fn describe() {
    metrics::describe_gauge!(
        "commercex_vault_token_ttl_seconds",
        metrics::Unit::Seconds,
        "Time left on the Vault token's lease when last renewed (0: it does not expire)."
    );
    metrics::describe_gauge!(
        "commercex_vault_secrets_changed",
        "1 when the secrets in Vault differ from those the process started with (a rolling restart applies them)."
    );
}
