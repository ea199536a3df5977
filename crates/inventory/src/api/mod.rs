//! HTTP API of the inventory service.

mod dto;
mod error;
mod routes;

pub use routes::router;
