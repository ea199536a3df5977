//! HTTP API of the orders service.

mod dto;
mod error;
mod routes;

pub use routes::router;
