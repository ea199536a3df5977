//! Webhook metrics: every try by outcome and its latency; endpoints by state, deliveries
//! waiting, and how long each failing endpoint has been failing (what the alert reads).

use std::collections::HashSet;
use std::time::Duration;

use uuid::Uuid;

use crate::store::EndpointHealth;

/// `commercex_webhook_deliveries_total{outcome}` and `commercex_webhook_delivery_seconds`.
pub fn record_try(delivered: bool, latency: Duration) {
    let outcome = if delivered { "delivered" } else { "failed" };
    metrics::counter!("commercex_webhook_deliveries_total", "outcome" => outcome).increment(1);
    metrics::histogram!("commercex_webhook_delivery_seconds", "outcome" => outcome)
        .record(latency.as_secs_f64());
}

/// `commercex_webhook_pruned_total{kind}`: history deleted past its retention.
pub fn record_pruned(pruned: crate::retention::Pruned) {
    metrics::counter!("commercex_webhook_pruned_total", "kind" => "deliveries")
        .increment(pruned.deliveries);
    metrics::counter!("commercex_webhook_pruned_total", "kind" => "messages")
        .increment(pruned.messages);
}

pub fn record_disabled() {
    metrics::counter!("commercex_webhook_endpoints_disabled_total").increment(1);
}

/// The gauges, from a reading of every endpoint. `reported` holds the endpoints given a
/// failing gauge before: one that is gone or healthy again is set back to 0.
pub fn record_health(endpoints: &[EndpointHealth], reported: &mut HashSet<Uuid>) {
    let now = platform::time::now();
    let mut states = [
        ("healthy", 0.0),
        ("failing", 0.0),
        ("disabled", 0.0),
        ("paused", 0.0),
    ];
    let mut pending = 0;
    let mut seen = HashSet::new();
    for endpoint in endpoints {
        let state = match (
            endpoint.enabled,
            endpoint.auto_disabled,
            endpoint.failing_since,
        ) {
            (true, _, None) => 0,
            (true, _, Some(_)) => 1,
            (false, true, _) => 2,
            (false, false, _) => 3,
        };
        states[state].1 += 1.0;
        pending += endpoint.pending;
        let failing = match (
            endpoint.enabled || endpoint.auto_disabled,
            endpoint.failing_since,
        ) {
            (true, Some(since)) => (now - since).to_std().unwrap_or_default().as_secs_f64(),
            _ => 0.0,
        };
        metrics::gauge!("commercex_webhook_endpoint_failing_seconds", "endpoint_id" => endpoint.id.to_string())
            .set(failing);
        seen.insert(endpoint.id);
    }
    for gone in reported.difference(&seen) {
        metrics::gauge!("commercex_webhook_endpoint_failing_seconds", "endpoint_id" => gone.to_string())
            .set(0.0);
    }
    *reported = seen;
    for (state, count) in states {
        metrics::gauge!("commercex_webhook_endpoints", "state" => state).set(count);
    }
    metrics::gauge!("commercex_webhook_pending_deliveries").set(pending as f64);
}

pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "commercex_webhook_deliveries_total",
        "Webhook delivery tries, by outcome (delivered: a 2xx answer; failed: anything else)"
    );
    describe_histogram!(
        "commercex_webhook_delivery_seconds",
        Unit::Seconds,
        "How long a webhook delivery try took, to the end of the endpoint's answer"
    );
    describe_counter!(
        "commercex_webhook_pruned_total",
        "Webhook history deleted past --webhook-retention, by kind (deliveries with their tries, messages)"
    );
    describe_counter!(
        "commercex_webhook_endpoints_disabled_total",
        "Webhook endpoints the breaker disabled after failing for too long"
    );
    describe_gauge!(
        "commercex_webhook_endpoints",
        "Webhook endpoints by state: healthy, failing, disabled (by the breaker), paused (by an operator)"
    );
    describe_gauge!(
        "commercex_webhook_pending_deliveries",
        "Webhook deliveries waiting to be sent"
    );
    describe_gauge!(
        "commercex_webhook_endpoint_failing_seconds",
        Unit::Seconds,
        "How long a webhook endpoint has failed every try (0 when its last try succeeded)"
    );
}
