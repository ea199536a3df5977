//! HTTP API of the identity service.

mod dto;
mod error;
mod routes;

pub use routes::router;
