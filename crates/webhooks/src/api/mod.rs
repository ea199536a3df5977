//! The admin API over webhooks: `/api/v1/admin/webhooks/...`.

mod dto;
mod error;
mod routes;

pub use routes::router;
