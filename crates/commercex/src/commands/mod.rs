//! One-shot commands: migrate, topics, dlq, admin, probe. (`bench`, `bench-events` and
//! `seed` are the `load` crate's.)

pub mod admin;
pub mod dlq;
pub mod migrate;
pub mod probe;
pub mod topics;
