//! The identity use cases: register, log in, refresh, log out, bootstrap an admin. Each one
//! commits fully or not at all; events leave through the outbox.

use std::sync::Arc;

use events::Envelope;
use events::contract::EventKind;
use events::contract::users::UserRegisteredV1;
use events::outbox::Outbox;
use platform::auth::Role;
use platform::db::Db;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::domain::{DisplayName, Email, NewUser, Password, RefreshToken, RefreshVerdict, User};
use crate::passwords;
use crate::store::{StoreError, TokenStore, UserStore};
use crate::throttle::{AttemptThrottle, Subject, ThrottlePolicy};
use crate::tokens::TokenIssuer;

pub const SOURCE: &str = "commercex/users";

/// Whether [`Identity::ensure_admin`] may make an existing non-admin account an administrator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Promotion {
    /// Only an existing administrator's password is set; any other account is refused.
    AdminsOnly,
    /// An existing account is made an administrator (the operator said so: `--force`).
    Allowed,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("a user with this email already exists")]
    DuplicateEmail,
    #[error("the email or password is wrong")]
    BadCredentials,
    #[error("too many failed logins")]
    Throttled(std::time::Duration),
    #[error("the refresh token is invalid, expired or revoked")]
    BadRefreshToken,
    #[error("user not found")]
    UnknownUser,
    /// An administrator asked about an account that does not exist.
    #[error("no such account")]
    NoSuchAccount,
    /// An administrator tried to take away their own role: the platform could be left
    /// without one.
    #[error("administrators cannot take away their own administrator role")]
    OwnAdminRole,
    /// The account exists and is not an administrator; promoting it was not asked for.
    #[error(
        "an account with this email exists and is not an administrator; promoting it needs \
         `commercex admin create --force` (which ends its sessions)"
    )]
    NotAnAdmin,
    /// Every core is hashing passwords and the queue behind them is full.
    #[error("too many passwords are being checked at once")]
    Busy,
    /// A fault of ours (database, hashing, signing), with its cause.
    #[error("internal error")]
    Internal(#[source] platform::BoxError),
}

impl IdentityError {
    fn internal(error: impl Into<platform::BoxError>) -> Self {
        Self::Internal(error.into())
    }
}

impl From<passwords::HashError> for IdentityError {
    fn from(error: passwords::HashError) -> Self {
        match error {
            passwords::HashError::Busy => Self::Busy,
            failed @ passwords::HashError::Failed(_) => Self::internal(failed),
        }
    }
}

impl From<StoreError> for IdentityError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::DuplicateEmail => Self::DuplicateEmail,
            other => Self::internal(other),
        }
    }
}

impl From<sqlx::Error> for IdentityError {
    fn from(error: sqlx::Error) -> Self {
        Self::internal(error)
    }
}

/// A fresh access + refresh token pair.
#[derive(Debug)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: RefreshToken,
    pub expires_in: u64,
}

pub struct Registration {
    pub email: Email,
    pub password: Password,
    pub name: DisplayName,
}

pub struct Identity {
    db: Db,
    outbox: Outbox,
    users: UserStore,
    tokens: TokenStore,
    issuer: Arc<TokenIssuer>,
    throttle: Arc<dyn AttemptThrottle>,
    policy: ThrottlePolicy,
}

impl Identity {
    pub fn new(
        db: Db,
        outbox: Outbox,
        issuer: Arc<TokenIssuer>,
        throttle: Arc<dyn AttemptThrottle>,
        policy: ThrottlePolicy,
    ) -> Self {
        Self {
            users: UserStore::new(db.clone()),
            tokens: TokenStore,
            db,
            outbox,
            issuer,
            throttle,
            policy,
        }
    }

    pub fn issuer(&self) -> &TokenIssuer {
        &self.issuer
    }

    pub async fn register(
        &self,
        registration: Registration,
        roles: Vec<Role>,
    ) -> Result<User, IdentityError> {
        let password_hash = passwords::hash(&registration.password).await?;
        let new = NewUser {
            email: registration.email,
            name: registration.name,
            password_hash,
            roles,
        };
        let mut tx = self.db.begin_as("register user").await?;
        let user = self.users.insert(&mut tx, &new).await?;
        let event = UserRegisteredV1 {
            user_id: user.id,
            email: user.email.as_str().to_owned(),
            name: user.name.as_str().to_owned(),
            roles: user.roles.iter().map(|r| r.as_str().to_owned()).collect(),
        };
        let envelope = Envelope::of(SOURCE, user.id.to_string(), &event);
        self.outbox
            .enqueue(&mut tx, UserRegisteredV1::TOPIC, &envelope)
            .await?;
        tx.commit().await?;
        tracing::info!(user_id = %user.id, "user registered");
        Ok(user)
    }

