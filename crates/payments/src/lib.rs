//! The payments service: one charge per order through a payment provider, voids and refunds,
//! all driven by the checkout saga's events.

pub mod api;
pub mod app;
pub mod domain;
pub mod provider;
pub mod reactions;
pub mod service;
pub mod store;

pub use service::PaymentsService;
