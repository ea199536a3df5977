//! One-shot commands: migrate, topics, dlq, admin, seed, bench, bench-events, probe.

pub mod admin;
pub mod bench;
#[cfg(feature = "kafka")]
pub mod bench_events;
pub mod dlq;
pub mod migrate;
pub mod probe;
pub mod seed;
pub mod topics;
