//! Plumbing every CommerceX service shares. Nothing here knows about a particular service.

pub mod auth;
pub mod db;
pub mod http;
pub mod money;
pub mod problem;
pub mod secret;
pub mod shared_redis;
pub mod time;
pub mod trace_context;

pub use problem::{ApiError, FieldError};
