//! Request and response bodies, and their parsing into domain types.

use platform::auth::Role;
use platform::{ApiError, FieldError};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::app::{Registration, TokenPair};
use crate::domain::{DisplayName, Email, Password, User};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    #[schema(example = "ada@example.com")]
    pub email: String,
    /// 12 to 128 characters.
    #[schema(value_type = String, example = "correct horse battery staple")]
    pub password: SecretString,
    #[schema(example = "Ada Lovelace")]
    pub name: String,
}

impl RegisterRequest {
    /// Every field is checked, and every problem reported at once.
    pub fn parse(self) -> Result<Registration, ApiError> {
        use secrecy::ExposeSecret;
        let email = Email::parse(&self.email);
        let password = Password::parse(self.password.expose_secret());
        let name = DisplayName::parse(&self.name);
        match (email, password, name) {
            (Ok(email), Ok(password), Ok(name)) => Ok(Registration {
                email,
                password,
                name,
            }),
            (email, password, name) => {
                let errors = [
                    ("/email", email.err()),
                    ("/password", password.err()),
                    ("/name", name.err()),
                ]
                .into_iter()
                .filter_map(|(field, error)| error.map(|e| FieldError::new(field, "invalid", e)))
                .collect();
                Err(ApiError::Validation(errors))
            }
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    #[schema(value_type = String)]
    pub password: SecretString,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    #[schema(value_type = String)]
    pub refresh_token: SecretString,
}

/// An administrator's search of the accounts.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AccountSearch {
    /// Words in the email or the name (case ignored).
    pub q: Option<String>,
    /// Only these accounts: user ids, comma-separated (100 at most).
    pub ids: Option<String>,
    /// 1 to 100, default 20.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

/// An account search, read.
pub struct Search<'a> {
    pub words: Option<&'a str>,
    pub ids: Option<Vec<Uuid>>,
    pub limit: u32,
}

impl AccountSearch {
    pub fn parse(&self) -> Result<Search<'_>, ApiError> {
        let words = self.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
        if words.is_some_and(|q| q.chars().count() > 100) {
            return Err(ApiError::validation(
                "q",
                "invalid",
                "q is 100 characters at most",
            ));
        }
        let ids = self.ids.as_deref().map(parse_ids).transpose()?;
        match self.limit.unwrap_or(20) {
            limit @ 1..=100 => Ok(Search { words, ids, limit }),
            _ => Err(ApiError::validation(
                "limit",
                "invalid",
                "limit must be between 1 and 100",
            )),
        }
    }
}

/// Up to 100 comma-separated user ids.
fn parse_ids(text: &str) -> Result<Vec<Uuid>, ApiError> {
    text.split(',')
        .map(|id| Uuid::parse_str(id.trim()))
        .collect::<Result<Vec<_>, _>>()
        .ok()
        .filter(|ids| ids.len() <= 100)
        .ok_or_else(|| {
            ApiError::validation(
                "ids",
                "invalid",
                "ids are up to 100 user ids, comma-separated",
            )
        })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountPage {
    /// Newest first.
    pub items: Vec<UserResponse>,
    pub next_cursor: Option<Uuid>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminRoleRequest {
    /// Whether the account is an administrator.
    pub admin: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub roles: Vec<Role>,
}

impl From<User> for UserResponse {
    fn from(user: User) -> Self {
        Self {
            id: user.id,
            email: user.email.as_str().to_owned(),
            name: user.name.as_str().to_owned(),
            roles: user.roles,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

impl From<TokenPair> for TokenResponse {
    fn from(pair: TokenPair) -> Self {
        Self {
            access_token: pair.access_token,
            refresh_token: pair.refresh_token.expose().to_owned(),
            token_type: "Bearer",
            expires_in: pair.expires_in,
        }
    }
}
