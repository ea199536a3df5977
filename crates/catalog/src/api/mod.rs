//! HTTP API of the catalog service.

pub mod dto;
mod error;
mod routes;

pub use routes::router;
