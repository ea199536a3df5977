//! Pure rules of webhooks: which events an endpoint wants, where it may be, how a delivery is
//! signed, when a failed one is tried again and when an endpoint is given up on.

pub mod destination;
pub mod filter;
pub mod retry;
pub mod signature;

pub use destination::{DestinationError, DestinationPolicy};
pub use filter::{EventTypeFilter, FilterError};
pub use retry::{Backoff, EndpointVerdict, retry_after};
pub use signature::{SigningSecret, signature_header};
