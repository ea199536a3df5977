//! Identity rules with no I/O: what a valid email, password and name are, what a user is,
//! and what presenting a refresh token means.

mod credentials;
mod refresh;
mod user;

pub use credentials::{DisplayName, Email, Password};
pub use refresh::{RefreshToken, RefreshTokenHash, RefreshVerdict, StoredRefreshToken};
pub use user::{NewUser, User};
