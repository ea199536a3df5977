//! Secrets a process reads from a secret store, for what the command line, the environment
//! and the `*_FILE` settings leave unset. The store is Vault's (or OpenBao's) KV v2 API; see
//! [`vault`]. Precedence per secret: flag or environment value > its `*_FILE` > the store.

pub mod vault;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use crate::cli::Options;

/// A secret the store may hold: the field's name in the KV entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// `postgres://...`, as `COMMERCEX_DATABASE_URL`.
    DatabaseUrl,
    /// `redis://...`, as `COMMERCEX_REDIS_URL`.
    RedisUrl,
    /// The first administrator's password.
    AdminPassword,
    /// The Ed25519 key (PKCS#8 PEM) that signs access tokens.
    JwtSigningKey,
    /// Retired signing keys still published in the JWKS: PEM blocks one after the other.
    JwtRetiredKeys,
    /// librdkafka properties with credentials (`sasl.password=...`), one `key=value` a line.
    KafkaOptions,
    /// The keys that seal payment tokens (`platform::sealing`): base64, one per line.
    PaymentTokenKeys,
    /// The secret the storefront's session cookie is encrypted under.
    WebSessionSecret,
    /// The keys that seal webhook signing secrets at rest (`platform::sealing`).
    WebhookSecretKeys,
}

impl Field {
    pub const ALL: [Field; 9] = [
        Field::DatabaseUrl,
        Field::RedisUrl,
        Field::AdminPassword,
        Field::JwtSigningKey,
        Field::JwtRetiredKeys,
        Field::KafkaOptions,
        Field::PaymentTokenKeys,
        Field::WebSessionSecret,
        Field::WebhookSecretKeys,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Field::DatabaseUrl => "database_url",
            Field::RedisUrl => "redis_url",
            Field::AdminPassword => "admin_password",
            Field::JwtSigningKey => "jwt_signing_key",
            Field::JwtRetiredKeys => "jwt_retired_keys",
            Field::KafkaOptions => "kafka_options",
            Field::PaymentTokenKeys => "payment_token_keys",
            Field::WebSessionSecret => "web_session_secret",
            Field::WebhookSecretKeys => "webhook_secret_keys",
        }
    }

    fn from_key(key: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|field| field.key() == key)
    }
}

/// What the secret store gave at start-up, and the session that keeps its login alive.
#[derive(Debug, Default)]
pub struct StoredSecrets {
    values: HashMap<Field, SecretString>,
    session: Option<Arc<vault::VaultSession>>,
}

impl StoredSecrets {
    /// Logs in to Vault and reads the configured paths; nothing when no Vault is configured.
    pub async fn fetch(options: &Options) -> anyhow::Result<Self> {
        let Some(session) = vault::VaultSession::connect(&options.vault).await? else {
            return Ok(Self::default());
        };
        let fields = session.read_fields().await?;
        let mut values = HashMap::new();
        for (key, value) in fields {
            match Field::from_key(&key) {
                Some(field) => {
                    values.insert(field, value);
                }
                None => tracing::warn!(field = key, "ignoring an unknown field in Vault"),
            }
        }
        tracing::info!(
            fields = ?values.keys().map(|f| f.key()).collect::<Vec<_>>(),
            "read secrets from Vault"
        );
        Ok(Self {
            values,
            session: Some(Arc::new(session)),
        })
    }

    /// Secrets as if the store held `values` (tests of what reads them).
    #[cfg(test)]
    pub(crate) fn holding(values: impl IntoIterator<Item = (Field, &'static str)>) -> Self {
        Self {
            values: values
                .into_iter()
                .map(|(field, value)| (field, SecretString::from(value.to_owned())))
                .collect(),
            session: None,
        }
    }

    pub fn get(&self, field: Field) -> Option<&SecretString> {
        self.values.get(&field)
    }

    /// The Vault session, for the worker that renews its token and watches for changes.
    pub fn session(&self) -> Option<Arc<vault::VaultSession>> {
        self.session.clone()
    }

    /// A secret given as a value (flag or environment), else in a file, else in the store.
    pub fn resolve(
        &self,
        given: Option<&SecretString>,
        file: Option<&PathBuf>,
        field: Field,
    ) -> anyhow::Result<Option<SecretString>> {
        if let Some(value) = given {
            return Ok(Some(value.clone()));
        }
        if let Some(file) = file {
            return Ok(Some(platform::secret::read_secret_file(file)?));
        }
        Ok(self.get(field).cloned())
    }
}

/// The PEM blocks in `text`, each from its `-----BEGIN` line to its `-----END` line.
pub fn pem_blocks(text: &SecretString) -> Vec<SecretString> {
    let mut blocks = Vec::new();
    let mut current = String::new();
    for line in text.expose_secret().lines() {
        if line.starts_with("-----BEGIN") {
            current.clear();
        }
        current.push_str(line);
        current.push('\n');
        if line.starts_with("-----END") {
            blocks.push(SecretString::from(std::mem::take(&mut current)));
        }
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> SecretString {
        SecretString::from(text.to_owned())
    }

    #[test]
    fn a_given_value_beats_its_file_which_beats_the_store() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("url");
        std::fs::write(&file, "postgres://from-file\n").expect("write");
        let mut stored = StoredSecrets::default();
        stored
            .values
            .insert(Field::DatabaseUrl, secret("postgres://from-vault"));
        let resolve = |given: Option<&SecretString>, file: Option<&PathBuf>| {
            stored
                .resolve(given, file, Field::DatabaseUrl)
                .expect("resolve")
                .map(|s| s.expose_secret().to_owned())
        };
        let given = secret("postgres://given");
        assert_eq!(
            resolve(Some(&given), Some(&file)).as_deref(),
            Some("postgres://given")
        );
        assert_eq!(
            resolve(None, Some(&file)).as_deref(),
            Some("postgres://from-file")
        );
        assert_eq!(
            resolve(None, None).as_deref(),
            Some("postgres://from-vault")
        );
        assert_eq!(
            StoredSecrets::default()
                .resolve(None, None, Field::DatabaseUrl)
                .expect("resolve")
                .map(|s| s.expose_secret().to_owned()),
            None
        );
    }

    #[test]
    fn pem_blocks_are_split_one_by_one() {
        let text = secret(
            "-----BEGIN PRIVATE KEY-----\nAAA\n-----END PRIVATE KEY-----\n\
             \n-----BEGIN PRIVATE KEY-----\nBBB\n-----END PRIVATE KEY-----",
        );
        let blocks: Vec<String> = pem_blocks(&text)
            .iter()
            .map(|b| b.expose_secret().to_owned())
            .collect();
        assert_eq!(
            blocks,
            [
                "-----BEGIN PRIVATE KEY-----\nAAA\n-----END PRIVATE KEY-----\n",
                "-----BEGIN PRIVATE KEY-----\nBBB\n-----END PRIVATE KEY-----\n"
            ]
        );
    }

    #[test]
    fn every_field_has_its_own_key() {
        for field in Field::ALL {
            assert_eq!(Field::from_key(field.key()), Some(field));
        }
    }
}
