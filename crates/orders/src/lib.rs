//! The orders service: placing orders (idempotently), their status and timeline through the
//! checkout saga, and cancellation.

pub mod api;
pub mod deadline;
pub mod domain;
pub mod handlers;
pub mod observe;
pub mod orders;
pub mod service;
pub mod store;
mod watchers;

pub use service::OrdersService;
