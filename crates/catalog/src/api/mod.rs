//! HTTP API of the catalog service.

mod dto;
mod error;
mod routes;

pub use routes::router;
