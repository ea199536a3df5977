//! One-shot commands: migrate, topics, dlq, admin, seed, bench, probe.

pub mod admin;
pub mod bench;
pub mod dlq;
pub mod migrate;
pub mod probe;
pub mod seed;
pub mod topics;
