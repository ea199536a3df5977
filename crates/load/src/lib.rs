//! Load and demo data for a running CommerceX: [`client`], a typed client of the public HTTP
//! API (the benchmark and the integration tests sign up, log in and check out through it);
//! [`bench`](mod@bench), the checkout load generator; `bench_events`, the Kafka bus alone; and
//! [`seed`], the demo catalog.

pub mod bench;
#[cfg(feature = "kafka")]
pub mod bench_events;
pub mod client;
pub mod seed;
