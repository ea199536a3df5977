//! The catalog service: products, prices, search, and availability from inventory events.

pub mod api;
pub mod app;
pub mod cache;
pub mod changes;
pub mod domain;
pub mod reactions;
pub mod search_index;
pub mod service;
pub mod store;

pub use service::CatalogService;
