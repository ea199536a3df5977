use chrono::{DateTime, Utc};
use sqlx::{Any, Row, Transaction};
use uuid::Uuid;

use super::StoreError;
use crate::domain::{RefreshTokenHash, StoredRefreshToken};

use platform::time::{from_millis, to_millis};

/// Refresh tokens and their families. Every method runs inside the caller's transaction, so a
/// rotation (mark old, insert new) is atomic.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenStore;

impl TokenStore {
    pub async fn create_family(
        &self,
        tx: &mut Transaction<'static, Any>,
        user_id: Uuid,
    ) -> Result<Uuid, StoreError> {
        let family = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO refresh_token_families (id, user_id, created_at) VALUES ($1, $2, $3)",
        )
        .bind(family.to_string())
        .bind(user_id.to_string())
        .bind(to_millis(platform::time::now()))
        .execute(&mut **tx)
        .await?;
        Ok(family)
    }

    pub async fn insert(
        &self,
        tx: &mut Transaction<'static, Any>,
        family: Uuid,
        hash: &RefreshTokenHash,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO refresh_tokens (token_hash, family_id, issued_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(&hash.0)
            .bind(family.to_string())
            .bind(to_millis(platform::time::now()))
            .bind(to_millis(expires_at))
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    pub async fn find(
        &self,
        tx: &mut Transaction<'static, Any>,
        hash: &RefreshTokenHash,
    ) -> Result<Option<StoredRefreshToken>, StoreError> {
        let row = sqlx::query(
            "SELECT t.family_id, f.user_id, f.created_at, t.expires_at, t.rotated_at, f.revoked_at \
             FROM refresh_tokens t JOIN refresh_token_families f ON f.id = t.family_id \
             WHERE t.token_hash = $1",
        )
        .bind(&hash.0)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let uuid = |column: &str| -> Result<Uuid, StoreError> {
            let text: String = row.try_get(column)?;
            Uuid::parse_str(&text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
        };
        Ok(Some(StoredRefreshToken {
            family_id: uuid("family_id")?,
            family_began: from_millis(row.try_get("created_at")?),
            user_id: uuid("user_id")?,
            expires_at: from_millis(row.try_get("expires_at")?),
            rotated_at: row
                .try_get::<Option<i64>, _>("rotated_at")?
                .map(from_millis),
            family_revoked: row.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
        }))
    }

    /// Marks the token used. `false` if another request rotated it first.
    pub async fn mark_rotated(
        &self,
        tx: &mut Transaction<'static, Any>,
        hash: &RefreshTokenHash,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE refresh_tokens SET rotated_at = $1 WHERE token_hash = $2 AND rotated_at IS NULL")
            .bind(to_millis(platform::time::now()))
            .bind(&hash.0)
            .execute(&mut **tx)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends every session of `user_id`: what a change of roles or password must do, so that
    /// no refresh token issued before it mints access tokens after it.
    pub async fn revoke_user_families(
        &self,
        tx: &mut Transaction<'static, Any>,
        user_id: Uuid,
        reason: &str,
    ) -> Result<u64, StoreError> {
        revoke_where(tx, Families::OfUser, user_id, reason).await
    }

    pub async fn revoke_family(
        &self,
        tx: &mut Transaction<'static, Any>,
        family: Uuid,
        reason: &str,
    ) -> Result<(), StoreError> {
        revoke_where(tx, Families::One, family, reason).await?;
        Ok(())
    }
}

/// Which families a revocation ends: the one with an id, or every one of a user.
enum Families {
    One,
    OfUser,
}

/// Revokes the families still open that `which` and `id` name; how many.
async fn revoke_where(
    tx: &mut Transaction<'static, Any>,
    which: Families,
    id: Uuid,
    reason: &str,
) -> Result<u64, StoreError> {
    let sql = match which {
        Families::One => {
            "UPDATE refresh_token_families SET revoked_at = $1, revoked_reason = $2 \
             WHERE id = $3 AND revoked_at IS NULL"
        }
        Families::OfUser => {
            "UPDATE refresh_token_families SET revoked_at = $1, revoked_reason = $2 \
             WHERE user_id = $3 AND revoked_at IS NULL"
        }
    };
    let done = sqlx::query(sql)
        .bind(to_millis(platform::time::now()))
        .bind(reason)
        .bind(id.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected())
}
