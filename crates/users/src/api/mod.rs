//! HTTP API of the identity service.

pub mod dto;
mod error;
mod routes;

pub use routes::router;
