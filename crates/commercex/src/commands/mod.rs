//! One-shot commands: migrate, dlq, admin.

pub mod admin;
pub mod dlq;
pub mod migrate;
