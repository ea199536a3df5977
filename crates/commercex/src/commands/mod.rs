//! One-shot commands: migrate, dlq, admin, seed.

pub mod admin;
pub mod dlq;
pub mod migrate;
pub mod seed;
