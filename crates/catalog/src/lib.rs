//! The catalog service: products, prices, search, and availability from inventory events.

pub mod api;
pub mod cache;
pub mod catalog;
pub mod changes;
pub mod domain;
pub mod handlers;
pub mod search_index;
pub mod service;
pub mod store;
pub mod stored;

pub use service::CatalogService;
