//! HTTP API of the payments service: what happened to an order's payment.

pub mod dto;
mod error;
mod routes;

pub use routes::router;
