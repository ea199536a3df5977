//! Plumbing every CommerceX service shares. Nothing here knows about a particular service.

pub mod auth;
pub mod db;
pub mod http;
pub mod money;
pub mod notifications;
pub mod periodic;
pub mod problem;
pub mod sealing;
pub mod secret;
pub mod shared_redis;
pub mod time;
pub mod trace_context;

pub use problem::{ApiError, FieldError};

/// A cause kept whole (its type and its own causes), for errors that wrap a fault of ours:
/// where the answer is decided (`ApiError`), a database that cannot be reached is still told
/// from a bug.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
