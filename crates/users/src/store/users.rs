use platform::auth::Role;
use platform::db::{Db, NewestFirst, is_unique_violation};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use uuid::Uuid;

use super::StoreError;
use crate::domain::{DisplayName, Email, NewUser, User};

#[derive(Debug, Clone)]
pub struct UserStore {
    db: Db,
}

const COLUMNS: &str = "id, email, name, roles, created_at";

impl UserStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub async fn insert(
        &self,
        tx: &mut Transaction<'static, Any>,
        new: &NewUser,
    ) -> Result<User, StoreError> {
        let now = platform::time::now();
        let user = User {
            id: Uuid::now_v7(),
            email: new.email.clone(),
            name: new.name.clone(),
            roles: new.roles.clone(),
            created_at: now,
        };
        let inserted = sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, roles, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(user.id.to_string())
        .bind(user.email.as_str())
        .bind(user.name.as_str())
        .bind(&new.password_hash)
        .bind(roles_text(&user.roles))
        .bind(platform::time::to_millis(now))
        .execute(&mut **tx)
        .await;
        match inserted {
            Err(error) if is_unique_violation(&error) => Err(StoreError::DuplicateEmail),
            Err(error) => Err(error.into()),
            Ok(_) => Ok(user),
        }
    }

    /// The user with this email and their password hash.
    pub async fn find_credentials(
        &self,
        email: &Email,
    ) -> Result<Option<(User, String)>, StoreError> {
        let sql = format!("SELECT {COLUMNS}, password_hash FROM users WHERE email = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(email.as_str())
            .fetch_optional(self.db.pool())
            .await?;
        row.map(|row| Ok((read_user(&row)?, row.try_get("password_hash")?)))
            .transpose()
    }

    pub async fn find(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(self.db.pool())
            .await?;
        row.as_ref().map(read_user).transpose()
    }

    /// Accounts whose email or name contains `words`, and among `ids` when given (any
    /// account without either), newest first, after the account `before`.
    pub async fn search(
        &self,
        words: Option<&str>,
        ids: Option<&[Uuid]>,
        limit: u32,
        before: Option<Uuid>,
    ) -> Result<Vec<User>, StoreError> {
        let mut search = NewestFirst::default();
        if let Some(ids) = ids {
            search.any_of("id", ids.iter().map(Uuid::to_string).collect());
        }
        if let Some(words) = words {
            search.and(
                "(email LIKE {} ESCAPE '\\' OR LOWER(name) LIKE {} ESCAPE '\\')",
                format!("%{}%", escape_like(&words.to_lowercase())),
            );
        }
        let rows = search
            .fetch(&self.db, "users", COLUMNS, limit, before)
            .await?;
        rows.iter().map(read_user).collect()
    }

    pub async fn set_roles(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: Uuid,
        roles: &[Role],
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET roles = $1, updated_at = $2 WHERE id = $3")
            .bind(roles_text(roles))
            .bind(platform::time::to_millis(platform::time::now()))
            .bind(id.to_string())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    pub async fn set_password_hash(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: Uuid,
        hash: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
            .bind(hash)
            .bind(platform::time::to_millis(platform::time::now()))
            .bind(id.to_string())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

/// `text` with LIKE's wildcards and the escape character taken literally.
fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn roles_text(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn read_user(row: &AnyRow) -> Result<User, StoreError> {
    let id: String = row.try_get("id")?;
    let roles: String = row.try_get("roles")?;
    Ok(User {
        id: Uuid::parse_str(&id).map_err(|e| StoreError::Corrupt(format!("user id {id}: {e}")))?,
        email: Email::from_stored(row.try_get("email")?),
        name: DisplayName::from_stored(row.try_get("name")?),
        roles: roles
            .split(',')
            .filter(|r| !r.is_empty())
            .map(|r| Role::parse(r).ok_or_else(|| StoreError::Corrupt(format!("role {r}"))))
            .collect::<Result<_, _>>()?,
        created_at: platform::time::from_millis(row.try_get("created_at")?),
    })
}
