//! SQL for users and refresh tokens. One query set for SQLite and PostgreSQL.

mod tokens;
mod users;

pub use tokens::TokenStore;
pub use users::UserStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a user with this email already exists")]
    DuplicateEmail,
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// Kept as the cause (not transparent), so that what decides the answer finds the
    /// `sqlx::Error` in the chain and can tell an unreachable database from a bug.
    #[error("database error")]
    Db(#[from] sqlx::Error),
}
