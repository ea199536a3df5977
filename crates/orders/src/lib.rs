//! The orders service: placing orders (idempotently), their status and timeline through the
//! checkout saga, and cancellation.

pub mod api;
pub mod app;
pub mod deadline;
pub mod domain;
pub mod metrics;
pub mod reactions;
pub mod service;
pub mod store;
pub mod watchers;

pub use service::OrdersService;
