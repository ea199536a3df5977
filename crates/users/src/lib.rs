//! The identity service: accounts, credentials, access and refresh tokens, JWKS.

pub mod api;
pub mod app;
pub mod domain;
mod passwords;
pub mod retention;
pub mod service;
pub mod store;
pub mod throttle;
pub mod tokens;

pub use service::{UsersConfig, UsersService};
