use chrono::{DateTime, Utc};
use platform::auth::Role;
use uuid::Uuid;

use super::{DisplayName, Email};

#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub email: Email,
    pub name: DisplayName,
    pub roles: Vec<Role>,
    pub created_at: DateTime<Utc>,
}

/// A registration that passed validation; the password is already hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: Email,
    pub name: DisplayName,
    pub password_hash: String,
    pub roles: Vec<Role>,
}
