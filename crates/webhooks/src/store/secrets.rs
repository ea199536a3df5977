//! Endpoints' signing secrets, sealed at rest (`platform::sealing`, under
//! `--webhook-secret-keys-file`): the database holds no secret a reader of it could sign
//! with. Each is sealed for its row (the endpoint's id and its own), so a sealed secret
//! copied into another row does not open.

use secrecy::ExposeSecret;

use super::*;

/// What sealing the secrets at rest found, at start-up.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Resealed {
    /// Secrets sealed again under the current key: stored in the clear before sealing
    /// existed, or sealed under a key that no longer seals.
    pub sealed: u64,
    /// Secrets none of the keys opens (their key is gone): they sign nothing until the
    /// endpoint's secret is rotated or the key given back.
    pub unopenable: u64,
}

impl WebhookStore {
    /// Makes `secret` the endpoint's current one; those in use before keep signing until
    /// `old_until`.
    pub async fn rotate_secret(
        &self,
        endpoint_id: Uuid,
        secret: &SigningSecret,
        old_until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = to_millis(platform::time::now());
        self.db
            .transact("webhooks.rotate_secret", async |tx| {
                sqlx::query(
                    "UPDATE webhook_secrets SET expires_at = $2 WHERE endpoint_id = $1 \
                     AND (expires_at IS NULL OR expires_at > $2)",
                )
                .bind(endpoint_id.to_string())
                .bind(to_millis(old_until))
                .execute(&mut ***tx)
                .await?;
                self.insert_secret(tx, endpoint_id, secret, now).await
            })
            .await
    }

    pub(super) async fn insert_secret(
        &self,
        tx: &mut Tx,
        endpoint_id: Uuid,
        secret: &SigningSecret,
        now: i64,
    ) -> Result<(), StoreError> {
        let id = Uuid::now_v7();
        let sealed = self.seal(secret, endpoint_id, id)?;
        sqlx::query(
            "INSERT INTO webhook_secrets (id, endpoint_id, secret, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id.to_string())
        .bind(endpoint_id.to_string())
        .bind(sealed)
        .bind(now)
        .execute(&mut ***tx)
        .await?;
        Ok(())
    }

    /// The secrets that sign a delivery now, newest first. One that does not open (its key
    /// is not among the keys) is left out and logged: a delivery signed with the others
    /// still verifies, and one with none is not sent (`Sender::send`).
    pub async fn signing_secrets(
        &self,
        endpoint_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<SigningSecret>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, secret FROM webhook_secrets WHERE endpoint_id = $1 \
             AND (expires_at IS NULL OR expires_at > $2) ORDER BY id DESC",
        )
        .bind(endpoint_id.to_string())
        .bind(to_millis(now))
        .fetch_all(self.db.pool())
        .await?;
        let mut secrets = Vec::with_capacity(rows.len());
        for row in &rows {
            let (id, sealed): (Uuid, String) = (uuid(row, "id")?, row.try_get("secret")?);
            secrets.extend(self.open(&sealed, endpoint_id, id)?);
        }
        Ok(secrets)
    }

    /// Seals under the current key every secret that is not: those kept in the clear by a
    /// version before sealing, and those sealed under a key that no longer seals (so that
    /// the old key can be dropped once this has run). Each row is changed only if nobody
    /// changed it meanwhile: instances starting together seal each secret once.
    pub async fn seal_secrets_at_rest(&self) -> Result<Resealed, StoreError> {
        let rows = sqlx::query("SELECT id, endpoint_id, secret FROM webhook_secrets ORDER BY id")
            .fetch_all(self.db.pool())
            .await?;
        let mut found = Resealed::default();
        for row in &rows {
            let stored: String = row.try_get("secret")?;
            if self.secret_keys.sealed_by_current_key(&stored) {
                continue;
            }
            let (id, endpoint_id) = (uuid(row, "id")?, uuid(row, "endpoint_id")?);
            let secret = match SigningSecret::parse(&stored) {
                // Kept in the clear (a `whsec_` secret is never mistaken for a sealed one).
                Ok(secret) => secret,
                Err(_) => match self.open(&stored, endpoint_id, id)? {
                    Some(secret) => secret,
                    None => {
                        found.unopenable += 1;
                        continue;
                    }
                },
            };
            let sealed = self.seal(&secret, endpoint_id, id)?;
            let changed =
                sqlx::query("UPDATE webhook_secrets SET secret = $3 WHERE id = $1 AND secret = $2")
                    .bind(id.to_string())
                    .bind(&stored)
                    .bind(sealed)
                    .execute(self.db.pool())
                    .await?;
            found.sealed += changed.rows_affected();
        }
        Ok(found)
    }
}

impl WebhookStore {
    fn seal(
        &self,
        secret: &SigningSecret,
        endpoint_id: Uuid,
        id: Uuid,
    ) -> Result<String, StoreError> {
        self.secret_keys
            .seal(&secret.expose(), &owner(endpoint_id, id))
            .map_err(|error| StoreError::Sealing(error.to_string()))
    }

    /// The secret `sealed` holds; `None`, logged, when none of the keys opens it.
    fn open(
        &self,
        sealed: &str,
        endpoint_id: Uuid,
        id: Uuid,
    ) -> Result<Option<SigningSecret>, StoreError> {
        match self.secret_keys.open(sealed, &owner(endpoint_id, id)) {
            Ok(text) => SigningSecret::parse(text.expose_secret())
                .map(Some)
                .map_err(|e| StoreError::Corrupt(e.to_string())),
            Err(error) => {
                tracing::error!(
                    %endpoint_id, secret_id = %id, %error,
                    "a webhook signing secret does not open with the webhook secret keys: it \
                     signs nothing until its key is given back or the endpoint's secret is \
                     rotated"
                );
                Ok(None)
            }
        }
    }
}

/// What a secret is sealed for: its endpoint and its row.
fn owner(endpoint_id: Uuid, secret_id: Uuid) -> Vec<u8> {
    format!("webhook-secret/{endpoint_id}/{secret_id}").into_bytes()
}