    /// A customer's own sign-up, counted against the client address it came from.
    pub async fn sign_up(
        &self,
        registration: Registration,
        client: Option<String>,
    ) -> Result<User, IdentityError> {
        // Counted before the (costly) password hash, and whatever the outcome: a refused
        // duplicate tells an address prober as much as a new account does.
        self.throttle
            .charge(&self.policy.registration_subjects(client.as_deref()))
            .await
            .map_err(IdentityError::Throttled)?;
        self.register(registration, vec![Role::Customer]).await
    }

    /// Checks credentials. The attempt is charged to the account, the client address and the
    /// pair before the password is verified, and given back if it was right.
    pub async fn login(
        &self,
        email: &str,
        password: SecretString,
        client: Option<String>,
    ) -> Result<TokenPair, IdentityError> {
        // Charged on what was typed, even when it is not a valid email, so probing with
        // malformed addresses is limited too.
        let subjects = self.policy.login_subjects(email, client.as_deref());
        self.throttle
            .charge(&subjects)
            .await
            .map_err(IdentityError::Throttled)?;
        let verified = self.verify(email, password).await;
        let user = match verified {
            Ok(Some(user)) => user,
            Ok(None) => return Err(IdentityError::BadCredentials),
            Err(error) => {
                // Nothing was learnt about the password.
                self.throttle.refund(&subjects).await;
                return Err(error);
            }
        };
        self.throttle.refund(&subjects).await;
        // The right password from this address wipes its slate with the account.
        for pair in subjects
            .iter()
            .filter(|subject| matches!(subject, Subject::AccountFromClient { .. }))
        {
            self.throttle.forgive(pair).await;
        }

        let mut tx = self.db.begin_as("log in").await?;
        let family = self.tokens.create_family(&mut tx, user.id).await?;
        let pair = self
            .issue(&mut tx, &user, family, platform::time::now())
            .await?;
        tx.commit().await?;
        Ok(pair)
    }

    /// The user whose password `password` is, if `email` names one.
    async fn verify(
        &self,
        email: &str,
        password: SecretString,
    ) -> Result<Option<User>, IdentityError> {
        let found = match Email::parse(email) {
            Ok(email) => self.users.find_credentials(&email).await?,
            Err(_) => None,
        };
        let (user, hash) = match found {
            Some((user, hash)) => (Some(user), Some(hash)),
            None => (None, None),
        };
        // Verified against a dummy hash when there is no account, so the answer takes as
        // long either way.
        let matches = passwords::verify(password.expose_secret().to_owned(), hash).await?;
        Ok(user.filter(|_| matches))
    }

    /// Rotates a refresh token. Presenting one that was already rotated revokes its family.
    pub async fn refresh(&self, presented: &str) -> Result<TokenPair, IdentityError> {
        let token = RefreshToken::parse(presented).ok_or(IdentityError::BadRefreshToken)?;
        let hash = token.hash();
        let mut tx = self.db.begin_as("refresh session").await?;
        let stored = self
            .tokens
            .find(&mut tx, &hash)
            .await?
            .ok_or(IdentityError::BadRefreshToken)?;
        match stored.judge(platform::time::now()) {
            RefreshVerdict::Rotate => {}
            RefreshVerdict::Reused => {
                self.tokens
                    .revoke_family(&mut tx, stored.family_id, "refresh token reuse")
                    .await?;
                tx.commit().await?;
                tracing::warn!(user_id = %stored.user_id, family = %stored.family_id, "refresh token reused; session revoked");
                return Err(IdentityError::BadRefreshToken);
            }
            RefreshVerdict::Expired | RefreshVerdict::Revoked => {
                return Err(IdentityError::BadRefreshToken);
            }
        }
        if !self.tokens.mark_rotated(&mut tx, &hash).await? {
            // Lost a race with a concurrent refresh of the same token: that is reuse too.
            self.tokens
                .revoke_family(&mut tx, stored.family_id, "refresh token reuse")
                .await?;
            tx.commit().await?;
            return Err(IdentityError::BadRefreshToken);
        }
        let user = self
            .users
            .find(stored.user_id)
            .await?
            .ok_or(IdentityError::BadRefreshToken)?;
        let pair = self
            .issue(&mut tx, &user, stored.family_id, stored.family_began)
            .await?;
        tx.commit().await?;
        Ok(pair)
    }

