//! HTTP API of the inventory service.

pub mod dto;
mod error;
mod routes;

pub use routes::router;
