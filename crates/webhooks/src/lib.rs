//! The webhooks service: integrators register HTTPS endpoints and the event types they want;
//! every such event is recorded for each endpoint in the consumer's transaction (with its
//! inbox row), then delivered, signed as the Standard Webhooks specification says, at least
//! once, in event-time order per endpoint, with backoff, `Retry-After` and a breaker that
//! disables an endpoint failing for too long. Nothing is dropped: an operator sees every
//! delivery and can replay it, until the history is pruned ([`retention`]: delivered ones
//! after `--webhook-retention`; waiting ones never).

pub mod api;
pub mod app;
pub mod dispatch;
pub mod domain;
pub mod metrics;
pub mod reactions;
pub mod retention;
pub mod sender;
pub mod service;
pub mod store;

pub use service::{WebhooksService, WebhooksSettings};
