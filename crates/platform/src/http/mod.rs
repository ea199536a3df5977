//! HTTP conventions every service follows: JSON bodies parsed with field-level errors,
//! request ids, request tracing, body limits, problem+json for unknown routes and methods,
//! and the health endpoints.

mod conventions;
mod health;
mod json;
mod query;

pub use client::{ClientAddr, ForwardedBy};
pub use conventions::{
    HttpLimits, apply_conventions, describe_metrics, method_label, with_request_conventions,
};
pub use health::{ReadinessCheck, health_routes};
pub use json::{Json, parse as parse_json_body};
pub use query::Query;

mod client;