    /// Ends the session the refresh token belongs to. Unknown tokens are ignored, so logout
    /// reveals nothing about token validity.
    pub async fn logout(&self, presented: &str) -> Result<(), IdentityError> {
        let Some(token) = RefreshToken::parse(presented) else {
            return Ok(());
        };
        let mut tx = self.db.begin_as("log out").await?;
        if let Some(stored) = self.tokens.find(&mut tx, &token.hash()).await? {
            self.tokens
                .revoke_family(&mut tx, stored.family_id, "logout")
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn user(&self, id: Uuid) -> Result<User, IdentityError> {
        self.users.find(id).await?.ok_or(IdentityError::UnknownUser)
    }

    /// Accounts whose email or name contains `words`, among `ids` when given, newest first
    /// (administrators).
    pub async fn accounts(
        &self,
        words: Option<&str>,
        ids: Option<&[Uuid]>,
        limit: u32,
        before: Option<Uuid>,
    ) -> Result<Vec<User>, IdentityError> {
        Ok(self.users.search(words, ids, limit, before).await?)
    }

    /// Makes `id` an administrator, or no longer one, on `caller`'s say; the account's
    /// sessions end, so its next sign-in carries the new role.
    pub async fn set_admin(
        &self,
        caller: Uuid,
        id: Uuid,
        admin: bool,
    ) -> Result<User, IdentityError> {
        if caller == id && !admin {
            return Err(IdentityError::OwnAdminRole);
        }
        let mut user = self
            .users
            .find(id)
            .await?
            .ok_or(IdentityError::NoSuchAccount)?;
        if user.roles.contains(&Role::Admin) == admin {
            return Ok(user);
        }
        if admin {
            user.roles.insert(0, Role::Admin);
        } else {
            user.roles.retain(|role| *role != Role::Admin);
        }
        let mut tx = self.db.begin_as("set admin").await?;
        self.users.set_roles(&mut tx, user.id, &user.roles).await?;
        let ended = self
            .tokens
            .revoke_user_families(&mut tx, user.id, "roles changed")
            .await?;
        tx.commit().await?;
        tracing::info!(user_id = %user.id, by = %caller, admin, sessions_ended = ended, "administrator role changed");
        Ok(user)
    }

    /// Makes sure an admin account with this email exists: creates it, or sets the password
    /// of the existing administrator. An account that exists but is not an administrator
    /// (someone may have registered the address first) is promoted only when `promotion`
    /// allows it. A change of roles or password ends every session the account had.
    pub async fn ensure_admin(
        &self,
        email: Email,
        password: Password,
        name: DisplayName,
        promotion: Promotion,
    ) -> Result<User, IdentityError> {
        match self.users.find_credentials(&email).await? {
            None => {
                let registration = Registration {
                    email,
                    password,
                    name,
                };
                self.register(registration, vec![Role::Admin, Role::Customer])
                    .await
            }
            Some((mut user, stored)) => {
                let promote = !user.roles.contains(&Role::Admin);
                if promote && promotion == Promotion::AdminsOnly {
                    return Err(IdentityError::NotAnAdmin);
                }
                let same_password =
                    passwords::verify(password.expose().to_owned(), Some(stored)).await?;
                if !promote && same_password {
                    return Ok(user);
                }
                let hash = passwords::hash(&password).await?;
                if promote {
                    user.roles.insert(0, Role::Admin);
                }
                let mut tx = self.db.begin_as("ensure admin").await?;
                self.users.set_roles(&mut tx, user.id, &user.roles).await?;
                self.users
                    .set_password_hash(&mut tx, user.id, &hash)
                    .await?;
                let ended = self
                    .tokens
                    .revoke_user_families(&mut tx, user.id, "credentials changed")
                    .await?;
                tx.commit().await?;
                tracing::info!(user_id = %user.id, promoted = promote, sessions_ended = ended, "administrator's credentials set");
                Ok(user)
            }
        }
    }

    /// A new token pair in `family`, which began at `family_began`: the refresh token
    /// expires after its own lifetime or when the session's ends, whichever comes first.
    async fn issue(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        user: &User,
        family: Uuid,
        family_began: chrono::DateTime<chrono::Utc>,
    ) -> Result<TokenPair, IdentityError> {
        let lifetimes = self.issuer.lifetimes;
        let refresh_token = RefreshToken::generate();
        let lifetime = |d: std::time::Duration| {
            chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(30))
        };
        let expires_at = (platform::time::now() + lifetime(lifetimes.refresh))
            .min(family_began + lifetime(lifetimes.session));
        self.tokens
            .insert(tx, family, &refresh_token.hash(), expires_at)
            .await?;
        let access_token = self
            .issuer
            .access_token(user)
            .map_err(IdentityError::internal)?;
        Ok(TokenPair {
            access_token,
            refresh_token,
            expires_in: lifetimes.access.as_secs(),
        })
    }
}
