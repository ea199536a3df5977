//! HTTP API of the orders service.

pub mod dto;
mod error;
mod routes;

pub use routes::router;
