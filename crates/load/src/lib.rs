//! Load and demo data for a running CommerceX, through the `client` crate's typed client of
//! the public API: [`bench`](mod@bench), the checkout load generator; `bench_events`, the
//! Kafka bus alone; and [`seed`], the demo catalog.

pub mod bench;
#[cfg(feature = "kafka")]
pub mod bench_events;
pub mod seed;
