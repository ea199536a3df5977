//! The inventory service: stock per product, the stock ledger, and reservations that never
//! oversell.

pub mod api;
pub mod app;
pub mod domain;
pub mod reactions;
pub mod service;
pub mod store;
pub mod sweeper;

pub use service::InventoryService;
